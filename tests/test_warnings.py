"""A harmless PyTorch warning in a test cell does not cost a correct answer its points."""

import shutil

import pytest
from conftest import ASSIGNMENT, NOTEBOOK, toy_source_notebook

from autograder import notebooks
from autograder.grading.grade import grade_assignment
from autograder.grading.results import read_result
from autograder.nbgrader_autograde import autograde, prepare_course
from autograder.release import release
from autograder.synthetic import answered

pytestmark = pytest.mark.slow  # nbgrader's kernels and the sandboxes grade the lesson
# float() of a tensor that requires grad: a UserWarning from torch's C++ core, on this line
WARNS = "_loss = torch.ones(1, requires_grad=True) * 2\n_value = float(_loss)\n"


@pytest.fixture
def warning_course(tmp_path, toy_template_course):
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy2(toy_template_course / "nbgrader_config.py", course / "nbgrader_config.py")
    nb = toy_source_notebook()
    for cell in nb.cells:
        if notebooks.grade_id(cell) == "square_test":
            cell.source = WARNS + cell.source
    notebooks.write(nb, course / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    release(course)
    solved = answered(
        notebooks.read(course / "release" / "en" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"),
        notebooks.read(course / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"),
        "correct",
    )
    notebooks.write(solved, tmp_path / "solved.ipynb")
    return course, tmp_path / "solved.ipynb"


def square_score_with_nbgrader(course, solved, workdir) -> float:
    config = prepare_course(course, workdir, ASSIGNMENT)
    return autograde(config, ASSIGNMENT, "ann", {NOTEBOOK: solved})[NOTEBOOK]["square_test"].score


def test_nbgrader_keeps_the_points_with_the_course_configuration(warning_course, tmp_path):
    course, solved = warning_course
    assert square_score_with_nbgrader(course, solved, tmp_path / "graded") == 1


def test_without_the_ignore_pattern_nbgrader_would_score_it_zero(warning_course, tmp_path):
    course, solved = warning_course
    config = (course / "nbgrader_config.py").read_text()
    (course / "nbgrader_config.py").write_text(config + "\nc.IgnorePattern.enabled = False\n")
    assert square_score_with_nbgrader(course, solved, tmp_path / "graded") == 0


def test_the_sandboxed_grader_keeps_the_points_too(warning_course, warm_sandboxes):
    course, solved = warning_course
    target = course / "submitted" / "ann" / ASSIGNMENT
    target.mkdir(parents=True)
    shutil.copy2(solved, target / f"{NOTEBOOK}.ipynb")
    grade_assignment(course, ASSIGNMENT, **warm_sandboxes)
    cells = {c.grade_id: c.score for c in read_result(course, "ann", ASSIGNMENT).cells[NOTEBOOK]}
    assert cells["square_test"] == 1
