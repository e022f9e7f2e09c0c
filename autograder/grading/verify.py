"""The grader's own judgement of test cells: the student's values against the references.

In a graded run each check site of a test cell reports only the value it was
given (``autograder.grading.testcells``); the references hold, per site, what the
check compares with, learnt from the instructor's solution in a sandbox of its
own (``autograder.grading.references``). Here, in the grader's process, where no
student code ever runs, each reported value is decoded into a fresh plain
tensor or number and compared with the course checks themselves, with the
check's own options. A test cell passes only if every check call of the
reference is matched, site by site and in order.

Messages are written here, from decoded numbers: nothing the student's process
chose as text (a string answer, a grad_fn name, an exception message) is
repeated.
"""

import base64
import contextlib
import io
import math
import re
import threading

import numpy as np
import torch

from course import checks
from course.i18n import get_language, message, set_language

MISMATCH = {
    "en": "the values your code gave do not match the instructor's solution on the grader's inputs",
    "ru": "значения, которые дал ваш код, не совпадают с решением преподавателя на входных данных проверки",
}


def _tensor(payload: dict) -> torch.Tensor:
    data = base64.b64decode(payload["data"])
    array = np.frombuffer(data, dtype=np.dtype(payload["np_dtype"])).reshape(payload["shape"]).copy()
    tensor = torch.from_numpy(array)
    if payload["dtype"] == "torch.bfloat16":
        tensor = tensor.to(torch.bfloat16)
    return tensor


def _number(payload: dict) -> float | None:
    if payload.get("t") == "number":
        return float(payload["v"])
    if payload.get("t") == "tensor" and math.prod(payload["shape"]) == 1:
        return float(_tensor(payload).to(torch.float64).reshape(-1)[0])
    return None


def _quietly(check, *args, **kwargs) -> bool:
    return _failure(check, *args, **kwargs) is None


# The course checks print and read the message language from process-wide state, and
# grading threads call them concurrently: one at a time.
_CHECKS_LOCK = threading.RLock()


def _failure(check, *args, **kwargs) -> str | None:
    """The check's message if it fails, else None (nothing printed)."""
    with _CHECKS_LOCK, contextlib.redirect_stdout(io.StringIO()):
        try:
            check(*args, **kwargs)
        except checks.CheckFailed as failed:
            return str(failed)
    return None


def _plain(payload: dict):
    """A plain value (check_value, check_true) decoded, types kept."""
    kind, value = payload.get("t"), payload.get("v")
    if kind in ("list", "tuple"):
        items = [_plain(v) for v in value]
        return items if kind == "list" else tuple(items)
    if kind == "float":
        return float(value)
    if kind in ("none", "bool", "int", "str"):
        return value
    return _OTHER


_OTHER = object()


def _option(options: dict, name: str, default=None):
    value = options.get(name, default)
    return float(value) if isinstance(value, str) and name in ("rtol", "atol") else value


def _tensor_options(options: dict) -> tuple[bool, dict[str, float]]:
    """check_tensor's check_dtype and the tolerances the test gave, from a reference's options."""
    tolerances = {k: _option(options, k) for k in ("rtol", "atol") if options.get(k) is not None}
    return options.get("check_dtype", True) is not False, tolerances


def same(reference: dict, student: dict) -> bool:
    """Whether one reported value matches its reference, as the course check would judge it."""
    if (reference["site"], reference["kind"]) != (student["site"], student["kind"]):
        return False
    kind, options = reference["kind"], reference.get("options", {})
    want, got = reference["expected"], student["value"]
    if got.get("t") in ("tampered", "other", "too_large"):
        return False
    if kind == "tensor":
        if want.get("t") != "tensor" or got.get("t") != "tensor":
            return False
        check_dtype, tolerances = _tensor_options(options)
        if not _quietly(
            checks.check_tensor, "value", _tensor(got), _tensor(want), check_dtype=check_dtype, **tolerances
        ):
            return False
        if check_dtype and got["dtype"] != want["dtype"]:
            return False
        for option, field in (
            ("requires_grad", "requires_grad"),
            ("is_leaf", "is_leaf"),
            ("has_grad", "grad_set"),
        ):
            if options.get(option) is not None and got[field] != options[option]:
                return False
        return options.get("device") is None or got["device"] == options["device"]
    if kind == "scalar":
        want_value, got_value = _number(want), _number(got)
        if want_value is None or got_value is None:
            return False
        return _quietly(
            checks.check_scalar, "value", got_value, want_value,
            rtol=_option(options, "rtol", 1e-5), atol=_option(options, "atol", 1e-8),
        )  # fmt: skip
    if kind == "chain":
        names = [v.get("v") for v in want.get("v", [])]
        return got.get("t") == "tensor" and got["chain"][: len(names) + 1] == names
    if kind == "true":
        return got == {"t": "bool", "v": True}
    if kind == "type":
        return got.get("t") == "type" and want.get("t") == "type" and got.get("v") == want.get("v")
    # check_value: the same plain value, type included
    expected, actual = _plain(want), _plain(got)
    return _OTHER not in (expected, actual) and checks._plain_equal(actual, expected)


def cell_matches(reference: list[dict], student: list[dict]) -> bool:
    """Every check call of the reference matched, in order, and nothing else reported."""
    return len(reference) == len(student) and all(same(r, s) for r, s in zip(reference, student, strict=True))


def _truthy(value) -> bool:
    return value is True or value == "true" or value == "True"


def explain(reference: list[dict], student: list[dict], lang: str) -> str | None:
    """Why a test cell failed, written here from the decoded values, never from the student's process.

    The first check of the instructor's run that the student's run did not match: its
    name (from the test), and, for a visible check, the course check's own message comparing
    the student's value with the instructor's; for a hidden one, no values.
    """
    checks_language = lang if lang in ("en", "ru") else "en"
    with _CHECKS_LOCK:
        previous = get_language()
        set_language(checks_language)
        try:
            return _explain(reference, student, checks_language)
        finally:
            set_language(previous)


def _explain(reference: list[dict], student: list[dict], checks_language: str) -> str | None:
    for position, want in enumerate(reference):
        name = want["name"]
        if position >= len(student):
            return NOT_REACHED[checks_language].format(name=name)
        got = student[position]
        if same(want, got):
            continue
        if (got["site"], got["kind"]) != (want["site"], want["kind"]) or got["value"].get("t") == "tampered":
            return MISMATCH_AT[checks_language].format(name=name)
        reveal = _truthy(want.get("options", {}).get("reveal", True))
        explained = _compare_message(want, got, reveal)
        return explained or MISMATCH_AT[checks_language].format(name=name)
    return None


def _compare_message(want: dict, got: dict, reveal: bool) -> str | None:
    """The course check's own message for a mismatch, from decoded values; what the student's
    process named (a class, a grad_fn) appears only when it is one of Python's, NumPy's or torch's."""
    kind, name, options = want["kind"], want["name"], want.get("options", {})
    w, g = want["expected"], got["value"]
    if kind == "tensor" and w.get("t") == "tensor" and g.get("t") == "tensor":
        check_dtype, tolerances = _tensor_options(options)
        input_name = options.get("input_name") if isinstance(options.get("input_name"), str) else None
        found = _failure(
            checks.check_tensor, name, _tensor(g), _tensor(w), reveal=reveal, check_dtype=check_dtype,
            input_name=input_name, **tolerances,
        )  # fmt: skip
        return found or _property_message(name, options, g)
    if kind in ("tensor", "chain") and g.get("t") != "tensor":
        return _fail_text(name, "not_tensor", got=_shown_type(g))
    if kind == "scalar" and _number(w) is not None and _number(g) is not None:
        return _failure(
            checks.check_scalar, name, _number(g), _number(w), reveal=reveal,
            rtol=_option(options, "rtol", 1e-5), atol=_option(options, "atol", 1e-8),
        )  # fmt: skip
    if kind == "scalar":
        return _fail_text(name, "not_number", got=_shown_type(g))
    if kind == "type":
        return _fail_text(name, "wrong_class", expected=w.get("v", "?"), got=_shown_class(g.get("v")))
    if kind == "chain":
        names = [v.get("v") for v in w.get("v", [])]
        chain = g["chain"]
        if not chain:
            return _fail_text(name, "no_grad_fn")
        for step, expected in enumerate(names):
            if step >= len(chain):
                return _fail_text(name, "chain_short", steps=len(chain), expected=" -> ".join(names))
            if chain[step] != expected:
                return _fail_text(name, "chain", step=step, got=_shown_node(chain[step]), expected=expected)
        return _fail_text(
            name, "chain_long", expected=names[-1] if names else "-", got=_shown_node(chain[len(names)])
        )
    if kind == "true":
        return _fail_text(
            name, "condition" if g == {"t": "bool", "v": False} else "not_bool", got=_shown_type(g)
        )
    if kind == "value":
        if g.get("t") != w.get("t"):
            return _fail_text(
                name, "wrong_type", expected=_PLAIN_NAMES.get(w.get("t"), "?"), got=_shown_type(g)
            )
        if reveal and w.get("t") in ("none", "bool", "int", "float"):  # no text the student chose
            return _fail_text(name, "wrong_value", expected=repr(_plain(w)), got=repr(_plain(g)))
        return _fail_text(name, "wrong_value_hidden")
    return None


_PLAIN_NAMES = {
    "none": "NoneType",
    "bool": "bool",
    "int": "int",
    "str": "str",
    "float": "float",
    "list": "list",
}
_PLAIN_NAMES |= {"tuple": "tuple", "tensor": "torch.Tensor", "number": "a number"}
_TORCH_NODE = re.compile(r"^(?:[A-Z][A-Za-z0-9]*Backward[0-9]+|AccumulateGrad)$")


def _fail_text(name: str, key: str, **fields) -> str:
    return message("fail_header", name=name, reason=message(key, **fields))


def _shown_type(payload: dict) -> str:
    return _PLAIN_NAMES.get(payload.get("t"), message("another_type"))


def _shown_class(qualified) -> str:
    """A type's name, if it is one of Python's, NumPy's or torch's (a student's class is not named)."""
    if isinstance(qualified, str) and re.fullmatch(
        r"(?:(?:numpy|torch)(?:\.[A-Za-z_]\w*)+|[a-z]\w{0,20})", qualified
    ):
        return qualified
    return message("another_type")


def _shown_node(node) -> str:
    return node if isinstance(node, str) and _TORCH_NODE.match(node) else message("another_node")


def _property_message(name: str, options: dict, g: dict) -> str | None:
    for option, field, yes, no in (
        ("requires_grad", "requires_grad", "requires_grad_true", "requires_grad_false"),
        ("is_leaf", "is_leaf", "leaf_true", "leaf_false"),
        ("has_grad", "grad_set", "grad_missing", "grad_present"),
    ):
        if options.get(option) is not None and g[field] != options[option]:
            grad_fn = _shown_node(g["chain"][0]) if g["chain"] else "?"
            return _fail_text(name, yes if options[option] else no, grad_fn=grad_fn)
    if options.get("device") is not None and g["device"] != options["device"]:
        return _fail_text(name, "device", got=g["device"], expected=options["device"])
    return None


NOT_REACHED = {
    "en": "✘ {name}: this check was not reached (the test stopped before it)",
    "ru": "✘ {name}: до этой проверки выполнение не дошло (тест остановился раньше)",
}
MISMATCH_AT = {
    "en": "✘ {name}: the value does not match the instructor's solution",
    "ru": "✘ {name}: значение не совпадает с решением преподавателя",
}
