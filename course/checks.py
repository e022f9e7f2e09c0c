"""Checks that test cells call to compare a student's value with a reference.

Every check returns ``None`` when the value is right (and prints one line saying
so) and raises :class:`CheckFailed` with a message in the student's language
when it is wrong. A check never emits a warning: nbgrader scores a test cell
with anything on stderr as zero.

Values that only pretend to be tensors or numbers (subclasses, objects with
``__torch_function__`` or an ``__eq__`` that always says yes, lists) fail: the
comparison itself runs in NumPy on a CPU copy of the data, so nothing a
student's object overrides takes part in it.

The judgement itself is :func:`compare`, a pure function of what a check read
(:class:`TensorFacts`, numbers, plain values, class names, node names): it
returns a :class:`Verdict`, prints nothing and reads no language. The checks
render its verdict in the notebook's language; the grader
(``autograder.grading.verify``) calls it on the values a notebook reported and
renders it in the student's language.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from course.i18n import Text, get_language, message

# Captured at import, before any student code runs in the kernel.
_type = type
_str = str
_isinstance = isinstance
_issubclass = issubclass
_print = print
_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)
_PLAIN_SCALAR_TYPES = (int, float, np.float16, np.float32, np.float64, np.int32, np.int64)
_PLAIN_VALUE_TYPES = (type(None), bool, int, float, str, tuple, list)

# Default tolerances per dtype: (rtol, atol). Integers and booleans compare exactly.
_TOLERANCES = {
    "torch.float16": (1e-3, 1e-5),
    "torch.bfloat16": (1.6e-2, 1e-5),
    "torch.float32": (1e-5, 1e-5),
    "torch.float64": (1e-7, 1e-7),
    "torch.complex64": (1e-5, 1e-5),
    "torch.complex128": (1e-7, 1e-7),
}

# How many grad_fn nodes a chain walk follows: here and in the grader's sandbox, whose
# protocol refuses longer chains.
CHAIN_LIMIT = 64

Hint = str | Mapping[str, str] | None


class CheckFailed(AssertionError):
    """A value did not pass a check; the message says why and what to do."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for a failed check: its message, not a traceback into this module."""
        return str(self).splitlines()


@dataclass(frozen=True)
class Verdict:
    """What a comparison found: ``ok``, or why not as a catalogue key (``reason``, see
    ``course.i18n``) with the fields of that message (``params``), and the key of the hint
    shown with it when the test gives none (``hint``)."""

    ok: bool
    reason: str | None = None
    params: dict = field(default_factory=dict)
    hint: str | None = None


PASSED = Verdict(True)


def _failed(reason: str, hint: str | None = None, **params) -> Verdict:
    return Verdict(False, reason, params, hint)


@dataclass(frozen=True)
class TensorFacts:
    """What a check reads of a tensor. ``read()`` gives a CPU NumPy copy of the data; it is
    called only once the shape and dtype match (NumPy lacks some dtypes, a meta tensor has no
    data). ``grad_fn`` names the first node of the graph as a message may show it."""

    shape: tuple[int, ...]
    dtype: str
    device: str
    read: Callable[[], np.ndarray]
    requires_grad: bool = False
    is_leaf: bool = True
    grad_set: bool = False
    grad_fn: str | Text = ""


def tensor_facts(tensor: torch.Tensor) -> TensorFacts:
    """The facts of a plain tensor (a subclass never gets this far: see ``_require_tensor``)."""
    return TensorFacts(
        shape=tuple(tensor.shape),
        dtype=_str(tensor.dtype),
        device=tensor.device.type,
        read=lambda: _to_numpy(tensor),
        requires_grad=tensor.requires_grad,
        is_leaf=tensor.is_leaf,
        # Reading .grad of a non-leaf tensor warns; only leaves (or retain_grad) have one.
        grad_set=(tensor.is_leaf or tensor.retains_grad) and tensor.grad is not None,
        grad_fn=_type(tensor.grad_fn).__name__,
    )


def compare(kind: str, actual: object, expected: object, options: Mapping) -> Verdict:
    """The verdict of check ``kind`` on what it read; pure: it prints nothing, reads no
    language, and a wrong value is a verdict, never an exception.

    ``tensor``: two :class:`TensorFacts`; ``scalar``: two floats; ``value``: plain
    values; ``true``: the condition (``expected`` is True); ``type``: two classes, or
    their qualified names as the grader receives them; ``chain``: node names, the
    student's as walked by :func:`grad_fn_chain`. ``options`` are the check's keyword
    arguments, as recorded for the grader.
    """
    return _COMPARISONS[kind](actual, expected, options)


def failure_text(name: str, verdict: Verdict, lang: str, hint: Hint = None) -> str:
    """What a student reads for a failed verdict, in ``lang``: the reason, and the test's hint
    (else the verdict's own) on a second line."""
    text = message("fail_header", lang, name=name, reason=Text(verdict.reason, verdict.params))
    if hint:
        shown = _hint_text(hint, lang)
    else:
        shown = message(verdict.hint, lang) if verdict.hint else None
    if shown:
        text += "\n" + message("hint", lang, hint=shown)
    return text


def _record(kind: str, name: str, expected: object, options: dict) -> None:
    """Where each check reports the value it compares with.

    A no-op in a notebook. When the grader runs the instructor's solution to
    learn the references, it runs the checks with its own recorder, which sends
    the expected value and the options. A student's notebook is graded without
    the checks: its test cells only report the values they were given, and the
    grader compares them with these references in its own process.
    """


def _hint_text(hint: str | Mapping[str, str], lang: str) -> str:
    if _isinstance(hint, str):
        return hint
    return hint.get(lang) or next(iter(hint.values()))


def _conclude(name: str, verdict: Verdict, hint: Hint) -> None:
    """Print the line saying the check passed, or raise its failure in the notebook's language."""
    __tracebackhide__ = True
    if not verdict.ok:
        raise CheckFailed(failure_text(name, verdict, get_language(), hint))
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
        _conclude(name, _failed("tensor_subclass", got=_describe(value)), hint)
    own_hint = "grad_none_hint" if value is None and name.endswith(".grad") else "not_tensor_hint"
    _conclude(name, _failed("not_tensor", own_hint, got=_describe(value)), hint)


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


def _compare_tensor(actual: TensorFacts, expected: TensorFacts, options: Mapping) -> Verdict:
    device = options.get("device")
    if device is not None and actual.device != torch.device(device).type:
        return _failed("device", got=actual.device, expected=device)
    if actual.device == "meta":
        return _failed("device", got="meta", expected=device or "cpu")
    if actual.shape != expected.shape:
        return _failed("shape", got=actual.shape, expected=expected.shape)
    if options.get("check_dtype", True) and actual.dtype != expected.dtype:
        return _failed("dtype", got=actual.dtype, expected=expected.dtype)

    default_rtol, default_atol = _TOLERANCES.get(expected.dtype, (0.0, 0.0))
    rtol = default_rtol if options.get("rtol") is None else options["rtol"]
    atol = default_atol if options.get("atol") is None else options["atol"]
    reveal = options.get("reveal", True)
    got, ref = actual.read(), expected.read()
    mismatch, nan_at, abs_err, rel_err = _compare_values(got, ref, rtol, atol)
    if nan_at is not None:
        index = _index(nan_at, ref.shape)
        if reveal:
            return _failed("nan", index=index, expected=_fmt(ref.flat[nan_at]))
        return _failed("nan_hidden", index=index)
    if mismatch.any():
        first = int(np.flatnonzero(mismatch)[0])
        count, total = int(mismatch.sum()), int(mismatch.size)
        if options.get("input_name") is not None:
            return _failed(
                "changed_input", "changed_input_hint", input=options["input_name"], count=count, total=total
            )
        if not reveal:
            return _failed("values_hidden", count=count, total=total)
        shown_got, shown_expected = _fmt_pair(got.flat[first], ref.flat[first])
        return _failed(
            "values",
            count=count,
            total=total,
            index=_index(first, ref.shape),
            got=shown_got,
            expected=shown_expected,
            abs_err=abs_err,
            relative=Text("relative", {"rel_err": rel_err}) if rel_err is not None else "",
            rtol=rtol,
            atol=atol,
        )

    requires_grad, is_leaf, has_grad = (options.get(k) for k in ("requires_grad", "is_leaf", "has_grad"))
    if requires_grad is not None and actual.requires_grad != requires_grad:
        return _failed("requires_grad_true" if requires_grad else "requires_grad_false")
    if is_leaf is not None and actual.is_leaf != is_leaf:
        return _failed("leaf_true", grad_fn=actual.grad_fn) if is_leaf else _failed("leaf_false")
    if has_grad is not None and actual.grad_set != has_grad:
        return _failed("grad_missing" if has_grad else "grad_present")
    return PASSED


def _compare_scalar(actual: float, expected: float, options: Mapping) -> Verdict:
    rtol, atol = options["rtol"], options["atol"]
    if math.isnan(expected):
        ok = math.isnan(actual)
    elif math.isinf(expected) or math.isinf(actual):
        ok = actual == expected
    else:
        ok = abs(actual - expected) <= atol + rtol * abs(expected)
    if ok:
        return PASSED
    if not options.get("reveal", True):
        return _failed("scalar_hidden", got=_fmt(actual))
    abs_err = abs(actual - expected) if not math.isnan(actual) else math.nan
    shown_got, shown_expected = _fmt_pair(actual, expected)
    return _failed("scalar", got=shown_got, expected=shown_expected, abs_err=abs_err, rtol=rtol, atol=atol)


def _plain_equal(a: object, e: object) -> bool:
    if _type(a) is not _type(e):
        return False
    if _type(e) in (tuple, list):
        return len(a) == len(e) and all(_plain_equal(x, y) for x, y in zip(a, e, strict=True))
    if _type(e) is float and math.isnan(e):
        return math.isnan(a)
    return a == e


def _compare_value(actual: object, expected: object, options: Mapping) -> Verdict:
    if _type(actual) is not _type(expected):
        return _failed("wrong_type", expected=_describe(expected), got=_describe(actual))
    if _plain_equal(actual, expected):
        return PASSED
    if options.get("reveal", True):
        return _failed("wrong_value", expected=repr(expected), got=_safe_repr(actual))
    return _failed("wrong_value_hidden")


def _safe_repr(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _compare_true(actual: object, expected: object, options: Mapping) -> Verdict:
    if _type(actual) is not bool:
        return _failed("not_bool", got=_describe(actual))
    return PASSED if actual else _failed("condition")


def type_name(kind: type) -> str:
    """``module.QualifiedName`` of a class, as check_type compares and reports it."""
    module = getattr(kind, "__module__", "?")
    return f"{module}.{kind.__qualname__}" if module != "builtins" else kind.__qualname__


def _type_label(kind: type | str) -> str:
    return kind if _type(kind) is _str else type_name(kind)


def _compare_type(actual: type | str, expected: type | str, options: Mapping) -> Verdict:
    """The same class; a name stands for its class only when both sides are names."""
    if actual is expected or (_type(actual) is _str and _type(expected) is _str and actual == expected):
        return PASSED
    return _failed("wrong_class", expected=_type_label(expected), got=_type_label(actual))


def _compare_chain(actual: Sequence[str], expected: Sequence[str], options: Mapping) -> Verdict:
    if not actual:
        return _failed("no_grad_fn")
    for step, want in enumerate(expected):
        if step >= len(actual):
            return _failed("chain_short", steps=len(actual), expected=" -> ".join(expected))
        if actual[step] != want:
            return _failed("chain", step=step, got=actual[step], expected=want)
    if len(actual) > len(expected):
        return _failed("chain_long", expected=expected[-1] if expected else "-", got=actual[len(expected)])
    return PASSED


_COMPARISONS = {
    "tensor": _compare_tensor,
    "scalar": _compare_scalar,
    "value": _compare_value,
    "true": _compare_true,
    "type": _compare_type,
    "chain": _compare_chain,
}


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
    _conclude(
        name, compare("tensor", tensor_facts(tensor), tensor_facts(_reference(expected)), options), hint
    )


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
    options = {"rtol": rtol, "atol": atol, "reveal": reveal}
    _record("scalar", name, expected, options)
    kind = _type(actual)
    if kind in _PLAIN_TENSOR_TYPES and actual.numel() != 1:
        verdict = _failed("not_one_element", numel=actual.numel())
    elif kind in _PLAIN_TENSOR_TYPES or kind in _PLAIN_SCALAR_TYPES:
        value = float(_to_numpy(actual).reshape(-1)[0]) if kind in _PLAIN_TENSOR_TYPES else float(actual)
        want = (
            float(_reference(expected).reshape(-1)[0])
            if _isinstance(expected, torch.Tensor)
            else float(expected)
        )
        verdict = compare("scalar", value, want, options)
    else:
        verdict = _failed("not_number", got=_describe(actual))
    _conclude(name, verdict, hint)


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
    _conclude(name, compare("value", actual, expected, {"reveal": reveal}), hint)


def check_true(name: str, condition: object, *, hint: Hint = None) -> None:
    """Check that ``condition`` is the boolean ``True`` (not merely something truthy)."""
    __tracebackhide__ = True
    _record("true", name, True, {})
    _conclude(name, compare("true", condition, True, {}), hint)


def check_type(name: str, value: object, expected: type, *, hint: Hint = None) -> None:
    """Check that ``value`` is exactly of type ``expected`` (not a subclass); the message says
    which type came back."""
    __tracebackhide__ = True
    _record("type", name, expected, {})
    _conclude(name, compare("type", _type(value), expected, {}), hint)


def grad_fn_chain(tensor: torch.Tensor, limit: int = CHAIN_LIMIT) -> list[str]:
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
    the chain must end where the list ends (within the first ``CHAIN_LIMIT`` nodes,
    as far as the grader follows it).
    """
    __tracebackhide__ = True
    _record("chain", name, list(expected), {"length": len(expected)})
    expected = list(expected)
    real = _require_tensor(name, tensor, hint)
    _conclude(name, compare("chain", grad_fn_chain(real), expected, {}), hint)
