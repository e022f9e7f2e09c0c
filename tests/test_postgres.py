"""A gradebook in PostgreSQL (``--db postgresql://...``), against a real server.

The session starts its own PostgreSQL (Debian's ``postgresql`` package, which ``make test``
installs) in a temporary folder, on 127.0.0.1 and a free port, and stops it at the end.
"""

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ASSIGNMENT, NOTEBOOK
from test_pipeline import CLASS, EXPECTED, write_lms_folder

from autograder.cli import main as autograder
from autograder.collect import collect
from autograder.config import GradebookURLError, gradebook_url, load_config
from autograder.grading.grade import grade_assignment
from autograder.grading.lock import CourseBusy, course_lock
from autograder.grading.sandbox import WorkerPool
from autograder.release import release

pytestmark = pytest.mark.slow  # a PostgreSQL server of its own, and grading in sandboxes
ROOT = Path(__file__).resolve().parents[1]
SECOND = "toy_two"  # a second assignment: the toy one under another name


def _postgres_bin() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3].split(".")[0])
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """``postgresql://postgres@127.0.0.1:PORT``: a server of this session only (trust auth, no fsync)."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server (/usr/lib/postgresql/*/bin/initdb): make test installs it")
    base = Path(tempfile.mkdtemp(prefix="autograder-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: the `postgres` user runs it
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]

    def run(*command: str) -> None:
        done = subprocess.run([*as_user, *command], cwd=base, capture_output=True, text=True, timeout=60)
        if done.returncode:
            log = base / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
            raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}{tail}")

    data, sockets, port = base / "data", base / "sockets", _free_port()
    run("mkdir", str(sockets))
    run(
        str(bin_dir / "initdb"), "-D", str(data), "--username=postgres", "--auth=trust",
        "--encoding=UTF8", "--locale=C", "--no-sync",
    )  # fmt: skip
    options = f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c synchronous_commit=off"
    try:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-o", options, "-w",
            "-t", "60", "start")  # fmt: skip
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        with contextlib.suppress(Exception):
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_db(postgres_server) -> str:
    """A new, empty database on the session's server: ``postgresql://postgres@127.0.0.1:PORT/NAME``."""
    import psycopg

    name = f"gradebook_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as connection:
        # a new database on the server, before any gradebook exists: nothing the Gradebook API does
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres_server}/{name}"


def stored_scores(db_url: str, assignments: list[str]) -> dict:
    """``{(assignment, student, notebook, cell): (auto, manual, needs manual grade)}`` and the times."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(db_url) as gb:
        for assignment in assignments:
            for submission in gb.find_assignment(assignment).submissions:
                out[assignment, submission.student_id, "timestamp"] = submission.timestamp
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        key = (assignment, submission.student_id, notebook.name, grade.name)
                        out[key] = (grade.auto_score, grade.manual_score, grade.needs_manual_grade)
    return out


def collected(course: Path, tmp_path: Path, *assignments: str) -> Path:
    lms = tmp_path / "lms"
    write_lms_folder(course, lms)
    for assignment in assignments:
        report = collect(course, assignment, lms)
        assert sorted(report.collected) == sorted((s, NOTEBOOK) for s in CLASS)
    return course


def test_postgresql_urls_use_psycopg_3_and_other_text_is_one_line_error(toy_course):
    config = load_config(toy_course)
    url = gradebook_url(config, toy_course, "postgresql://grader@db.example:5433/course")
    assert url == "postgresql+psycopg://grader@db.example:5433/course"
    assert gradebook_url(config, toy_course, "postgres://grader:p%40ss@db/course") == (
        "postgresql+psycopg://grader:p%40ss@db/course"
    )
    assert gradebook_url(config, toy_course, "postgresql+psycopg2://g@db/c") == "postgresql+psycopg2://g@db/c"
    assert gradebook_url(config, toy_course) == f"sqlite:///{toy_course / 'gradebook.db'}"
    for wrong in ("gradebook.db", "/srv/gradebook.db", "https://user:secret@example.org/"):
        with pytest.raises(GradebookURLError) as error:
            gradebook_url(config, toy_course, wrong)
        assert "\n" not in str(error.value) and "not a database URL" in str(error.value)
        assert "secret" not in str(error.value)


def test_commands_take_postgres_urls_and_refuse_other_text_in_one_line(toy_course, postgres_db, capsys):
    course = ["--course-dir", str(toy_course)]
    alias = postgres_db.replace("postgresql://", "postgres://", 1)  # what PostgreSQL's own tools write
    assert autograder(["roster", "add", "ann", "--db", alias, *course]) == 0
    assert autograder(["roster", "list", "--db", postgres_db, *course]) == 0
    assert capsys.readouterr().out.splitlines() == ["added ann", "ann\t\t"]
    for verb in (["grade", ASSIGNMENT], ["feedback", ASSIGNMENT], ["export"], ["roster", "list"]):
        assert autograder([*verb, "--db", "gradebook.db", *course]) == 2, verb
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "is not a database URL" in error, (verb, error)


def test_a_server_gradebook_locks_each_assignment_and_sqlite_the_whole_course(toy_course, postgres_db):
    with course_lock(toy_course, [ASSIGNMENT], postgres_db):
        with course_lock(toy_course, [SECOND], postgres_db):
            pass  # another assignment: graded at the same time
        with pytest.raises(CourseBusy, match=ASSIGNMENT), course_lock(toy_course, [ASSIGNMENT], postgres_db):
            pass
    sqlite = gradebook_url(load_config(toy_course), toy_course)
    with course_lock(toy_course, [ASSIGNMENT], sqlite):
        with pytest.raises(CourseBusy, match="this course"), course_lock(toy_course, [SECOND], sqlite):
            pass


def test_postgresql_gradebook_holds_the_scores_and_exports_what_sqlite_does(
    toy_course, postgres_db, tmp_path
):
    collected(toy_course, tmp_path, ASSIGNMENT)
    twin = tmp_path / "twin"  # the same submissions (files and times), graded into SQLite
    shutil.copytree(toy_course, twin)
    with WorkerPool(2) as sandboxes:
        for course, db_url in ((toy_course, postgres_db), (twin, None)):
            batch = grade_assignment(course, ASSIGNMENT, db_url=db_url, unsafe=False, sandboxes=sandboxes)
            assert sorted(r.student for r in batch.results if r.status == "graded") == sorted(CLASS)

    in_postgres = stored_scores(postgres_db, [ASSIGNMENT])
    assert in_postgres == stored_scores(gradebook_url(load_config(twin), twin), [ASSIGNMENT])
    for student, cells in EXPECTED.items():
        for cell, score in cells.items():
            assert in_postgres[ASSIGNMENT, student, NOTEBOOK, cell][0] == score, (student, cell)

    for course, db in ((toy_course, ["--db", postgres_db]), (twin, [])):
        assert autograder(["export", "--course-dir", str(course), "--to", str(course / "out.csv"), *db]) == 0
    exported = (toy_course / "out.csv").read_text(encoding="utf-8")
    assert exported == (twin / "out.csv").read_text(encoding="utf-8")
    assert exported.count(f",{ASSIGNMENT},") == len(CLASS)


def test_graders_of_two_assignments_share_one_postgresql_database(toy_course, postgres_db, tmp_path):
    shutil.copytree(toy_course / "source" / ASSIGNMENT, toy_course / "source" / SECOND)
    release(toy_course)
    collected(toy_course, tmp_path, ASSIGNMENT, SECOND)
    # no roster first: both graders create the schema of an empty database and add the same
    # students at the same time

    env = os.environ | {"AUTOGRADER_KEEP_WARM": "0"}
    command = [sys.executable, "-m", "autograder", "grade", "--db", postgres_db, "--workers", "1"]
    graders = [
        subprocess.Popen(
            [*command, assignment, "--course-dir", str(toy_course)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for assignment in (ASSIGNMENT, SECOND)
    ]
    outputs = [grader.communicate(timeout=300)[0] for grader in graders]
    for grader, output in zip(graders, outputs, strict=True):
        assert grader.returncode == 0, output
        assert f"{len(CLASS)} graded, 0 could not be graded" in output, output

    stored = stored_scores(postgres_db, [ASSIGNMENT, SECOND])
    from nbgrader.api import Gradebook

    with Gradebook(gradebook_url(load_config(toy_course), toy_course, postgres_db)) as gb:
        assert sorted(s.id for s in gb.students) == sorted(CLASS)  # one row each
    for assignment in (ASSIGNMENT, SECOND):
        for student, cells in EXPECTED.items():
            for cell, score in cells.items():
                assert stored[assignment, student, NOTEBOOK, cell][0] == score, (assignment, student, cell)
