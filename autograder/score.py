"""Scoring the cells of a run, with a reason for every lost point.

Two conditions, both required. nbgrader's rule, applied by
``nbgrader.utils.determine_grade`` itself so that scores equal ``nbgrader
autograde``'s: the test cell ran and shows no error and nothing on stderr
(library warnings excepted, as configured with ``IgnorePattern``); a number
as its value gives partial credit. And the grader's own: the values its checks
were given match the instructor's solution (``autograder.verify``). A cell
that never ran because a limit stopped the notebook scores 0.
"""

import re
from dataclasses import dataclass

from nbgrader.utils import determine_grade

from autograder.messages import text
from autograder.run import Run
from autograder.submission import Assembled, Template
from autograder.verify import MISMATCH, cell_matches, explain

BLANK_ANSWER = "YOUR ANSWER HERE"


@dataclass
class CellResult:
    grade_id: str
    kind: str  # "test" or "written"
    exercise: str
    points: float
    score: float | None  # None: waits for a person
    passed: bool | None
    message: str
    hidden: bool


def score_run(
    run: Run, template: Template, assembled: Assembled, ignore_pattern: str, references: dict[str, list[dict]]
) -> list[CellResult]:
    lang = assembled.language
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): (i, c) for i, c in enumerate(run.nb.cells)}
    results = []
    for grade in template.grade_cells:
        index, cell = by_id[grade.grade_id]
        if grade.kind == "written":
            answer = assembled.written.get(grade.grade_id, "")
            blank = not answer.strip() or answer.strip() == BLANK_ANSWER
            results.append(
                CellResult(
                    grade.grade_id, "written", grade.exercise, grade.points,
                    0.0 if blank else None, None, text("blank" if blank else "manual", lang), False,
                )
            )  # fmt: skip
            continue
        if grade.exercise in assembled.missing_answers:
            score, message = 0.0, text("missing", lang, grade_id=grade.exercise)
        elif index not in run.ran:
            score, message = 0.0, text("stopped", lang, reason=run.stopped or "?")
        else:
            _drop_ignored_stderr(cell, ignore_pattern)
            score, _ = determine_grade(cell)
            expected, reported = references.get(grade.grade_id, []), run.records.get(grade.grade_id, [])
            if score and not cell_matches(expected, reported):
                score = 0.0
            message = "" if score == grade.points else _reason(cell, expected, reported, lang)
        results.append(
            CellResult(
                grade.grade_id, "test", grade.exercise, grade.points, float(score), score == grade.points,
                message, grade.hidden,
            )
        )  # fmt: skip
    return results


def _drop_ignored_stderr(cell, pattern: str) -> None:
    if pattern:
        cell.outputs = [
            o
            for o in cell.outputs
            if not (o.output_type == "stream" and o.name == "stderr" and re.search(pattern, o.text))
        ]


def _reason(cell, expected: list[dict], reported: list[dict], lang: str) -> str:
    """A reason written by the grader. No text the notebook produced is repeated (it could
    carry anything, hidden tests included), only the name of an exception's class."""
    errors = [o for o in cell.outputs if o.output_type == "error"]
    ename = str(errors[0].get("ename", "")) if errors else ""
    if ename == "NotImplementedError":
        return text("not_written", lang)
    explained = explain(expected, reported, lang)
    if errors and ename != "CheckFailed":
        name = ename if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]{0,60}", ename) else "an exception"
        return text("error_hidden", lang, ename=name) + (f"\n{explained}" if explained else "")
    if explained:
        return explained
    return text("stderr", lang) if not errors else MISMATCH[lang]
