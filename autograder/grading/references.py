"""What each check of an assignment compares with, learnt once per assignment version.

The instructor's solution runs in a sandbox of its own, started for it and
stopped after it, where no student code ever runs, with its test cells in
reference mode (``autograder.grading.testcells``): each check records its expected
value, name and options. The result is stored in
``references/<assignment>/<notebook>.json`` in the course folder (never in
``source/``, whose files nbgrader copies into the release), keyed by a digest
of the source notebook, the packages the values depend on and the device. A
grading command computes it only when it is missing or out of date, so no
student's job is ever taken for the reference and a grade runs no reference
again. Test cells are the same in both languages: one run serves both.
"""

import hashlib
import json
import os
import platform
import sys
import threading
from importlib import metadata
from pathlib import Path

from autograder import notebooks
from autograder.grading.run import run_in_sandbox
from autograder.grading.sandbox import DEFAULT_LIMITS, Limits, Worker
from autograder.grading.testcells import sites

FOLDER = "references"
FORMAT = 1


class ReferenceFailed(RuntimeError):
    """The instructor's own solution does not pass its tests in the grader: fix the lesson first."""


def _package_digest() -> str:
    """What the reference values depend on besides the notebook: versions, the course's code, and
    the code that numbers the check sites and records them."""
    h = hashlib.sha256(f"{FORMAT} {sys.version_info[:2]} {platform.machine()}".encode())
    for package in ("torch", "numpy"):
        try:
            h.update(f"{package}={metadata.version(package)}".encode())
        except metadata.PackageNotFoundError:
            h.update(package.encode())
    import course

    here = Path(__file__).parent
    recorded_by = [here / "testcells.py", here / "protocol.py", here / "sandbox" / "child.py"]
    for path in [*sorted(Path(course.__file__).parent.glob("*.py")), *recorded_by]:
        h.update(path.name.encode() + path.read_bytes())
    h.update(os.environ.get("COURSE_DEVICE", "cpu").encode())
    return h.hexdigest()


def key(source: Path) -> str:
    return hashlib.sha256(source.read_bytes() + _package_digest().encode()).hexdigest()


def path_for(course_dir: Path, assignment: str, notebook: str) -> Path:
    return Path(course_dir) / FOLDER / assignment / f"{notebook}.json"


def stored(course_dir: Path, assignment: str, source: Path) -> dict[str, list[dict]] | None:
    """The stored references of ``source`` if they are of this version, else None."""
    path = path_for(course_dir, assignment, source.stem)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(data, dict)
        or data.get("key") != key(source)
        or not isinstance(data.get("cells"), dict)
    ):
        return None
    return data["cells"]


def compute(
    solved_nb, limits: Limits = DEFAULT_LIMITS, unsafe: bool = False, worker: Worker | None = None
) -> dict[str, list[dict]]:
    """Run the instructor's notebook in a sandbox of its own; ``{test grade_id: [reference per check
    call]}``. That sandbox is started for it, or is ``worker``: one that runs reference jobs only
    (a warm server keeps one), never a student's."""
    own = worker is None
    worker = worker or Worker(index=0, unsafe=unsafe, limits=limits)
    try:
        if worker.process is None:
            worker.spawn()
        run = run_in_sandbox(worker, notebooks.copy(solved_nb), limits, mode="reference")
    finally:
        if own:
            worker.close()
    failing, cells = [], {}
    for index, cell in enumerate(run.nb.cells):
        if not (notebooks.is_grade(cell) and cell.cell_type == "code"):
            continue
        grade_id = notebooks.grade_id(cell)
        errors = [o for o in cell.outputs if o.output_type == "error"]
        calls = sites(cell.source)
        recorded = run.references.get(grade_id, [])
        if errors or index not in run.ran:
            reason = f"{errors[0].ename}: {errors[0].evalue}" if errors else (run.stopped or "not run")
            failing.append(f"{grade_id} ({reason})")
        elif any(r["site"] >= len(calls) or calls[r["site"]].kind != r["kind"] for r in recorded):
            failing.append(f"{grade_id} (its checks were not recorded where they are called)")
        cells[grade_id] = [
            {k: r[k] for k in ("site", "kind", "name", "expected", "options")} for r in recorded
        ]
    if failing:
        raise ReferenceFailed(f"the solution fails in the grader: {'; '.join(failing)}")
    return cells


def ensure(
    course_dir: Path,
    assignment: str,
    solved: dict,
    limits: Limits = DEFAULT_LIMITS,
    unsafe: bool = False,
    worker: Worker | None = None,
) -> dict[str, dict[str, list[dict]]]:
    """``{notebook: {grade_id: references}}`` for an assignment, computed where missing or stale
    (in ``worker`` if given: see ``compute``). One thread at a time computes an assignment's."""
    with _LOCKS_LOCK:
        lock = _LOCKS.setdefault((str(Path(course_dir).resolve()), assignment), threading.Lock())
    with lock:
        return _ensure(course_dir, assignment, solved, limits, unsafe, worker)


_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _ensure(course_dir, assignment, solved, limits, unsafe, worker) -> dict[str, dict[str, list[dict]]]:
    result = {}
    for (name, _lang), notebook in sorted(solved.items()):
        if name in result:
            continue
        source = Path(course_dir) / "source" / assignment / f"{name}.ipynb"
        cells = stored(course_dir, assignment, source)
        if cells is None:
            try:
                cells = compute(notebook.nb, limits, unsafe, worker)
            except ReferenceFailed as error:
                raise ReferenceFailed(f"source/{assignment}/{name}.ipynb: {error}") from None
            path = path_for(course_dir, assignment, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            partial.write_text(
                json.dumps({"key": key(source), "cells": cells}, sort_keys=True), encoding="utf-8"
            )
            os.replace(partial, path)
        result[name] = cells
    return result
