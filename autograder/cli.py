"""The `autograder` command: a thin layer over the functions of each step."""

import argparse
import contextlib
import os
import sys
import textwrap
import time
from pathlib import Path


def _course_dir(args) -> Path:
    path = Path(args.course_dir).resolve()
    if not (path / "source").is_dir():
        sys.exit(f"error: {path} is not a course directory (no source/ folder); use --course-dir DIR")
    return path


class UnknownAssignment(SystemExit):
    """An assignment the course does not have: one line, exit status 2."""


def _check_assignments(course: Path, names: list[str]) -> None:
    from autograder.notebooks import assignments

    known = assignments(course)
    for name in names:
        if name not in known:
            print(
                f"error: no assignment {name!r} in {course / 'source'}; the assignments are: "
                f"{', '.join(known) or '(none)'}",
                file=sys.stderr,
            )
            raise UnknownAssignment(2)


def cmd_execute(args) -> int:
    from autograder import notebooks
    from autograder.execute import execute_in_place

    paths = [Path(p) for p in args.notebooks] or notebooks.source_notebooks(_course_dir(args))
    for path in paths:
        print(f"executing {path}", flush=True)
        execute_in_place(path)
    return 0


def cmd_release(args) -> int:
    from autograder.release import release

    for path in release(_course_dir(args)):
        print(f"wrote {path}")
    return 0


def cmd_student(args) -> int:
    from autograder.student import working_copy

    try:
        folder, copied = working_copy(_course_dir(args), args.language, Path(args.to) if args.to else None)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(copied)} new file(s) in {folder} (your earlier work there is kept)")
    print(f"open it with: .venv/bin/jupyter lab {folder}")
    return 0


def cmd_demo(args) -> int:
    from autograder.demo import run_demo

    return run_demo(
        _course_dir(args),
        Path(args.out) if args.out else None,
        n_students=args.students,
        only=args.assignment or None,
        workers=args.workers,
    )


def cmd_grade(args) -> int:
    """Grade through the course's warm server (started if needed), or here with --keep-warm 0."""
    course = _course_dir(args)
    _check_assignments(course, args.assignment)
    # no more sandboxes than submissions (each costs seconds of CPU to start), and none for none
    submitted = course / "submitted"
    students = [args.student] if args.student else os.listdir(submitted) if submitted.is_dir() else []
    count = sum((submitted / s / a).is_dir() for s in students for a in args.assignment)
    address = args.cluster or os.environ.get("AUTOGRADER_CLUSTER")
    try:
        if address and count:  # each notebook a Dask task; Dask is imported only here
            from autograder.grading.cluster import ClusterPool
            from autograder.grading.sandbox import PoolLost

            try:
                sandboxes = ClusterPool(address, args.workers, args.unsafe_no_sandbox)
            except PoolLost as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            try:
                return grade_with(args, course, sandboxes)
            finally:
                sandboxes.close()
        if args.keep_warm > 0 and count:
            from autograder.grading import server

            workers = args.workers or os.cpu_count() or 1
            try:
                client = server.connect_or_start(course, workers, args.unsafe_no_sandbox, args.keep_warm)
            except server.ServerUnavailable as error:
                print(f"note: {error}; grading in this process", file=sys.stderr)
            else:
                return server.request(client, [*args.argv, "--course-dir", str(course)])
        if not count:  # nothing submitted: said so, without starting a sandbox
            return grade_with(args, course, None)
        return _grade_here(args, course, min(args.workers or os.cpu_count() or 1, count))
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to finish", file=sys.stderr)
        return 130


def _grade_here(args, course: Path, workers: int) -> int:
    import threading

    from autograder.grading.sandbox import SandboxUnavailable, WorkerPool, check_available

    # The grader's own imports (nbgrader, torch: seconds) load while the sandboxes start.
    loading = threading.Thread(target=__import__, args=("autograder.grading.grade",), daemon=True)
    loading.start()
    try:
        if not args.unsafe_no_sandbox:
            check_available()
    except SandboxUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # started once the course is this command's: a refused command starts no sandbox
    return grade_with(
        args, course, lambda: WorkerPool(workers, unsafe=args.unsafe_no_sandbox), loading=loading
    )


def grade_with(args, course: Path, sandboxes, reference_worker=None, loading=None) -> int:
    """The `grade` command on ``sandboxes``: started ones (a warm server's, a cluster), None, or
    a function that starts them once the course is locked (closed at the end); ``loading``: a
    thread importing the grader, joined before its first use."""
    from autograder.config import GradebookURLError, gradebook_url, load_config
    from autograder.grading.lock import CourseBusy, course_lock
    from autograder.grading.sandbox import Limits, PoolLost, SandboxUnavailable

    limits = Limits(
        cell_seconds=args.cell_timeout,
        notebook_seconds=args.notebook_timeout,
        memory_bytes=int(args.memory_mb * 2**20),
        processes=args.processes,
        output_bytes=int(args.output_mb * 2**20),
    )
    failed = 0
    try:
        db_url = gradebook_url(load_config(course), course, args.db)
        with course_lock(course, args.assignment, db_url), contextlib.ExitStack() as started:
            if callable(sandboxes):
                sandboxes = started.enter_context(sandboxes())
            if loading is not None:
                loading.join()
            from autograder.grading.grade import grade_assignment

            for assignment in args.assignment:
                if len(args.assignment) > 1:
                    print(f"{assignment}:", flush=True)
                outcome = grade_assignment(
                    course,
                    assignment,
                    student=args.student,
                    force=args.force,
                    allow_unknown=not args.refuse_unknown,
                    limits=limits,
                    db_url=db_url,
                    progress=progress_bar(),
                    unsafe=args.unsafe_no_sandbox,
                    sandboxes=sandboxes,
                    reference_worker=reference_worker,
                )
                print(outcome.summary(), flush=True)
                if not outcome.results and not outcome.skipped and not outcome.refused:
                    print(
                        f"nothing to grade: submitted/<student>/{assignment}/ holds no submission"
                        + (f" of {args.student}" if args.student else "")
                        + f"; collect them first: autograder collect {assignment} --from DOWNLOAD.zip",
                        flush=True,
                    )
                failed += outcome.grader_errors
    except (SandboxUnavailable, CourseBusy, GradebookURLError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except PoolLost as error:
        print(f"error: {error}; run the same command again to grade the rest", file=sys.stderr)
        return 2
    except Exception as error:  # the lesson's own solution fails: nothing can be scored against it
        from autograder.grading.references import ReferenceFailed

        if not isinstance(error, ReferenceFailed):
            raise
        print(f"error: {error}; fix the lesson, then grade again", file=sys.stderr)
        return 2
    if failed:
        print(
            f"{failed} submission(s) hit a grader error: each got an error result and its traceback is in "
            "autograded/<student>/<assignment>/grader-error.txt",
            file=sys.stderr,
        )
    return min(failed, 100)  # the exit status is the number of grader errors (0: every submission graded)


def progress_bar(stream=None):
    """A ``progress`` callback for ``grade_assignment``: a one-line bar on a terminal, else a line
    per result; on stderr by default."""
    started = time.monotonic()
    stream = stream or sys.stderr

    def show(done: int, total: int, result) -> None:
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


def cmd_serve(args) -> int:
    from autograder.grading import server

    course = _course_dir(args)
    if args.stop:
        print(f"{server.stop(course)} grading server(s) of {course} stopped")
        return 0
    workers = args.workers or os.cpu_count() or 1
    return server.serve(course, workers, args.unsafe_no_sandbox, args.idle)


def cmd_collect(args) -> int:
    from autograder.collect import collect

    _check_assignments(_course_dir(args), [args.assignment])
    source = Path(args.source)
    if not source.exists():
        sys.exit(f"error: {source} does not exist: give a folder of submissions or a zip file")
    print(collect(_course_dir(args), args.assignment, source).summary())
    return 0


def cmd_feedback(args) -> int:
    from autograder.config import GradebookURLError
    from autograder.feedback import FEEDBACK_DIR, without_result, write_feedback

    course = _course_dir(args)
    _check_assignments(course, [args.assignment])
    try:
        pages = write_feedback(course, args.assignment, args.student, db_url=args.db)
    except GradebookURLError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(pages)} feedback page(s) in {FEEDBACK_DIR}/<student>/{args.assignment}/feedback.html")
    missing = without_result(course, args.assignment, args.student)
    if missing:
        print(
            f"{len(missing)} submission(s) have no autograder result for their files, so no page: "
            f"{', '.join(missing)} (not graded yet, resubmitted since, or their autograded/ folder was "
            f"replaced by a plain nbgrader autograde); run: autograder grade {args.assignment}",
            file=sys.stderr,
        )
    return 0


def cmd_export(args) -> int:
    from autograder.export import DEFAULT_FILES, export
    from autograder.roster import GradebookUnavailable

    course = _course_dir(args)
    target = Path(args.to) if args.to else course / DEFAULT_FILES[args.format]
    if target.is_dir():
        example = DEFAULT_FILES[args.format]
        print(f"error: {target} is a folder; give --to a file name, e.g. {example}", file=sys.stderr)
        return 2
    try:
        done = export(course, target, args.format, db_url=args.db)
    except GradebookUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        why = error.strerror or error
        print(f"error: cannot write {target} ({why}); choose another --to", file=sys.stderr)
        return 2
    what = {"csv": "row(s) (one per student and assignment)", "moodle": "student(s)", "canvas": "student(s)"}
    print(f"{done.rows} {what[args.format]} written to {target}")
    if done.left_out:
        print(
            f"{len(done.left_out)} student(s) left out, no email address on the roster: "
            f"{', '.join(done.left_out)}; add one with: autograder roster add ID --email ADDRESS",
            file=sys.stderr,
        )
    return 0


def cmd_report(args) -> int:
    from autograder.report import write_report

    course = _course_dir(args)
    page = write_report(course, Path(args.out) if args.out else course / "report")
    print(f"report: {page}")
    return 0


def cmd_roster(args) -> int:
    from autograder import roster

    course = _course_dir(args)
    try:
        if args.action == "import":
            done = roster.import_csv(course, Path(args.file), db_url=args.db)
            print(f"{len(done.added)} student(s) added, {len(done.updated)} updated")
        elif args.action == "add":
            fields = {"first_name": args.first_name, "last_name": args.last_name, "email": args.email}
            added = roster.add(course, args.id, db_url=args.db, **fields)
            print(f"{'added' if added else 'updated'} {args.id.strip()}")
        else:
            students = roster.students(course, db_url=args.db)
            for s in students:
                name = " ".join(filter(None, (s["first_name"], s["last_name"])))
                print("\t".join((s["id"], name, s["email"] or "")))
            print(f"{len(students)} student(s) on the roster", file=sys.stderr)
    except (roster.RosterError, roster.GradebookUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def server_idle_default() -> float:
    from autograder.grading.server import DEFAULT_IDLE_SECONDS

    return DEFAULT_IDLE_SECONDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autograder", description=__doc__)
    parser.add_argument("--course-dir", default=".", help="course directory (default: .)")
    # the same option after the verb (`autograder grade A --course-dir DIR`), listed in each verb's help
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--course-dir", default=argparse.SUPPRESS, help="course directory (default: .)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    add_parser = verbs.add_parser
    verbs.add_parser = lambda name, **kwargs: add_parser(name, parents=[where], **kwargs)

    execute = verbs.add_parser("execute", help="run source notebooks and store their outputs in place")
    execute.add_argument("notebooks", nargs="*", help="notebooks to run (default: all of source/)")
    execute.set_defaults(func=cmd_execute)

    release = verbs.add_parser("release", help="regenerate release/<lang>/ from source/ for every language")
    release.set_defaults(func=cmd_release)

    grade = verbs.add_parser("grade", help="grade every submission of an assignment into the gradebook")
    grade.add_argument("assignment", nargs="+", help="one or more assignments, graded in one run")
    grade.add_argument("--student", help="grade only this student")
    grade.add_argument(
        "--workers",
        type=int,
        help="parallel workers (default: one per core); with --cluster, sandboxes per Dask worker "
        "(default: its threads)",
    )
    grade.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="grade on a Dask cluster (tcp://host:8786; default $AUTOGRADER_CLUSTER): "
        "each notebook is a task, run in the workers' sandboxes",
    )
    grade.add_argument("--force", action="store_true", help="grade again even if already graded")
    grade.add_argument(
        "--refuse-unknown", action="store_true", help="do not grade students missing from the roster"
    )
    grade.add_argument("--cell-timeout", type=float, default=60, help="seconds per cell (default 60)")
    grade.add_argument(
        "--notebook-timeout", type=float, default=300, help="seconds per notebook (default 300)"
    )
    grade.add_argument("--memory-mb", type=float, default=2048, help="memory per notebook, MB (default 2048)")
    grade.add_argument(
        "--processes", type=int, default=256, help="processes and threads per notebook (default 256)"
    )
    grade.add_argument("--output-mb", type=float, default=64, help="output per notebook, MB (default 64)")
    grade.add_argument("--db", help="gradebook database URL (default: the course's, sqlite:///gradebook.db)")
    grade.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="run student code WITHOUT isolation (no bubblewrap); every result records it",
    )
    grade.add_argument(
        "--keep-warm",
        type=float,
        default=float(os.environ.get("AUTOGRADER_KEEP_WARM", server_idle_default())),
        metavar="SECONDS",
        help="grade through a server that keeps the sandboxes warm for the next command, and ends "
        "after SECONDS without one (default 600, or $AUTOGRADER_KEEP_WARM); 0: grade in this process",
    )
    grade.set_defaults(func=cmd_grade)

    serve = verbs.add_parser(
        "serve", help="keep sandboxes warm for the next grade commands (grade starts one by itself)"
    )
    serve.add_argument("--workers", type=int, help="parallel workers (default: one per core)")
    serve.add_argument("--idle", type=float, default=600, help="seconds without a command before it ends")
    serve.add_argument("--stop", action="store_true", help="stop the course's servers")
    serve.add_argument("--unsafe-no-sandbox", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)

    collect = verbs.add_parser("collect", help="copy submissions into submitted/<student>/<assignment>/")
    collect.add_argument("assignment")
    collect.add_argument(
        "--from", dest="source", required=True, help="folder of submissions or a zip (LMS download)"
    )
    collect.set_defaults(func=cmd_collect)

    feedback = verbs.add_parser("feedback", help="one HTML feedback page per graded student")
    feedback.add_argument("assignment")
    feedback.add_argument("--student", help="only this student")
    feedback.add_argument("--db", help="gradebook database URL (default: the course's)")
    feedback.set_defaults(func=cmd_feedback)

    export = verbs.add_parser("export", help="grades as CSV: a full table, or a file for Moodle or Canvas")
    export.add_argument(
        "--format",
        choices=["csv", "moodle", "canvas"],
        default="csv",
        help="csv: one row per student and assignment (default); moodle, canvas: one row per student",
    )
    export.add_argument(
        "--to",
        help="file to write (default: autograder-grades.csv, moodle-grades.csv or canvas-grades.csv)",
    )
    export.add_argument("--db", help="gradebook database URL (default: the course's)")
    export.set_defaults(func=cmd_export)

    roster = verbs.add_parser("roster", help="the students of the course: import a CSV, add one, list")
    roster_actions = roster.add_subparsers(dest="action", required=True)
    roster_import = roster_actions.add_parser(
        "import", help="add or update students from a CSV: id, first_name, last_name, email (a header row)"
    )
    roster_import.add_argument("file", help="CSV file; its first row names the columns")
    roster_add = roster_actions.add_parser("add", help="add a student, or update the fields given")
    roster_add.add_argument("id", help="the student's id (their folder in submitted/)")
    roster_add.add_argument("--first-name")
    roster_add.add_argument("--last-name")
    roster_add.add_argument("--email")
    roster_list = roster_actions.add_parser("list", help="every student: id, name, email (tab-separated)")
    for action in (roster_import, roster_add, roster_list):
        action.add_argument("--db", help="gradebook database URL (default: the course's)")
        action.add_argument("--course-dir", default=argparse.SUPPRESS, help="course directory (default: .)")
    roster.set_defaults(func=cmd_roster)

    report = verbs.add_parser("report", help="an HTML report with plots: where the class struggles")
    report.add_argument("--out", help="folder for report.html and its plots (default: report/)")
    report.set_defaults(func=cmd_report)

    student = verbs.add_parser(
        "student", help="a working copy of the lessons for a student (my-work/<lang>/)"
    )
    student.add_argument("--language", default="en", help="en or ru (default: en)")
    student.add_argument("--to", help="folder to copy to (default: my-work/<language>/)")
    student.set_defaults(func=cmd_student)

    demo = verbs.add_parser("demo", help="the whole instructor workflow on a synthetic class")
    demo.add_argument("--students", type=int, default=40, help="size of the class (default 40)")
    demo.add_argument("--out", help="folder for the demo's files (default: a new temporary folder)")
    demo.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    demo.add_argument("--workers", type=int, help="parallel workers (default: one per core)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return args.func(args)
