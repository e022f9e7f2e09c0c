"""Export step: the grades as CSV, for a spreadsheet or for an LMS to import.

Three layouts:

* ``csv``: one row per student and assignment, with status, reason and every
  grade cell (``autograder-grades.csv``);
* ``moodle``: what Moodle's "Import grades -> CSV file" takes, one row per
  student and one column per assignment, students identified by their email
  address (``moodle-grades.csv``);
* ``canvas``: Canvas's gradebook CSV, with its "Points Possible" row
  (``canvas-grades.csv``).

Every student on the roster gets a row for every assignment of the course
(status ``missing`` without a submission); students graded but not on the
roster are exported too. Scores come from the gradebook, so a person's scores
(formgrader) override the autograder's; status and reason come from the
grading result.
"""

import csv
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import MissingEntry

from autograder import notebooks
from autograder.grading.results import RESULT_FILE, read_result
from autograder.roster import gradebook

FORMATS = ("csv", "moodle", "canvas")
# Not nbgrader's own default (`nbgrader export` writes and overwrites grades.csv).
DEFAULT_FILES = {"csv": "autograder-grades.csv", "moodle": "moodle-grades.csv", "canvas": "canvas-grades.csv"}

FIXED_COLUMNS = [
    "student_id",
    "assignment",
    "language",
    "status",
    "reason",
    "score",
    "max_score",
    "submitted_at",
    "seconds_late",
    "on_roster",
]
MISSING = "missing"

MOODLE_IDENTITY = ["First name", "Last name", "ID number", "Email address"]
CANVAS_IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


@dataclass
class Student:
    id: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    lms_user_id: str | None = None
    on_roster: bool = True


@dataclass
class Grades:
    """Everything an export writes, read once from the gradebook and the results."""

    assignments: dict[str, float | None] = field(default_factory=dict)  # name -> max score
    students: list[Student] = field(default_factory=list)
    cell_columns: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # one per (assignment, student)
    scores: dict[tuple[str, str], float | None] = field(default_factory=dict)  # for an LMS: None, missing

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.scores[row["student_id"], row["assignment"]] = None if row["status"] == MISSING else row["score"]

    def score(self, student: str, assignment: str) -> float | None:
        return self.scores.get((student, assignment))


@dataclass
class Exported:
    rows: int  # data rows written (the Points Possible row of Canvas not counted)
    left_out: list[str] = field(default_factory=list)  # students the format cannot identify


def _result_row(result, assignment: str) -> dict:
    row = {
        "score": round(result.score, 4),
        "status": result.status,
        "reason": result.reason,
        "language": result.language,
        "submitted_at": result.timestamp or "",
    }
    for cells in result.cells.values():
        for cell in cells:
            row[f"{assignment}:{cell.grade_id}"] = "" if cell.score is None else cell.score
    return row


def gather(course_dir: Path, db_url: str | None = None) -> Grades:
    """Rows for every (student, assignment): the roster's students and anyone graded."""
    course_dir = Path(course_dir).resolve()
    grades = Grades()
    with gradebook(course_dir, db_url) as gb:
        known = {a.name: a for a in gb.assignments}
        source = notebooks.assignments(course_dir) if (course_dir / "source").is_dir() else []
        names = sorted(set(known) | set(source))
        graded = {p.parts[-3] for p in (course_dir / "autograded").glob(f"*/*/{RESULT_FILE}")}
        roster = {s.id: s for s in gb.students}
        grades.students = [
            Student(s.id, s.first_name, s.last_name, s.email, s.lms_user_id) for s in roster.values()
        ] + [Student(name, on_roster=False) for name in graded - set(roster)]
        grades.students.sort(key=lambda s: s.id)
        for name in names:
            assignment = known.get(name)
            grades.assignments[name] = assignment.max_score if assignment else None
            if assignment:
                grades.cell_columns += [
                    f"{name}:{cell.name}"
                    for notebook in assignment.notebooks
                    for cell in sorted(notebook.grade_cells, key=lambda c: c.name)
                ]
            for student in grades.students:
                row = {
                    "student_id": student.id,
                    "assignment": name,
                    "max_score": assignment.max_score if assignment else "",
                    "on_roster": "yes" if student.on_roster else "no",
                }
                result = read_result(course_dir, student.id, name)
                try:
                    submission = gb.find_submission(name, student.id) if student.on_roster else None
                except MissingEntry:
                    submission = None
                if submission is None:
                    if result is None:
                        row |= {"status": MISSING, "score": 0, "reason": "", "language": ""}
                    else:  # graded, but not in this gradebook: the result's own scores
                        row |= _result_row(result, name)
                    grades.add(row)
                    continue
                row |= {
                    "score": round(submission.score, 4),
                    "status": result.status if result else "not graded",
                    "reason": result.reason if result else "",
                    "language": result.language if result else "",
                    "submitted_at": submission.timestamp.isoformat(sep=" ") if submission.timestamp else "",
                    "seconds_late": round(submission.total_seconds_late, 1),
                }
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        # nbgrader counts "not graded yet" as 0; the CSV leaves it empty instead
                        pending = grade.manual_score is None and grade.auto_score is None
                        row[f"{name}:{grade.name}"] = "" if pending else grade.score
                grades.add(row)
    return grades


def _number(value: float | None) -> str:
    """A score as an LMS reads it: ``4``, ``2.5``; empty for no score."""
    if value is None or value == "":
        return ""
    return f"{float(value):.4f}".rstrip("0").rstrip(".")


def _inert(value):
    """Text a spreadsheet shows as text: a cell that starts like a formula (a name or a student
    id from an LMS download, such as ``=HYPERLINK(...)``) gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _write(path: Path, header: list[str], rows: list[list] | list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        if rows and isinstance(rows[0], dict):
            writer = csv.DictWriter(handle, fieldnames=header, restval="")
            writer.writeheader()
            writer.writerows({key: _inert(value) for key, value in row.items()} for row in rows)
        else:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows([_inert(value) for value in row] for row in rows)


def write_csv(grades: Grades, path: Path) -> Exported:
    _write(path, FIXED_COLUMNS + grades.cell_columns, grades.rows)
    return Exported(len(grades.rows))


def write_moodle(grades: Grades, path: Path) -> Exported:
    """Moodle's grade import: map "Email address" to the user's email address, each assignment
    column to a grade item. A student without an email is left out: Moodle could not tell who
    the row is (a row with an empty identifier can even take the previous row's student)."""
    rows, left_out = [], []
    for student in grades.students:
        if not student.email:
            left_out.append(student.id)
            continue
        rows.append(
            [student.first_name or "", student.last_name or "", student.id, student.email]
            + [_number(grades.score(student.id, name)) for name in grades.assignments]
        )
    _write(path, MOODLE_IDENTITY + list(grades.assignments), rows)
    return Exported(len(rows), left_out)


def canvas_name(student: Student) -> str:
    """The name as Canvas's export writes it, "Last, First" (its importer also matches on it)."""
    if student.first_name and student.last_name:
        return f"{student.last_name}, {student.first_name}"
    return student.last_name or student.first_name or student.id


def write_canvas(grades: Grades, path: Path) -> Exported:
    """Canvas's gradebook import: ID is the Canvas user id (the roster's lms_user_id, else empty),
    SIS User ID the roster id, SIS Login ID the email address; Section is left empty."""
    points = ["Points Possible", "", "", "", ""] + [_number(m) for m in grades.assignments.values()]
    rows = [points] + [
        [canvas_name(s), s.lms_user_id or "", s.id, s.email or "", ""]
        + [_number(grades.score(s.id, name)) for name in grades.assignments]
        for s in grades.students
    ]
    _write(path, CANVAS_IDENTITY + list(grades.assignments), rows)
    return Exported(len(rows) - 1)


WRITERS = {"csv": write_csv, "moodle": write_moodle, "canvas": write_canvas}


def export(course_dir: Path, path: Path, fmt: str = "csv", db_url: str | None = None) -> Exported:
    """Write the grades in layout ``fmt`` (one of FORMATS) to ``path``."""
    return WRITERS[fmt](gather(course_dir, db_url), Path(path))


def export_csv(course_dir: Path, path: Path, db_url: str | None = None) -> int:
    """Write the ``csv`` layout; returns the number of rows."""
    return export(course_dir, path, "csv", db_url).rows
