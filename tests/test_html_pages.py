"""The feedback page and the report show every value as text: markup in a student's id, a check's
message, a notice, a reason or a comment is escaped, never run (autoescaping, autograder.pages)."""

from pathlib import Path

import pytest
from markupsafe import escape

from autograder.feedback import Manual, render
from autograder.grading.results import CellResult, SubmissionResult, write_result
from autograder.grading.submission import read_solved_notebook
from autograder.report import write_report
from course.i18n import LANGUAGES

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "gradients"
SOLVED = {
    (NOTEBOOK, lang): read_solved_notebook(ROOT / "source" / "01_gradients" / f"{NOTEBOOK}.ipynb", lang)
    for lang in LANGUAGES
}
SCRIPT = "<script>alert('x')</script>"
STUDENT = "<img src=x onerror=alert(1)>"  # a folder name: no slash
MARKUP = (SCRIPT[:7], STUDENT[:10])


def result(language: str = "en", status: str = "graded", student: str = STUDENT) -> SubmissionResult:
    """Every grade cell failed with a message carrying ``SCRIPT``."""
    cells = [
        CellResult(g.grade_id, g.kind, g.exercise, g.points, 0.0, False, f"✘ f({SCRIPT})", g.hidden, SCRIPT)
        for g in SOLVED[(NOTEBOOK, language)].grade_cells
    ]
    reason = SCRIPT if status == "error" else ""
    return SubmissionResult(
        student, "01_gradients", status, reason, language, SCRIPT, notices=[SCRIPT], cells={NOTEBOOK: cells}
    )


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("status", ["graded", "error"])
def test_the_feedback_page_escapes_what_it_shows(language, status):
    solved = SOLVED[(NOTEBOOK, language)]
    manual = Manual(comments={solved.grade_cells[0].exercise: SCRIPT})
    page = render(result(language, status), SOLVED, manual)
    assert not any(tag in page for tag in MARKUP)
    assert page.count(escape(STUDENT)) == 1
    # the timestamp, each grade cell's message, the comment, the notice and the reason
    assert page.count(escape(SCRIPT)) == 3 + len(solved.grade_cells) + (status == "error")
    assert page.count("<tr>") == 1 + len(solved.grade_cells) and "&amp;lt;" not in page  # escaped once


def test_the_report_escapes_what_it_shows(tmp_path):
    write_result(tmp_path, result())
    write_result(tmp_path, result(status="error", student=STUDENT + "2"))
    page = write_report(tmp_path, tmp_path / "report").read_text(encoding="utf-8")
    assert not any(tag in page for tag in MARKUP)
    checks, failed = page.split("Failures by check", 1)[1].split("Could not be graded", 1)
    assert escape(SCRIPT) in checks
    assert escape(STUDENT + "2") in failed and escape(SCRIPT) in failed
    assert "&amp;lt;" not in page
