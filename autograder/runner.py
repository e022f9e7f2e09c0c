"""Run one assembled notebook in a fresh kernel, cell by cell, within limits.

A limit that is hit stops the run with a reason; the cells that ran before it
keep their outputs, so what passed before the limit still scores.
"""

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from jupyter_client import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError


@dataclass(frozen=True)
class Limits:
    cell_seconds: float = 60.0
    notebook_seconds: float = 300.0
    output_chars: int = 100_000  # per cell; the rest is cut


DEFAULT_LIMITS = Limits()


@dataclass
class RunResult:
    nb: nbformat.NotebookNode  # with outputs
    stopped: str | None  # why the run ended early, or None
    stopped_at: int | None  # index of the cell that hit the limit


def run_notebook(
    nb: nbformat.NotebookNode, limits: Limits = DEFAULT_LIMITS, env: dict | None = None
) -> RunResult:
    with tempfile.TemporaryDirectory(prefix="grade-") as scratch:
        return _run(nb, limits, Path(scratch), env or {})


def _run(nb, limits: Limits, scratch: Path, env: dict) -> RunResult:
    # The kernel talks to us over Unix sockets in the scratch folder, not TCP ports.
    manager = KernelManager(kernel_name="python3", transport="ipc", ip=str(scratch / "kernel"))
    client = NotebookClient(
        nb,
        km=manager,
        timeout=limits.cell_seconds,
        interrupt_on_timeout=False,
        allow_errors=True,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(scratch)}},
    )
    kernel_env = dict(os.environ, COURSE_DEVICE=os.environ.get("COURSE_DEVICE", "cpu"), **env)
    deadline = time.monotonic() + limits.notebook_seconds
    stopped, stopped_at = None, None
    with client.setup_kernel(env=kernel_env, cwd=str(scratch), cleanup_kc=True):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if time.monotonic() > deadline:
                stopped, stopped_at = f"notebook time limit ({limits.notebook_seconds:g} s)", index
                break
            client.timeout = max(1, min(limits.cell_seconds, deadline - time.monotonic()))
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError:
                stopped, stopped_at = f"cell time limit ({limits.cell_seconds:g} s)", index
                break
            except DeadKernelError:
                stopped, stopped_at = "the kernel stopped (exit, crash or out of memory)", index
                break
            finally:
                _cap_output(cell, limits.output_chars)
    return RunResult(nb=nb, stopped=stopped, stopped_at=stopped_at)


def _cap_output(cell, limit: int) -> None:
    used = 0
    kept = []
    for output in cell.get("outputs", []):
        text = output.get("text", "")
        if isinstance(text, list):
            text = "".join(text)
        if used + len(text) > limit:
            output["text"] = text[: max(0, limit - used)] + "\n[output cut at the grader's limit]\n"
            kept.append(output)
            break
        used += len(text)
        kept.append(output)
    cell["outputs"] = kept
