"""The grading steps without a sandbox: ``assemble``, ``score_run`` and ``compile_test_cell``,
each given inputs built by hand (the toy lesson of conftest.py, a run with chosen outputs)."""

import builtins
import types

import pytest
from conftest import GRAD_TEST, SQUARE_TEST, toy_source_notebook
from nbformat.v4 import new_code_cell, new_output

from autograder import notebooks
from autograder.grading.run import Run
from autograder.grading.sandbox.child import compile_test_cell
from autograder.grading.score import score_run
from autograder.grading.submission import (
    MAX_ANSWER_CHARS,
    InvalidSubmission,
    assemble,
    load,
    read_solved_notebook,
)
from course.i18n import LANGUAGES

SQUARE = "def square(x):\n    return x * x"
GRAD = "def grad_sum_squares(x):\n    return 2 * x"
WRITTEN = "Because the update is not part of the graph."
TESTS = {"square_test": "square", "grad_test": "grad", "grad_spy": "grad"}  # test -> its answer
POINTS = {"square_test": 1.0, "grad_test": 2.0, "grad_spy": 1.0, "why": 2.0}


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """The toy lesson's solved notebook, per language."""
    path = tmp_path_factory.mktemp("solved") / "toy.ipynb"
    notebooks.write(toy_source_notebook(), path)
    return {lang: read_solved_notebook(path, lang) for lang in LANGUAGES}


def submitted(tmp_path, answers: dict[str, str | None], extra=(), tests: str | None = None):
    """A student's notebook read as the grader reads it: the answer cells hold ``answers`` (None:
    the cell is deleted), ``extra`` code cells follow the ``square`` answer, and every test cell
    holds ``tests`` if given (a student who edited them)."""
    nb = toy_source_notebook()
    cells = []
    for cell in nb.cells:
        grade_id = notebooks.grade_id(cell)
        if grade_id in answers and answers[grade_id] is None:
            continue
        if grade_id in answers:
            cell.source = answers[grade_id]
        elif grade_id in TESTS and tests is not None:
            cell.source = tests
        cells.append(cell)
        if grade_id == "square":
            cells += [new_code_cell(source, id=f"mine-{k}") for k, source in enumerate(extra)]
    nb.cells = cells
    path = tmp_path / "toy.ipynb"
    notebooks.write(nb, path)
    return load(path)


def cell_of(nb, grade_id: str):
    return next(c for c in nb.cells if notebooks.grade_id(c) == grade_id)


# --- assemble --------------------------------------------------------------------------------------


def test_assemble_puts_the_answers_into_the_instructors_notebook(solved, tmp_path):
    student = submitted(
        tmp_path,
        {"square": SQUARE, "grad": GRAD, "why": WRITTEN},
        extra=["helper = 1", "print(helper)"],
        tests="check_true('mine', True)",
    )
    assembled = assemble(solved["en"], student)
    assert assembled.language == "en" and assembled.notices == [] and assembled.missing_answers == []
    assert cell_of(assembled.nb, "square").source == SQUARE and cell_of(assembled.nb, "grad").source == GRAD
    assert assembled.written == {"why": WRITTEN}
    # the instructor's tests run, hidden ones included, whatever the student's copy held
    assert cell_of(assembled.nb, "square_test").source == SQUARE_TEST
    assert cell_of(assembled.nb, "grad_test").source == GRAD_TEST
    # the student's own cells follow their answer, and nothing else is added
    ids = [c.id for c in assembled.nb.cells]
    assert ids[ids.index("square") + 1 : ids.index("square") + 3] == ["student-square-0", "student-square-1"]
    assert [c.source for c in assembled.nb.cells if c.id.startswith("student-")] == [
        "helper = 1",
        "print(helper)",
    ]
    assert len(assembled.nb.cells) == len(solved["en"].nb.cells) + 2
    # the solved notebook itself is left as it was
    assert cell_of(solved["en"].nb, "square").source != SQUARE


def test_assemble_marks_deleted_answers_missing(solved, tmp_path):
    assembled = assemble(solved["ru"], submitted(tmp_path, {"square": SQUARE, "grad": None, "why": None}))
    assert assembled.language == "ru" and assembled.missing_answers == ["grad", "why"]
    assert "raise RuntimeError" in cell_of(assembled.nb, "grad").source  # its tests fail
    written = cell_of(assembled.nb, "why").source  # what formgrader shows in its place
    assert assembled.written == {"why": written} and written != cell_of(solved["ru"].nb, "why").source


def test_assemble_grades_the_first_of_two_copies_and_cuts_an_answer_too_long(solved, tmp_path):
    nb = toy_source_notebook()
    answer = cell_of(nb, "square")
    answer.source = SQUARE
    copy = notebooks.copy(nb).cells[nb.cells.index(answer)]
    copy.id, copy.source = "square-again", "def square(x):\n    return 0"
    nb.cells.insert(nb.cells.index(answer) + 1, copy)
    cell_of(nb, "grad").source = "x = 1\n" * (MAX_ANSWER_CHARS // 6 + 1)
    notebooks.write(nb, tmp_path / "toy.ipynb")
    assembled = assemble(solved["en"], load(tmp_path / "toy.ipynb"))
    assert cell_of(assembled.nb, "square").source == SQUARE
    assert cell_of(assembled.nb, "grad").source == 'raise RuntimeError("answer too long to grade")'
    assert [n.split(" ")[2] for n in assembled.notices] == ["square", "grad"]
    assert "appears twice" in assembled.notices[0] and str(MAX_ANSWER_CHARS) in assembled.notices[1]


def test_assemble_refuses_a_notebook_without_any_answer(solved, tmp_path):
    with pytest.raises(InvalidSubmission, match="none of the answer cells"):
        assemble(solved["en"], submitted(tmp_path, {"square": None, "grad": None, "why": None}))


# --- score_run -------------------------------------------------------------------------------------


def true_check(grade_id: str, passed: bool = True) -> tuple[list[dict], list[dict]]:
    """(references, reports) of a test cell with one check_true site."""
    reference = {"site": 0, "kind": "true", "name": f"{grade_id} holds", "expected": {"t": "bool", "v": True}}
    return [{**reference, "options": {}}], [{"site": 0, "kind": "true", "value": {"t": "bool", "v": passed}}]


def run_of(assembled, failing=(), outputs=None, ran=None, stopped=None):
    """A run of ``assembled`` in which every test cell reported, ``failing`` ones a wrong value;
    ``outputs`` {grade_id: outputs} are what those cells printed; ``ran`` the cells that ran."""
    nb = notebooks.copy(assembled.nb)
    references, reports = {}, {}
    for grade_id in TESTS:
        references[grade_id], reports[grade_id] = true_check(grade_id, grade_id not in failing)
        cell_of(nb, grade_id).outputs = (outputs or {}).get(grade_id, [])
    every = {i for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    return Run(nb=nb, reports=reports, ran=every if ran is None else ran, stopped=stopped), references


def scored(solved, tmp_path, answers=None, lang="en", ignore="", **run):
    answers = {"square": SQUARE, "grad": GRAD, "why": WRITTEN} if answers is None else answers
    assembled = assemble(solved[lang], submitted(tmp_path, answers))
    done, references = run_of(assembled, **run)
    return {c.grade_id: c for c in score_run(done, solved[lang], assembled, ignore, references)}


def test_score_run_gives_each_passed_test_its_points_and_leaves_written_answers_to_a_person(solved, tmp_path):
    cells = scored(solved, tmp_path)
    assert list(cells) == list(POINTS)  # every grade cell, in the notebook's order
    assert {g: c.points for g, c in cells.items()} == POINTS
    assert {g: c.score for g, c in cells.items()} == {**{g: POINTS[g] for g in TESTS}, "why": None}
    assert all(cells[g].passed and cells[g].message == "" and cells[g].hidden for g in TESTS)
    assert {g: c.exercise for g, c in cells.items()} == {**TESTS, "why": "why"}
    assert [c.kind for c in cells.values()] == ["test", "test", "test", "written"]


def test_score_run_scores_a_wrong_value_zero_and_names_the_check(solved, tmp_path):
    cells = scored(solved, tmp_path, failing=["grad_test"])
    assert cells["grad_test"].score == 0 and cells["grad_test"].passed is False
    assert "grad_test holds" in cells["grad_test"].message
    assert cells["square_test"].score == 1 and cells["grad_spy"].score == 1


def test_score_run_fails_a_cell_that_wrote_to_stderr_unless_the_pattern_ignores_it(solved, tmp_path):
    warned = {"square_test": [new_output("stream", name="stderr", text="UserWarning: something\n")]}
    assert scored(solved, tmp_path, outputs=warned)["square_test"].score == 0
    assert "stderr" in scored(solved, tmp_path, outputs=warned)["square_test"].message
    assert scored(solved, tmp_path, outputs=warned, ignore="UserWarning")["square_test"].score == 1
    printed = {"square_test": [new_output("stream", name="stdout", text="fine\n")]}
    assert scored(solved, tmp_path, outputs=printed)["square_test"].score == 1


def error(ename: str, evalue: str = "secret text the student chose"):
    return [new_output("error", ename=ename, evalue=evalue, traceback=[])]


def test_score_run_names_only_pythons_own_exceptions(solved, tmp_path):
    outputs = {
        "square_test": error("NotImplementedError"),
        "grad_test": error("ValueError"),
        "grad_spy": error("HiddenReferenceLeak"),
    }
    cells = scored(solved, tmp_path, outputs=outputs)
    assert [cells[g].score for g in TESTS] == [0, 0, 0]
    assert (
        "NotImplementedError" in cells["square_test"].message
        and "not written" in cells["square_test"].message
    )
    assert "ValueError" in cells["grad_test"].message
    assert (
        "HiddenReferenceLeak" not in cells["grad_spy"].message and "an exception" in cells["grad_spy"].message
    )
    assert not any("secret text" in c.message for c in cells.values())


def test_score_run_scores_cells_a_limit_stopped_zero_with_the_reason(solved, tmp_path):
    nb = solved["en"].nb  # the assembled notebook's cells, when the student added none
    first = next(i for i, c in enumerate(nb.cells) if notebooks.grade_id(c) == "grad_test")
    ran = {i for i, c in enumerate(nb.cells) if c.cell_type == "code" and i < first}
    cells = scored(solved, tmp_path, ran=ran, stopped="cell_time")
    assert cells["square_test"].score == 1
    assert cells["grad_test"].score == 0 == cells["grad_spy"].score
    assert cells["grad_test"].message.startswith("not run: ")
    assert (
        cells["grad_test"].message
        == cells["grad_spy"].message
        != scored(solved, tmp_path, ran=ran, stopped="memory")["grad_test"].message
    )


def test_score_run_scores_missing_and_blank_answers_zero(solved, tmp_path):
    cells = scored(solved, tmp_path, answers={"square": SQUARE, "grad": None, "why": None})
    assert cells["grad_test"].score == 0 == cells["grad_spy"].score and cells["why"].score == 0
    assert "grad" in cells["grad_test"].message and "missing" in cells["grad_test"].message
    assert "why" in cells["why"].message and "missing" in cells["why"].message
    blank = scored(solved, tmp_path, answers={"square": SQUARE, "grad": GRAD, "why": "  \n"})
    assert blank["why"].score == 0 and blank["why"].message != cells["why"].message


def test_score_run_writes_the_students_language_and_english_for_the_report(solved, tmp_path):
    ru = scored(
        solved, tmp_path, lang="ru", failing=["square_test"], outputs={"grad_test": error("KeyError")}
    )
    en = scored(
        solved, tmp_path, lang="en", failing=["square_test"], outputs={"grad_test": error("KeyError")}
    )
    for grade_id in ("square_test", "grad_test"):
        assert ru[grade_id].message_en == en[grade_id].message_en == en[grade_id].message
        assert ru[grade_id].message != en[grade_id].message
    assert "KeyError" in ru["grad_test"].message


# --- compile_test_cell -----------------------------------------------------------------------------


def run_test_cell(source: str, namespace: dict, tools: dict):
    """The cell run as the sandbox runs it: its protected names passed in, from ``tools`` or builtins."""
    code, names = compile_test_cell(source, "<cell>")
    test = types.FunctionType(code, namespace, "__test_cell__")
    test(*[tools[n] if n in tools else getattr(builtins, n) for n in names])
    return names


def test_compile_test_cell_passes_checks_tools_and_builtins_in_and_keeps_private_names_local():
    reported = []
    namespace = {"square": lambda x: x * x, "check_true": "the notebook's own", "len": "rebound"}
    source = (
        "_value = square(3)\n"
        "__report__(0, 'true', len([_value]) == 1 and _value == 9)\n"
        "shared = _value\n"
        "def _helper():\n    return shared\n"
    )
    names = run_test_cell(source, namespace, {"__report__": lambda *a: reported.append(a)})
    assert names == ["__report__", "len"]  # not square, which the student's code defines
    assert reported == [(0, "true", True)]  # the real len, not the notebook's
    assert namespace["shared"] == 9 and namespace["_helper"]() == 9  # definitions and public names stay
    assert "_value" not in namespace


def test_compile_test_cell_lets_a_spy_replace_the_students_function_where_their_code_looks():
    calls = []
    namespace = {"square": lambda x: x * x}
    namespace["twice"] = types.FunctionType(
        compile("def twice(x):\n    return square(x) + square(x)\n", "<answer>", "exec").co_consts[0],
        namespace,
    )
    source = (
        "_real = square\n"
        "def square(x):\n    _seen.append(x)\n    return _real(x)\n"
        "_seen = []\n"
        "try:\n    _result = twice(2)\nfinally:\n    square = _real\n"
        "__report__(0, 'value', (_result, len(_seen)))\n"
    )
    run_test_cell(source, namespace, {"__report__": lambda *a: calls.append(a)})
    assert calls == [(0, "value", (8, 2))]
    assert namespace["square"](3) == 9 and "_seen" not in namespace and "_real" not in namespace


def test_compile_test_cell_of_an_empty_cell_takes_nothing_and_a_syntax_error_raises():
    code, names = compile_test_cell("", "<cell>")
    assert names == [] and types.FunctionType(code, {}, "t")() is None
    with pytest.raises(SyntaxError):
        compile_test_cell("check_true('x', ", "<cell>")
