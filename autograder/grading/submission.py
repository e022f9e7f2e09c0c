"""Reading a student's notebook and building the notebook that is actually run.

Nothing in a submission is trusted except the text of the answer cells. The
notebook that runs is the instructor's own (from ``source/``, in the student's
language) with each answer cell's source taken from the submission by its
``grade_id``, and any code cells the student added after an answer kept after
it. Test cells, hidden tests, points and every other cell come from the
instructor's copy, so editing, deleting, duplicating or reordering them, or
changing their nbgrader metadata, changes nothing.
"""

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder import LANGUAGES, notebooks
from autograder.grading.results import CellKind
from autograder.language import notebook_language, select_language
from course.i18n import message

MAX_NOTEBOOK_BYTES = 20 * 2**20
MAX_ANSWER_CHARS = 200_000
MAX_CELLS = 5_000
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
SURROGATE = re.compile("[\ud800-\udfff]")  # lone ones only: JSON's escaped pairs are joined on parsing
CELL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # nbformat 4.5


class InvalidSubmission(ValueError):
    """The file cannot be graded; the message says why and what the student can do."""


@dataclass
class GradeCell:
    grade_id: str
    points: float
    kind: CellKind  # TEST (autograded code) or WRITTEN (markdown graded by a person)
    exercise: str  # grade_id of the answer cell the test belongs to ("" for none)
    hidden: bool  # has hidden tests


@dataclass
class SolvedNotebook:
    """The instructor's solved notebook (from ``source/``) in one language."""

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


def read_solved_notebook(source_path: Path, language: str) -> SolvedNotebook:
    nb = select_language(notebooks.read(source_path), language)
    grade_cells, answer_ids, exercise, titles, heading = [], [], "", {}, ""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and not notebooks.nbgrader_metadata(cell):
            headings = re.findall(r"^#+\s*(.+?)\s*$", cell.source, re.MULTILINE)
            heading = headings[-1] if headings else heading
        if notebooks.is_solution(cell):
            answer_ids.append(notebooks.grade_id(cell))
            exercise = notebooks.grade_id(cell)
            titles[exercise] = heading or exercise
        if notebooks.is_grade(cell):
            grade_cells.append(
                GradeCell(
                    grade_id=notebooks.grade_id(cell),
                    points=notebooks.points(cell),
                    kind=CellKind.WRITTEN if cell.cell_type == "markdown" else CellKind.TEST,
                    exercise=notebooks.grade_id(cell) if cell.cell_type == "markdown" else exercise,
                    hidden="### BEGIN HIDDEN TESTS" in cell.source,
                )
            )
    return SolvedNotebook(source_path.stem, language, nb, grade_cells, answer_ids, titles)


class AssignmentUnknown(RuntimeError):
    """The assignment has no source notebooks."""


def load_solved_notebooks(course_dir: Path, assignment: str) -> dict[tuple[str, str], SolvedNotebook]:
    """Every notebook of ``source/<assignment>/`` in every language: ``{(notebook, language): ...}``."""
    sources = sorted((course_dir / "source" / assignment).glob("*.ipynb"))
    if not sources:
        raise AssignmentUnknown(f"no notebooks in source/{assignment}/: is the assignment name right?")
    return {(p.stem, lang): read_solved_notebook(p, lang) for p in sources for lang in LANGUAGES}


def submission_paths(course_dir: Path, assignment: str, student: str | None = None) -> dict[str, Path]:
    """``{student: submitted/<student>/<assignment>/}`` for every student who submitted."""
    root = course_dir / "submitted"
    students = (
        [student]
        if student
        else sorted(p.name for p in root.iterdir() if p.is_dir())
        if root.is_dir()
        else []
    )
    return {s: root / s / assignment for s in students if (root / s / assignment).is_dir()}


def digest(folder: Path, solved: dict[tuple[str, str], SolvedNotebook]) -> str:
    """What a submission is graded from: its files and the solved notebooks. A stored result
    whose digest differs was graded from other files."""
    h = hashlib.sha256()
    for path in sorted(folder.glob("*")):
        if path.is_file() and not path.is_symlink():
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    for (name, lang), notebook in sorted(solved.items()):
        h.update(f"{name}/{lang}".encode() + notebooks.writes(notebook.nb).encode())
    return h.hexdigest()


def load(path: Path) -> nbformat.NotebookNode:
    """Read a submitted file, or raise InvalidSubmission with a reason a person can act on.

    What comes back holds only what the grader reads, each value of the type it expects:
    the cells' types, ids, ``grade_id`` / ``solution`` marks and sources, the language mark
    and the kernel's name. Outputs and all other metadata are dropped unread, so their
    nesting or types cannot matter. A cell that cannot be read (not an object, an unknown
    type, a source that is not text) is left out and noted. Lone surrogates (text that
    cannot be written as UTF-8) are replaced with U+FFFD and noted.
    """
    raw = _read(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidSubmission(
            "the file is not a notebook (not UTF-8 text): submit the .ipynb file"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidSubmission(
            f"the file is not valid notebook JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            "was it edited outside Jupyter or cut short?"
        ) from None
    except RecursionError:
        raise InvalidSubmission(
            "the file is not valid notebook JSON (it is nested too deeply to read); "
            "was it edited outside Jupyter?"
        ) from None
    except ValueError:  # e.g. a number with more digits than Python converts
        raise InvalidSubmission(
            "the file is not valid notebook JSON (a value is too long to read); "
            "was it edited outside Jupyter?"
        ) from None
    return _reduce(data)


def _read(path: Path) -> bytes:
    """The bytes of a plain file (not a link, folder or pipe), within the size limit."""
    try:
        info = os.lstat(path)
    except OSError:
        raise InvalidSubmission("the file could not be read: submit the .ipynb file again") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidSubmission(
            "the submission is a link or a special file, not a notebook file: submit the .ipynb file itself"
        )
    if info.st_size == 0:
        raise InvalidSubmission("the file is empty (0 bytes): submit the saved .ipynb file again")
    too_big = InvalidSubmission(
        f"the file is {info.st_size / 2**20:.0f} MB, over the {MAX_NOTEBOOK_BYTES // 2**20} MB limit: "
        "clear the outputs (Edit > Clear Outputs of All Cells), save and submit again"
    )
    if info.st_size > MAX_NOTEBOOK_BYTES:
        raise too_big
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as file:
            raw = file.read(MAX_NOTEBOOK_BYTES + 1)
    except OSError:
        raise InvalidSubmission("the file could not be read: submit the .ipynb file again") from None
    if not raw:
        raise InvalidSubmission("the file is empty (0 bytes): submit the saved .ipynb file again")
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise too_big
    return raw


def _reduce(data) -> nbformat.NotebookNode:
    """The parsed JSON as a notebook of the fields the grader reads (see ``load``)."""
    if not isinstance(data, dict) or ("cells" not in data and "worksheets" not in data):
        raise InvalidSubmission("the file is JSON but not a Jupyter notebook (no cells)")
    major = data.get("nbformat")
    if type(major) is not int or major not in (3, 4):
        raise InvalidSubmission(
            "the notebook format is not one Jupyter saves today (nbformat 3 or 4): "
            "open it in JupyterLab 4, save it and submit again"
        )
    raw_cells = data.get("cells")
    if major == 3:  # cells in worksheets
        sheets = data.get("worksheets")
        lists = [_get(sheet, "cells") for sheet in sheets] if isinstance(sheets, list) else [None]
        raw_cells = [c for cells in lists for c in cells] if all(isinstance(c, list) for c in lists) else None
    if not isinstance(raw_cells, list):
        raise InvalidSubmission("the file is JSON but not a Jupyter notebook (its cells are not a list)")
    if len(raw_cells) > MAX_CELLS:
        raise InvalidSubmission(
            f"the notebook has over {MAX_CELLS} cells, far more than the lesson: "
            "delete the cells you added, save and submit again"
        )
    cells, damaged, replaced = [], False, False
    for raw in raw_cells:
        cell = _readable(raw, major)
        if cell is None:
            damaged = True
            continue
        for key in ("source", "id", "grade_id"):
            text = cell.get(key)
            if isinstance(text, str):
                cell[key], count = SURROGATE.subn("\ufffd", text)
                replaced = replaced or count > 0
        kept = {"cell_type": cell["cell_type"], "metadata": {}, "source": cell["source"]}
        if cell["grade_id"] is not None or cell["solution"]:
            kept["metadata"]["nbgrader"] = {"grade_id": cell["grade_id"], "solution": cell["solution"]}
        if cell["id"] is not None:
            kept["id"] = cell["id"]
        if cell["cell_type"] == "code":
            kept.update(outputs=[], execution_count=None)
        cells.append(kept)

    course: dict = {}
    language = notebook_language(data)
    if language:
        course["language"] = language
    if major == 3:
        course["converted_from"] = 3
    if damaged:
        course["damaged_cells"] = True
    if replaced:
        course["replaced_characters"] = True
    metadata: dict = {"course": course}
    spec = _get(data, "metadata", "kernelspec")
    name = spec.get("name") if isinstance(spec, dict) else spec  # a damaged kernelspec is not python3
    if name is not None:
        metadata["kernelspec"] = {"name": "python3" if name == "python3" else "other"}
    return nbformat.from_dict(
        {
            "nbformat": 4,
            "nbformat_minor": 5 if all("id" in c for c in cells) else 4,
            "metadata": metadata,
            "cells": cells,
        }
    )


def _readable(cell, major: int = 4) -> dict | None:
    """What the grader reads of one submitted cell, type-checked, or None when it cannot be read.

    ``cell_type``, ``source`` (text), ``id`` (or None), ``grade_id`` (text or None) and
    ``solution`` (True only when nbgrader's mark is the boolean true).
    """
    if not isinstance(cell, dict):
        return None
    kind = cell.get("cell_type")
    source = cell.get("input" if major == 3 and kind == "code" else "source", "")
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        source = "".join(source)
    if not isinstance(source, str):
        return None
    if major == 3 and kind == "heading":  # as nbformat's own conversion does
        level = cell.get("level")
        level = level if type(level) is int and 1 <= level <= 6 else 1
        kind, source = "markdown", "#" * level + " " + " ".join(source.splitlines())
    elif major == 3 and kind == "html":
        kind = "markdown"
    if kind not in ("code", "markdown", "raw"):
        return None
    meta = _get(cell, "metadata", "nbgrader")
    meta = meta if isinstance(meta, dict) else {}
    grade_id = meta.get("grade_id")
    cell_id = cell.get("id")
    return {
        "cell_type": kind,
        "source": source,
        "id": cell_id if isinstance(cell_id, str) and CELL_ID.fullmatch(cell_id) else None,
        "grade_id": grade_id if isinstance(grade_id, str) and grade_id else None,
        "solution": meta.get("solution") is True,
    }


def _get(node, *keys):
    """``node[keys[0]][keys[1]]…``, or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def detect_language(nb: nbformat.NotebookNode) -> str:
    """The language the student worked in: the release's mark, else the prose they have."""
    marked = notebook_language(nb)
    if marked:
        return marked
    prose = " ".join(c["source"] for c in _cells(nb) if c["cell_type"] == "markdown")
    return "ru" if CYRILLIC.search(prose) else "en"


def _cells(nb) -> list[dict]:
    """The readable cells of a notebook (see ``_readable``), whatever it holds."""
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        return []
    found = []
    for raw in cells:
        cell = _readable(raw)
        if cell is not None:
            cell["raw"] = raw
            found.append(cell)
    return found


def answer_cells(nb: nbformat.NotebookNode) -> list[tuple[str, nbformat.NotebookNode]]:
    """``(grade_id, cell)`` of every readable cell marked as an answer."""
    return [(c["grade_id"], c["raw"]) for c in _cells(nb) if c["solution"] and c["grade_id"]]


def assemble(solved: SolvedNotebook, submitted: nbformat.NotebookNode) -> Assembled:
    """The instructor's notebook with the student's answers (and their own extra cells) put in."""
    result = Assembled(nb=notebooks.copy(solved.nb), language=solved.language)
    course = _get(submitted, "metadata", "course")
    course = course if isinstance(course, dict) else {}
    if course.get("converted_from") == 3:
        result.notices.append("converted from nbformat 3")
    spec = _get(submitted, "metadata", "kernelspec")
    kernel = spec.get("name") if isinstance(spec, dict) else None
    if kernel is not None and kernel != "python3":
        result.notices.append("the notebook was saved with a kernel other than python3: graded with python3")
    readable, raw_cells = _cells(submitted), _get(submitted, "cells")
    unread = isinstance(raw_cells, list) and len(readable) < len(raw_cells)
    if unread or course.get("damaged_cells") is True:
        result.notices.append(
            "some cells of the notebook are damaged and were not read: "
            "open it in JupyterLab to check that every answer is there"
        )
    replaced = course.get("replaced_characters") is True
    for cell in readable:
        cell["source"], count = SURROGATE.subn("\ufffd", cell["source"])
        replaced = replaced or count > 0
    if replaced:
        result.notices.append("some characters of the notebook were not valid Unicode: replaced by U+FFFD")

    answers: dict[str, str] = {}
    extras: dict[str, list[str]] = {}
    solved_ids = {c.id for c in solved.nb.cells}
    current = ""  # the answer cell the student's own extra cells follow
    for cell in readable:
        grade_id = cell["grade_id"]
        if cell["solution"] and grade_id in solved.answer_ids:
            if grade_id in answers:
                result.notices.append(f"answer cell {grade_id} appears twice: the first one is graded")
                current = ""
            else:
                answers[grade_id] = cell["source"]
                current = grade_id
        elif grade_id:
            current = ""  # a test or locked cell ends the answer
        elif cell["cell_type"] == "code" and current and cell["id"] not in solved_ids:
            extras.setdefault(current, []).append(cell["source"])
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
        grade_id = notebooks.grade_id(cell)
        if notebooks.is_solution(cell):
            if grade_id not in answers:
                result.missing_answers.append(grade_id)
                if cell.cell_type == "markdown":  # what formgrader shows in its place; scored 0
                    cell.source = message("missing_written", solved.language)
                else:  # its tests fail
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
