"""The grader's readers of nbgrader cell metadata (``autograder.notebooks``) decide as
``nbgrader.utils`` does, on every cell of the course and on hand-built edge cases."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell
from nbgrader import utils
from nbgrader.nbgraderformat import MetadataValidator, ValidationError

from autograder import notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("source/*/*.ipynb")) + sorted(ROOT.glob("release/*/*/*.ipynb"))
READERS = [(notebooks.is_grade, utils.is_grade), (notebooks.is_solution, utils.is_solution)]


def assert_agree(cell) -> None:
    """Each reader gives nbgrader's answer, or raises what nbgrader raises."""
    for ours, theirs in READERS:
        try:
            expected = bool(theirs(cell))
        except Exception as error:
            with pytest.raises(type(error)):
                ours(cell)
        else:
            assert ours(cell) is expected, (ours.__name__, cell.metadata)
    if not isinstance(cell.metadata.get("nbgrader", {}), dict):
        return
    if utils.is_grade(cell) or utils.is_solution(cell) or utils.is_locked(cell):
        assert notebooks.grade_id(cell) == cell.metadata["nbgrader"]["grade_id"]
    if utils.is_grade(cell):
        assert notebooks.points(cell) == utils.determine_grade(cell)[1]  # nbgrader's max_points


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cell_of_the_course(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        assert_agree(cell)
    assert any(utils.is_grade(c) for c in nb.cells) and any(utils.is_solution(c) for c in nb.cells)


def test_the_course_has_notebooks_in_every_place():
    assert {p.relative_to(ROOT).parts[0] for p in NOTEBOOKS} == {"source", "release"}


def _cell(*nbgrader, kind=new_code_cell):
    """A cell whose nbgrader metadata is the one argument given, or that has none."""
    cell = kind("x = 1")
    for value in nbgrader:
        cell.metadata["nbgrader"] = value
    return cell


EDGE_CASES = {
    "no nbgrader metadata": _cell(),
    "empty nbgrader metadata": _cell({}),
    "test cell": _cell({"grade": True, "solution": False, "grade_id": "t", "points": 2}),
    "answer cell": _cell({"grade": False, "solution": True, "grade_id": "a"}),
    "written answer": _cell(
        {"grade": True, "solution": True, "grade_id": "w", "points": 1}, kind=new_markdown_cell
    ),
    "locked cell": _cell({"locked": True, "grade_id": "l"}),
    "flags not booleans": _cell({"grade": "yes", "solution": 0, "grade_id": "s", "points": "3"}),
    "flags false, no grade_id": _cell({"grade": False, "solution": False}),
    "metadata a string": _cell("grade"),
    "metadata a list": _cell(["nbgrader"]),
    "metadata null": _cell(None),
    "metadata a number": _cell(1),
}


@pytest.mark.parametrize("name", EDGE_CASES)
def test_edge_cases(name):
    assert_agree(EDGE_CASES[name])


def test_metadata_that_is_not_an_object_raises_as_in_nbgrader():
    """Student metadata never reaches these readers: ``submission.load`` rebuilds it
    (tests/test_malformed_input.py)."""
    for name in ("metadata a string", "metadata a list", "metadata null", "metadata a number"):
        with pytest.raises(AttributeError):
            notebooks.is_grade(EDGE_CASES[name])


def test_a_grade_cell_without_points_is_rejected_by_nbgrader():
    """``points`` reads 0 where a grade cell has none; nbgrader refuses such a notebook."""
    cell = _cell({"grade": True, "solution": False, "locked": True, "grade_id": "t", "schema_version": 3})
    assert notebooks.points(cell) == 0.0
    with pytest.raises(ValidationError, match="does not have points"):
        MetadataValidator().validate_cell(cell)


def test_scoring_imports_no_nbgrader():
    """Why these readers and ``score.drop_ignored_stderr`` are not nbgrader's own: importing nbgrader
    takes about 2 s, and a warm grader's first result comes after under 1 s (README)."""
    script = "import sys, autograder.grading.score\nprint(sorted(m for m in sys.modules if 'nbgrader' in m))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
