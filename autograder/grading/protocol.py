"""The one protocol between the grader, a sandbox's zygote and the notebook's process.

Frames are a 4-byte big-endian length and a UTF-8 JSON object. Every message
names its ``type`` and the ``job`` it belongs to. Both ends check every message
with :func:`check`: a message of the wrong type for its sender, from another
job, or malformed in any field is a :class:`ProtocolError`, which ends the job.

Nothing here is secret. The notebook's process runs the student's code, which
can write any frame it likes into its channel; what it says is trusted as the
student's answer and nothing more (see ``docs/grading-security.md``).

Who sends what:

* grader -> zygote: ``job`` (cells to run, limits, mode).
* notebook -> zygote -> grader: ``cell_started``, ``cell_finished`` (its
  outputs), ``report`` (a value a check site was given, graded mode),
  ``reference`` (a check's expected value, reference mode), ``restored``
  (how many library attributes were put back before a test), ``finished``.
* zygote -> grader: ``ready``, ``stopped`` (a reason code), ``job_finished``.
"""

import json
import math
import os
import select
import time

MAX_FRAME_BYTES = 32 * 2**20
MAX_TEXT = 200_000
# The longest grad_fn chain a value carries: the walk's own limit (course.checks.CHAIN_LIMIT,
# not imported here: it would import torch; tests/test_verify.py pins that they agree).
MAX_CHAIN = 64
MAX_NAME = 200
STOP_REASONS = frozenset(
    {
        "cell_time",  # a cell ran past --cell-timeout
        "notebook_time",  # the notebook ran past --notebook-timeout
        "output_limit",  # it printed more than --output-mb
        "memory",  # the sandbox's memory limit was hit
        "exited",  # the notebook ended its own process
        "killed",  # the process died from a signal
        "crashed",  # the runner inside the sandbox failed
        "ended",  # the process ended without saying it had finished
        "protocol",  # a message broke this protocol
        "sandbox",  # the sandbox itself stopped or stopped answering
        "unclean",  # files or processes of the job could not be removed
    }
)
FROM_NOTEBOOK = frozenset({"cell_started", "cell_finished", "report", "reference", "restored", "finished"})
FROM_ZYGOTE = frozenset({"ready", "stopped", "job_finished"}) | FROM_NOTEBOOK
TENSOR_DTYPES = frozenset(
    f"torch.{name}"
    for name in (
        "float16 bfloat16 float32 float64 complex64 complex128 int8 int16 int32 int64 uint8 bool".split()
    )
)
NUMPY_DTYPES = frozenset(
    {"<f2", "<f4", "<f8", "<c8", "<c16", "|i1", "<i2", "<i4", "<i8", "|u1", "|b1"}
)  # fmt: skip
CHECK_KINDS = frozenset({"tensor", "scalar", "value", "true", "chain", "type"})
PLAIN_KINDS = frozenset({"none", "bool", "int", "str", "float", "list", "tuple"})
OUTPUT_TYPES = frozenset({"stream", "error", "display_data", "execute_result"})


class ProtocolError(ValueError):
    """A message that does not follow the protocol."""


def encode(message: dict) -> bytes:
    data = json.dumps(message, ensure_ascii=True, allow_nan=False).encode("ascii")
    return len(data).to_bytes(4, "big") + data


def write(fd: int, message: dict) -> None:
    frame = encode(message)
    while frame:
        frame = frame[os.write(fd, frame) :]


def decode(body: bytes) -> dict:
    try:
        message = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ProtocolError(f"unreadable frame ({type(error).__name__})") from None
    if not isinstance(message, dict):
        raise ProtocolError("a frame that is not an object")
    return message


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


class Timeout(Exception):
    """No complete frame arrived in time."""


class Closed(Exception):
    """The other end closed its side."""


class FrameReader:
    """Frames from a file descriptor, with a deadline per read and a limit per frame."""

    def __init__(self, fd: int, limit: int = MAX_FRAME_BYTES):
        self.fd, self.limit, self.buffer, self.total = fd, limit, b"", 0

    def _frame(self) -> dict | None:
        if len(self.buffer) < 4:
            return None
        size = int.from_bytes(self.buffer[:4], "big")
        if size > self.limit:
            raise ProtocolError(f"a frame of {size} bytes is over the limit")
        if len(self.buffer) < 4 + size:
            return None
        body, self.buffer = self.buffer[4 : 4 + size], self.buffer[4 + size :]
        return decode(body)

    def read(self, deadline: float) -> dict:
        """The next message; Timeout at ``deadline`` (time.monotonic()), Closed at end of file."""
        while True:
            message = self._frame()
            if message is not None:
                return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout()
            ready, _, _ = select.select([self.fd], [], [], None if math.isinf(left) else left)
            if not ready:
                continue
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise Closed()
            self.total += len(chunk)
            self.buffer += chunk


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise ProtocolError(what)


def _is_int(value, low: int = 0, high: int = 2**31) -> bool:
    return type(value) is int and low <= value < high


def _is_text(value, limit: int = MAX_TEXT) -> bool:
    return type(value) is str and len(value) <= limit


def clean_text(text: str) -> str:
    """Text as it can be written to a UTF-8 file: lone surrogates replaced."""
    return text.encode("utf-8", "replace").decode("utf-8")


def check(message: dict, job: int | None, allowed: frozenset[str]) -> dict:
    """``message`` if it is well formed, of an ``allowed`` type and of ``job``; else ProtocolError.

    String fields come back with lone surrogates replaced, so that whatever a
    notebook printed can be written to a file.
    """
    kind = message.get("type")
    _require(type(kind) is str and kind in allowed, f"unexpected message type {str(kind)[:40]!r}")
    if kind == "ready":
        return message
    _require(message.get("job") == job and _is_int(message.get("job"), 0, 2**62), "a message of another job")
    cell = message.get("cell")
    if kind in ("cell_started", "cell_finished", "report", "reference", "restored"):
        _require(_is_int(cell, 0, 100_000), "a message without a valid cell")
    if kind == "cell_finished":
        outputs = message.get("outputs")
        _require(type(outputs) is list and len(outputs) <= 1000, "outputs must be a list")
        message["outputs"] = [_output(o) for o in outputs]
    elif kind in ("report", "reference"):
        _require(_is_int(message.get("site"), 0, 10_000), "a report without a valid site")
        _require(message.get("kind") in CHECK_KINDS, "an unknown check kind")
        field = "value" if kind == "report" else "expected"
        message[field] = _payload(message.get(field), 0)
        if kind == "reference":
            _require(_is_text(message.get("name"), MAX_NAME), "a reference without a name")
            _require(type(message.get("options")) is dict, "a reference without options")
    elif kind == "restored":
        _require(_is_int(message.get("count"), 0, 100_000), "a restored count that is not a number")
    elif kind == "stopped":
        _require(message.get("reason") in STOP_REASONS, "an unknown stop reason")
        _require(cell is None or _is_int(cell, 0, 100_000), "a stop without a valid cell")
    elif kind == "job_finished":
        _require(type(message.get("clean")) is bool, "job_finished without clean")
    return message


def _output(output) -> dict:
    _require(type(output) is dict and output.get("output_type") in OUTPUT_TYPES, "an unknown output")
    kind = output["output_type"]
    if kind == "stream":
        _require(output.get("name") in ("stdout", "stderr") and _is_text(output.get("text")), "a bad stream")
        return {"output_type": "stream", "name": output["name"], "text": clean_text(output["text"])}
    if kind == "error":
        _require(_is_text(output.get("ename"), MAX_NAME) and _is_text(output.get("evalue")), "a bad error")
        traceback = output.get("traceback")
        _require(type(traceback) is list and all(_is_text(t) for t in traceback[:50]), "a bad traceback")
        return {
            "output_type": "error",
            "ename": clean_text(output["ename"]),
            "evalue": clean_text(output["evalue"]),
            "traceback": [clean_text(t) for t in traceback[:50]],
        }
    data = output.get("data")
    _require(type(data) is dict and _is_text(data.get("text/plain")) and len(data) == 1, "a bad display")
    return {"output_type": kind, "data": {"text/plain": clean_text(data["text/plain"])}, "metadata": {}}


def _payload(value, depth: int) -> dict:
    """A value a check was given, as encoded by the notebook's process; types and sizes checked."""
    _require(type(value) is dict and type(value.get("t")) is str, "a value without a type")
    kind = value["t"]
    if kind == "tensor":
        _require(value.get("dtype") in TENSOR_DTYPES and value.get("np_dtype") in NUMPY_DTYPES, "bad dtype")
        shape = value.get("shape")
        _require(type(shape) is list and len(shape) <= 16 and all(_is_int(s) for s in shape), "bad shape")
        _require(_is_text(value.get("data"), 12 * 2**20), "bad tensor data")
        for flag in ("requires_grad", "is_leaf", "grad_set"):
            _require(type(value.get(flag)) is bool, f"bad {flag}")
        _require(value.get("device") in ("cpu", "cuda", "meta", "mps", "xpu", "other"), "bad device")
        chain = value.get("chain")
        _require(type(chain) is list and len(chain) <= MAX_CHAIN, "bad chain")
        _require(all(_is_text(c, 100) for c in chain), "bad chain")
        itemsize = int(value["np_dtype"][2:]) if value["np_dtype"][1] != "b" else 1
        _require(len(value["data"]) == 4 * math.ceil(math.prod(shape) * itemsize / 3), "tensor size mismatch")
        return value
    if kind == "number":
        _require(_is_text(value.get("v"), 40), "bad number")
        try:
            float(value["v"])
        except ValueError:
            raise ProtocolError("bad number") from None
        return value
    if kind in PLAIN_KINDS:
        _require(depth <= 20, "a value nested too deep")
        v = value.get("v")
        if kind in ("list", "tuple"):
            _require(type(v) is list and len(v) <= 10_000, "bad sequence")
            return {"t": kind, "v": [_payload(item, depth + 1) for item in v]}
        expected_type = {"none": type(None), "bool": bool, "int": int, "str": str, "float": str}[kind]
        _require(type(v) is expected_type, f"bad {kind}")
        if kind == "str":
            _require(len(v) <= 10_000, "a string too long")
            return {"t": "str", "v": clean_text(v)}
        if kind == "float":
            _require(len(v) <= 40, "bad float")
            try:
                float(v)
            except ValueError:
                raise ProtocolError("bad float") from None
        if kind == "int":
            _require(abs(v) < 2**256, "an int too large")
        return value
    if kind == "type":
        _require(_is_text(value.get("v"), MAX_NAME), "bad type name")
        return {"t": "type", "v": clean_text(value["v"])}
    if kind in ("other", "too_large", "tampered"):
        return {"t": kind}  # what the notebook said about it is not kept
    raise ProtocolError("an unknown value type")
