"""Running an assembled notebook in a sandbox worker, and putting the outputs back into it.

Test cells are rewritten first (``autograder.grading.testcells``): in a student's notebook
("graded" mode) they keep only the values their checks are given; the instructor's
("reference" mode) records what each check compares with.
"""

from dataclasses import dataclass, field

import nbformat

from autograder import notebooks
from autograder.grading.results import CellKind
from autograder.grading.sandbox import DEFAULT_LIMITS, Limits, RunEvents
from autograder.grading.testcells import TestCellError, rewrite


@dataclass
class Run:
    nb: nbformat.NotebookNode  # the assembled notebook, now with outputs
    reports: dict[str, list[dict]] = field(default_factory=dict)  # test grade_id -> values reported
    references: dict[str, list[dict]] = field(default_factory=dict)  # test grade_id -> expected values
    stopped: str | None = None  # a reason code (autograder.grading.protocol.STOP_REASONS)
    stopped_at: int | None = None  # index of the cell that hit a limit
    ran: set[int] = field(default_factory=set)  # indexes of cells that ran to the end
    restored: int = 0  # library attributes put back before tests


def sandbox_cells(nb: nbformat.NotebookNode, mode: str = "graded") -> list[dict]:
    cells = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        is_test = notebooks.is_grade(cell) and not notebooks.is_solution(cell)
        grade_id = notebooks.grade_id(cell)
        source = cell.source
        if is_test:
            try:
                source = rewrite(cell.source, mode)
            except TestCellError as error:  # the instructor's cell: a lesson bug, stated per cell
                problem = f"test cell {grade_id}: {error}"
                source = f"raise SyntaxError({problem!r})"
        cells.append(
            {
                "index": index,
                "kind": (CellKind.TEST if is_test else CellKind.CODE).value,  # plain JSON text
                "source": source,
                "grade_id": grade_id or "",
            }
        )
    return cells


def run_in_sandbox(
    pool, nb: nbformat.NotebookNode, limits: Limits = DEFAULT_LIMITS, mode: str = "graded"
) -> Run:
    """Run ``nb`` on a worker of ``pool`` (a WorkerPool or a single Worker)."""
    events: RunEvents = pool.run(sandbox_cells(nb, mode), limits, mode)
    run = Run(nb=nb, stopped=events.stopped, stopped_at=events.stopped_at, restored=events.restored)
    count = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.outputs = [nbformat.from_dict(o) for o in events.outputs.get(index, [])]
        for output in cell.outputs:
            if output.output_type in ("execute_result", "display_data"):
                output.setdefault("metadata", {})
            if output.output_type == "execute_result":
                output["execution_count"] = count + 1
        if index in events.outputs:
            count += 1
            cell.execution_count = count
            run.ran.add(index)
        else:
            cell.execution_count = None
        grade_id = notebooks.grade_id(cell)
        if grade_id:
            run.reports[grade_id] = events.reports.get(index, [])
            run.references[grade_id] = events.references.get(index, [])
    if run.stopped is not None and run.stopped_at is None:
        run.stopped_at = max(run.ran, default=-1) + 1
    return run
