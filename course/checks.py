"""Checks that test cells call to compare a student's value with a reference.

Every check returns ``None`` when the value is right (and prints one line saying
so) and raises :class:`CheckFailed` with a message in the student's language
when it is wrong. A check never emits a warning: nbgrader scores a test cell
with anything on stderr as zero.

Values that only pretend to be tensors or numbers (subclasses, objects with
``__torch_function__`` or an ``__eq__`` that always says yes, lists) fail: the
comparison itself runs in NumPy on a CPU copy of the data, so nothing a
student's object overrides takes part in it.
"""

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from course.i18n import get_language, message

# Captured at import, before any student code runs in the kernel.
_type = type
_isinstance = isinstance
_issubclass = issubclass
_print = print
_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)
_PLAIN_SCALAR_TYPES = (int, float, np.float16, np.float32, np.float64, np.int32, np.int64)
_PLAIN_VALUE_TYPES = (type(None), bool, int, float, str, tuple, list)

# Default tolerances per dtype: (rtol, atol). Integers and booleans compare exactly.
_TOLERANCES = {
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.float32: (1e-5, 1e-5),
    torch.float64: (1e-7, 1e-7),
    torch.complex64: (1e-5, 1e-5),
    torch.complex128: (1e-7, 1e-7),
}

Hint = str | Mapping[str, str] | None


class CheckFailed(AssertionError):
    """A value did not pass a check; the message says why and what to do."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for a failed check: its message, not a traceback into this module."""
        return str(self).splitlines()


def _record(kind: str, name: str, expected: object, options: dict) -> None:
    """Where each check reports the value it compares with.

    A no-op in a notebook. When the grader runs the instructor's solution to
    learn the references, it runs the checks with its own recorder, which sends
    the expected value and the options. A student's notebook is graded without
    the checks: its test cells only report the values they were given, and the
    grader compares them with these references in its own process.
    """


def _hint_text(hint: Hint) -> str | None:
    if hint is None:
        return None
    if _isinstance(hint, str):
        return hint
    return hint.get(get_language()) or next(iter(hint.values()))


def _fail(name: str, reason: str, hint: Hint = None) -> None:
    __tracebackhide__ = True
    text = message("fail_header", name=name, reason=reason)
    hint_text = _hint_text(hint)
    if hint_text:
        text += "\n" + message("hint", hint=hint_text)
    raise CheckFailed(text)


def _passed(name: str) -> None:
    _print(message("ok", name=name))


def _describe(value: object) -> str:
    kind = _type(value)
    return f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__name__


def _require_tensor(name: str, value: object, hint: Hint) -> torch.Tensor:
    __tracebackhide__ = True
    kind = _type(value)
    if kind in _PLAIN_TENSOR_TYPES:
        return value
    if _issubclass(kind, torch.Tensor):
        _fail(name, message("tensor_subclass", got=_describe(value)), hint)
    if value is None and name.endswith(".grad"):
        _fail(name, message("not_tensor", got=_describe(value)), hint or _both("grad_none_hint"))
    _fail(name, message("not_tensor", got=_describe(value)), hint or _not_tensor_hint())


def _not_tensor_hint() -> dict[str, str]:
    return _both("not_tensor_hint")


def _both(key: str) -> dict[str, str]:
    return {lang: message(key, lang) for lang in ("en", "ru")}


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A CPU NumPy copy of the tensor's data, detached from autograd."""
    data = tensor.detach()
    if data.layout != torch.strided:
        data = data.to_dense()
    data = data.to("cpu").resolve_conj().resolve_neg()
    if data.dtype == torch.bfloat16:
        data = data.to(torch.float32)
    return np.array(data.numpy(), copy=True)


def _reference(expected: object) -> torch.Tensor:
    if _isinstance(expected, torch.Tensor):
        return expected.detach().to("cpu")
    return torch.as_tensor(np.asarray(expected) if _isinstance(expected, np.ndarray) else expected)


def _fmt(x: object) -> str:
    if _isinstance(x, complex | np.complexfloating):
        return f"{complex(x):.6g}"
    if _isinstance(x, bool | np.bool_):
        return str(bool(x))
    return f"{float(x):.6g}"


def _fmt_pair(got: object, expected: object) -> tuple[str, str]:
    """Both numbers with as many significant digits as it takes to tell them apart (6 to 17)."""
    if _isinstance(got, bool | np.bool_) or _isinstance(expected, bool | np.bool_):
        return _fmt(got), _fmt(expected)
    for digits in (6, 9, 12, 17):
        pair = tuple(
            f"{complex(x):.{digits}g}"
            if _isinstance(x, complex | np.complexfloating)
            else f"{float(x):.{digits}g}"
            for x in (got, expected)
        )
        if pair[0] != pair[1]:
            return pair
    return pair


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def _compare_values(got: np.ndarray, want: np.ndarray, rtol: float, atol: float):
    """Return (mismatch mask, first NaN position or None, abs error, rel error)."""
    with np.errstate(all="ignore"):
        if got.dtype.kind in "biu" and want.dtype.kind in "biu":
            mismatch = got != want
            return mismatch, None, 0.0, 0.0
        a = got.astype(np.complex128 if got.dtype.kind == "c" else np.float64)
        e = want.astype(np.complex128 if want.dtype.kind == "c" else np.float64)
        a_nan, e_nan = np.isnan(a), np.isnan(e)
        finite = np.isfinite(a) & np.isfinite(e)
        diff = np.abs(a - e)
        close = np.zeros(a.shape, dtype=bool)
        close[finite] = diff[finite] <= atol + rtol * np.abs(e[finite])
        infinite = np.isinf(a) | np.isinf(e)
        close |= infinite & (a == e)
        # Where the reference is NaN, NaN is the right answer; anywhere else it is wrong.
        close |= a_nan & e_nan
        mismatch = ~close
        stray_nan = a_nan & ~e_nan
        nan_at = int(np.flatnonzero(stray_nan)[0]) if stray_nan.any() else None
        abs_err = float(diff[finite].max()) if finite.any() else 0.0
        nonzero = finite & (e != 0)
        # relative to an expected zero there is no relative error: None, and it is not printed
        rel_err = float((diff[nonzero] / np.abs(e[nonzero])).max()) if nonzero.any() else None
        return mismatch, nan_at, abs_err, rel_err


def check_tensor(
    name: str,
    actual: object,
    expected: object,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    check_dtype: bool = True,
    requires_grad: bool | None = None,
    is_leaf: bool | None = None,
    has_grad: bool | None = None,
    device: str | None = None,
    input_name: str | None = None,
    reveal: bool = True,
    hint: Hint = None,
) -> None:
    """Check that ``actual`` is a real tensor equal to ``expected`` within tolerance.

    ``expected`` may be a tensor on any device, a NumPy array or nested lists; it
    is compared on the CPU. ``rtol``/``atol`` default to values that fit the
    dtype. ``requires_grad``, ``is_leaf``, ``has_grad`` (``.grad`` is set) and
    ``device`` ('cpu' or 'cuda') are checked only when given. With
    ``reveal=False`` the message never shows the expected values. ``input_name``
    marks a check that an input was left as it was passed in: a mismatch then
    says that the student's function changed that input.
    """
    __tracebackhide__ = True
    options = {"rtol": rtol, "atol": atol, "check_dtype": check_dtype, "requires_grad": requires_grad}
    options |= {"is_leaf": is_leaf, "has_grad": has_grad, "device": device, "reveal": reveal}
    options |= {"input_name": input_name}
    _record("tensor", name, expected, options)
    tensor = _require_tensor(name, actual, hint)
    want = _reference(expected)

    if device is not None and tensor.device.type != torch.device(device).type:
        _fail(name, message("device", got=tensor.device.type, expected=device), hint)
    if tensor.device.type == "meta":
        _fail(name, message("device", got="meta", expected=device or "cpu"), hint)
    if tuple(tensor.shape) != tuple(want.shape):
        _fail(name, message("shape", got=tuple(tensor.shape), expected=tuple(want.shape)), hint)
    if check_dtype and tensor.dtype != want.dtype:
        _fail(name, message("dtype", got=tensor.dtype, expected=want.dtype), hint)

    default_rtol, default_atol = _TOLERANCES.get(want.dtype, (0.0, 0.0))
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    got, ref = _to_numpy(tensor), _to_numpy(want)
    mismatch, nan_at, abs_err, rel_err = _compare_values(got, ref, rtol, atol)
    if nan_at is not None:
        index = _index(nan_at, ref.shape)
        if reveal:
            reason = message("nan", index=index, expected=_fmt(ref.flat[nan_at]))
        else:
            reason = message("nan_hidden", index=index)
        _fail(name, reason, hint)
    if mismatch.any():
        first = int(np.flatnonzero(mismatch)[0])
        count, total = int(mismatch.sum()), int(mismatch.size)
        if input_name is not None:
            _fail(
                name,
                message("changed_input", input=input_name, count=count, total=total),
                hint or _both("changed_input_hint"),
            )
        if reveal:
            shown_got, shown_expected = _fmt_pair(got.flat[first], ref.flat[first])
            relative = message("relative", rel_err=rel_err) if rel_err is not None else ""
            reason = message(
                "values",
                count=count,
                total=total,
                index=_index(first, ref.shape),
                got=shown_got,
                expected=shown_expected,
                abs_err=abs_err,
                relative=relative,
                rtol=rtol,
                atol=atol,
            )
        else:
            reason = message("values_hidden", count=count, total=total)
        _fail(name, reason, hint)

    _check_autograd_state(name, tensor, requires_grad, is_leaf, has_grad, hint)
    _passed(name)


def _check_autograd_state(name, tensor, requires_grad, is_leaf, has_grad, hint) -> None:
    __tracebackhide__ = True
    if requires_grad is not None and tensor.requires_grad != requires_grad:
        _fail(name, message("requires_grad_true" if requires_grad else "requires_grad_false"), hint)
    if is_leaf is not None and tensor.is_leaf != is_leaf:
        if is_leaf:
            _fail(name, message("leaf_true", grad_fn=_type(tensor.grad_fn).__name__), hint)
        _fail(name, message("leaf_false"), hint)
    if has_grad is not None:
        # Reading .grad of a non-leaf tensor warns; only leaves (or retain_grad) have one.
        grad_set = (tensor.is_leaf or tensor.retains_grad) and tensor.grad is not None
        if grad_set != has_grad:
            _fail(name, message("grad_missing" if has_grad else "grad_present"), hint)


def check_scalar(
    name: str,
    actual: object,
    expected: float,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    reveal: bool = True,
    hint: Hint = None,
) -> None:
    """Check that ``actual`` is a real number (or a one-element tensor) close to ``expected``."""
    __tracebackhide__ = True
    _record("scalar", name, expected, {"rtol": rtol, "atol": atol, "reveal": reveal})
    kind = _type(actual)
    if kind in _PLAIN_TENSOR_TYPES:
        if actual.numel() != 1:
            _fail(name, message("not_one_element", numel=actual.numel()), hint)
        value = float(_to_numpy(actual).reshape(-1)[0])
    elif kind in _PLAIN_SCALAR_TYPES:
        value = float(actual)
    else:
        _fail(name, message("not_number", got=_describe(actual)), hint)
    want = (
        float(_reference(expected).reshape(-1)[0]) if _isinstance(expected, torch.Tensor) else float(expected)
    )

    if math.isnan(want):
        ok = math.isnan(value)
    elif math.isinf(want) or math.isinf(value):
        ok = value == want
    else:
        ok = abs(value - want) <= atol + rtol * abs(want)
    if not ok:
        if reveal:
            abs_err = abs(value - want) if not math.isnan(value) else math.nan
            shown_got, shown_expected = _fmt_pair(value, want)
            reason = message(
                "scalar",
                got=shown_got,
                expected=shown_expected,
                abs_err=abs_err,
                rtol=rtol,
                atol=atol,
            )
        else:
            reason = message("scalar_hidden", got=_fmt(value))
        _fail(name, reason, hint)
    _passed(name)


def _plain_equal(a: object, e: object) -> bool:
    if _type(a) is not _type(e):
        return False
    if _type(e) in (tuple, list):
        return len(a) == len(e) and all(_plain_equal(x, y) for x, y in zip(a, e, strict=True))
    if _type(e) is float and math.isnan(e):
        return math.isnan(a)
    return a == e


def check_value(
    name: str, actual: object, expected: object, *, reveal: bool = True, hint: Hint = None
) -> None:
    """Check a plain Python value (None, bool, int, float, str, or tuples/lists of them).

    The type must match exactly: ``1`` is not ``True`` and ``"None"`` is not ``None``.
    """
    __tracebackhide__ = True
    _record("value", name, expected, {"reveal": reveal})
    if _type(expected) not in _PLAIN_VALUE_TYPES:
        raise TypeError(f"check_value compares plain Python values, not {_describe(expected)}")
    if _type(actual) is not _type(expected):
        _fail(name, message("wrong_type", expected=_describe(expected), got=_describe(actual)), hint)
    if not _plain_equal(actual, expected):
        if reveal:
            _fail(name, message("wrong_value", expected=repr(expected), got=_safe_repr(actual)), hint)
        _fail(name, message("wrong_value_hidden"), hint)
    _passed(name)


def _safe_repr(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_true(name: str, condition: object, *, hint: Hint = None) -> None:
    """Check that ``condition`` is the boolean ``True`` (not merely something truthy)."""
    __tracebackhide__ = True
    _record("true", name, True, {})
    if _type(condition) is not bool:
        _fail(name, message("not_bool", got=_describe(condition)), hint)
    if not condition:
        _fail(name, message("condition"), hint)
    _passed(name)


def type_name(kind: type) -> str:
    """``module.QualifiedName`` of a class, as check_type compares and reports it."""
    module = getattr(kind, "__module__", "?")
    return f"{module}.{kind.__qualname__}" if module != "builtins" else kind.__qualname__


def check_type(name: str, value: object, expected: type, *, hint: Hint = None) -> None:
    """Check that ``value`` is exactly of type ``expected`` (not a subclass); the message says
    which type came back."""
    __tracebackhide__ = True
    _record("type", name, expected, {})
    if _type(value) is not expected:
        _fail(name, message("wrong_class", expected=type_name(expected), got=type_name(_type(value))), hint)
    _passed(name)


def grad_fn_chain(tensor: torch.Tensor, limit: int = 100) -> list[str]:
    """Names of the nodes met by following ``grad_fn`` and each node's first input."""
    names = []
    node = tensor.grad_fn
    while node is not None and len(names) < limit:
        names.append(_type(node).__name__)
        edges = node.next_functions
        node = edges[0][0] if edges else None
    return names


def check_grad_fn_chain(name: str, tensor: object, expected: Sequence[str], *, hint: Hint = None) -> None:
    """Check the chain ``grad_fn -> next_functions[0][0] -> ...`` node by node.

    ``expected`` lists node class names, for example
    ``["MulBackward0", "SumBackward0", "PowBackward0", "AccumulateGrad"]``;
    the chain must end where the list ends.
    """
    __tracebackhide__ = True
    _record("chain", name, list(expected), {"length": len(expected)})
    expected = list(expected)
    real = _require_tensor(name, tensor, hint)
    if real.grad_fn is None:
        _fail(name, message("no_grad_fn"), hint)
    got = grad_fn_chain(real, limit=len(expected) + 1)
    for step, want in enumerate(expected):
        if step >= len(got):
            _fail(name, message("chain_short", steps=len(got), expected=" -> ".join(expected)), hint)
        if got[step] != want:
            _fail(name, message("chain", step=step, got=got[step], expected=want), hint)
    if len(got) > len(expected):
        _fail(name, message("chain_long", expected=expected[-1], got=got[len(expected)]), hint)
    _passed(name)
