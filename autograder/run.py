"""Running an assembled notebook in a sandbox worker, and putting the outputs back into it."""

from dataclasses import dataclass, field

import nbformat

from autograder.sandbox import DEFAULT_LIMITS, Limits, WorkerPool


@dataclass
class Run:
    nb: nbformat.NotebookNode  # the assembled notebook, now with outputs
    records: dict[str, list[dict]] = field(default_factory=dict)  # test grade_id -> check reports
    stopped: str | None = None
    stopped_at: int | None = None  # index of the cell that hit a limit
    ran: set[int] = field(default_factory=set)  # indexes of cells that ran to the end
    restored: list[str] = field(default_factory=list)  # library attributes put back before tests


def sandbox_cells(nb: nbformat.NotebookNode) -> list[dict]:
    cells = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        is_test = bool(meta.get("grade")) and not meta.get("solution")
        cells.append(
            {
                "index": index,
                "kind": "test" if is_test else "code",
                "source": cell.source,
                "grade_id": meta.get("grade_id", ""),
            }
        )
    return cells


def run_in_sandbox(pool: WorkerPool, nb: nbformat.NotebookNode, limits: Limits = DEFAULT_LIMITS) -> Run:
    events = pool.run(sandbox_cells(nb), limits)
    run = Run(
        nb=nb, stopped=events.stopped, stopped_at=events.stopped_at, restored=sorted(set(events.restored))
    )
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
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id:
            run.records[grade_id] = events.records.get(index, [])
    if run.stopped is not None and run.stopped_at is None:
        run.stopped_at = max(run.ran, default=-1) + 1
    return run
