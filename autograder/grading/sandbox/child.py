"""Inside the sandbox, in the forked child: run a notebook's cells and report them.

Test cells arrive rewritten by the grader (``autograder.grading.testcells``). In a
student's notebook (graded mode) a test cell holds no expected value: each
check call became ``__report__(site, kind, value)``, which sends the value the
check would have been given. In the instructor's notebook (reference mode),
which runs in a sandbox of its own, each check call became
``__check__(site, check, ...)``: the real check runs and its expected value is
sent. The grader compares the two in its own process.

Everything the student's code could change, it could also forge: whatever
this process sends is taken as the student's answer, nothing more. The
defences below keep honest mistakes and simple tricks from mattering, and
make the rest harder; they are not what the grade's integrity rests on (see
``docs/grading-security.md``):

* What test cells use is captured when the zygote imports this module, before
  any student code exists, and is reached through closures: builtins, the
  encoder (plain builtins and ``str`` methods), ``os.write``.
* Test cells run as functions whose report function and builtins are fast
  locals: rebinding them in the notebook changes nothing a test cell calls.
* Library attributes the notebook changed are put back before each test, and
  a value reported while torch, NumPy or the course are changed does not count.
* An audit hook refuses the usual routes to frames and memory:
  ``sys._getframe`` into the test's frames, ``tb_frame``, generator frames, the
  garbage collector's object lists, ``ctypes``, tracing hooks, replacing a
  function's code, and ``/proc`` memory files (paths normalised first).
"""

import _thread
import ast
import base64
import builtins
import io
import os
import random
import sys
import types

import numpy as np
import torch

import course
import course.checks as _checks_module

# The course loads its names on first use: all of them now, before any student code, so that the
# guard sees one replaced later (a name added to a module afterwards would go unnoticed).
for _name in course.__all__:
    getattr(course, _name)

MAX_PAYLOAD_BYTES = 8 * 2**20
MAX_CELL_OUTPUT_CHARS = 100_000
MAX_CELL_OUTPUTS = 200  # separate outputs per cell (the protocol refuses over 1000)
CHECK_NAMES = (
    "check_tensor",
    "check_scalar",
    "check_value",
    "check_true",
    "check_grad_fn_chain",
    "check_type",
)
TOOL_NAMES = ("__report__", "__check__")
# Modules a test cell reads by these names get the real module, whatever the notebook bound to them.
MODULE_NAMES = {"torch": "torch", "np": "numpy", "numpy": "numpy", "math": "math", "random": "random"}
MODULE_NAMES["course"] = "course"


def _build():
    """Every function the child needs after student code starts, closed over originals."""
    _type, _len, _str, _repr, _float, _int = type, len, str, repr, float, int
    _isinstance, _ord, _list, _tuple, _dict = isinstance, ord, list, tuple, dict
    _os_write, _fsdecode, _b64 = os.write, os.fsdecode, base64.b64encode
    _realpath = os.path.realpath
    _BaseException, _RuntimeError = BaseException, RuntimeError
    _FunctionType, _CodeType = types.FunctionType, types.CodeType
    _Tensor, _Parameter, _strided, _bfloat16, _float32 = (
        torch.Tensor, torch.nn.Parameter, torch.strided, torch.bfloat16, torch.float32,
    )  # fmt: skip
    _ascontiguous = np.ascontiguousarray
    _function_modes = torch._C._len_torch_function_stack
    _dispatch_modes = getattr(torch._C, "_len_torch_dispatch_stack", lambda: 0)

    def modes_active():
        return _function_modes() > 0 or _dispatch_modes() > 0

    _numbers = (int, float, np.float16, np.float32, np.float64, np.int32, np.int64)
    _builtins = _dict(vars(builtins))
    frame_attributes = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})
    blocked = frozenset(
        {
            "sys._current_frames", "sys._current_exceptions",
            "gc.get_objects", "gc.get_referrers", "gc.get_referents",
            "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "sys.settrace", "sys.setprofile",
        }
    )  # fmt: skip

    def chain(t, limit=_checks_module.CHAIN_LIMIT):
        """course.checks.grad_fn_chain, closed over originals (tests/test_verify.py pins that they agree)."""
        names, node = [], t.grad_fn
        while node is not None and _len(names) < limit:
            names.append(_type(node).__name__)
            edges = node.next_functions
            node = edges[0][0] if edges else None
        return names

    def dump(obj):
        """JSON text of dicts, lists, strings, ints, bools and None (floats travel as strings)."""
        kind = _type(obj)
        if obj is None:
            return "null"
        if kind is bool:
            return "true" if obj else "false"
        if kind is _int:
            return _repr(obj)
        if kind is _str:
            if obj.isascii() and obj.isprintable() and '"' not in obj and "\\" not in obj:
                return '"' + obj + '"'
            out = []
            for c in obj:
                code = _ord(c)
                if c == '"' or c == "\\":
                    out.append("\\" + c)
                elif code < 32 or code > 126:
                    if code > 0xFFFF:
                        code -= 0x10000
                        out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
                    else:
                        out.append(f"\\u{code:04x}")
                else:
                    out.append(c)
            return '"' + "".join(out) + '"'
        if kind is _list or kind is _tuple:
            return "[" + ",".join([dump(v) for v in obj]) + "]"
        if kind is _dict:
            return "{" + ",".join([dump(_str(k)) + ":" + dump(v) for k, v in obj.items()]) + "}"
        return dump(_repr(obj))

    def make_sender(fd, job):
        """Frames of the protocol (``autograder.grading.protocol``), each naming this job."""

        def send(message):
            message["job"] = job
            body = dump(message).encode("utf-8")
            frame = _len(body).to_bytes(4, "big") + body
            while frame:
                frame = frame[_os_write(fd, frame) :]

        return send

    def encode_tensor(t):
        data = t.detach()
        if data.layout != _strided:
            data = data.to_dense()
        data = data.to("cpu").resolve_conj().resolve_neg()
        dtype = _str(data.dtype)
        if data.dtype == _bfloat16:
            data = data.to(_float32)
        array = _ascontiguous(data.numpy())
        if array.nbytes > MAX_PAYLOAD_BYTES:
            return {"t": "too_large", "bytes": _int(array.nbytes)}
        visible = t.is_leaf or t.retains_grad
        return {
            "t": "tensor",
            "dtype": dtype,
            "np_dtype": _str(array.dtype.str),
            "shape": [_int(s) for s in array.shape],
            "data": _b64(array.tobytes()).decode("ascii"),
            "requires_grad": t.requires_grad is True,
            "is_leaf": t.is_leaf is True,
            "grad_set": (visible is True) and t.grad is not None,
            "device": _str(t.device.type),
            "chain": chain(t),
        }

    def encode_plain(value, depth=0):
        kind = _type(value)
        if depth > 20:
            return {"t": "other", "type": "nested too deep"}
        if value is None or kind is bool or kind is _int or kind is _str:
            return {"t": "none" if value is None else kind.__name__, "v": value}
        if kind is _float:
            return {"t": "float", "v": _repr(value)}
        if kind is _list or kind is _tuple:
            if _len(value) > 10_000:
                return {"t": "other", "type": "too long"}
            return {"t": kind.__name__, "v": [encode_plain(v, depth + 1) for v in value]}
        return {"t": "other", "type": kind.__module__ + "." + kind.__qualname__}

    _type_name = _checks_module.type_name

    def encode(kind, actual):
        value_type = _type(actual)
        if kind == "type":
            return {"t": "type", "v": _type_name(value_type)}
        if value_type is _Tensor or value_type is _Parameter:
            return encode_tensor(actual)
        if kind == "scalar" and value_type in _numbers:
            return {"t": "number", "v": _repr(_float(actual))}
        return encode_plain(actual)

    _reference = _checks_module._reference

    def encode_expected(kind, expected):
        """The value a check compares with, as the check itself reads it."""
        if kind == "tensor":
            return encode_tensor(_reference(expected))
        if kind == "type":
            return {"t": "type", "v": _type_name(expected)}
        if kind == "scalar":
            if _isinstance(expected, _Tensor):
                return {"t": "number", "v": _repr(_float(_reference(expected).reshape(-1)[0]))}
            return {"t": "number", "v": _repr(_float(expected))}
        return encode_plain(expected)

    def private_checks(record):
        namespace = _dict(vars(_checks_module))
        namespace["_record"] = record
        for name, value in _list(namespace.items()):
            if _type(value) is _FunctionType and value.__module__ == _checks_module.__name__:
                copy = _FunctionType(value.__code__, namespace, name, value.__defaults__, value.__closure__)
                copy.__kwdefaults__ = value.__kwdefaults__
                namespace[name] = copy
        return {name: namespace[name] for name in CHECK_NAMES}

    protected_files = frozenset(
        {_build.__code__.co_filename, _checks_module.check_tensor.__code__.co_filename}
    )
    _getattr = getattr
    busy = [False]

    def protected(frame):
        """Frames of the grader's own code: the test cells' functions, the checks, this module."""
        if frame is None:
            return False
        code = frame.f_code
        return code.co_name == "__test_cell__" or code.co_filename in protected_files

    def audit(event, args):
        if busy[0]:
            return
        if event in blocked or event.startswith("ctypes."):
            raise _RuntimeError(event + " is not allowed while grading")
        if event == "import" and args[0] in ("ctypes", "_ctypes", "cffi", "_cffi_backend"):
            raise _RuntimeError("ctypes is not available while grading")
        if event == "object.__setattr__" and args[1] == "__code__":
            raise _RuntimeError("replacing a function's code is not allowed while grading")
        if event == "sys._getframe" or (event == "object.__getattr__" and args[1] in frame_attributes):
            busy[0] = True
            try:
                frame = args[0] if event == "sys._getframe" else _getattr(args[0], args[1])
                refused = protected(frame) if _type(frame).__name__ == "frame" else False
            finally:
                busy[0] = False
            if refused:
                raise _RuntimeError("the grader's frames cannot be inspected while grading")
        if event == "open" and _isinstance(args[0], (_str, bytes)):
            busy[0] = True
            try:
                path = _realpath(_fsdecode(args[0]))
            finally:
                busy[0] = False
            if path.startswith("/proc/") and (path.endswith(("/mem", "/maps", "/environ")) or "/fd/" in path):
                raise _RuntimeError("reading process files in /proc is not allowed while grading")

    return {
        "modes_active": modes_active,
        "audit": audit,
        "encode": encode,
        "encode_expected": encode_expected,
        "make_sender": make_sender,
        "private_checks": private_checks,
        "builtins": _builtins,
        "FunctionType": _FunctionType,
        "CodeType": _CodeType,
        "BaseException": _BaseException,
    }


_TOOLS = _build()


def _assigned_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(every name a test cell binds at its top level, the names of functions and classes it defines)."""
    names: set[str] = set()
    definitions: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_Name(self, node):
            if isinstance(node.ctx, ast.Store | ast.Del):
                names.add(node.id)

        def visit_FunctionDef(self, node):
            names.add(node.name)  # its body is its own scope
            definitions.add(node.name)

        visit_AsyncFunctionDef = visit_FunctionDef

        def visit_ClassDef(self, node):
            names.add(node.name)
            definitions.add(node.name)

        def visit_Lambda(self, node):
            pass

        def visit_Import(self, node):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])

        visit_ImportFrom = visit_Import

    Visitor().visit(tree)
    return names, definitions


def compile_test_cell(source: str, filename: str) -> tuple[types.CodeType, list[str]]:
    """A test cell as a function's code whose check functions and builtins are parameters.

    Names the cell binds stay notebook globals (a spy must replace the student's
    function where the student's code looks it up; later test cells may call a helper
    defined here), except private ``_values``: those become locals, out of reach of the
    student's code that the test calls.
    """
    tree = ast.parse(source, filename)
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assigned, definitions = _assigned_names(tree)
    protected = sorted(
        n
        for n in loaded - assigned
        if n in CHECK_NAMES or n in TOOL_NAMES or n in MODULE_NAMES or n in _TOOLS["builtins"]
    )
    shared = sorted(n for n in assigned if not n.startswith("_") or n in definitions)
    body = list(tree.body) or [ast.Pass()]
    if shared:
        body = [ast.Global(names=shared), *body]
    arguments = ast.arguments(
        posonlyargs=[], args=[ast.arg(arg=n) for n in protected], kwonlyargs=[], kw_defaults=[], defaults=[]
    )
    function = ast.FunctionDef(
        name="__test_cell__", args=arguments, body=body, decorator_list=[], returns=None
    )
    module = ast.fix_missing_locations(ast.Module(body=[function], type_ignores=[]))
    code = compile(module, filename, "exec")
    inner = next(c for c in code.co_consts if isinstance(c, types.CodeType))
    return inner, protected


def compile_cell(source: str, filename: str):
    """(code to run, code of the last expression whose value is shown, or None), as IPython does."""
    tree = ast.parse(source, filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not source.rstrip().endswith(";"):
        last = ast.Expression(body=tree.body.pop().value)
    return compile(tree, filename, "exec"), (compile(last, filename, "eval") if last else None)


class _Capture(io.TextIOBase):
    """sys.stdout / sys.stderr of one cell, cut at a size limit."""

    def __init__(self, name: str, outputs: list):
        self.name, self.outputs, self.size = name, outputs, 0

    def writable(self):
        return True

    def write(self, text):
        text = str(text)
        room = MAX_CELL_OUTPUT_CHARS - self.size
        self.size += len(text)
        if room <= 0:
            return len(text)
        piece = text[:room] + ("\n[output cut at the grader's limit]\n" if len(text) > room else "")
        same = [o for o in self.outputs[-1:] if o.get("name") == self.name]
        if not same and len(self.outputs) >= MAX_CELL_OUTPUTS:  # streams that alternate: join the rest
            same = [o for o in reversed(self.outputs) if o.get("name") == self.name][:1]
        if same:
            same[0]["text"] += piece
        else:
            self.outputs.append({"output_type": "stream", "name": self.name, "text": piece})
        return len(text)


def _seed(grade_id: str) -> None:
    """The same random inputs for a test cell whatever ran before it (student cells draw too)."""
    seed = sum((i + 1) * ord(c) for i, c in enumerate(grade_id)) % (2**31)
    torch.manual_seed(seed)  # absent devices are not seeded (see zygote.preimport)
    np.random.seed(seed)
    random.seed(seed)


def _error_output(error: BaseException) -> dict:
    name = type(error).__name__
    try:
        text = str(error)[:2000]
    except BaseException:  # an exception whose message cannot be read
        text = "(message unreadable)"
    return {"output_type": "error", "ename": name, "evalue": text, "traceback": [f"{name}: {text}"]}


def _guarded_objects() -> list:
    """What test cells rely on, put back as it was before every test cell."""
    import math

    import numpy.testing
    import torch.autograd.function
    import torch.autograd.graph
    import torch.nn.functional
    import torch.testing

    return [
        builtins, math, np, numpy.testing, np.ndarray, torch, torch._C, torch.Tensor, torch.nn.Parameter,
        torch.nn.functional, torch.autograd, torch.autograd.graph, torch.autograd.function,
        torch.autograd.Variable, torch.linalg, torch.testing, torch.optim, course, _checks_module,
    ]  # fmt: skip


def _snapshot(objects: list) -> list[tuple[object, dict]]:
    return [(obj, dict(vars(obj))) for obj in objects]


def _changed(snapshot: list[tuple[object, dict]]) -> list[str]:
    """What differs from the snapshot now: a value replaced or removed, or, on a class, added
    (it would shadow an inherited one). Modules gain attributes when submodules load lazily."""
    changed = []
    for obj, saved in snapshot:
        current = vars(obj)
        added = isinstance(obj, type) and len(current) != len(saved)
        if added or any(current.get(name, _MISSING) is not value for name, value in saved.items()):
            changed.append(getattr(obj, "__name__", "?"))
    return changed


def _restore(snapshot: list[tuple[object, dict]]) -> list[str]:
    """Undo changes to the guarded modules and classes; names what was changed."""
    changed = []
    for obj, saved in snapshot:
        current = vars(obj)
        for name, value in saved.items():
            if current.get(name, _MISSING) is not value:
                setattr(obj, name, value)
                changed.append(f"{getattr(obj, '__name__', '?')}.{name}")
        if isinstance(obj, type):
            for name in [n for n in current if n not in saved]:
                delattr(obj, name)
                changed.append(f"{obj.__name__}.{name}")
    return changed


_MISSING = object()


def _make_worker(job: dict, fd: int, done):
    tools = _TOOLS
    cells, reference_mode = job["cells"], job["mode"] == "reference"
    send = tools["make_sender"](fd, job["job"])
    encode, encode_expected = tools["encode"], tools["encode_expected"]
    function_type, base_exception = tools["FunctionType"], tools["BaseException"]
    pristine = tools["builtins"]
    modes_active = tools["modes_active"]
    position, site = [-1], [-1]
    snapshot, restore, changed = _snapshot(_guarded_objects()), _restore, _changed

    def report(number, kind, actual):
        # Whatever the code under test changed in torch, NumPy or the course since the test
        # started could have changed what the test computed: such a value does not count.
        tampered = changed(snapshot) or modes_active()
        try:
            payload = encode(kind, actual)
        except base_exception as error:  # an object that breaks when looked at is not a value
            payload = {"t": "other", "type": "unreadable: " + type(error).__name__}
        if tampered:
            payload = {"t": "tampered"}
        send({"type": "report", "cell": position[0], "site": number, "kind": kind, "value": payload})

    def record(kind, name, expected, options):
        plain = {k: v if v is None or type(v) in (bool, str) else repr(float(v)) for k, v in options.items()}
        send(
            {
                "type": "reference",
                "cell": position[0],
                "site": site[0],
                "kind": kind,
                "name": str(name)[:200],
                "expected": encode_expected(kind, expected),
                "options": plain,
            }
        )

    def check_at(number, check, *args, **kwargs):
        site[0] = number
        return check(*args, **kwargs)

    modules = {name: sys.modules[module] for name, module in MODULE_NAMES.items() if module in sys.modules}
    tools_for_tests = {"__report__": report, **modules}
    if reference_mode:
        tools_for_tests = {"__check__": check_at, **modules, **tools["private_checks"](record)}
    prepared = []
    for cell in cells:
        filename = f"<cell {cell['index']}>"
        try:
            if cell["kind"] == "test":
                prepared.append((cell, compile_test_cell(cell["source"], filename), None))
            else:
                prepared.append((cell, compile_cell(cell["source"], filename), None))
        except SyntaxError as error:
            prepared.append((cell, None, error))

    def work():
        import matplotlib.pyplot as plt

        user_ns = {"__name__": "__main__", "__builtins__": builtins}
        try:
            for cell, compiled, problem in prepared:
                position[0] = cell["index"]
                outputs: list[dict] = []
                send({"type": "cell_started", "cell": cell["index"]})
                saved = sys.stdout, sys.stderr
                sys.stdout, sys.stderr = _Capture("stdout", outputs), _Capture("stderr", outputs)
                try:
                    if problem is not None:
                        raise problem
                    if cell["kind"] == "test":
                        restored = restore(snapshot)
                        for name in restored:
                            print(
                                f"[grader] restored {name}, changed by the notebook, for this test",
                                file=sys.stderr,
                            )
                        if restored:
                            send({"type": "restored", "cell": cell["index"], "count": len(restored)})
                        _seed(cell.get("grade_id", ""))
                        code, names = compiled
                        test = function_type(code, user_ns, "__test_cell__")
                        test(*[tools_for_tests[n] if n in tools_for_tests else pristine[n] for n in names])
                    else:
                        code, shown = compiled
                        exec(code, user_ns)
                        value = eval(shown, user_ns) if shown is not None else None
                        if value is not None:
                            text = repr(value)[:MAX_CELL_OUTPUT_CHARS]
                            outputs.append({"output_type": "execute_result", "data": {"text/plain": text}})
                except base_exception as error:
                    outputs.append(_error_output(error))
                finally:
                    sys.stdout, sys.stderr = saved
                try:
                    figures = plt.get_fignums()
                    plt.close("all")
                except base_exception:
                    figures = []
                for number in figures[:MAX_CELL_OUTPUTS]:
                    outputs.append(
                        {"output_type": "display_data", "data": {"text/plain": f"<Figure {number}>"}}
                    )
                send({"type": "cell_finished", "cell": cell["index"], "outputs": outputs})
            send({"type": "finished"})
        finally:
            done.release()

    return work


def run_cells(job: dict, fd: int) -> None:
    """Run the job's cells in a second thread; this thread only waits (see the module docstring)."""
    torch.set_num_threads(1)
    sys.addaudithook(_TOOLS["audit"])
    done = _thread.allocate_lock()
    done.acquire()
    _thread.start_new_thread(_make_worker(job, fd, done), ())
    del job
    done.acquire()
