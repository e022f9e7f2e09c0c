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
TEST1_ONLY = (SUMSQ[0], SUMSQ[1], ("l1_sumsq_test1",))  # its hidden reference is computed before the call
TEST2_ONLY = (SUMSQ[0], SUMSQ[1], ("l1_sumsq_test2",))  # its hidden expected: a literal built after the call
# Code that ends the answer's function: the gradient of a leaf equal to X among the tensors in `seen`.
LEAF_GRAD_FROM = """    for _t in reversed({seen}):
        if _t.is_leaf and _t.grad is not None and _t.shape == X.shape and torch.equal(_t.detach(), X):
            return _t.grad.detach().clone()
    return torch.zeros_like(X)"""
# Code in the answer's function that walks up from `start` and returns the gradient of a leaf equal to X.
FRAME_STEAL = """    _frame = {start}
    while _frame is not None:
        for _value in list(_frame.f_locals.values()):
            if (type(_value) is torch.Tensor and _value.is_leaf and _value.grad is not None
                    and _value.shape == X.shape and torch.equal(_value.detach(), X)):
                return _value.grad.detach().clone()
        _frame = _frame.f_back
    return torch.zeros_like(X)"""
# The names (variables, attributes) of the code that called the answer, read from frames.
LEAK_TEXT = """import sys

_words = []


def _hidden_text():
    frame = sys._getframe(0).f_back
    for _ in range(3):
        if frame is None:
            break
        code = frame.f_code
        names = code.co_varnames + code.co_names
        _words.extend(n for n in names if n.startswith("_") and len(n) > 2 and n not in _words)
        frame = frame.f_back
    return " ".join(_words)[:1000]
"""
# The signing sender of the report channel, out of the private checks' record closure.
SENDER = """

def _sender():
    frame = sys._getframe(0).f_back
    while frame is not None and "check_tensor" not in frame.f_locals:
        frame = frame.f_back
    if frame is None:
        return None
    record = frame.f_locals["check_tensor"].__globals__.get("_record")
    for cell in getattr(record, "__closure__", None) or ():
        value = cell.cell_contents
        if callable(value) and getattr(value, "__name__", "") == "send":
            return value
    return None
"""
# Files of 48 MB (under the file size limit) in `folders` until they are full or `cap` bytes are held.
FILL = """import os

_held = 0
_chunk = b"x" * (16 * 2**20)
for _folder in {folders}:
    _k = 0
    while _held < {cap}:
        try:
            with open(os.path.join(_folder, f"fill{{_k}}"), "wb") as _f:
                for _ in range(3):
                    _f.write(_chunk)
        except OSError:
            break
        _held += 48 * 2**20
        _k += 1
print("HELD-BYTES", _held)
"""
# Fork `children` processes that each allocate what their own RLIMIT_AS allows and hold it;
# adds what they hold to _held. They are killed when the parent is done.
ALLOCATORS = """import os, time

_children = []
for _k in range({children}):
    _read, _write = os.pipe()
    _pid = os.fork()
    if _pid == 0:
        _got, _hog = 0, []
        try:
            while _got < 900 * 2**20:
                _hog.append(b"\x01" * (16 * 2**20))  # written, so really held
                _got += 16 * 2**20
        except MemoryError:
            pass
        os.write(_write, str(_got).encode().ljust(20))
        time.sleep(30)
        os._exit(0)
    os.close(_write)
    _children.append((_pid, int(os.read(_read, 20).decode().strip() or 0)))
# held at once: only what children still alive hold (the kernel may have killed earlier ones)
_held += sum(_got for _pid, _got in _children if os.waitpid(_pid, os.WNOHANG) == (0, 0))
"""
ALLOCATORS_END = """for _pid, _ in _children:
    try:
        os.kill(_pid, 9)
        os.waitpid(_pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
"""
# What a memory cheat prints: the bytes it held at once (files, and memory it allocated itself).
HELD_BYTES = "HELD-BYTES"
# What the second job of the "survive" sequence prints when it finds what the first one left.
SURVIVOR_FOUND = "SURVIVOR-FOUND"


@dataclass(frozen=True)
class Cheat:
    name: str
    trick: str  # what it tries, in a few words
    code: str  # the answer cell
    target: tuple[str, str, tuple[str, ...]] = SUMSQ  # (assignment, answer grade_id, test grade_ids)
    costs_everything: bool = False  # ends the run or poisons every later test, not only the cheated one
    metadata: dict | None = None  # notebook metadata to set (merged over the release's)
    sequence: str = ""  # cheats of one sequence are graded one after the other, in name order, on one worker


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
course.checks._conclude = lambda *a, **k: None
course.checks.compare = lambda *a, **k: course.checks.PASSED
course.checks._compare_values = lambda got, want, r, a: (np.zeros(got.shape, bool), None, 0.0, 0.0)
""",
    ),
    Cheat(
        "course-lazy-names",
        "redirect the course package's lazily loaded names to a module whose checks all pass",
        WRONG_SUMSQ
        + """import sys, types
import course

_fake = types.ModuleType("course_fake")
for _name in course.__all__:
    setattr(_fake, _name, lambda *a, **k: None)
sys.modules["course_fake"] = _fake
for _name in list(course._HOMES):
    course._HOMES[_name] = "course_fake"
    vars(course).pop(_name, None)
course.__getattr__ = lambda name: getattr(_fake, name)
""",
    ),
    Cheat(
        "rewrite-catalogue",
        "rewrite the message catalogue so that every failure reads as a pass",
        WRONG_SUMSQ
        + """import course.i18n

for _key, _texts in course.i18n.MESSAGES.items():
    for _lang in list(_texts):
        _texts[_lang] = course.i18n.MESSAGES["ok"][_lang] if "{name}" in _texts[_lang] else "ok"
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
    # ---- Judge model (issue 9): every route by which code in the student's process can reach an
    # expected value, fake a report, leak hidden text, stop the batch, escape the memory limit or
    # leave something for the next job. Each answer below is wrong; the trick must not help.
    # a. frames: f_back raises no audit event on Python 3.11
    Cheat(
        "frame-f-back-locals",
        "read the test cell's locals with sys._getframe(0).f_back and return its reference gradient",
        "import sys\n"
        + HARDCODED_SUMSQ.replace(
            "    return torch.zeros_like(X)", FRAME_STEAL.format(start="sys._getframe(0).f_back")
        ),
        TEST1_ONLY,
    ),
    Cheat(
        "traceback-f-back-locals",
        "reach the test cell's frame through an exception's traceback, then f_back, and steal the reference",
        "import sys\n"
        + HARDCODED_SUMSQ.replace(
            "    return torch.zeros_like(X)",
            "    try:\n        raise ValueError\n    except ValueError as _error:\n"
            "        _start = _error.__traceback__.tb_frame\n" + FRAME_STEAL.format(start="_start.f_back"),
        ),
        TEST1_ONLY,
    ),
    Cheat(
        "generator-frame-locals",
        "climb from a running generator's frame (gi_frame, f_back) to the test cell and steal the reference",
        "import sys\n"
        + HARDCODED_SUMSQ.replace(
            "    return torch.zeros_like(X)",
            "    def _climb():\n        yield sys._getframe(0).f_back.f_back\n"
            "    _start = next(_climb())\n" + FRAME_STEAL.format(start="_start"),
        ),
        TEST1_ONLY,
    ),
    # b. saved-tensor hooks: not a torch function or dispatch mode
    Cheat(
        "saved-tensors-default-hooks",
        "a global saved_tensors_hooks catches the test's leaf tensors; return the gradient they got",
        """_saved = []


def _pack(t):
    _saved.append(t)
    return t


torch.autograd.graph.saved_tensors_hooks(_pack, lambda t: t).__enter__()
"""
        + HARDCODED_SUMSQ.replace(
            "    return torch.zeros_like(X)",
            LEAF_GRAD_FROM.format(seen="_saved"),
        ),
        TEST1_ONLY,
    ),
    Cheat(
        "multi-grad-hook",
        "register_multi_grad_hook on every leaf the test saves for backward; return the gradient it receives",
        """_stolen = []


def _pack(t):
    if t.is_leaf and t.requires_grad:
        _copy = t.detach().clone()
        torch.autograd.graph.register_multi_grad_hook(
            (t,), lambda grads, _copy=_copy: _stolen.append((_copy, grads[0].detach().clone()))
        )
    return t


torch.autograd.graph.saved_tensors_hooks(_pack, lambda t: t).__enter__()
"""
        + HARDCODED_SUMSQ.replace(
            "    return torch.zeros_like(X)",
            """    for _x, _grad in reversed(_stolen):
        if _x.shape == X.shape and torch.equal(_x, X):
            return _grad
    return torch.zeros_like(X)""",
        ),
        TEST1_ONLY,
    ),
    # c. torch.library kernels
    Cheat(
        "library-kernel-pow",
        "override aten::pow for CPU with torch.library to see the reference's leaf; return its gradient",
        """import warnings

_seen = []
_lib = torch.library.Library("aten", "IMPL")


def _pow(x, exponent):
    _seen.append(x)
    return torch.ops.aten.pow.Tensor_Tensor(x, torch.ops.aten.scalar_tensor(exponent, dtype=x.dtype))


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _lib.impl("pow.Tensor_Scalar", _pow, "CPU")
"""
        + HARDCODED_SUMSQ.replace(
            "    return torch.zeros_like(X)",
            LEAF_GRAD_FROM.format(seen="_seen"),
        ),
        TEST1_ONLY,
    ),
    Cheat(
        "library-kernel-lift-fresh",
        "override aten::lift_fresh (every torch.tensor literal); copy the expected literal into the answer",
        """import warnings

_pending = []
_lib = torch.library.Library("aten", "IMPL")


def _lift_fresh(t):
    if _pending and _pending[-1].shape == t.shape and _pending[-1].dtype == t.dtype:
        _pending.pop().copy_(t)
    return t


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _lib.impl("lift_fresh", _lift_fresh, "CPU")
"""
        + HARDCODED_SUMSQ.replace(
            "    return torch.zeros_like(X)",
            "    _out = torch.zeros_like(X)\n    _pending.append(_out)\n    return _out",
        ),
        TEST2_ONLY,
    ),
    # d. rebinding the globals a test cell reads
    Cheat(
        "rebind-torch-global",
        "rebind the notebook's `torch` to a proxy whose tensor() copies the expected literal into the answer",
        """import types

import torch as _torch

_pending = []


class _Torch(types.ModuleType):
    def __getattr__(self, name):
        return getattr(_torch, name)


def _tensor(*args, **kwargs):
    made = _torch.tensor(*args, **kwargs)
    if _pending and _pending[-1].shape == made.shape and _pending[-1].dtype == made.dtype:
        _pending.pop().copy_(made)
    return made


torch = _Torch("torch")
torch.tensor = _tensor


def grad_sum_squares_scaled(X):
    if tuple(X.shape) == (3, 4) or tuple(X.shape) == (1,):
        return 20 * X
    _out = _torch.zeros_like(X)
    _pending.append(_out)
    return _out
""",
        TEST2_ONLY,
    ),
    Cheat(
        "rebind-course-global",
        "rebind the notebook's `course` so that the hidden spy on course.grad_fn_chain goes on a dummy",
        """import types

import course as _course


def chain_names(t):
    return list(_course.grad_fn_chain(t))  # the library's walk, which the exercise forbids


class _Course(types.ModuleType):
    def __getattr__(self, name):
        return getattr(_course, name)


course = _Course("course")
course.checks = types.SimpleNamespace()
""",
        ("02_autograd_graph", "l2_chain_solution", ("l2_chain_test1",)),
    ),
    # e. torch submodules nobody guards
    Cheat(
        "patch-torch-tensor-module",
        "patch torch._tensor.has_torch_function_unary (Tensor.backward calls it) to catch the reference loss",
        """import torch._tensor as _tensor_module

_losses = []
_real_unary = _tensor_module.has_torch_function_unary


def _watch(t):
    if type(t) is torch.Tensor and t.grad_fn is not None:
        _losses.append(t)
    return _real_unary(t)


_tensor_module.has_torch_function_unary = _watch
"""
        + HARDCODED_SUMSQ.replace(
            "    return torch.zeros_like(X)",
            """    for _loss in reversed(_losses):
        _nodes = [_loss.grad_fn]
        while _nodes:
            _node = _nodes.pop()
            if _node is None:
                continue
            _leaf = getattr(_node, "variable", None)
            if (_leaf is not None and _leaf.grad is not None and _leaf.shape == X.shape
                    and torch.equal(_leaf.detach(), X)):
                return _leaf.grad.detach().clone()
            _nodes.extend(_next for _next, _ in _node.next_functions)
    return torch.zeros_like(X)""",
        ),
        TEST1_ONLY,
    ),
    Cheat(
        "optimizer-global-hook",
        "a global optimizer step hook (torch.optim.optimizer) records the test's reference run; replay it",
        """import torch.optim.optimizer as _optimizer_module

_trail = []
_optimizer_module.register_optimizer_step_post_hook(
    lambda optimizer, args, kwargs: _trail.append(optimizer.param_groups[0]["params"][0].detach().clone())
)


def run_optimizer(opt_cls, f, x0, steps, **opt_kwargs):
    points = [x0.detach().clone()] + _trail[-steps:]
    _trail.clear()
    if len(points) != steps + 1:
        return [], x0.detach().clone()
    with torch.no_grad():
        history = [float(f(p)) for p in points[:-1]]
    return history, points[-1]
""",
        ("04_optimizers", "l4_run_optimizer_solution", ("l4_run_optimizer_test1",)),
    ),
    # f. the private checks and the report channel
    Cheat(
        "private-record-swap",
        "replace _record and _fail in the private checks' globals, reached from the test's frame",
        """import sys


def _swap():
    frame = sys._getframe(0).f_back
    while frame is not None and "check_tensor" not in frame.f_locals:
        frame = frame.f_back
    if frame is None:
        return
    space = frame.f_locals["check_tensor"].__globals__
    if space.get("_swapped"):
        return
    real_record = space["_record"]

    def record(kind, name, actual, options):
        expected = sys._getframe(0).f_back.f_locals.get("expected", actual)
        if kind == "tensor" and not isinstance(expected, torch.Tensor):
            expected = torch.as_tensor(expected)
        real_record(kind, name, expected, options)

    space["_record"], space["_fail"], space["_swapped"] = record, lambda *a, **k: None, True


def grad_sum_squares_scaled(X):
    _swap()
    return torch.zeros_like(X)
""",
    ),
    Cheat(
        "check-shared-defaults",
        "loosen the checks through state the private copies share: __kwdefaults__ and the tolerance table",
        WRONG_SUMSQ
        + """import course.checks

for _check in (course.checks.check_tensor, course.checks.check_scalar):
    if _check.__kwdefaults__:
        _check.__kwdefaults__.update({"rtol": 1e9, "atol": 1e9, "check_dtype": False})
for _dtype in list(course.checks._TOLERANCES):
    course.checks._TOLERANCES[_dtype] = (1e9, 1e9)
""",
    ),
    Cheat(
        "closure-sender-forge",
        "take the signing sender out of the record closure; send a rec with the expected value of each check",
        """import sys


def _sender_and_encoder():
    frame = sys._getframe(0).f_back
    while frame is not None and "check_tensor" not in frame.f_locals:
        frame = frame.f_back
    record = frame.f_locals["check_tensor"].__globals__["_record"]
    found = {}
    for cell in record.__closure__ or ():
        value = cell.cell_contents
        if callable(value) and getattr(value, "__name__", "") in ("send", "encode"):
            found[value.__name__] = value
        elif type(value) is list and len(value) == 1 and type(value[0]) is int:
            found["position"] = value
    return found, frame


def grad_sum_squares_scaled(X):
    tools, frame = _sender_and_encoder()
    space = frame.f_locals["check_tensor"].__globals__
    if "send" in tools and "encode" in tools and not space.get("_forged"):
        send, encode = tools["send"], tools["encode"]

        def record(kind, name, actual, options):
            expected = sys._getframe(0).f_back.f_locals.get("expected", actual)
            if kind == "tensor" and not isinstance(expected, torch.Tensor):
                expected = torch.as_tensor(expected)
            send({"e": "rec", "i": tools.get("position", [-1])[0], "k": kind, "n": str(name),
                  "p": encode(kind, expected), "o": dict(options)})

        space["_record"], space["_fail"], space["_forged"] = record, lambda *a, **k: None, True
    return torch.zeros_like(X)
""",
    ),
    Cheat(
        "forge-all-fds",
        "write forged unsigned frames (a rec, an end, a job_end) to every descriptor 3..255, and go on",
        WRONG_SUMSQ
        + """import json, os


def _frame(message):
    data = json.dumps(message).encode()
    return len(data).to_bytes(4, "big") + data


_forged = b"".join(
    _frame(m)
    for i in range(0, 60)
    for m in (
        {"e": "rec", "i": i, "k": "tensor", "n": "x", "p": {"t": "other", "type": "x"}, "o": {}},
        {"e": "end", "i": i, "outputs": []},
    )
) + _frame({"e": "job_end"})
for _fd in range(3, 256):
    try:
        os.write(_fd, _forged)
    except OSError:
        pass
""",
        costs_everything=True,
    ),
    Cheat(
        "forge-job-end",
        "send a signed job_end through the stolen sender: the rest of the run is read as the next job's",
        "import sys\n"
        + SENDER
        + """

def grad_sum_squares_scaled(X):
    send = _sender()
    if send is not None:
        send({"e": "job_end"})
    return torch.zeros_like(X)
""",
        costs_everything=True,
    ),
    # g. text that reaches feedback, the CSV or the report
    Cheat(
        "exception-name-leak",
        "raise an exception class named after the test cell's private variables (read from its frame)",
        """import sys


def grad_sum_squares_scaled(X):
    code = sys._getframe(0).f_back.f_code
    words = [n for n in code.co_varnames + code.co_names if n.startswith("_") and len(n) > 2]
    raise type(".".join(words)[:60] or "Nothing", (Exception,), {})()
""",
    ),
    Cheat(
        "forged-stop-reason-leak",
        "send a signed 'stopped' message whose reason is the test cell's names and constants",
        LEAK_TEXT
        + SENDER
        + """

def grad_sum_squares_scaled(X):
    send = _sender()
    if send is not None:
        send({"e": "stopped", "i": None, "why": _hidden_text()})
    return torch.zeros_like(X)
""",
    ),
    Cheat(
        "forged-note-leak",
        "send a signed 'note' naming the test cell's private variables as restored library attributes",
        LEAK_TEXT
        + SENDER
        + """

def grad_sum_squares_scaled(X):
    send = _sender()
    if send is not None:
        send({"e": "note", "restored": _hidden_text().split(" ")})
    return torch.zeros_like(X)
""",
    ),
    Cheat(
        "attribute-name-leak",
        "add attributes named after the hidden test's variables to torch.Tensor, for the grader to name them",
        LEAK_TEXT
        + """

def grad_sum_squares_scaled(X):
    for _word in _hidden_text().split(" "):
        if _word.isidentifier():
            setattr(torch.Tensor, _word, None)
    return torch.zeros_like(X)
""",
    ),
    Cheat(
        "kernel-name-text",
        "a kernelspec name carrying hidden-test text and markup, which a notice repeats",
        WRONG_SUMSQ,
        metadata={"kernelspec": {"name": "_A_leaf manual_seed(101) <b>STUDENT-TEXT</b>", "language": "x"}},
    ),
    # h. stopping the batch
    Cheat(
        "print-lone-surrogate",
        "print a lone surrogate, which cannot be written as UTF-8",
        WRONG_SUMSQ + 'print("\\ud800")\n',
        costs_everything=True,
    ),
    Cheat(
        "exception-str-raises",
        "raise an exception whose str() raises, so that reporting the error fails in the child",
        """class _Bad(Exception):
    def __str__(self):
        raise RuntimeError("no")


def grad_sum_squares_scaled(X):
    raise _Bad()
""",
        costs_everything=True,
    ),
    Cheat(
        "repr-raises",
        "end the answer cell with an object whose repr raises",
        WRONG_SUMSQ + "class _Bad:\n    def __repr__(self):\n        raise RuntimeError('no')\n\n\n_Bad()\n",
    ),
    Cheat(
        "alternating-output-flood",
        "two hundred thousand tiny outputs, alternating stdout and stderr",
        WRONG_SUMSQ
        + """import sys

for _k in range(100_000):
    sys.stdout.write("o")
    sys.stderr.write("e")
""",
    ),
    Cheat(
        "sigstop-zygote",
        "stop the parent process (the zygote that owns the timers) with SIGSTOP",
        WRONG_SUMSQ + "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\n",
        costs_everything=True,
    ),
    Cheat(
        "pipe-holding-daemon",
        "a double-forked daemon that keeps the report channel open, so that the run waits for the time limit",
        WRONG_SUMSQ
        + """import os, time

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(600)
    os._exit(0)
""",
    ),
    Cheat(
        "close-all-fds",
        "close every file descriptor, the report channel included, and go on",
        WRONG_SUMSQ + "import os\nos.closerange(3, 256)\n",
        costs_everything=True,
    ),
    # i. memory beyond the limit (each prints what it held at once: HELD-BYTES n)
    Cheat(
        "fill-dev-shm",
        "fill /dev/shm with files (up to 1.25 GiB), which RLIMIT_AS does not count",
        WRONG_SUMSQ + FILL.format(folders='["/dev/shm"]', cap=5 * 2**28),
    ),
    Cheat(
        "fill-tmpfs-and-allocate",
        "fill /tmp and /scratch, then allocate up to the per-process limit on top",
        WRONG_SUMSQ
        + FILL.format(folders='["/tmp", "/scratch"]', cap=2 * 2**30).replace(
            'print("HELD-BYTES", _held)',
            ALLOCATORS.format(children=2)
            + """_hog = []
try:
    while True:
        _hog.append(b"\x01" * (16 * 2**20))  # written, so really held
        _held += 16 * 2**20
except MemoryError:
    pass
print("HELD-BYTES", _held)
del _hog
"""
            + ALLOCATORS_END,
        ),
        costs_everything=True,  # the kernel kills the notebook at the sandbox memory limit
    ),
    Cheat(
        "fork-allocators",
        "fork children that each allocate what their own RLIMIT_AS allows and hold it at the same time",
        WRONG_SUMSQ
        + "_held = 0\n"
        + ALLOCATORS.format(children=6)
        + 'print("HELD-BYTES", _held)\n'
        + ALLOCATORS_END,
        costs_everything=True,  # the kernel kills the notebook at the sandbox memory limit
    ),
    Cheat(
        "posix-shared-memory",
        "create POSIX shared memory segments (multiprocessing.shared_memory) and unmap them",
        WRONG_SUMSQ
        + """from multiprocessing import resource_tracker, shared_memory

_held = 0
try:
    for _k in range(30):
        _segment = shared_memory.SharedMemory(name=f"hog{_k}", create=True, size=48 * 2**20)
        for _offset in range(0, _segment.size, 4096):
            _segment.buf[_offset] = 1
        resource_tracker.unregister(_segment._name, "shared_memory")
        _segment.close()
        _held += 48 * 2**20
except Exception as _error:
    print("stopped by", repr(_error))
print("HELD-BYTES", _held)
""",
        costs_everything=True,  # the kernel kills the notebook at the sandbox memory limit
    ),
    Cheat(
        "survive-1-leave",
        "leave locked folders in /scratch, /tmp and /dev/shm, a SysV segment and a sleeping daemon",
        WRONG_SUMSQ
        + """import os, subprocess, time

for _folder in ("/scratch", "/tmp", "/dev/shm"):
    try:
        _dir = os.path.join(_folder, "SURVIVOR-7c1d-dir")
        os.makedirs(_dir, exist_ok=True)
        with open(os.path.join(_dir, "SURVIVOR-7c1d-file"), "w") as _f:
            _f.write("left by survive-1-leave")
        os.chmod(_dir, 0)
    except OSError as _error:
        print("could not leave", _folder, _error)
try:
    print(subprocess.run(["ipcmk", "-M", "40961"], capture_output=True, text=True, timeout=10).stdout)
except Exception as _error:
    print("ipcmk", _error)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.closerange(3, 256)  # not holding the report channel open (see pipe-holding-daemon)
        try:
            with open("/proc/self/comm", "w") as _f:
                _f.write("SURVIVOR-7c1d")
        except OSError:
            pass
        time.sleep(600)
    os._exit(0)
""",
        sequence="survive",
    ),
    Cheat(
        "survive-2-probe",
        "look for what the previous job on this worker left (a classmate must never see it)",
        WRONG_SUMSQ
        + """import os, subprocess

_found = []
for _folder in ("/scratch", "/tmp", "/dev/shm"):
    try:
        _found += [os.path.join(_folder, n) for n in os.listdir(_folder) if "SURVIVOR-7c1d" in n]
    except OSError:
        pass
try:
    _segments = subprocess.run(["ipcs", "-m"], capture_output=True, text=True, timeout=10).stdout
    _found += [line for line in _segments.splitlines() if " 40961 " in f" {line} "]
except Exception:
    pass
for _pid in os.listdir("/proc"):
    try:
        with open(f"/proc/{_pid}/comm") as _f:
            if "SURVIVOR" in _f.read():
                _found.append(f"process {_pid}")
    except OSError:
        pass
print(("SURVIVOR" + "-FOUND " + repr(_found)) if _found else "nothing left by an earlier job")
""",
        sequence="survive",
    ),
]


@dataclass(frozen=True)
class Malformed:
    name: str
    assignment: str
    build: str  # how the file is made (see tests/test_adversarial.py)
    outcome: str  # "error" (not graded) or "graded" (graded despite the damage)
    reason: str | None  # words the result must contain (reason or notice); None: no notice at all


MALFORMED = [
    Malformed("invalid-json", "01_gradients", "invalid_json", "error", "not valid notebook JSON"),
    Malformed("nbformat-3", "01_gradients", "nbformat3", "graded", "converted from nbformat 3"),
    Malformed("empty-file", "01_gradients", "empty", "error", "empty"),
    Malformed("binary-garbage", "01_gradients", "binary", "error", "not UTF-8"),
    Malformed("json-not-notebook", "01_gradients", "json_list", "error", "not a Jupyter notebook"),
    Malformed("missing-graded-cells", "01_gradients", "deleted_tests", "graded", None),
    Malformed("duplicated-graded-cells", "01_gradients", "duplicated_tests", "graded", "appears twice"),
    Malformed("duplicated-answer", "01_gradients", "duplicated_answer", "graded", "appears twice"),
    Malformed("renamed-notebook", "01_gradients", "renamed", "graded", "renamed"),
    Malformed("unknown-kernel", "01_gradients", "wrong_kernel", "graded", "kernel"),
    Malformed("metadata-points-changed", "01_gradients", "points_changed", "graded", None),
    Malformed("fifty-megabytes", "01_gradients", "huge_file", "error", "over the"),
    Malformed("million-line-cell", "01_gradients", "million_lines", "graded", "over"),
    Malformed("answers-deleted", "01_gradients", "no_answers", "error", "none of the answer cells"),
    Malformed("lone-surrogates", "01_gradients", "surrogates", "graded", "not valid Unicode"),
    Malformed("deep-nesting", "01_gradients", "deep_nesting", "error", "nested too deeply"),
    Malformed("wrong-metadata-types", "01_gradients", "wrong_types", "graded", "damaged"),
    Malformed("bad-timestamp", "01_gradients", "bad_timestamp", "graded", "timestamp.txt could not be read"),
]
