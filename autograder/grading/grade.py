"""Grade step: every submission of an assignment, in parallel, into results and the nbgrader gradebook.

Workers assemble and run submissions; only the main thread writes (``result.json``
and the run notebooks in ``autograded/<student>/<assignment>/``, then the gradebook),
one submission at a time, each write complete before the next. A run that is
interrupted can be started again: submissions whose result is already stored for
the same files are skipped, the rest are graded.
"""

import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from autograder.config import gradebook_url, load_config
from autograder.grading.gradebook import (
    open_gradebook,
    prepare_gradebook,
    recorded_same,
    submission_time,
    write_scores,
)
from autograder.grading.references import ensure
from autograder.grading.results import CellKind, CellResult, SubmissionResult, read_result, write_result
from autograder.grading.run import run_in_sandbox
from autograder.grading.sandbox import DEFAULT_LIMITS, Limits, PoolLost, WorkerPool, check_available
from autograder.grading.score import score_run
from autograder.grading.submission import (
    InvalidSubmission,
    SolvedNotebook,
    assemble,
    detect_language,
    digest,
    load,
    load_solved_notebooks,
    submission_paths,
)
from course.i18n import message

# done, total, and the result just shown (None for the first call, before any)
Progress = Callable[[int, int, SubmissionResult | None], None]


@dataclass
class AssignmentOutcome:
    """What grading one assignment did."""

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


def grade_one(
    student: str,
    assignment: str,
    folder: Path,
    solved: dict[tuple[str, str], SolvedNotebook],
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
    names = sorted({name for name, _ in solved})
    result = SubmissionResult(student=student, assignment=assignment, status="graded")
    files = {p.stem: p for p in folder.glob("*.ipynb")}
    problems = []
    for name in names:
        path = files.get(name)
        if path is None and len(names) == 1 and len(files) == 1:
            (path,) = files.values()
            result.notices.append(f"the notebook file was renamed: graded as {name}.ipynb")
        langs = {lang for n, lang in solved if n == name}
        blank = solved[(name, sorted(langs)[0])]
        if path is None:
            problems.append(f"{name}.ipynb is missing")
            result.cells[name] = _zero(blank, "missing")
            continue
        try:
            submitted = load(path)
            lang = detect_language(submitted)
            solution = solved[(name, lang)]
            assembled = assemble(solution, submitted)
        except InvalidSubmission as error:
            problems.append(f"{name}.ipynb: {error}")
            result.cells[name] = _zero(blank, "invalid")
            continue
        result.language = lang
        result.notices += assembled.notices
        run = run_in_sandbox(pool, assembled.nb, limits)
        if run.stopped:
            why = message(f"stop.{run.stopped}", "en")
            result.notices.append(f"{name}: stopped at cell {run.stopped_at}: {why}")
        if run.restored:
            result.notices.append(
                f"{name}: the notebook changed {run.restored} library attribute(s); put back for the tests"
            )
        result.cells[name] = score_run(run, solution, assembled, ignore_pattern, references.result()[name])
        result.executed[name] = run.nb
    if problems:
        result.status, result.reason = "error", "; ".join(problems)
    result.seconds = round(time.monotonic() - started, 2)
    return result


def _zero(solved: SolvedNotebook, why: str) -> list[CellResult]:
    return [
        CellResult(
            c.grade_id, c.kind, c.exercise, c.points, 0.0, False if c.kind == CellKind.TEST else None, why,
            c.hidden,
        )
        for c in solved.grade_cells
    ]  # fmt: skip


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
    progress: Progress | None = None,
    unsafe: bool = False,
    sandboxes: WorkerPool | None = None,
    reference_worker=None,
) -> AssignmentOutcome:
    """Grade every submission of ``assignment`` (or one student's) into the gradebook.

    Student code runs in bubblewrap sandboxes; without bubblewrap this raises
    SandboxUnavailable unless ``unsafe`` is set, which every result then records.
    Pass ``sandboxes`` to share started workers between assignments, and ``reference_worker``
    (a sandbox for the instructor's notebook only) to keep one for reference runs.
    ``progress`` is called before the first result and after each.

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
    solved = load_solved_notebooks(course_dir, assignment)
    folders = submission_paths(course_dir, assignment, student)
    size = len(sandboxes.workers) if sandboxes else max(1, min(workers or os.cpu_count() or 1, len(folders)))
    jobs = Jobs(
        course_dir=course_dir,
        assignment=assignment,
        solved=solved,
        ignore_pattern=ignore_pattern,
        limits=limits,
        unsafe=unsafe,
        db_url=db_url,
        entries={name: (folder, digest(folder, solved)) for name, folder in folders.items()},
        size=size,
        sandboxes=sandboxes,
        reference_worker=reference_worker,
    )
    todo: list[str] = []
    unverified: dict[str, SubmissionResult] = {}  # skipped by result.json; the gradebook checks them
    for name, (_, key) in jobs.entries.items():
        previous = None if force else read_result(course_dir, name, assignment)
        if previous is not None and previous.digest == key:
            unverified[name] = previous
        else:
            todo.append(name)
    try:
        jobs.run(todo, unverified, allow_unknown, progress or (lambda done, total, result: None))
    finally:
        if jobs.own_pool:
            jobs.sandboxes.close()
    return jobs.outcome


@dataclass
class Jobs:
    """One assignment's grading jobs, scheduled in three steps (``run``):

    1. submit every submission to the grading threads, as many as there are sandboxes
       (the others wait their turn in the executor's queue);
    2. handle each result as it completes: show it at once, then store it (``result.json``,
       then the gradebook) in the calling thread only, one at a time, once the gradebook is open;
    3. on an interrupt (or any error), cancel the jobs not started, and stop.

    Two threads aside make the instructor's references and the gradebook ready meanwhile.
    """

    course_dir: Path
    assignment: str
    solved: dict[tuple[str, str], SolvedNotebook]
    ignore_pattern: str
    limits: Limits
    unsafe: bool
    db_url: str
    entries: dict[str, tuple[Path, str]]  # student -> (folder, digest of the files)
    size: int  # sandboxes
    sandboxes: WorkerPool | None = None  # started here, at the first job, if not given
    reference_worker: object = None  # a sandbox kept for reference runs (autograder.grading.references)
    own_pool: bool = False
    outcome: AssignmentOutcome = field(default_factory=AssignmentOutcome)
    pending: dict[Future, str] = field(default_factory=dict)  # submitted, not yet handled
    references: Future | None = None  # learnt once per assignment version, at the first job
    opening: Future | None = None  # the gradebook made ready (gradebook.prepare_gradebook)
    total: int = 0  # submissions to grade, the ones graded again included
    graders: ThreadPoolExecutor = field(init=False)  # a thread per sandbox
    aside: ThreadPoolExecutor = field(init=False)  # the references and the gradebook

    def run(
        self,
        todo: list[str],
        unverified: dict[str, SubmissionResult],
        allow_unknown: bool,
        progress: Progress,
    ) -> None:
        """Grade ``todo``; check ``unverified`` (skipped by their ``result.json``) against the gradebook."""
        with ThreadPoolExecutor(2) as self.aside, ThreadPoolExecutor(self.size) as self.graders:
            if not allow_unknown:  # the roster decides who is graded at all
                roster = self._open_gradebook().result()[0]
                for name in [n for n in [*todo, *unverified] if n not in roster]:
                    if name in todo:
                        todo.remove(name)
                    unverified.pop(name, None)
                    self.outcome.refused.append(name)
            self.total = len(todo)
            progress(0, self.total, None)
            for name in todo:  # 1. submit everything
                self._submit(name)
            try:
                self._handle_as_completed(unverified, allow_unknown, progress)  # 2.
            except BaseException:  # 3. cancel on interrupt: the jobs not started never start
                for future in self.pending:
                    future.cancel()
                raise

    def _handle_as_completed(
        self, unverified: dict[str, SubmissionResult], allow_unknown: bool, progress: Progress
    ) -> None:
        shown: list[SubmissionResult] = []  # shown, not yet stored
        gb = None
        try:
            while self.pending or unverified or shown:
                # the gradebook is opened once a first result is shown (or at once with nothing to
                # run), so that nbgrader's import does not compete with the first job for the CPU
                if self.opening is None and (shown or not self.pending):
                    self._open_gradebook()
                aside = [f for f in (self.references, self.opening) if f is not None and not f.done()]
                wait([*self.pending, *aside], return_when=FIRST_COMPLETED)
                references = self.references
                if references is not None and references.done() and references.exception() is not None:
                    raise references.exception()  # the instructor's solution: nothing can be scored
                for future in [f for f in self.pending if f.done()]:
                    shown.append(self._finished(future, self.pending.pop(future)))
                    progress(len(self.outcome.results) + len(shown), self.total, shown[-1])
                if self.opening is None or not self.opening.done():
                    continue  # results are shown; they are stored once the gradebook is open
                roster, stamps = self.opening.result()
                if gb is None:
                    gb = open_gradebook(self.db_url)
                for name, previous in list(unverified.items()):
                    del unverified[name]
                    if recorded_same(gb, previous):
                        self.outcome.skipped.append(name)
                    else:  # result.json and the gradebook disagree: graded again, and said so
                        self.outcome.regraded.append(name)
                        self.total += 1
                        self._submit(name)
                while shown:
                    self._store(shown.pop(0), roster, stamps, gb, allow_unknown)
            if self.opening is None:  # nothing was submitted: the assignment is still registered
                self._open_gradebook().result()
        finally:
            if gb is not None:
                gb.close()

    def _submit(self, name: str) -> None:
        if self.references is None:
            args = (self.course_dir, self.assignment, self.solved, self.limits, self.unsafe)
            self.references = self.aside.submit(ensure, *args, self.reference_worker)
        if self.sandboxes is None:
            self.sandboxes = WorkerPool(self.size, unsafe=self.unsafe, limits=self.limits)
            self.own_pool = True
        args = (name, self.assignment, self.entries[name][0], self.solved, self.ignore_pattern)
        job = self.graders.submit(grade_one, *args, self.limits, self.sandboxes, self.references)
        self.pending[job] = name

    def _open_gradebook(self) -> Future:
        folders = [folder for folder, _ in self.entries.values()]
        args = (self.course_dir, self.assignment, self.db_url, folders)
        self.opening = self.aside.submit(prepare_gradebook, *args)
        return self.opening

    def _finished(self, future: Future, name: str) -> SubmissionResult:
        """The result of a grading job, stamped with what identifies the submission."""
        folder, key = self.entries[name]
        try:
            result = future.result()
        except PoolLost:  # not about this student: the command stops, and the next run goes on
            raise
        except Exception as error:  # a bug of the grader: this student gets a result all the same
            result = SubmissionResult(student=name, assignment=self.assignment, status="error")
            log = _log_grader_error(folder, name, self.assignment, error)
            result.reason = (
                f"grader error ({type(error).__name__}); the traceback is in {log}; please report it"
            )
            self.outcome.grader_errors += 1
        result.digest, result.unsafe = key, self.unsafe
        if self.unsafe:
            result.notices.append("graded WITHOUT a sandbox (--unsafe-no-sandbox)")
        return result

    def _store(self, result: SubmissionResult, roster: set, stamps: dict, gb, allow_unknown: bool) -> None:
        folder = self.entries[result.student][0]
        result.timestamp, stamp_notice = stamps.get(folder) or submission_time(folder)
        if stamp_notice:
            result.notices.append(stamp_notice)
        if result.student not in roster and result.student not in self.outcome.added:
            result.instructor_notes.append(
                f"student {result.student} was not on the roster and has been added"
            )
            self.outcome.added.append(result.student)
        self._write_safely(result)
        write_scores(gb, result, allow_unknown)
        self.outcome.results.append(result)

    def _write_safely(self, result: SubmissionResult) -> None:
        """Write the result; if the executed notebook cannot be written, the result without it."""
        try:
            write_result(self.course_dir, result)
        except Exception as error:  # a grader bug on this student's files: the others go on
            folder = self.course_dir / "submitted" / result.student / result.assignment
            log = _log_grader_error(folder, result.student, result.assignment, error)
            result.executed = {}
            result.instructor_notes.append(f"the graded notebook could not be written (see {log})")
            self.outcome.grader_errors += 1
            write_result(self.course_dir, result)


def _log_grader_error(folder: Path, student: str, assignment: str, error: Exception) -> str:
    """Write the traceback where the instructor finds it (never into a result a student sees)."""
    course_dir = folder.parents[2]
    target = course_dir / "autograded" / student / assignment / "grader-error.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(traceback.format_exception(error))
    target.write_text(text.encode("utf-8", "replace").decode("utf-8"), encoding="utf-8")
    return str(target.relative_to(course_dir))
