"""Reading a student's notebook and building the notebook that is actually run.

Nothing in a submission is trusted except the text of the answer cells. The
notebook that runs is the instructor's own (from ``source/``, in the student's
language) with each answer cell's source taken from the submission by its
``grade_id``, and any code cells the student added after an answer kept after
it. Test cells, hidden tests, points and every other cell come from the
instructor's copy, so editing, deleting, duplicating or reordering them, or
changing their nbgrader metadata, changes nothing.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder import notebooks
from autograder.language import notebook_language, select_language

MAX_NOTEBOOK_BYTES = 20 * 2**20
MAX_ANSWER_CHARS = 200_000
CYRILLIC = re.compile(r"[А-Яа-яЁё]")


class InvalidSubmission(ValueError):
    """The file cannot be graded; the message says why and what the student can do."""


@dataclass
class GradeCell:
    grade_id: str
    points: float
    kind: str  # "test" (autograded code) or "written" (markdown graded by a person)
    exercise: str  # grade_id of the answer cell the test belongs to ("" for none)
    hidden: bool  # has hidden tests


@dataclass
class Template:
    """The instructor's version of one notebook in one language."""

    notebook: str
    language: str
    nb: nbformat.NotebookNode
    grade_cells: list[GradeCell]
    answer_ids: list[str]
    titles: dict[str, str]  # answer grade_id -> heading of its exercise, in this language


@dataclass
class Assembled:
    nb: nbformat.NotebookNode  # what to execute
    language: str
    notices: list[str] = field(default_factory=list)
    missing_answers: list[str] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)  # grade_id -> student's text


def build_template(source_path: Path, language: str) -> Template:
    nb = select_language(notebooks.read(source_path), language)
    grade_cells, answer_ids, exercise, titles, heading = [], [], "", {}, ""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown" and not meta:
            headings = re.findall(r"^#+\s*(.+?)\s*$", cell.source, re.MULTILINE)
            heading = headings[-1] if headings else heading
        if meta.get("solution"):
            answer_ids.append(meta["grade_id"])
            exercise = meta["grade_id"]
            titles[exercise] = heading or exercise
        if meta.get("grade"):
            grade_cells.append(
                GradeCell(
                    grade_id=meta["grade_id"],
                    points=float(meta.get("points", 0)),
                    kind="written" if cell.cell_type == "markdown" else "test",
                    exercise=meta["grade_id"] if cell.cell_type == "markdown" else exercise,
                    hidden="### BEGIN HIDDEN TESTS" in cell.source,
                )
            )
    return Template(source_path.stem, language, nb, grade_cells, answer_ids, titles)


def load(path: Path) -> nbformat.NotebookNode:
    """Parse a submitted file, or raise InvalidSubmission with a reason a person can act on."""
    size = path.stat().st_size
    if size == 0:
        raise InvalidSubmission("the file is empty (0 bytes): submit the saved .ipynb file again")
    if size > MAX_NOTEBOOK_BYTES:
        raise InvalidSubmission(
            f"the file is {size / 2**20:.0f} MB, over the {MAX_NOTEBOOK_BYTES // 2**20} MB limit: "
            "clear the outputs (Edit > Clear Outputs of All Cells), save and submit again"
        )
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidSubmission(
            "the file is not a notebook (not UTF-8 text): submit the .ipynb file"
        ) from None
    except json.JSONDecodeError as error:
        raise InvalidSubmission(
            f"the file is not valid notebook JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            "was it edited outside Jupyter or cut short?"
        ) from None
    if not isinstance(data, dict) or ("cells" not in data and "worksheets" not in data):
        raise InvalidSubmission("the file is JSON but not a Jupyter notebook (no cells)")
    major = data.get("nbformat")
    if major not in (3, 4):
        raise InvalidSubmission(f"unsupported notebook format nbformat={major!r}; save it with JupyterLab 4")
    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception as error:  # nbformat raises several unrelated types on bad structure
        raise InvalidSubmission(
            f"the notebook structure is broken ({type(error).__name__}: {error})"
        ) from None
    if major == 3:
        nb.metadata.setdefault("course", {})["converted_from"] = 3
    return nb


def detect_language(nb: nbformat.NotebookNode) -> str:
    """The language the student worked in: the release's mark, else the prose they have."""
    marked = notebook_language(nb)
    if marked:
        return marked
    prose = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return "ru" if CYRILLIC.search(prose) else "en"


def answer_cells(nb: nbformat.NotebookNode) -> list[tuple[str, nbformat.NotebookNode]]:
    found = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if isinstance(meta, dict) and meta.get("solution") and isinstance(meta.get("grade_id"), str):
            found.append((meta["grade_id"], cell))
    return found


def assemble(template: Template, submitted: nbformat.NotebookNode) -> Assembled:
    """The instructor's notebook with the student's answers (and their own extra cells) put in."""
    result = Assembled(nb=notebooks.copy(template.nb), language=template.language)
    if submitted.metadata.get("course", {}).get("converted_from") == 3:
        result.notices.append("converted from nbformat 3")
    kernel = submitted.metadata.get("kernelspec", {}).get("name")
    if kernel not in (None, "python3"):
        result.notices.append(f"kernel {kernel!r} ignored: graded with python3")

    answers: dict[str, str] = {}
    extras: dict[str, list[str]] = {}
    template_ids = {c.id for c in template.nb.cells}
    current = ""  # the answer cell the student's own extra cells follow
    for cell in submitted.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        meta = meta if isinstance(meta, dict) else {}
        grade_id = meta.get("grade_id")
        if meta.get("solution") and grade_id in template.answer_ids:
            if grade_id in answers:
                result.notices.append(f"answer cell {grade_id} appears twice: the first one is graded")
                current = ""
            else:
                answers[grade_id] = _text(cell)
                current = grade_id
        elif grade_id:
            current = ""  # a test or locked cell ends the answer
        elif cell.cell_type == "code" and current and cell.get("id") not in template_ids:
            extras.setdefault(current, []).append(_text(cell))
    if not answers:
        raise InvalidSubmission(
            "none of the answer cells of this notebook were found: is it the right notebook, "
            "and were the answer cells copied rather than the notebook's own cells kept?"
        )
    too_long = [g for g, text in answers.items() if len(text) > MAX_ANSWER_CHARS]
    for grade_id in too_long:
        result.notices.append(f"answer cell {grade_id} is over {MAX_ANSWER_CHARS} characters and is not run")
        answers[grade_id] = 'raise RuntimeError("answer too long to grade")'

    cells = []
    for cell in result.nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if meta.get("solution"):
            if grade_id not in answers:
                result.missing_answers.append(grade_id)
                cell.source = 'raise RuntimeError("answer cell missing from the submission")'
            else:
                cell.source = answers[grade_id]
            if cell.cell_type == "markdown":
                result.written[grade_id] = cell.source
            cells.append(cell)
            for k, text in enumerate(extras.get(grade_id, [])):
                cells.append(nbformat.v4.new_code_cell(text, id=f"student-{grade_id}-{k}"[:64]))
        else:
            cells.append(cell)
    result.nb.cells = cells
    return result


def _text(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)
