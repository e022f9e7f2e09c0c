"""Plain nbgrader and formgrader on the same course folder as the autograder."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ASSIGNMENT, HIDDEN_MARKERS, NOTEBOOK
from test_pipeline import GRAD, WRITTEN, submission

from autograder import notebooks
from autograder.feedback import FEEDBACK_DIR, write_feedback
from autograder.grading.grade import grade_assignment
from autograder.grading.results import read_result

pytestmark = pytest.mark.slow  # every test grades in sandboxes, and nbgrader runs kernels
SQUARE = "def square(x):\n    return x * x"


def submit(course: Path, student: str, language: str, answers: dict, written: str | None, drop=()) -> None:
    nb = submission(course, language, answers, written)
    nb.cells = [c for c in nb.cells if notebooks.grade_id(c) not in drop]
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    notebooks.write(nb, folder / f"{NOTEBOOK}.ipynb")


def formgrader_puts(course: Path, student: str, grade_id: str, score, comment: str, extra=None) -> None:
    """What formgrader's GradeHandler.put and CommentHandler.put do with what its page sends
    (nbgrader/server_extensions/formgrader/apihandlers.py; the score is the number input's text)."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        grade = gb.find_grade_by_id(gb.find_grade(grade_id, NOTEBOOK, ASSIGNMENT, student).id)
        grade.manual_score = score
        grade.extra_credit = extra
        grade.needs_manual_grade = grade.manual_score is None and grade.auto_score is None
        gb.db.commit()
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        answer = {"square_test": "square", "grad_test": "grad", "grad_spy": "grad"}.get(grade_id, grade_id)
        found = gb.find_comment_by_id(gb.find_comment(answer, NOTEBOOK, ASSIGNMENT, student).id)
        found.manual_comment = comment
        gb.db.commit()


def page(course: Path, student: str) -> str:
    return (course / FEEDBACK_DIR / student / ASSIGNMENT / "feedback.html").read_text(encoding="utf-8")


def test_nbgrader_generate_feedback_keeps_our_pages_and_we_keep_its(toy_course, warm_sandboxes):
    submit(toy_course, "ann", "en", {"square": SQUARE, "grad": GRAD}, WRITTEN)
    submit(toy_course, "boris", "ru", {"square": SQUARE}, None)
    grade_assignment(toy_course, ASSIGNMENT, **warm_sandboxes)
    ours = {path.parts[-3]: path.read_bytes() for path in write_feedback(toy_course, ASSIGNMENT)}
    assert sorted(ours) == ["ann", "boris"]

    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    done = subprocess.run(
        [os.path.join(bin_dir, "nbgrader"), "generate_feedback", ASSIGNMENT, "--force"],
        cwd=toy_course,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for student, before in ours.items():
        assert (toy_course / FEEDBACK_DIR / student / ASSIGNMENT / "feedback.html").read_bytes() == before
        theirs = toy_course / "feedback" / student / ASSIGNMENT
        assert (theirs / f"{NOTEBOOK}.html").stat().st_size > 1000  # nbgrader's page
        # nbgrader copies the autograded folder's other files: the grader's records are not among them
        assert {p.name for p in theirs.iterdir()} == {f"{NOTEBOOK}.html"}

    # and ours, written again, leaves nbgrader's alone
    nbgrader_page = (toy_course / "feedback" / "ann" / ASSIGNMENT / f"{NOTEBOOK}.html").read_bytes()
    write_feedback(toy_course, ASSIGNMENT)
    assert (toy_course / "feedback" / "ann" / ASSIGNMENT / f"{NOTEBOOK}.html").read_bytes() == nbgrader_page
    assert "Итого" in page(toy_course, "boris") and "Total: 4 / 6" in page(toy_course, "ann")


def test_scores_and_comments_given_in_formgrader_reach_the_students_page(toy_course, warm_sandboxes):
    submit(
        toy_course,
        "ann",
        "en",
        {"square": SQUARE, "grad": "def grad_sum_squares(x):\n    return 2 * x"},
        WRITTEN,
    )
    submit(toy_course, "boris", "ru", {"square": SQUARE, "grad": GRAD}, "Потому что граф.")
    grade_assignment(toy_course, ASSIGNMENT, **warm_sandboxes)
    write_feedback(toy_course, ASSIGNMENT)
    assert "to be graded by the instructor" in page(toy_course, "ann")
    assert "ждёт проверки преподавателем" in page(toy_course, "boris")

    formgrader_puts(toy_course, "ann", "why", "1.5", "Good, but say <why> the gradient accumulates.")
    formgrader_puts(toy_course, "ann", "grad_spy", None, "Use your square() here.")  # a comment on code
    formgrader_puts(toy_course, "boris", "why", "2", "Верно.", extra="0.5")
    write_feedback(toy_course, ASSIGNMENT)

    ann = page(toy_course, "ann")
    assert "to be graded" not in ann and "graded by the instructor" in ann
    assert "<td>1.5 / 2</td>" in ann and "Total: 4.5 / 6" in ann  # square 1 + grad 2 + spy 0 + why 1.5
    assert "say &lt;why&gt; the gradient accumulates" in ann  # escaped, never markup
    assert ann.count("Use your square() here.") == 1 and "Instructor&#39;s comment: Use your square()" in ann
    boris = page(toy_course, "boris")
    assert "ждёт проверки" not in boris and "проверено преподавателем" in boris
    assert "<td>2.5 / 2</td>" in boris and "Итого: 6.5 / 6" in boris and "Верно." in boris
    for text in (ann, boris):
        for secret in HIDDEN_MARKERS:
            assert secret not in text

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{toy_course / 'gradebook.db'}") as gb:  # the same totals as nbgrader's
        assert gb.find_submission(ASSIGNMENT, "ann").score == 4.5
        assert gb.find_submission(ASSIGNMENT, "boris").score == 6.5


def test_a_deleted_written_answer_is_a_placeholder_scored_zero_and_code_still_fails(
    toy_course, warm_sandboxes
):
    submit(toy_course, "ann", "en", {"square": SQUARE, "grad": GRAD}, None, drop={"why"})
    submit(toy_course, "boris", "ru", {"grad": GRAD}, None, drop={"why", "square"})
    grade_assignment(toy_course, ASSIGNMENT, **warm_sandboxes)

    ann = notebooks.read(toy_course / "autograded" / "ann" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    (why,) = [c for c in ann.cells if notebooks.grade_id(c) == "why"]
    assert why.cell_type == "markdown" and why.source == "*(answer cell missing from the submission)*"
    boris = notebooks.read(toy_course / "autograded" / "boris" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    by_id = {notebooks.grade_id(c): c for c in boris.cells}
    assert by_id["why"].source == "*(в работе нет ячейки с ответом)*"
    assert "RuntimeError" in by_id["square"].source  # a missing code answer still fails its tests

    scores = {c.grade_id: c.score for c in read_result(toy_course, "ann", ASSIGNMENT).cells[NOTEBOOK]}
    assert scores == {"square_test": 1, "grad_test": 2, "grad_spy": 1, "why": 0}
    scores = {c.grade_id: c.score for c in read_result(toy_course, "boris", ASSIGNMENT).cells[NOTEBOOK]}
    assert scores == {"square_test": 0, "grad_test": 0, "grad_spy": 0, "why": 0}

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{toy_course / 'gradebook.db'}") as gb:
        grade = gb.find_grade("why", NOTEBOOK, ASSIGNMENT, "ann")
        assert grade.auto_score == 0 and not grade.needs_manual_grade  # formgrader does not wait on it

    write_feedback(toy_course, ASSIGNMENT)
    assert "the answer cell why is missing from the submission" in page(toy_course, "ann")
    assert "to be graded" not in page(toy_course, "ann")
    assert "в работе нет ячейки ответа why" in page(toy_course, "boris")


def test_a_plain_nbgrader_autograde_is_noticed_said_and_graded_again(toy_course, warm_sandboxes):
    submit(toy_course, "ann", "en", {"square": SQUARE, "grad": GRAD}, WRITTEN)
    submit(toy_course, "boris", "ru", {"square": SQUARE}, None)
    grade_assignment(toy_course, ASSIGNMENT, **warm_sandboxes)
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "AUTOGRADER_KEEP_WARM": "0",
    }
    done = subprocess.run(
        [os.path.join(bin_dir, "nbgrader"), "autograde", ASSIGNMENT, "--student", "boris", "--force"],
        cwd=toy_course, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert read_result(toy_course, "boris", ASSIGNMENT) is None  # nbgrader replaced the folder

    autograder = [sys.executable, "-m", "autograder"]
    feedback = subprocess.run(
        [*autograder, "feedback", ASSIGNMENT, "--course-dir", str(toy_course)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert feedback.returncode == 0 and "1 feedback page(s)" in feedback.stdout
    assert "1 submission(s) have no autograder result for their files, so no page: boris" in feedback.stderr
    assert f"run: autograder grade {ASSIGNMENT}" in feedback.stderr

    again = grade_assignment(toy_course, ASSIGNMENT, **warm_sandboxes)
    assert [r.student for r in again.results] == ["boris"] and again.skipped == ["ann"]
    assert read_result(toy_course, "boris", ASSIGNMENT).score == 1


def test_hand_scores_stay_graded_and_a_gradebook_changed_elsewhere_is_graded_again(
    toy_course, warm_sandboxes
):
    from nbgrader.api import Gradebook

    submit(toy_course, "ann", "en", {"square": SQUARE, "grad": GRAD}, WRITTEN)
    submit(toy_course, "boris", "ru", {"square": SQUARE}, None)
    grade_assignment(toy_course, ASSIGNMENT, **warm_sandboxes)
    formgrader_puts(toy_course, "ann", "why", "2", "Good.")
    url = f"sqlite:///{toy_course / 'gradebook.db'}"

    again = grade_assignment(toy_course, ASSIGNMENT, force=True, **warm_sandboxes)
    assert sorted(r.student for r in again.results) == ["ann", "boris"]
    with Gradebook(url) as gb:
        why = gb.find_grade("why", NOTEBOOK, ASSIGNMENT, "ann")
        assert why.manual_score == 2 and not why.needs_manual_grade  # not waiting for a person again
        gb.find_grade("square_test", NOTEBOOK, ASSIGNMENT, "boris").auto_score = 0.0  # another tool
        gb.db.commit()

    later = grade_assignment(toy_course, ASSIGNMENT, **warm_sandboxes)
    assert later.skipped == ["ann"] and later.regraded == ["boris"]
    assert [r.student for r in later.results] == ["boris"]
    assert "1 graded again: the gradebook no longer held their autograder result" in later.summary()
    with Gradebook(url) as gb:
        assert gb.find_grade("square_test", NOTEBOOK, ASSIGNMENT, "boris").auto_score == 1.0
