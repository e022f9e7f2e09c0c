"""Roster step: the students of the course, in the nbgrader gradebook.

A CSV import reads the columns of ``nbgrader db student import`` (``id``,
``first_name``, ``last_name``, ``email``, ``lms_user_id``; the first row names
them, other columns are ignored) and, as there, an empty cell clears the field.
The whole file is checked before anything is written: one bad row and the
gradebook stays as it was.
"""

import csv
import io
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from autograder.config import GradebookURLError, gradebook_url, load_config, nbgrader_environment

FIELDS = ("first_name", "last_name", "email", "lms_user_id")
COLUMNS = ("id", *FIELDS)


class RosterError(ValueError):
    """A roster file or entry that cannot be used; the message says what to change."""


class GradebookUnavailable(RuntimeError):
    """The gradebook's database URL cannot be opened."""


@dataclass
class Imported:
    added: list[str]
    updated: list[str]


def course_gradebook(course_dir: Path, db_url: str | None = None) -> str:
    course_dir = Path(course_dir).resolve()
    return gradebook_url(load_config(course_dir), course_dir, db_url)


@contextmanager
def gradebook(course_dir: Path, db_url: str | None = None):
    """The course's gradebook (or the one at ``db_url``), open; GradebookUnavailable if it cannot be."""
    try:
        url = course_gradebook(course_dir, db_url)
    except GradebookURLError as error:
        raise GradebookUnavailable(f"{error}; check --db") from None
    nbgrader_environment()
    try:
        gb = Gradebook(url)
    except (SQLAlchemyError, ImportError) as error:  # ImportError: the database's driver is not installed
        why = str(getattr(error, "orig", None) or error).splitlines()[0]
        try:
            url = make_url(url).render_as_string(hide_password=True)
        except SQLAlchemyError:
            pass
        raise GradebookUnavailable(f"cannot open the gradebook {url} ({why}); check --db") from None
    with gb:
        yield gb


def _column(name: str) -> str:
    """``First name``, ``first-name`` and ``first_name`` all name the column ``first_name``."""
    return "_".join(name.strip().lower().replace("-", " ").split())


def check_id(student_id: str, where: str = "") -> str:
    """A student id usable as a folder name (submitted/<id>/): not empty, no slash, not . or .."""
    student_id = student_id.strip()
    prefix = f"{where}: " if where else ""
    if not student_id:
        raise RosterError(f"{prefix}the student id is empty; every student needs one")
    if student_id in (".", "..") or any(c in student_id for c in "/\\") or not student_id.isprintable():
        raise RosterError(
            f"{prefix}student id {student_id!r} cannot name a folder; use letters, digits, '.', '_' or '-'"
        )
    return student_id


def read_csv(path: Path) -> list[dict[str, str | None]]:
    """The students of a roster CSV, checked: one dict per row with ``id`` and the fields it gives."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark (Excel) is fine
    except FileNotFoundError:
        raise RosterError(f"{path} does not exist; give the roster's CSV file") from None
    except IsADirectoryError:
        raise RosterError(f"{path} is a folder; give the roster's CSV file") from None
    except UnicodeDecodeError as error:
        raise RosterError(
            f"{path} is not UTF-8 (byte {error.start}); save it as CSV UTF-8 and import it again"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as error:
        raise RosterError(f"{path}, line {reader.line_num}: not readable as CSV ({error})") from None
    if not rows:
        raise RosterError(f"{path} is empty; its first row names the columns: {','.join(COLUMNS)}")
    (_, header), body = rows[0], rows[1:]
    names = [_column(h) for h in header]
    if "id" not in names:
        raise RosterError(
            f"{path} has no id column; its first row must name the columns, e.g. {','.join(COLUMNS)}"
        )
    for name in set(names):
        if name in COLUMNS and names.count(name) > 1:
            raise RosterError(f"{path} has two {name} columns; keep one")
    index = {name: names.index(name) for name in COLUMNS if name in names}
    students, seen = [], {}
    for line, row in body:
        where = f"{path}, line {line}"
        cells = {name: row[i].strip() if i < len(row) else "" for name, i in index.items()}
        student_id = check_id(cells.pop("id"), where)
        if student_id in seen:
            first = seen[student_id]
            raise RosterError(f"{where}: student id {student_id!r} is also on line {first}; keep one")
        seen[student_id] = line
        students.append({"id": student_id} | {k: v or None for k, v in cells.items()})
    return students


def import_csv(course_dir: Path, path: Path, db_url: str | None = None) -> Imported:
    """Add or update every student of the CSV (checked first: nothing is written if a row is bad)."""
    students = read_csv(path)
    done = Imported([], [])
    with gradebook(course_dir, db_url) as gb:
        known = {s.id for s in gb.students}
        for student in students:
            fields = {k: v for k, v in student.items() if k != "id"}
            gb.update_or_create_student(student["id"], **fields)
            (done.updated if student["id"] in known else done.added).append(student["id"])
    return done


def add(course_dir: Path, student_id: str, db_url: str | None = None, **fields: str | None) -> bool:
    """Add a student or update the fields given (the others are kept); True when added."""
    student_id = check_id(student_id)
    given = {k: v.strip() or None for k, v in fields.items() if v is not None}
    with gradebook(course_dir, db_url) as gb:
        added = student_id not in {s.id for s in gb.students}
        gb.update_or_create_student(student_id, **given)
    return added


def students(course_dir: Path, db_url: str | None = None) -> list[dict[str, str | None]]:
    """Every student of the gradebook, by id."""
    with gradebook(course_dir, db_url) as gb:
        return [
            {"id": s.id} | {name: getattr(s, name) for name in FIELDS}
            for s in sorted(gb.students, key=lambda s: s.id)
        ]
