"""Scoring the cells of a run the way nbgrader does, with a reason for every lost point.

A test cell scores its points when it ran and shows no error and nothing on
stderr (library warnings excepted, as configured with ``IgnorePattern``); an
``execute_result`` that is a number gives partial credit. This is
``nbgrader.utils.determine_grade`` itself, so scores equal ``nbgrader
autograde``'s. A cell that never ran because a limit stopped the notebook
scores 0.
"""

import re
from dataclasses import asdict, dataclass

from nbgrader.utils import determine_grade

from autograder.messages import text
from autograder.runner import RunResult
from autograder.submission import Assembled, Template

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

    def to_dict(self) -> dict:
        return asdict(self)


def score_run(
    run: RunResult, template: Template, assembled: Assembled, ignore_pattern: str
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
        elif run.stopped_at is not None and index >= run.stopped_at:
            score, message = 0.0, text("stopped", lang, reason=run.stopped)
        else:
            _drop_ignored_stderr(cell, ignore_pattern)
            score, _ = determine_grade(cell)
            message = "" if score == grade.points else _reason(cell, grade.hidden, lang)
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


def _reason(cell, hidden: bool, lang: str) -> str:
    for output in cell.outputs:
        if output.output_type == "error":
            ename, evalue = output.get("ename", "Error"), str(output.get("evalue", ""))
            if ename == "CheckFailed":
                return evalue[:2000]  # written by the course checks; hidden ones hide their values
            if ename == "NotImplementedError":
                return text("not_written", lang)
            if hidden:
                return text("error_hidden", lang, ename=ename)
            return text("error", lang, ename=ename, evalue=evalue[:300])
    return text("stderr", lang)
