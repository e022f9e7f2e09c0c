"""A small bilingual course for the pipeline tests: two exercises and a written answer.

It is built like the real lessons (docs/authoring.md) but runs in a second,
so tests can grade many submissions and know every score exactly.
"""

import hashlib
import os
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder import notebooks
from autograder.release import release

ROOT = Path(__file__).resolve().parents[1]
# `autograder grade` run by tests grades in its own process; tests/test_server.py covers the warm
# server that it otherwise starts (and leaves running for minutes).
os.environ["AUTOGRADER_KEEP_WARM"] = "0"
ASSIGNMENT = "toy"
NOTEBOOK = "toy"

SETUP = """import torch

import course
from course import check_tensor, check_true

course.set_language("en")
device = course.pick_device()"""

SQUARE = '''def square(x):
    """x squared, element by element."""
    ### BEGIN SOLUTION
    return x * x
    ### END SOLUTION'''

SQUARE_TEST = """check_tensor("square([1, 2])", square(torch.tensor([1.0, 2.0], device=device)), [1.0, 4.0])
### BEGIN HIDDEN TESTS
_h = torch.tensor([3.0, -5.0], device=device)
check_tensor("square(hidden)", square(_h), [9.0, 25.0], reveal=False)
### END HIDDEN TESTS"""

GRAD = '''def grad_sum_squares(x):
    """Gradient of square(x).sum() at x, with autograd and your square()."""
    ### BEGIN SOLUTION
    x = x.detach().clone().requires_grad_(True)
    square(x).sum().backward()
    return x.grad
    ### END SOLUTION'''

GRAD_TEST = """_t = torch.tensor([1.0, 2.0], device=device)
check_tensor("grad_sum_squares([1, 2])", grad_sum_squares(_t), [2.0, 4.0])
### BEGIN HIDDEN TESTS
_g = torch.tensor([0.5, -7.0, 3.0], device=device)
check_tensor("grad_sum_squares(hidden)", grad_sum_squares(_g), [1.0, -14.0, 6.0], reveal=False)
### END HIDDEN TESTS"""

SPY_TEST = """### BEGIN HIDDEN TESTS
_calls = []
_real_square = square
def square(x):
    _calls.append(1)
    return _real_square(x)
try:
    grad_sum_squares(torch.ones(2, device=device))
finally:
    square = _real_square
check_true("grad_sum_squares uses square", len(_calls) > 0)
### END HIDDEN TESTS"""

WRITTEN = "**Model answer.** Because ... / **Образец ответа.** Потому что ..."

# Hidden test lines a student must never see in feedback.
HIDDEN_MARKERS = [
    "_h = torch.tensor([3.0, -5.0]",
    "[9.0, 25.0]",
    "[1.0, -14.0, 6.0]",
    "_real_square",
    "_calls",
]


def _prose(stem: str, en: str, ru: str) -> list:
    cells = []
    for lang, text in (("en", en), ("ru", ru)):
        cell = new_markdown_cell(text, id=f"{stem}-{lang}")
        cell.metadata.tags = [f"lang-{lang}"]
        cells.append(cell)
    return cells


def _graded(cell, **meta):
    cell.metadata.nbgrader = {"schema_version": 3, **meta}
    return cell


def toy_source_notebook():
    setup = new_code_cell(SETUP, id="setup")
    setup.metadata.tags = ["lang-setup"]
    cells = [
        *_prose("title", "# Toy lesson", "# Учебный урок"),
        setup,
        *_prose("square", "## Square\n\nWrite `square(x)`.", "## Квадрат\n\nНапишите `square(x)`."),
        _graded(
            new_code_cell(SQUARE, id="square"), solution=True, grade=False, locked=False, grade_id="square"
        ),
        _graded(
            new_code_cell(SQUARE_TEST, id="square-test"),
            solution=False, grade=True, locked=True, points=1, grade_id="square_test",
        ),
        *_prose("grad", "## Gradient\n\nUse your `square`.", "## Градиент\n\nИспользуйте свою `square`."),
        _graded(new_code_cell(GRAD, id="grad"), solution=True, grade=False, locked=False, grade_id="grad"),
        _graded(
            new_code_cell(GRAD_TEST, id="grad-test"),
            solution=False, grade=True, locked=True, points=2, grade_id="grad_test",
        ),
        _graded(
            new_code_cell(SPY_TEST, id="grad-spy"),
            solution=False, grade=True, locked=True, points=1, grade_id="grad_spy",
        ),
        *_prose("why", "## Why?\n\nExplain.", "## Почему?\n\nОбъясните."),
        _graded(
            new_markdown_cell(WRITTEN, id="why-answer"),
            solution=True, grade=True, locked=False, points=2, grade_id="why",
        ),
    ]  # fmt: skip
    nb = new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nbformat.validate(nb)
    return nb


@pytest.fixture(scope="session")
def warm_sandboxes():
    """Started sandboxes with the default limits, shared by the tests that grade the toy course:
    ``grade_assignment(..., **warm_sandboxes)``. Two for students' notebooks and one that runs
    only the instructor's (as a warm server keeps them); each job still runs in a fresh child.
    A test that sets other limits or stops a sandbox starts its own."""
    from autograder.grading.sandbox import Worker, WorkerPool

    with WorkerPool(2) as pool:
        reference = Worker(index=2)
        try:
            yield {"sandboxes": pool, "reference_worker": reference}
        finally:
            reference.close()


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by its relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def wait_for(condition, seconds: float = 60.0) -> bool:
    """Whether ``condition()`` became true within ``seconds`` (polled every 50 ms)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def toy_template_course(tmp_path_factory) -> Path:
    """A released toy course directory (source/, release/, gradebook.db); copy it before changing it."""
    course = tmp_path_factory.mktemp("toy-course")
    shutil.copy2(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    notebooks.write(toy_source_notebook(), course / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    release(course)
    return course


@pytest.fixture
def toy_course(toy_template_course, tmp_path) -> Path:
    course = tmp_path / "course"
    shutil.copytree(toy_template_course, course)
    return course


def pytest_collection_modifyitems(items):
    """The notebooks' replay (nbval: one kernel per lesson, tens of seconds each) is slow."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter):
    """The adversarial corpus's figures, at the end of the test output."""
    import sys

    module = sys.modules.get("test_adversarial")
    figures = getattr(module, "FIGURES", None)
    if figures:
        names = ("cheats", "malformed files", "false passes", "leaks", "crashes", "hangs")
        terminalreporter.write_line(
            "adversarial corpus: " + ", ".join(f"{name} {figures.get(name, 0)}" for name in names)
        )
