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

import numpy as np
import torch

from course import checks

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
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            check(*args, **kwargs)
        except checks.CheckFailed:
            return False
    return True


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
