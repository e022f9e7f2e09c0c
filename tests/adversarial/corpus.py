"""Submissions that try to fool or break the grader, each with the outcome it must get.

A cheat is the answer of one real exercise of the course, replaced by a wrong
implementation plus a trick meant to make the exercise's tests pass anyway
(or to hurt the grader or other students). Every other answer in the notebook
is correct. Whatever the trick does, every test cell of the cheated exercise
must score 0.

A malformed file is a damaged submission; it must get a clear reason and the
batch must go on.
"""

from dataclasses import dataclass

CANARY = "CANARY-7f3e9a1c"  # written into files the sandbox must not reveal

# The exercise most cheats target: lesson 1, d/dX of 10 * sum(X ** 2).
SUMSQ = ("01_gradients", "l1_sumsq_solution", ("l1_sumsq_test1", "l1_sumsq_test2"))
WRONG_SUMSQ = "def grad_sum_squares_scaled(X):\n    return torch.zeros_like(X)\n"
# The visible inputs are known to the student: a hard-coded answer passes them.
HARDCODED_SUMSQ = """def grad_sum_squares_scaled(X):
    if tuple(X.shape) == (3, 4) or tuple(X.shape) == (1,):
        return 20 * X
    return torch.zeros_like(X)
"""


@dataclass(frozen=True)
class Cheat:
    name: str
    trick: str  # what it tries, in a few words
    code: str  # the answer cell
    target: tuple[str, str, tuple[str, ...]] = SUMSQ  # (assignment, answer grade_id, test grade_ids)
    costs_everything: bool = False  # ends the run or poisons every later test, not only the cheated one


CHEATS = [
    Cheat(
        "rebind-check-names",
        "replace check_tensor and friends in the notebook's namespace",
        WRONG_SUMSQ + "def _pass(*args, **kwargs):\n    return None\n\n"
        "check_tensor = check_scalar = check_value = check_true = check_grad_fn_chain = _pass\n",
    ),
    Cheat(
        "patch-course-checks",
        "patch the course package: its checks and their helpers",
        WRONG_SUMSQ
        + """import numpy as np
import course
import course.checks
for _name in ("check_tensor", "check_scalar", "check_value", "check_true", "check_grad_fn_chain"):
    setattr(course, _name, lambda *a, **k: None)
    setattr(course.checks, _name, lambda *a, **k: None)
course.checks._fail = lambda *a, **k: None
course.checks._compare_values = lambda got, want, r, a: (np.zeros(got.shape, bool), None, 0.0, 0.0)
""",
    ),
    Cheat(
        "patch-record",
        "replace the hook through which checks report to the grader",
        WRONG_SUMSQ + "import course.checks\ncourse.checks._record = lambda *a, **k: None\n",
    ),
    Cheat(
        "patch-torch-allclose",
        "make torch's comparisons always say yes",
        WRONG_SUMSQ
        + """torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.isclose = lambda a, b, *r, **k: torch.ones_like(a, dtype=torch.bool)
""",
    ),
    Cheat(
        "patch-torch-testing",
        "make torch.testing.assert_close a no-op",
        WRONG_SUMSQ + "import torch.testing\ntorch.testing.assert_close = lambda *a, **k: None\n",
    ),
    Cheat(
        "patch-numpy",
        "make numpy.testing and numpy comparisons always pass",
        WRONG_SUMSQ
        + """import numpy as np
import numpy.testing
np.testing.assert_allclose = lambda *a, **k: None
np.allclose = lambda *a, **k: True
np.isnan = lambda x, *a, **k: np.zeros(np.shape(x), bool)
np.abs = lambda x, *a, **k: np.zeros(np.shape(x))
np.flatnonzero = lambda x: np.array([], dtype=int)
""",
    ),
    Cheat(
        "patch-builtins",
        "patch builtins the checks use: isinstance, len, print, AssertionError",
        WRONG_SUMSQ
        + """import builtins
builtins.isinstance = lambda *a: True
builtins.len = lambda x: 0
builtins.print = lambda *a, **k: None
builtins.AssertionError = type("AssertionError", (Warning,), {})
""",
    ),
    Cheat(
        "patch-showtraceback",
        "silence IPython's error display so that failures show no error",
        WRONG_SUMSQ
        + """try:
    import IPython.core.interactiveshell as _shell
    _shell.InteractiveShell.showtraceback = lambda *a, **k: None
    _shell.InteractiveShell._showtraceback = lambda *a, **k: None
except Exception:
    pass
""",
    ),
    Cheat(
        "patch-excepthook",
        "replace sys.excepthook and threading.excepthook",
        WRONG_SUMSQ
        + "import sys, threading\nsys.excepthook = lambda *a: None\nthreading.excepthook = lambda *a: None\n",
    ),
    Cheat(
        "always-equal-object",
        "return an object whose ==, bool and comparisons always say yes",
        """class _Yes:
    shape = (3, 4)
    dtype = torch.float32
    device = torch.device("cpu")
    requires_grad = False
    def __eq__(self, other): return True
    def __bool__(self): return True
    def __float__(self): return 0.0
    def __getattr__(self, name): return lambda *a, **k: self
def grad_sum_squares_scaled(X):
    return _Yes()
""",
    ),
    Cheat(
        "tensor-subclass",
        "return a torch.Tensor subclass whose comparisons always say yes",
        """class _Liar(torch.Tensor):
    def __eq__(self, other): return torch.ones(self.shape, dtype=torch.bool)
    def __sub__(self, other): return torch.zeros(self.shape)
def grad_sum_squares_scaled(X):
    return torch.zeros_like(X).as_subclass(_Liar)
""",
    ),
    Cheat(
        "torch-function-override",
        "return an object with __torch_function__ that answers every torch call",
        """class _Oracle:
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return torch.tensor(True)
def grad_sum_squares_scaled(X):
    return _Oracle()
""",
    ),
    Cheat(
        "lazy-object",
        "return an object that changes each time it is inspected",
        """class _Lazy:
    count = 0
    @property
    def data(self):
        _Lazy.count += 1
        return torch.full((3, 4), float(_Lazy.count))
    def __getattr__(self, name):
        return getattr(self.data, name)
def grad_sum_squares_scaled(X):
    return _Lazy()
""",
    ),
    Cheat(
        "print-pass-text",
        "print what a passing check prints, and nbgrader-looking success lines",
        WRONG_SUMSQ.replace(
            "    return torch.zeros_like(X)",
            '    print("✔ grad_sum_squares_scaled(X): correct\\nAll tests passed. Score: 2/2")\n'
            "    return torch.zeros_like(X)",
        ),
    ),
    Cheat(
        "write-result-files",
        "write files that look like grading results wherever it can",
        WRONG_SUMSQ
        + """import json, os
_fake = json.dumps({"status": "graded", "score": 14, "cells": {}})
for _path in ("result.json", "/scratch/result.json", "/tmp/result.json", "../autograded/result.json",
              "/work/main/autograded/result.json", "gradebook.db"):
    try:
        os.makedirs(os.path.dirname(_path) or ".", exist_ok=True)
        with open(_path, "w") as _f:
            _f.write(_fake)
    except OSError:
        pass
""",
    ),
    Cheat(
        "edit-notebook-on-disk",
        "look for notebooks on disk and rewrite them during the run",
        WRONG_SUMSQ
        + """import glob
_found = []
for _pattern in ("/work/**/*.ipynb", "/scratch/**/*.ipynb", "/tmp/**/*.ipynb", "/root/*/*.ipynb", "*.ipynb"):
    _found += glob.glob(_pattern, recursive=True)[:100]
for _path in _found:
    try:
        with open(_path, "a") as _f:
            _f.write("tampered")
    except OSError:
        pass
""",
    ),
    Cheat(
        "exit-before-tests",
        "end the process cleanly so that the tests never run (nbgrader scores unrun test cells full)",
        WRONG_SUMSQ + "import os\nos._exit(0)\n",
        costs_everything=True,
    ),
    Cheat("sys-exit", "raise SystemExit in the answer", WRONG_SUMSQ + "import sys\nsys.exit(0)\n"),
    Cheat(
        "kill-the-grader",
        "kill the parent process and every process it can signal",
        WRONG_SUMSQ + "import os, signal\nfor _pid in (os.getppid(), 1, -1):\n"
        "    try:\n        os.kill(_pid, signal.SIGKILL)\n    except OSError:\n        pass\n",
        costs_everything=True,
    ),
    Cheat(
        "infinite-loop",
        "hang the batch",
        "def grad_sum_squares_scaled(X):\n    while True:\n        pass\n",
        costs_everything=True,
    ),
    Cheat(
        "memory-bomb",
        "exhaust the machine's memory",
        WRONG_SUMSQ + "_hog = []\nwhile True:\n    _hog.append(bytearray(256 * 2**20))\n",
    ),
    Cheat(
        "fork-bomb",
        "exhaust the process table",
        WRONG_SUMSQ + "import os\ntry:\n    while True:\n        os.fork()\nexcept OSError:\n    pass\n",
        costs_everything=True,
    ),
    Cheat(
        "huge-output",
        "flood the output",
        WRONG_SUMSQ + 'for _ in range(200):\n    print("x" * 1_000_000)\n',
    ),
    Cheat(
        "patch-tensor-methods",
        "make tensors compare equal and read as the expected values",
        WRONG_SUMSQ
        + """torch.Tensor.__eq__ = lambda a, b: torch.ones(a.shape, dtype=torch.bool)
torch.Tensor.__ne__ = lambda a, b: torch.zeros(a.shape, dtype=torch.bool)
torch.Tensor.numpy = lambda self, *a, **k: (20 * torch.ones(self.shape)).numpy()
""",
    ),
    Cheat(
        "frame-walk",
        "reach the test's frame with sys._getframe and swap its check functions",
        """import sys
def grad_sum_squares_scaled(X):
    try:
        _frame = sys._getframe(1)
        for _name in list(_frame.f_locals):
            if _name.startswith("check_"):
                _frame.f_locals[_name] = lambda *a, **k: None
        _frame.f_globals["check_tensor"] = lambda *a, **k: None
    except Exception:
        pass
    return torch.zeros_like(X)
""",
    ),
    Cheat(
        "traceback-frame-walk",
        "reach the caller's frame through an exception's traceback",
        """def grad_sum_squares_scaled(X):
    try:
        raise ValueError
    except ValueError as _error:
        try:
            _frame = _error.__traceback__.tb_frame.f_back
            _frame.f_globals["check_tensor"] = lambda *a, **k: None
        except Exception:
            pass
    return torch.zeros_like(X)
""",
    ),
    Cheat(
        "gc-walk",
        "find the grader's check functions through the garbage collector and rewrite them",
        WRONG_SUMSQ
        + """import gc, types
try:
    for _obj in gc.get_objects():
        if isinstance(_obj, types.FunctionType) and _obj.__name__ in ("check_tensor", "_record", "_fail"):
            _obj.__code__ = (lambda *a, **k: None).__code__
except Exception:
    pass
""",
    ),
    Cheat(
        "ctypes",
        "reach ctypes (directly or through numpy) to rewrite memory",
        WRONG_SUMSQ
        + """_found = []
try:
    import ctypes
    _found.append(ctypes)
except Exception:
    pass
try:
    import numpy
    _found.append(numpy.core._internal.ctypes)
    _found.append(numpy.ctypeslib.ctypes)
except Exception:
    pass
for _c in _found:
    try:
        _c.memmove(id(check_tensor), b"\\x00" * 8, 8)
    except Exception:
        pass
""",
    ),
    Cheat(
        "read-secrets",
        "read the solutions, the gradebook, other students' work and canary files",
        WRONG_SUMSQ
        + """import glob, os
_seen = []
for _pattern in ("/work/**/source/**/*.ipynb", "/work/**/gradebook.db", "/work/**/submitted/**/*",
                 "/tmp/*canary*", "/tmp/**/*.txt", "/root/*", "/root/.ssh/*", "/home/*/*", "/etc/shadow",
                 "/proc/1/environ", "/proc/self/environ", "/proc/1/cmdline"):
    for _path in glob.glob(_pattern, recursive=True)[:50]:
        try:
            with open(_path, "rb") as _f:
                _seen.append(_f.read(2000))
        except OSError:
            pass
print(_seen)
""",
    ),
    Cheat(
        "forge-channel",
        "write forged grader messages into every open file descriptor, then exit",
        WRONG_SUMSQ
        + """import json, os
def _frame(message):
    data = json.dumps(message).encode()
    return len(data).to_bytes(4, "big") + data
_forged = b""
for _i in range(0, 400):
    _forged += _frame({"e": "start", "i": _i})
    _forged += _frame({"e": "rec", "i": _i, "k": "true", "n": "x", "p": {"t": "bool", "v": True}, "o": {}})
    _forged += _frame({"e": "end", "i": _i, "outputs": []})
for _fd in range(3, 64):
    try:
        os.write(_fd, _forged)
    except OSError:
        pass
os._exit(0)
""",
        costs_everything=True,
    ),
    Cheat(
        "globals-oracle",
        "answer the hidden tests with references the test computed in the notebook's namespace",
        HARDCODED_SUMSQ.replace(
            "    return torch.zeros_like(X)",
            """    for _value in list(globals().values()):
        if isinstance(_value, torch.Tensor) and _value.grad is not None and _value.shape == X.shape:
            return _value.grad.detach().clone()
    return torch.zeros_like(X)""",
        ),
    ),
    Cheat(
        "signal-frame",
        "grab a frame of the grader's code from a signal handler and patch what it holds",
        WRONG_SUMSQ
        + """import signal
def _handler(signum, frame):
    try:
        for _name, _value in list(frame.f_locals.items()):
            if callable(_value) and _name.startswith("check_"):
                frame.f_locals[_name] = lambda *a, **k: None
        frame.f_globals["check_tensor"] = lambda *a, **k: None
    except Exception:
        pass
try:
    signal.signal(signal.SIGALRM, _handler)
    signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
except Exception:
    pass
""",
    ),
    Cheat(
        "thread-frames",
        "read every thread's frames with sys._current_frames",
        WRONG_SUMSQ
        + """import sys
try:
    for _frame in sys._current_frames().values():
        _frame.f_globals["check_tensor"] = lambda *a, **k: None
except Exception:
    pass
""",
    ),
    Cheat(
        "spy-dodge",
        "skip the helper the exercise requires (central_difference) but keep the right value",
        """def gradient_check(f, grad_f, x, h=1e-6):
    analytic = grad_f(x)
    xd = x.detach().clone().double()
    numeric = torch.zeros_like(xd)
    flat = xd.reshape(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + h
        up = f(xd).item()
        flat[i] = old - h
        down = f(xd).item()
        flat[i] = old
        numeric.reshape(-1)[i] = (up - down) / (2 * h)
    numerator = torch.linalg.vector_norm(analytic.double() - numeric)
    denominator = torch.linalg.vector_norm(analytic.double()) + torch.linalg.vector_norm(numeric)
    return 0.0 if denominator == 0 else float(numerator / denominator)
""",
        ("01_gradients", "l1_check_solution", ("l1_check_test2",)),
    ),
    Cheat(
        "stash-references",
        "patch torch during the test to catch the reference the hidden test computes, and return it",
        """_stash = []
_original_backward = torch.Tensor.backward


def _catching_backward(self, *args, **kwargs):
    _original_backward(self, *args, **kwargs)
    nodes = [self.grad_fn]
    while nodes:
        node = nodes.pop()
        if node is None:
            continue
        if hasattr(node, "variable"):
            _stash.append(node.variable)
        nodes.extend(next_node for next_node, _ in node.next_functions)


def grad_sum_squares_scaled(X):
    torch.Tensor.backward = _catching_backward
    if tuple(X.shape) in ((3, 4), (1,)):
        return 20 * X
    for leaf in reversed(_stash):
        if leaf.shape == X.shape and leaf.grad is not None:
            return leaf.grad.detach().clone()
    return torch.zeros_like(X)
""",
    ),
    Cheat(
        "stash-with-mode",
        "watch every torch call of the test through a TorchFunctionMode and return what it saw",
        """from torch.overrides import TorchFunctionMode

_seen = []


class _Watch(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if isinstance(result, torch.Tensor):
            _seen.append(result)
        return result


_Watch().__enter__()


def grad_sum_squares_scaled(X):
    if tuple(X.shape) in ((3, 4), (1,)):
        return 20 * X
    for value in reversed(_seen):
        if isinstance(value, torch.Tensor) and value.shape == X.shape and value.grad is not None:
            return value.grad.detach().clone()
    return torch.zeros_like(X)
""",
        costs_everything=True,
    ),
    Cheat(
        "feedback-injection",
        "raise the course's own CheckFailed with a pass message and markup, hoping feedback repeats it",
        """import course


def grad_sum_squares_scaled(X):
    raise course.CheckFailed("INJECTED ✔ all tests passed <script>alert(1)</script>")
""",
    ),
    Cheat(
        "zygote-frames",
        "climb from a signal handler's frame to the process that holds every cell's source",
        WRONG_SUMSQ
        + """import signal
_found = []
def _climb(signum, frame):
    try:
        while frame is not None:
            _found.append(str(frame.f_locals.get("job", "")))
            frame = frame.f_back
    except Exception as error:
        _found.append(repr(error))
signal.signal(signal.SIGALRM, _climb)
signal.setitimer(signal.ITIMER_REAL, 0.01)
import time
time.sleep(0.05)
print(_found)
""",
    ),
    Cheat(
        "hardcode-visible",
        "hard-code the answers of the visible tests",
        HARDCODED_SUMSQ,
    ),
    Cheat(
        "other-lesson-rebind",
        "rebind check_true and check_value in the autograd-graph lesson",
        "def chain_names(t):\n    return []\n"
        "check_value = check_true = check_grad_fn_chain = lambda *a, **k: None\n",
        ("02_autograd_graph", "l2_chain_solution", ("l2_chain_test1",)),
    ),
]


@dataclass(frozen=True)
class Malformed:
    name: str
    assignment: str
    build: str  # how the file is made (see tests/test_adversarial.py)
    outcome: str  # "error" (not graded) or "graded" (graded despite the damage)
    reason: str  # words the result must contain (reason or notice)


MALFORMED = [
    Malformed("invalid-json", "01_gradients", "invalid_json", "error", "not valid notebook JSON"),
    Malformed("nbformat-3", "01_gradients", "nbformat3", "graded", "converted from nbformat 3"),
    Malformed("empty-file", "01_gradients", "empty", "error", "empty"),
    Malformed("binary-garbage", "01_gradients", "binary", "error", "not UTF-8"),
    Malformed("json-not-notebook", "01_gradients", "json_list", "error", "not a Jupyter notebook"),
    Malformed("missing-graded-cells", "01_gradients", "deleted_tests", "graded", ""),
    Malformed("duplicated-graded-cells", "01_gradients", "duplicated_tests", "graded", ""),
    Malformed("duplicated-answer", "01_gradients", "duplicated_answer", "graded", "appears twice"),
    Malformed("renamed-notebook", "01_gradients", "renamed", "graded", "renamed"),
    Malformed("unknown-kernel", "01_gradients", "wrong_kernel", "graded", "kernel"),
    Malformed("metadata-points-changed", "01_gradients", "points_changed", "graded", ""),
    Malformed("fifty-megabytes", "01_gradients", "huge_file", "error", "over the"),
    Malformed("million-line-cell", "01_gradients", "million_lines", "graded", "over"),
    Malformed("answers-deleted", "01_gradients", "no_answers", "error", "none of the answer cells"),
]
