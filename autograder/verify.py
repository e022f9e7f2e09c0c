"""The grader's own judgement of test cells: the student's values against the instructor's.

Each course check, run in the sandbox, reports the value it was given. The
instructor's solution, run once per batch the same way, gives the values a
correct answer produces on the same inputs (test cells are re-seeded, so their
random inputs do not depend on what ran before). Here, in the grader's process,
where no student code ever runs, each reported value is decoded into a fresh
plain tensor or number and compared with the course checks themselves, using
the options of the instructor's run. A test cell passes only if nbgrader's
rule passes it (no error, nothing on stderr) *and* every value matches, in the
same order: a test cell that the student's code made look passed in its own
process still fails here.
"""

import base64
import contextlib
import io
import math
import threading

import numpy as np
import torch

from course import checks
from course.i18n import get_language, set_language

MISMATCH = {
    "en": "the values your code gave do not match the instructor's solution on the grader's inputs",
    "ru": "значения, которые дал ваш код, не совпадают с решением преподавателя на входных данных проверки",
}
MISSING = {
    "en": "the test did not run to the end (its checks were not all reached)",
    "ru": "тест не выполнился до конца (не все проверки были выполнены)",
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


def same(reference: dict, student: dict) -> bool:
    """Whether one check call of the student's run matches the instructor's."""
    if (reference["k"], reference["n"]) != (student["k"], student["n"]):
        return False
    kind, options = reference["k"], reference.get("o", {})
    want, got = reference["p"], student["p"]
    if got.get("t") == "tampered":  # the code under test changed torch, NumPy or the course meanwhile
        return False
    if kind == "tensor":
        if want.get("t") != "tensor" or got.get("t") != "tensor":
            return want == got and want.get("t") not in ("other", "too_large")
        tolerances = {k: float(options[k]) for k in ("rtol", "atol") if options.get(k) is not None}
        if not _quietly(
            checks.check_tensor, "value", _tensor(got), _tensor(want),
            check_dtype=options.get("check_dtype", True), **tolerances,
        ):  # fmt: skip
            return False
        if options.get("check_dtype", True) and got["dtype"] != want["dtype"]:
            return False
        for option, field in (
            ("requires_grad", "requires_grad"),
            ("is_leaf", "is_leaf"),
            ("has_grad", "grad_set"),
        ):
            if options.get(option) is not None and got[field] != want[field]:
                return False
        return not (options.get("device") is not None and got["device"] != want["device"])
    if kind == "scalar":
        want_value, got_value = _number(want), _number(got)
        if want_value is None or got_value is None:
            return False
        return _quietly(
            checks.check_scalar, "value", got_value, want_value, rtol=float(options.get("rtol", 1e-5)),
            atol=float(options.get("atol", 1e-8)),
        )  # fmt: skip
    if kind == "chain":
        return got.get("t") == "tensor" and want.get("t") == "tensor" and got["chain"] == want["chain"]
    # check_value and check_true: the exact same plain value, type included
    return got == want and got.get("t") != "other"


def cell_matches(reference: list[dict], student: list[dict]) -> bool:
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
        name = want["n"]
        if position >= len(student):
            return NOT_REACHED[checks_language].format(name=name)
        got = student[position]
        if same(want, got):
            continue
        if (got["k"], got["n"]) != (want["k"], want["n"]) or got["p"].get("t") == "tampered":
            return MISMATCH_AT[checks_language].format(name=name)
        reveal = _truthy(want.get("o", {}).get("reveal", True))
        message = _compare_message(want, got, reveal)
        return message or MISMATCH_AT[checks_language].format(name=name)
    return None


def _compare_message(want: dict, got: dict, reveal: bool) -> str | None:
    kind, name, options = want["k"], want["n"], want.get("o", {})
    w, g = want["p"], got["p"]
    if kind == "tensor" and w.get("t") == "tensor" and g.get("t") == "tensor":
        tolerances = {k: float(options[k]) for k in ("rtol", "atol") if options.get(k) is not None}
        return _failure(checks.check_tensor, name, _tensor(g), _tensor(w), reveal=reveal, **tolerances)
    if kind == "scalar" and _number(w) is not None and _number(g) is not None:
        return _failure(checks.check_scalar, name, _number(g), _number(w), reveal=reveal)
    return None


NOT_REACHED = {
    "en": "✘ {name}: this check was not reached (the test stopped before it)",
    "ru": "✘ {name}: до этой проверки выполнение не дошло (тест остановился раньше)",
}
MISMATCH_AT = {
    "en": "✘ {name}: the value does not match the instructor's solution",
    "ru": "✘ {name}: значение не совпадает с решением преподавателя",
}
