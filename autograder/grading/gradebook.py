"""Grading's writes to the nbgrader gradebook: the assignment's rows, the students, the scores.

nbgrader is imported inside the functions (seconds): grading starts its sandboxes meanwhile.
"""

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from autograder.config import nbgrader_environment
from autograder.grading.results import SubmissionResult


def open_gradebook(db_url: str, attempts: int = 5):
    """nbgrader's Gradebook at ``db_url``. Two graders opening an empty server database at once
    both create nbgrader's schema, and one of them fails (a unique-key error): it tries again."""
    nbgrader_environment()
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(attempts):
        try:
            return Gradebook(db_url)
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def ensure_assignment_in_gradebook(course_dir: Path, assignment: str, db_url: str) -> None:
    """Register the assignment (as `nbgrader generate_assignment` does) if the gradebook lacks it."""
    from nbgrader.api import MissingEntry

    from autograder.release import generate

    with open_gradebook(db_url) as gb:
        try:
            if gb.find_assignment(assignment).notebooks:
                return
        except MissingEntry:
            pass
    with tempfile.TemporaryDirectory() as scratch:
        generate(course_dir, assignment, Path(scratch), db_url)


def prepare_gradebook(course_dir: Path, assignment: str, db_url: str, folders: list[Path]):
    """What storing results needs, made ready in a thread of its own while the first jobs run:
    nbgrader's import, the assignment's rows, the roster, and the submission times (parsed as
    the gradebook parses them). ``(roster, {folder: (time, notice)})``."""
    ensure_assignment_in_gradebook(course_dir, assignment, db_url)
    with open_gradebook(db_url) as gb:
        roster = {s.id for s in gb.students}
    return roster, {folder: submission_time(folder) for folder in folders}


def write_scores(gb, result: SubmissionResult, allow_unknown: bool) -> None:
    """Write one submission's scores into the gradebook (a ``nbgrader.api.Gradebook``),
    replacing any earlier ones."""
    from nbgrader.api import InvalidEntry, MissingEntry

    try:
        gb.find_student(result.student)
    except MissingEntry:
        if not allow_unknown:
            raise
        try:
            gb.add_student(result.student)
        except InvalidEntry:  # another grader (another assignment, same database) added them just now
            gb.find_student(result.student)
    kwargs = {"timestamp": result.timestamp} if result.timestamp else {}
    gb.update_or_create_submission(result.assignment, result.student, **kwargs)
    for notebook, cells in result.cells.items():
        for cell in cells:
            grade = gb.find_grade(cell.grade_id, notebook, result.assignment, result.student)
            grade.auto_score = cell.score
            # a cell scored by hand (formgrader) stays graded; one the tests cannot score waits for it
            grade.needs_manual_grade = cell.score is None and grade.manual_score is None
    gb.db.commit()


def recorded_same(gb, result: SubmissionResult) -> bool:
    """Whether the gradebook holds ``result``'s automatic scores (another tool may have changed them)."""
    from nbgrader.api import MissingEntry

    try:
        submission = gb.find_submission(result.assignment, result.student)
    except MissingEntry:
        return False
    scores = {(nb, c.grade_id): c.score for nb, cells in result.cells.items() for c in cells}
    for notebook in submission.notebooks:
        for grade in notebook.grades:
            key = (notebook.name, grade.name)
            if key in scores and scores[key] is not None and grade.auto_score != scores[key]:
                return False
            if key not in scores and grade.cell.cell_type != "markdown":
                return False
    return all(
        g.auto_score is not None or g.cell.cell_type == "markdown"
        for nb in submission.notebooks
        for g in nb.grades
    )


def submission_time(folder: Path) -> tuple[str, str]:
    """``(time, notice)``: when the submission was made, in UTC, as nbgrader's gradebook parses it.

    The time is timestamp.txt's (written by nbgrader or ``collect``), else the newest notebook's
    file time. The notice is "" unless timestamp.txt is there but cannot be used (not a plain
    file, not short ASCII text, not a date). The time is written afresh from the parsed date,
    so no text of the file reaches the gradebook, feedback or notices.
    """
    from nbgrader.utils import parse_utc  # what the gradebook parses the time with

    def usable(when: datetime | None) -> bool:
        return when is not None and 1970 <= when.year <= 9999

    stamp, when = folder / "timestamp.txt", None
    present = stamp.is_symlink() or stamp.exists()
    if present and stamp.is_file() and not stamp.is_symlink():
        try:
            with os.fdopen(os.open(stamp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as file:
                text = file.read(101).decode("ascii").strip()
            # nbgrader writes "%Y-%m-%d %H:%M:%S.%f %Z" (a course may configure another format);
            # no path-like time zone name, which dateutil would open as a file
            plain = all(c.isalnum() or c in " :.,+-_/" for c in text) and ".." not in text
            if 8 <= len(text) <= 100 and plain and not any(part.startswith("/") for part in text.split()):
                when = parse_utc(text)
        except Exception:  # unreadable, not ASCII, or not a date (dateutil raises several types)
            when = None
    if not usable(when):
        times = []
        for path in folder.glob("*.ipynb"):
            try:
                times.append(path.lstat().st_mtime)
            except OSError:
                continue
        try:
            newest = datetime.fromtimestamp(max(times, default=time.time()), UTC).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            newest = None
        newest = newest if usable(newest) else datetime.now(UTC).replace(tzinfo=None)
        notice = "timestamp.txt could not be read: the file time was used" if present else ""
        return newest.strftime("%Y-%m-%d %H:%M:%S.%f UTC"), notice
    return when.strftime("%Y-%m-%d %H:%M:%S.%f UTC"), ""
