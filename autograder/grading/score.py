"""Scoring the cells of a run, with a reason for every lost point.

A test cell scores its points when it ran to the end with no error and
nothing on stderr (nbgrader's rule; library warnings excepted, as configured
with ``IgnorePattern``), and every value its checks were given matches the
reference (``autograder.grading.verify``); otherwise 0. A cell that never ran because
a limit stopped the notebook scores 0. Every reason is written here from the
catalogue (``course.i18n``): the only words that come from the run
are the names of builtin exceptions.
"""

import builtins
import re

from autograder import notebooks
from autograder.grading.results import CellKind, CellResult
from autograder.grading.run import Run
from autograder.grading.submission import Assembled, SolvedNotebook
from autograder.grading.verify import cell_matches, explain
from autograder.language import ANSWER_STUBS
from course.i18n import known_error, message

BLANK_ANSWERS = frozenset(ANSWER_STUBS.values())
# The exception names a reason may repeat: Python's own, and nothing a notebook can define.
BUILTIN_EXCEPTIONS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)


def score_run(
    run: Run,
    solved: SolvedNotebook,
    assembled: Assembled,
    ignore_pattern: str,
    references: dict[str, list[dict]],
) -> list[CellResult]:
    """Every grade cell of ``solved`` scored from ``run`` against ``references`` ({grade_id: [...]})."""
    lang = assembled.language
    by_id = {notebooks.grade_id(c): (i, c) for i, c in enumerate(run.nb.cells)}
    results = []
    for grade in solved.grade_cells:
        index, cell = by_id[grade.grade_id]
        if grade.kind == CellKind.WRITTEN and grade.grade_id in assembled.missing_answers:
            # nothing to read: 0 at once, as a blank answer, and formgrader does not list it
            results.append(
                CellResult(
                    grade.grade_id, CellKind.WRITTEN, grade.exercise, grade.points, 0.0, None,
                    message("missing", lang, grade_id=grade.grade_id), False,
                    message("missing", "en", grade_id=grade.grade_id),
                )
            )  # fmt: skip
            continue
        if grade.kind == CellKind.WRITTEN:
            answer = assembled.written.get(grade.grade_id, "")
            blank = not answer.strip() or answer.strip() in BLANK_ANSWERS
            results.append(
                CellResult(
                    grade.grade_id, CellKind.WRITTEN, grade.exercise, grade.points,
                    0.0 if blank else None, None, message("blank" if blank else "manual", lang), False,
                )
            )  # fmt: skip
            continue
        if grade.exercise in assembled.missing_answers:
            score, said = 0.0, {k: message("missing", k, grade_id=grade.exercise) for k in {lang, "en"}}
        elif index not in run.ran:
            score, stop = 0.0, run.stopped or "ended"
            said = {k: message("stopped", k, reason=message(f"stop.{stop}", k)) for k in {lang, "en"}}
        else:
            drop_ignored_stderr(cell, ignore_pattern)
            expected, reported = references.get(grade.grade_id, []), run.reports.get(grade.grade_id, [])
            clean = not any(
                o.output_type == "error" or (o.output_type == "stream" and o.name == "stderr")
                for o in cell.outputs
            )
            score = grade.points if clean and cell_matches(expected, reported) else 0.0
            said = {
                k: "" if score == grade.points else _reason(cell, expected, reported, k) for k in {lang, "en"}
            }
        results.append(
            CellResult(
                grade.grade_id, CellKind.TEST, grade.exercise, grade.points, float(score),
                score == grade.points, said[lang], grade.hidden, said["en"],
            )
        )  # fmt: skip
    return results


def drop_ignored_stderr(cell, pattern: str) -> None:
    """Drop the code cell's stderr outputs that ``pattern`` matches, as nbgrader's ``IgnorePattern``
    does in ``nbgrader autograde`` (tests/test_ignore_pattern.py pins that they agree). Not reused:
    importing nbgrader takes about 2 s, spent before the grader's first result."""
    if pattern and cell.cell_type == "code":
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
        return message("not_written", lang)
    explained = explain(expected, reported, lang)
    if errors:
        name = ename if ename in BUILTIN_EXCEPTIONS else message("an_exception", lang)
        meaning = known_error(str(errors[0].get("evalue", "")), lang) if name == ename else None
        said = message("error_hidden", lang, ename=name) + (f": {meaning}" if meaning else "")
        return said + (f"\n{explained}" if explained else "")
    if explained:
        return explained
    printed = any(o.output_type == "stream" and o.name == "stderr" for o in cell.outputs)
    return message("stderr", lang) if printed else message("verify.mismatch", lang)
