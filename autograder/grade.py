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

from nbgrader.api import Gradebook, MissingEntry

from autograder import LANGUAGES, notebooks
from autograder.config import gradebook_url, load_config
from autograder.messages import stop_reason
from autograder.references import ensure
from autograder.release import generate
from autograder.run import run_in_sandbox
from autograder.sandbox import DEFAULT_LIMITS, Limits, WorkerPool, check_available
from autograder.score import CellResult, score_run
from autograder.submission import InvalidSubmission, Template, assemble, build_template, detect_language, load

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

    def summary(self) -> str:
        graded = sum(r.status == "graded" for r in self.results)
        errors = [r for r in self.results if r.status == "error"]
        lines = [
            f"{graded} graded, {len(errors)} could not be graded, {len(self.skipped)} already up to date"
        ]
        lines += [f"  {r.student}: {r.reason}" for r in errors]
        if self.refused:
            lines.append(f"{len(self.refused)} refused (not on the roster): {', '.join(self.refused)}")
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

    ``references`` (learnt from the instructor's solution, ``autograder.references``) may
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


def ensure_assignment_in_gradebook(course_dir: Path, assignment: str, db_url: str) -> None:
    """Register the assignment (as `nbgrader generate_assignment` does) if the gradebook lacks it."""
    with Gradebook(db_url) as gb:
        try:
            if gb.find_assignment(assignment).notebooks:
                return
        except MissingEntry:
            pass
    with tempfile.TemporaryDirectory() as scratch:
        generate(course_dir, assignment, Path(scratch), db_url)


def record(gb: Gradebook, result: SubmissionResult, allow_unknown: bool) -> None:
    """Write one submission's scores into the gradebook, replacing any earlier ones."""
    try:
        gb.find_student(result.student)
    except MissingEntry:
        if not allow_unknown:
            raise
        gb.add_student(result.student)
    kwargs = {"timestamp": result.timestamp} if result.timestamp else {}
    gb.update_or_create_submission(result.assignment, result.student, **kwargs)
    for notebook, cells in result.cells.items():
        for cell in cells:
            grade = gb.find_grade(cell.grade_id, notebook, result.assignment, result.student)
            grade.auto_score = cell.score
            grade.needs_manual_grade = grade.manual_score is not None or cell.score is None
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
) -> Batch:
    """Grade every submission of ``assignment`` (or one student's) into the gradebook.

    Student code runs in bubblewrap sandboxes; without bubblewrap this raises
    SandboxUnavailable unless ``unsafe`` is set, which every result then records.
    Pass ``sandboxes`` to share started workers between assignments.
    """
    course_dir = Path(course_dir).resolve()
    if not unsafe and sandboxes is None:
        check_available()
    config = load_config(course_dir)
    db_url = db_url or gradebook_url(config, course_dir)
    ignore_pattern = config.IgnorePattern.pattern if config.IgnorePattern.get("enabled", False) else ""
    templates = load_templates(course_dir, assignment)
    ensure_assignment_in_gradebook(course_dir, assignment, db_url)
    batch = Batch()
    todo = {}
    with Gradebook(db_url) as gb:
        roster = {s.id for s in gb.students}
        for name, folder in submission_paths(course_dir, assignment, student).items():
            if name not in roster and not allow_unknown:
                batch.refused.append(name)
                continue
            key = digest(folder, templates)
            previous = read_result(course_dir, name, assignment)
            if not force and previous and previous.digest == key and _recorded(gb, assignment, name):
                batch.skipped.append(name)
                continue
            todo[name] = (folder, key)
    total = len(todo)
    if progress:
        progress(0, total, None)
    if not todo:
        return batch
    own_pool = sandboxes is None
    if own_pool:
        sandboxes = WorkerPool(
            max(1, min(workers or os.cpu_count() or 1, total)), unsafe=unsafe, limits=limits
        )
    workers = len(sandboxes.workers)
    try:
        with Gradebook(db_url) as gb, ThreadPoolExecutor(workers + 1) as pool:
            references = pool.submit(ensure, course_dir, assignment, templates, limits, unsafe)
            # Results are recorded here, in this thread only, one at a time as they arrive.
            pending: dict[Future, str] = {}
            queue = iter(todo.items())

            def submit_next() -> None:
                for name, (folder, _) in queue:
                    future = pool.submit(
                        grade_one,
                        name,
                        assignment,
                        folder,
                        templates,
                        ignore_pattern,
                        limits,
                        sandboxes,
                        references,
                    )
                    pending[future] = name
                    return

            for _ in range(workers):
                submit_next()
            try:
                while pending:
                    watched = [*pending] if references.done() else [*pending, references]
                    done, _ = wait(watched, return_when=FIRST_COMPLETED)
                    if references.done() and references.exception() is not None:
                        raise references.exception()
                    done = [f for f in done if f is not references]
                    for future in done:
                        name = pending.pop(future)
                        result = _finished(future, name, assignment, todo[name], unsafe, batch)
                        if name not in {s.id for s in gb.students}:
                            result.instructor_notes.append(
                                f"student {name} was not on the roster and has been added"
                            )
                            batch.added.append(name)
                        _write_safely(course_dir, result, batch)
                        record(gb, result, allow_unknown)
                        batch.results.append(result)
                        if progress:
                            progress(len(batch.results), total, result)
                        submit_next()
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
    finally:
        if own_pool:
            sandboxes.close()
    return batch


def _finished(
    future: Future, name: str, assignment: str, entry: tuple[Path, str], unsafe: bool, batch: Batch
) -> SubmissionResult:
    """The result of a grading job, stamped with what identifies the submission."""
    folder, key = entry
    try:
        result = future.result()
    except Exception as error:  # a bug of the grader: this student gets a result all the same
        result = SubmissionResult(student=name, assignment=assignment, status="error")
        log = _log_grader_error(folder, name, assignment, error)
        result.reason = f"grader error ({type(error).__name__}); the traceback is in {log}; please report it"
        batch.grader_errors += 1
    result.digest, result.unsafe = key, unsafe
    result.timestamp, stamp_notice = submission_time(folder)
    if stamp_notice:
        result.notices.append(stamp_notice)
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


def _recorded(gb: Gradebook, assignment: str, student: str) -> bool:
    try:
        submission = gb.find_submission(assignment, student)
    except MissingEntry:
        return False
    return all(
        g.auto_score is not None or g.cell.cell_type == "markdown"
        for nb in submission.notebooks
        for g in nb.grades
    )


def progress_bar(stream=sys.stderr) -> Callable[[int, int, SubmissionResult | None], None]:
    """A one-line progress bar (a line per result when not on a terminal)."""
    started = time.monotonic()

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
