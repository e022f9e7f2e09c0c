"""Reading, cleaning and writing notebooks so that committed files diff cleanly."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: listing assignments stays cheap for the command line
    import nbformat

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
KEPT_CELL_METADATA = ("nbgrader", "tags")


def assignments(course_dir: Path) -> list[str]:
    """The course's assignments: the folders of source/ that hold a notebook."""
    return sorted(
        p.name for p in (Path(course_dir) / "source").iterdir() if p.is_dir() and any(p.glob("*.ipynb"))
    )


def read(path: Path) -> nbformat.NotebookNode:
    import nbformat

    return nbformat.read(str(path), as_version=4)


def normalize(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop what changes from run to run or machine to machine (timings, versions, UI state)."""
    import nbformat

    nb.metadata = nbformat.from_dict({"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}})
    nb.nbformat, nb.nbformat_minor = 4, 5
    for cell in nb.cells:
        cell.metadata = nbformat.from_dict(
            {k: cell.metadata[k] for k in KEPT_CELL_METADATA if k in cell.metadata}
        )
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                output.get("metadata", {}).pop("execution", None)
            cell.outputs = _joined_streams(cell.get("outputs", []))
    return nb


def _joined_streams(outputs: list) -> list:
    """Consecutive prints to one stream as one output: how the kernel split them varies with load
    (nbval joins them the same way before comparing)."""
    joined = []
    for output in outputs:
        previous = joined[-1] if joined else None
        if (
            output.get("output_type") == "stream"
            and previous is not None
            and previous.get("output_type") == "stream"
            and previous.get("name") == output.get("name")
        ):
            previous["text"] = previous["text"] + output["text"]
        else:
            joined.append(output)
    return joined


def writes(nb: nbformat.NotebookNode) -> str:
    import nbformat

    return nbformat.writes(nb) + "\n"


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(writes(nb), encoding="utf-8")


def source_notebooks(course_dir: Path) -> list[Path]:
    """Every lesson notebook: ``source/<assignment>/<notebook>.ipynb``."""
    return sorted(p for p in (course_dir / "source").glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def nbgrader_metadata(cell) -> dict:
    """A cell's nbgrader metadata, {} when it has none.

    This and the readers below decide as ``nbgrader.utils`` does (tests/test_nbgrader_metadata.py pins
    it) without importing nbgrader, which would add about 2 s before the grader's first result.
    Like nbgrader's, they raise on metadata that is not an object: the grader reads only the
    instructor's notebooks and submissions rebuilt by ``submission.load``.
    """
    return cell.metadata.get("nbgrader", {})


def is_grade(cell) -> bool:
    """A grade cell: an autograded test, or a written answer a person grades."""
    return bool(nbgrader_metadata(cell).get("grade", False))


def is_solution(cell) -> bool:
    """An answer cell: the student writes its source."""
    return bool(nbgrader_metadata(cell).get("solution", False))


def grade_id(cell) -> str | None:
    return nbgrader_metadata(cell).get("grade_id")


def points(cell) -> float:
    """The points of a grade cell (0 when not given; nbgrader's validation requires them)."""
    return float(nbgrader_metadata(cell).get("points", 0))


def copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    import nbformat

    return nbformat.from_dict(nbformat.reads(nbformat.writes(nb), as_version=4))
