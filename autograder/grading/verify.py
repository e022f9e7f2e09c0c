"""The grader's own judgement of test cells: the student's values against the references.

In a graded run each check site of a test cell reports only the value it was
given (``autograder.grading.testcells``); the references hold, per site, what the
check compares with, learnt from the instructor's solution in a sandbox of its
own (``autograder.grading.references``). Here, in the grader's process, where no
student code ever runs, each reported value is decoded into plain numbers and
judged by the course checks' own core (``course.checks.compare``), with the
check's own options. A test cell passes only if every check call of the
reference is matched, site by site and in order.

Messages are written here, from decoded numbers, in the language asked for:
nothing the student's process chose as text (a string answer, a grad_fn name,
an exception message) is repeated. Nothing here reads or changes process-wide
state, so grading threads judge and explain at the same time.
"""

import base64
import math
import re
from dataclasses import replace

import numpy as np

from course.checks import TensorFacts, Verdict, compare, failure_text
from course.i18n import Text

# A reported value that cannot be matched with its reference (another site or kind, or a
# value taken while the test's libraries were changed): only the check's name is shown.
NO_MATCH = Verdict(False, "verify.mismatch_at")
# A check of the instructor's run that the student's run never reached.
NOT_REACHED = Verdict(False, "verify.not_reached")


def _array(payload: dict) -> np.ndarray:
    """A tensor payload's data as the checks read it (bfloat16 travels as float32)."""
    data = base64.b64decode(payload["data"])
    return np.frombuffer(data, dtype=np.dtype(payload["np_dtype"])).reshape(payload["shape"]).copy()


def _facts(payload: dict) -> TensorFacts:
    chain = payload["chain"]
    return TensorFacts(
        shape=tuple(int(s) for s in payload["shape"]),
        dtype=payload["dtype"],
        device=payload["device"],
        read=lambda: _array(payload),
        requires_grad=payload["requires_grad"],
        is_leaf=payload["is_leaf"],
        grad_set=payload["grad_set"],
        grad_fn=_shown_node(chain[0]) if chain else "?",
    )


def _number(payload: dict) -> float | None:
    if payload.get("t") == "number":
        return float(payload["v"])
    if payload.get("t") == "tensor" and math.prod(payload["shape"]) == 1:
        return float(_array(payload).astype(np.float64).reshape(-1)[0])
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


def _truthy(value) -> bool:
    return value is True or value == "true" or value == "True"


def judge(reference: dict, student: dict) -> Verdict:
    """The course check's verdict on one reported value against its reference, every field of its
    message written by the grader (a class or node the student's process named appears only when
    it is one of Python's, NumPy's or torch's)."""
    if (reference["site"], reference["kind"]) != (student["site"], student["kind"]):
        return NO_MATCH
    kind, options = reference["kind"], reference.get("options", {})
    w, g = reference["expected"], student["value"]
    if g.get("t") == "tampered":
        return NO_MATCH
    reveal = _truthy(options.get("reveal", True))
    if kind in ("tensor", "chain") and g.get("t") != "tensor":
        return Verdict(False, "not_tensor", {"got": _shown_type(g)})
    if kind == "tensor":
        if w.get("t") != "tensor":
            return NO_MATCH
        tensor_options = {
            "rtol": _option(options, "rtol"),
            "atol": _option(options, "atol"),
            "check_dtype": options.get("check_dtype", True) is not False,
            "reveal": reveal,
            "input_name": options.get("input_name") if isinstance(options.get("input_name"), str) else None,
        }
        tensor_options |= {k: options.get(k) for k in ("requires_grad", "is_leaf", "has_grad", "device")}
        return compare("tensor", _facts(g), _facts(w), tensor_options)
    if kind == "scalar":
        got, want = _number(g), _number(w)
        if got is None or want is None:
            return Verdict(False, "not_number", {"got": _shown_type(g)})
        scalar_options = {"rtol": _option(options, "rtol", 1e-5), "atol": _option(options, "atol", 1e-8)}
        return compare("scalar", got, want, scalar_options | {"reveal": reveal})
    if kind == "chain":
        verdict = compare("chain", g["chain"], [v.get("v") for v in w.get("v", [])], {})
        return _shown(verdict, got=_shown_node(verdict.params.get("got")))
    if kind == "true":
        return _shown(compare("true", _plain(g), True, {}), got=_shown_type(g))
    if kind == "type":
        if g.get("t") != "type" or w.get("t") != "type":
            return Verdict(
                False, "wrong_class", {"expected": w.get("v", "?"), "got": _shown_class(g.get("v"))}
            )
        return _shown(compare("type", g["v"], w["v"], {}), expected=w["v"], got=_shown_class(g["v"]))
    if kind == "value":
        expected, actual = _plain(w), _plain(g)
        if expected is _OTHER:
            return NO_MATCH
        verdict = compare("value", actual, expected, {"reveal": reveal})
        if verdict.reason == "wrong_type":
            return _shown(verdict, expected=_PLAIN_NAMES.get(w.get("t"), "?"), got=_shown_type(g))
        if verdict.reason == "wrong_value" and w.get("t") in ("none", "bool", "int", "float"):
            return _shown(verdict, expected=repr(expected), got=repr(actual))
        if verdict.reason == "wrong_value":  # no text the student chose
            return Verdict(False, "wrong_value_hidden")
        return verdict
    return NO_MATCH


def _shown(verdict: Verdict, **fields) -> Verdict:
    """A failed verdict with the fields it names replaced by the grader's words."""
    if verdict.ok:
        return verdict
    return replace(verdict, params=verdict.params | {k: v for k, v in fields.items() if k in verdict.params})


def same(reference: dict, student: dict) -> bool:
    """Whether one reported value matches its reference, as the course check would judge it."""
    return judge(reference, student).ok


def cell_matches(reference: list[dict], student: list[dict]) -> bool:
    """Every check call of the reference matched, in order, and nothing else reported."""
    return len(reference) == len(student) and all(same(r, s) for r, s in zip(reference, student, strict=True))


def explain(reference: list[dict], student: list[dict], lang: str) -> str | None:
    """Why a test cell failed, in ``lang``, written here from the decoded values, never from the
    student's process.

    The first check of the instructor's run that the student's run did not match: its
    name (from the test), and, for a visible check, the course check's own message comparing
    the student's value with the instructor's; for a hidden one, no values.
    """
    for position, want in enumerate(reference):
        verdict = judge(want, student[position]) if position < len(student) else NOT_REACHED
        if not verdict.ok:
            return failure_text(want["name"], verdict, lang)
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
_ANOTHER_TYPE = Text("another_type")


def _shown_type(payload: dict) -> str | Text:
    return _PLAIN_NAMES.get(payload.get("t"), _ANOTHER_TYPE)


def _shown_class(qualified) -> str | Text:
    """A type's name, if it is one of Python's, NumPy's or torch's (a student's class is not named)."""
    if isinstance(qualified, str) and re.fullmatch(
        r"(?:(?:numpy|torch)(?:\.[A-Za-z_]\w*)+|[a-z]\w{0,20})", qualified
    ):
        return qualified
    return _ANOTHER_TYPE


def _shown_node(node) -> str | Text:
    return node if isinstance(node, str) and _TORCH_NODE.match(node) else Text("another_node")
