"""Grade step: every submission of an assignment, in parallel, into the nbgrader gradebook.

Workers assemble and run submissions; only the main thread writes (the
gradebook, ``autograded/<student>/<assignment>/``), one submission at a time,
each write complete before the next. A run that is interrupted can be started
again: submissions whose result is already recorded for the same files are
skipped, the rest are graded.
"""

import hashlib
import json
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

from autograder import LANGUAGES, notebooks
from autograder.config import gradebook_url, load_config
from autograder.grading.references import ensure
from autograder.grading.run import run_in_sandbox
from autograder.grading.sandbox import DEFAULT_LIMITS, Limits, PoolLost, WorkerPool, check_available
from autograder.grading.score import CellResult, score_run
from autograder.grading.submission import (
    InvalidSubmission,
    Template,
    assemble,
    build_template,
    detect_language,
    load,
)
from autograder.messages import stop_reason

RESULT_FILE = "result.json"


@dataclass
class SubmissionResult:
    student: str
    assignment: str
    status: str  # "graded" or "error"
    reason: str = ""
    language: str = "en"
    timestamp: str | None = None
    digest: str = ""
    notices: list[str] = field(default_factory=list)  # shown to the student
    instructor_notes: list[str] = field(default_factory=list)  # the instructor's only (roster, logs)
    cells: dict[str, list[CellResult]] = field(default_factory=dict)  # notebook -> cells
    seconds: float = 0.0
    unsafe: bool = False
    executed: dict = field(default_factory=dict, repr=False)  # notebook -> run notebook; not saved

    @property
    def score(self) -> float:
        return sum(c.score or 0 for cells in self.cells.values() for c in cells)

    def to_json(self) -> str:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "executed"}
        data["cells"] = {nb: [asdict(c) for c in cells] for nb, cells in self.cells.items()}
        return json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SubmissionResult":
        data = json.loads(text)
        data["cells"] = {nb: [CellResult(**c) for c in cells] for nb, cells in data["cells"].items()}
        return cls(**data)


@dataclass
class Batch:
    """What one `autograder grade` run did."""

    results: list[SubmissionResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already graded, same files
    refused: list[str] = field(default_factory=list)  # not on the roster
    grader_errors: int = 0  # submissions the grader itself failed on
    added: list[str] = field(default_factory=list)  # students added to the roster
    regraded: list[str] = field(default_factory=list)  # result.json and the gradebook disagreed

    def summary(self) -> str:
        graded = sum(r.status == "graded" for r in self.results)
        errors = [r for r in self.results if r.status == "error"]
        lines = [
            f"{graded} graded, {len(errors)} could not be graded, {len(self.skipped)} already up to date"
        ]
        lines += [f"  {r.student}: {r.reason}" for r in errors]
        if self.refused:
            lines.append(f"{len(self.refused)} refused (not on the roster): {', '.join(self.refused)}")
        if self.regraded:
            lines.append(
                f"{len(self.regraded)} graded again: the gradebook no longer held their autograder "
                f"result (changed by another tool, or a run stopped midway): {', '.join(self.regraded)}"
            )
        if self.added:
            lines.append(f"{len(self.added)} added to the roster (not on it before): {', '.join(self.added)}")
        return "\n".join(lines)


class AssignmentUnknown(RuntimeError):
    """The assignment has no source notebooks."""


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


def digest(folder: Path, templates: dict) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.glob("*")):
        if path.is_file() and not path.is_symlink():
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    for (name, lang), template in sorted(templates.items()):
        h.update(f"{name}/{lang}".encode() + notebooks.writes(template.nb).encode())
    return h.hexdigest()


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


def grade_one(
    student: str,
    assignment: str,
    folder: Path,
    templates: dict,
    ignore_pattern: str,
    limits: Limits,
    pool: WorkerPool,
    references: Future,
) -> SubmissionResult:
    """Grade one student's folder; never raises for anything the student did.

    ``references`` (learnt from the instructor's solution, ``autograder.grading.references``) may
    still be computing in a sandbox of its own: it is needed only to score, after this
    submission has run.
    """
    started = time.monotonic()
    names = sorted({name for name, _ in templates})
    result = SubmissionResult(student=student, assignment=assignment, status="graded")
    files = {p.stem: p for p in folder.glob("*.ipynb")}
    problems = []
    for name in names:
        path = files.get(name)
        if path is None and len(names) == 1 and len(files) == 1:
            (path,) = files.values()
            result.notices.append(f"the notebook file was renamed: graded as {name}.ipynb")
        langs = {lang for n, lang in templates if n == name}
        blank = templates[(name, sorted(langs)[0])]
        if path is None:
            problems.append(f"{name}.ipynb is missing")
            result.cells[name] = _zero(blank, "missing")
            continue
        try:
            submitted = load(path)
            lang = detect_language(submitted)
            template = templates[(name, lang)]
            assembled = assemble(template, submitted)
        except InvalidSubmission as error:
            problems.append(f"{name}.ipynb: {error}")
            result.cells[name] = _zero(blank, "invalid")
            continue
        result.language = lang
        result.notices += assembled.notices
        run = run_in_sandbox(pool, assembled.nb, limits)
        if run.stopped:
            why = stop_reason(run.stopped, "en")
            result.notices.append(f"{name}: stopped at cell {run.stopped_at}: {why}")
        if run.restored:
            result.notices.append(
                f"{name}: the notebook changed {run.restored} library attribute(s); put back for the tests"
            )
        result.cells[name] = score_run(run, template, assembled, ignore_pattern, references.result()[name])
        result.executed[name] = run.nb
    if problems:
        result.status, result.reason = "error", "; ".join(problems)
    result.seconds = round(time.monotonic() - started, 2)
    return result


def _zero(template: Template, why: str) -> list[CellResult]:
    return [
        CellResult(
            c.grade_id, c.kind, c.exercise, c.points, 0.0, False if c.kind == "test" else None, why, c.hidden
        )
        for c in template.grade_cells
    ]


def load_templates(course_dir: Path, assignment: str) -> dict[tuple[str, str], Template]:
    sources = sorted((course_dir / "source" / assignment).glob("*.ipynb"))
    if not sources:
        raise AssignmentUnknown(f"no notebooks in source/{assignment}/: is the assignment name right?")
    return {(p.stem, lang): build_template(p, lang) for p in sources for lang in LANGUAGES}


def open_gradebook(db_url: str, attempts: int = 5):
    """nbgrader's Gradebook at ``db_url``. Two graders opening an empty server database at once
    both create nbgrader's schema, and one of them fails (a unique-key error): it tries again."""
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


def record(gb, result: SubmissionResult, allow_unknown: bool) -> None:
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


def write_result(course_dir: Path, result: SubmissionResult) -> None:
    folder = course_dir / "autograded" / result.student / result.assignment
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in result.executed.items():
        _atomic_write(folder / f"{name}.ipynb", notebooks.writes(nb))
    _atomic_write(folder / RESULT_FILE, result.to_json())


def read_result(course_dir: Path, student: str, assignment: str) -> SubmissionResult | None:
    path = course_dir / "autograded" / student / assignment / RESULT_FILE
    return SubmissionResult.from_json(path.read_text(encoding="utf-8")) if path.is_file() else None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def grade_assignment(
    course_dir: Path,
    assignment: str,
    *,
    student: str | None = None,
    workers: int | None = None,
    force: bool = False,
    allow_unknown: bool = True,
    limits: Limits = DEFAULT_LIMITS,
    db_url: str | None = None,
    progress: Callable[[int, int, SubmissionResult | None], None] | None = None,
    unsafe: bool = False,
    sandboxes: WorkerPool | None = None,
    reference_worker=None,
) -> Batch:
    """Grade every submission of ``assignment`` (or one student's) into the gradebook.

    Student code runs in bubblewrap sandboxes; without bubblewrap this raises
    SandboxUnavailable unless ``unsafe`` is set, which every result then records.
    Pass ``sandboxes`` to share started workers between assignments, and ``reference_worker``
    (a sandbox for the instructor's notebook only) to keep one for reference runs.

    The gradebook (nbgrader: seconds to import) is opened beside the first jobs: results
    are shown as they come, and stored (``result.json``, then the gradebook) as soon as
    it is open. A submission whose ``result.json`` says it was graded from the same files
    is skipped, unless the gradebook does not hold that result (a run stopped between
    the two writes, or another tool wrote the gradebook): then it is graded again.
    """
    course_dir = Path(course_dir).resolve()
    if not unsafe and sandboxes is None:
        check_available()
    config = load_config(course_dir)
    db_url = gradebook_url(config, course_dir, db_url)
    ignore_pattern = config.IgnorePattern.pattern if config.IgnorePattern.get("enabled", False) else ""
    templates = load_templates(course_dir, assignment)
    batch = Batch()
    folders = submission_paths(course_dir, assignment, student)
    entries = {name: (folder, digest(folder, templates)) for name, folder in folders.items()}
    todo: list[str] = []
    unverified: dict[str, SubmissionResult] = {}  # skipped by result.json; the gradebook checks them
    for name, (_, key) in entries.items():
        previous = None if force else read_result(course_dir, name, assignment)
        if previous is not None and previous.digest == key:
            unverified[name] = previous
        else:
            todo.append(name)
    size = len(sandboxes.workers) if sandboxes else max(1, min(workers or os.cpu_count() or 1, len(folders)))
    jobs = Jobs(
        course_dir, assignment, templates, ignore_pattern, limits, unsafe, entries, batch, size, sandboxes
    )
    jobs.reference_worker = reference_worker
    try:
        with ThreadPoolExecutor(size + 2) as pool:

            def opening() -> Future:
                return pool.submit(_open_gradebook, course_dir, assignment, db_url, list(folders.values()))

            if not allow_unknown:  # the roster decides who is graded at all
                opening = opening()
                roster = opening.result()[0]
                for name in [n for n in [*todo, *unverified] if n not in roster]:
                    if name in todo:
                        todo.remove(name)
                    unverified.pop(name, None)
                    batch.refused.append(name)
            jobs.run(pool, todo, unverified, opening, db_url, allow_unknown, progress)
    finally:
        if jobs.own_pool:
            jobs.sandboxes.close()
    return batch


def _open_gradebook(course_dir: Path, assignment: str, db_url: str, folders: list[Path]):
    """In a thread of its own: nbgrader's import, the assignment's rows, the roster, and the
    submission times (parsed as the gradebook parses them). ``(roster, {folder: (time, notice)})``."""
    ensure_assignment_in_gradebook(course_dir, assignment, db_url)
    with open_gradebook(db_url) as gb:
        roster = {s.id for s in gb.students}
    return roster, {folder: submission_time(folder) for folder in folders}


@dataclass
class Jobs:
    """One assignment's grading jobs: submitted to the sandboxes, shown as they finish, stored
    (``result.json``, then the gradebook) by the calling thread only, one at a time."""

    course_dir: Path
    assignment: str
    templates: dict
    ignore_pattern: str
    limits: Limits
    unsafe: bool
    entries: dict[str, tuple[Path, str]]  # student -> (folder, digest of the files)
    batch: Batch
    size: int  # sandboxes
    sandboxes: WorkerPool | None = None  # started here, at the first job, if not given
    own_pool: bool = False
    reference_worker: object = None  # a sandbox kept for reference runs (autograder.grading.references)

    def run(self, pool, todo, unverified, opening, db_url, allow_unknown, progress) -> None:
        """``opening``: the gradebook's future, or a function that submits it; then it is submitted
        once the first result is shown (or at once with nothing to run), so that nbgrader's
        import does not compete with the first job for the CPU."""
        queue, total = list(todo), len(todo)
        pending: dict[Future, str] = {}
        shown: list[SubmissionResult] = []  # shown, not yet stored
        references = None
        gb = None

        def submit_next() -> None:
            nonlocal references
            if references is None:  # learnt once per assignment version (autograder.grading.references)
                args = (self.course_dir, self.assignment, self.templates, self.limits, self.unsafe)
                references = pool.submit(ensure, *args, self.reference_worker)
            if queue and len(pending) < self.size:
                if self.sandboxes is None:
                    self.sandboxes = WorkerPool(self.size, unsafe=self.unsafe, limits=self.limits)
                    self.own_pool = True
                name = queue.pop(0)
                args = (name, self.assignment, self.entries[name][0], self.templates, self.ignore_pattern)
                pending[pool.submit(grade_one, *args, self.limits, self.sandboxes, references)] = name

        if progress:
            progress(0, total, None)
        for _ in queue[: self.size]:
            submit_next()
        try:
            while pending or unverified or shown:
                watched = [*pending]
                watched += [] if references is None or references.done() else [references]
                if callable(opening) and (shown or not pending):
                    opening = opening()
                watched += [] if callable(opening) or opening.done() else [opening]
                wait(watched, return_when=FIRST_COMPLETED)
                if references is not None and references.done() and references.exception() is not None:
                    raise references.exception()
                for future in [f for f in pending if f.done()]:
                    name = pending.pop(future)
                    result = _finished(
                        future, name, self.assignment, self.entries[name], self.unsafe, self.batch
                    )
                    shown.append(result)
                    if progress:
                        progress(len(self.batch.results) + len(shown), total, result)
                    submit_next()
                if callable(opening) or not opening.done():
                    continue  # results are shown; they are stored once the gradebook is open
                roster, stamps = opening.result()
                if gb is None:
                    gb = open_gradebook(db_url)
                for name, previous in list(unverified.items()):
                    del unverified[name]
                    if _recorded_same(gb, previous):
                        self.batch.skipped.append(name)
                    else:  # result.json and the gradebook disagree: graded again, and said so
                        self.batch.regraded.append(name)
                        queue.append(name)
                        total += 1
                        submit_next()
                while shown:
                    result = shown.pop(0)
                    self._store(result, roster, stamps, gb, allow_unknown)
            if callable(opening):  # nothing was submitted: the assignment is still registered
                opening().result()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        finally:
            if gb is not None:
                gb.close()

    def _store(self, result: SubmissionResult, roster: set, stamps: dict, gb, allow_unknown: bool) -> None:
        folder = self.entries[result.student][0]
        result.timestamp, stamp_notice = stamps.get(folder) or submission_time(folder)
        if stamp_notice:
            result.notices.append(stamp_notice)
        if result.student not in roster and result.student not in self.batch.added:
            result.instructor_notes.append(
                f"student {result.student} was not on the roster and has been added"
            )
            self.batch.added.append(result.student)
        _write_safely(self.course_dir, result, self.batch)
        record(gb, result, allow_unknown)
        self.batch.results.append(result)


def _finished(
    future: Future, name: str, assignment: str, entry: tuple[Path, str], unsafe: bool, batch: Batch
) -> SubmissionResult:
    """The result of a grading job, stamped with what identifies the submission."""
    folder, key = entry
    try:
        result = future.result()
    except PoolLost:  # not about this student: the command stops, and the next run goes on
        raise
    except Exception as error:  # a bug of the grader: this student gets a result all the same
        result = SubmissionResult(student=name, assignment=assignment, status="error")
        log = _log_grader_error(folder, name, assignment, error)
        result.reason = f"grader error ({type(error).__name__}); the traceback is in {log}; please report it"
        batch.grader_errors += 1
    result.digest, result.unsafe = key, unsafe
    if unsafe:
        result.notices.append("graded WITHOUT a sandbox (--unsafe-no-sandbox)")
    return result


def _write_safely(course_dir: Path, result: SubmissionResult, batch: Batch) -> None:
    """Write the result; if the executed notebook cannot be written, the result without it."""
    try:
        write_result(course_dir, result)
    except Exception as error:  # a grader bug on this student's files: the batch goes on
        folder = course_dir / "submitted" / result.student / result.assignment
        log = _log_grader_error(folder, result.student, result.assignment, error)
        result.executed = {}
        result.instructor_notes.append(f"the graded notebook could not be written (see {log})")
        batch.grader_errors += 1
        write_result(course_dir, result)


def _log_grader_error(folder: Path, student: str, assignment: str, error: Exception) -> str:
    """Write the traceback where the instructor finds it (never into a result a student sees)."""
    import traceback

    course_dir = folder.parents[2]
    target = course_dir / "autograded" / student / assignment / "grader-error.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(traceback.format_exception(error))
    target.write_text(text.encode("utf-8", "replace").decode("utf-8"), encoding="utf-8")
    return str(target.relative_to(course_dir))


def _recorded_same(gb, result: SubmissionResult) -> bool:
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


def progress_bar(stream=None) -> Callable[[int, int, SubmissionResult | None], None]:
    """A one-line progress bar (a line per result when not on a terminal), on stderr by default."""
    started = time.monotonic()
    stream = stream or sys.stderr

    def show(done: int, total: int, result: SubmissionResult | None) -> None:
        elapsed = time.monotonic() - started
        if stream.isatty():
            width = 30
            filled = width * done // max(total, 1)
            stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}  {elapsed:5.0f} s")
            if done == total:
                stream.write("\n")
        elif result is not None:
            reason = textwrap.shorten(result.reason, width=100, placeholder=" …")
            status = f"{result.score:g}" if result.status == "graded" else f"error: {reason}"
            stream.write(f"[{done}/{total}] {result.student}: {status}  ({elapsed:.0f} s)\n")
        stream.flush()

    return show
