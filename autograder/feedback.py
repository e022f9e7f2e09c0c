"""Feedback step: one HTML page per student, in the language they submitted.

Built from the grading result only (points, verdicts, the checks' messages)
and the gradebook (what a person gave in formgrader: scores, extra credit and
comments). The source of the tests, hidden or not, is never read here, so it
cannot reach a student.

The pages live in ``autograder-feedback/``, not in nbgrader's ``feedback/``:
``nbgrader generate_feedback --force`` deletes ``feedback/<student>/<assignment>/``
before writing its own page there, and ``nbgrader release_feedback`` sends every
``*.html`` of that folder to the exchange.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import MissingEntry

from autograder import pages
from autograder.config import gradebook_url, load_config
from autograder.grading.gradebook import open_gradebook
from autograder.grading.results import CellKind, SubmissionResult, read_result
from autograder.grading.submission import SolvedNotebook, digest, load_solved_notebooks, submission_paths
from course.i18n import message

FEEDBACK_DIR = "autograder-feedback"  # <course>/autograder-feedback/<student>/<assignment>/feedback.html


@dataclass
class Manual:
    """What a person gave in the gradebook (formgrader) for one student's assignment."""

    scores: dict[str, float | None] = field(default_factory=dict)  # grade cell -> manual score
    extra: dict[str, float] = field(default_factory=dict)  # grade cell -> extra credit
    comments: dict[str, str] = field(default_factory=dict)  # answer cell -> comment


def manual_grades(db_url: str, assignment: str, student: str) -> Manual:
    """Scores, extra credit and comments entered in formgrader, by grade_id.

    Formgrader stores a score in ``Grade.manual_score`` and ``Grade.extra_credit`` and a
    comment in ``Comment.manual_comment``; comments belong to answer cells, so a comment on a
    code exercise is filed under the answer cell's grade_id, not under its test cells'.
    """
    manual = Manual()
    with open_gradebook(db_url) as gb:
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            return manual
        for nb in submission.notebooks:
            for comment in nb.comments:
                if (comment.manual_comment or "").strip():
                    manual.comments[comment.name] = comment.manual_comment.strip()
            for grade in nb.grades:
                if grade.manual_score is not None:
                    manual.scores[grade.name] = float(grade.manual_score)
                if grade.extra_credit:
                    manual.extra[grade.name] = float(grade.extra_credit)
    return manual


_LATEX = {
    r"\sum": "∑", r"\prod": "∏", r"\nabla": "∇", r"\partial": "∂", r"\cdot": "·", r"\times": "×",
    r"\alpha": "α", r"\beta": "β", r"\gamma": "γ", r"\eta": "η", r"\theta": "θ", r"\lambda": "λ",
    r"\mu": "μ", r"\sigma": "σ", r"\ln": "ln", r"\log": "log", r"\exp": "exp", r"\to": "→",
    r"\leq": "≤", r"\geq": "≥", r"\approx": "≈", r"\infty": "∞", r"\top": "ᵀ",
}  # fmt: skip
_SUPERSCRIPT = str.maketrans("0123456789+-=()nitT", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱᵗᵀ")


def plain_title(title: str) -> str:
    """A lesson heading as plain text: no backticks, and simple LaTeX turned into Unicode."""

    def math(match: re.Match) -> str:
        formula = match.group(1)
        formula = re.sub(r"\\(?:mathbf|mathrm|operatorname|text|boldsymbol)\{([^{}]*)\}", r"\1", formula)
        formula = re.sub(
            r"\\frac\{([^{}]*)\}\{([^{}]*)\}",
            lambda m: "/".join(p if p.isalnum() else f"({p})" for p in (m.group(1), m.group(2))),
            formula,
        )
        for command, symbol in _LATEX.items():
            formula = re.sub(re.escape(command) + r"(?![A-Za-z])", symbol, formula)
        formula = re.sub(
            r"\^\{([^{}]*)\}|\^(.)",
            lambda m: (
                (m.group(1) or m.group(2)).translate(_SUPERSCRIPT)
                if all(c in "0123456789+-=()nitT" for c in (m.group(1) or m.group(2)))
                else "^" + (m.group(1) or m.group(2))
            ),
            formula,
        )
        formula = re.sub(r"_\{([^{}]*)\}", r"_\1", formula)
        return formula.replace("\\,", " ").replace("\\", "").replace("{", "").replace("}", "")

    title = re.sub(r"\$\$?(.+?)\$\$?", math, title)
    return title.replace("`", "").replace("**", "").strip()


def render(result: SubmissionResult, solved: dict[tuple[str, str], SolvedNotebook], manual: Manual) -> str:
    """The page of ``result`` in the student's language (markup: templates/feedback.html.j2)."""
    lang = result.language
    rows, total, maximum = [], 0.0, 0.0
    commented = set()  # exercises whose comment is already on the page
    for notebook, cells in result.cells.items():
        lesson = solved.get((notebook, lang)) or solved[(notebook, "en")]
        for cell in cells:
            given = manual.scores.get(cell.grade_id)
            score = given if given is not None else cell.score
            if score is not None:  # as nbgrader scores: the manual (else automatic) score plus extra credit
                score += manual.extra.get(cell.grade_id, 0.0)
            total += score or 0
            maximum += cell.points
            details = cell.message if not cell.passed else ""
            comment = manual.comments.get(cell.exercise, "") if cell.exercise not in commented else ""
            commented.add(cell.exercise)
            if cell.kind == CellKind.WRITTEN:
                details = ""
                if given is not None:
                    verdict = "graded_by_person"
                elif score is not None:
                    verdict = "blank"
                    # a missing cell says so; a blank one needs no details
                    details = "" if cell.message == message("blank", lang) else cell.message
                else:
                    verdict = "manual"
            elif given is not None:
                verdict = "graded_by_person"
            else:
                verdict = "passed" if cell.passed else "failed"
            if comment:
                said = f"{message('comment', lang)}: {comment}"
                details = f"{details}\n{said}" if details else said
            rows.append(
                {
                    "title": plain_title(lesson.titles.get(cell.exercise, cell.exercise)),
                    "grade_id": cell.grade_id,
                    "score": score,
                    "points": cell.points,
                    "verdict": verdict,  # a message key, shown with its style
                    "details": details,
                }
            )
    return pages.render(
        "feedback.html.j2",
        lang=lang,
        say=lambda key, **fields: message(key, lang, **fields),
        result=result,
        rows=rows,
        total=total,
        maximum=maximum,
    )


def write_feedback(
    course_dir: Path, assignment: str, student: str | None = None, db_url: str | None = None
) -> list[Path]:
    """``autograder-feedback/<student>/<assignment>/feedback.html`` for every graded student."""
    course_dir = Path(course_dir).resolve()
    db_url = gradebook_url(load_config(course_dir), course_dir, db_url)
    solved = load_solved_notebooks(course_dir, assignment)
    graded = course_dir / "autograded"
    students = [student] if student else sorted(p.name for p in graded.iterdir()) if graded.is_dir() else []
    written = []
    for name in students:
        result = read_result(course_dir, name, assignment)
        if result is None:
            continue
        page = render(result, solved, manual_grades(db_url, assignment, name))
        path = course_dir / FEEDBACK_DIR / name / assignment / "feedback.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
        written.append(path)
    return written


def without_result(course_dir: Path, assignment: str, student: str | None = None) -> list[str]:
    """Students who submitted ``assignment`` but have no autograder result for the files they
    submitted: never graded, resubmitted since, or their ``autograded/`` folder replaced (a plain
    ``nbgrader autograde --force`` deletes ``result.json``). They get no page until graded."""
    course_dir = Path(course_dir).resolve()
    solved = load_solved_notebooks(course_dir, assignment)
    missing = []
    for name, folder in submission_paths(course_dir, assignment, student).items():
        result = read_result(course_dir, name, assignment)
        if result is None or result.digest != digest(folder, solved):
            missing.append(name)
    return missing
