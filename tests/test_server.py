"""The warm grading server: `autograder grade` starts it, later commands use it, it ends by itself.

Each test gets its own runtime folder (XDG_RUNTIME_DIR), so its servers are its own, and
stops them at the end whatever happened.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ASSIGNMENT, wait_for
from test_pipeline import EXPECTED, write_lms_folder

from autograder.collect import collect
from autograder.grading import server
from autograder.grading.lock import course_lock
from autograder.grading.results import read_result

pytestmark = [
    pytest.mark.slow,  # warm servers, each with its sandboxes, and grading commands as processes
    pytest.mark.skipif(
        server.os.geteuid() != 0 and not Path("/usr/bin/bwrap").exists(), reason="needs bubblewrap"
    ),
]


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    yield folder
    for info in (folder / "autograder").glob("*.json"):
        try:
            os.kill(int(__import__("json").loads(info.read_text())["pid"]), signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass


@pytest.fixture
def graded_class(toy_course, tmp_path):
    write_lms_folder(toy_course, tmp_path / "lms")
    collect(toy_course, ASSIGNMENT, tmp_path / "lms")
    return toy_course


def grade(course: Path, *extra: str, keep_warm: str = "60", **kwargs) -> subprocess.CompletedProcess:
    environment = dict(os.environ, AUTOGRADER_KEEP_WARM=keep_warm)
    command = [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, "--course-dir", str(course), *extra]
    return subprocess.run(command, capture_output=True, text=True, env=environment, **kwargs)


def scores(course: Path) -> dict:
    return {
        student: {c.grade_id: c.score for c in read_result(course, student, ASSIGNMENT).cells[ASSIGNMENT]}
        for student in EXPECTED
    }


def test_a_warm_server_grades_exactly_as_the_command_itself(graded_class, runtime, tmp_path):
    import shutil

    alone = tmp_path / "alone"
    shutil.copytree(graded_class, alone)
    done = grade(alone, keep_warm="0")
    assert done.returncode == 0, done.stderr
    assert server.servers(alone) == []  # --keep-warm 0: no server

    first = grade(graded_class)
    assert first.returncode == 0, first.stderr
    assert f"{len(EXPECTED)} graded" in first.stdout
    (running,) = server.servers(graded_class)
    assert scores(graded_class) == scores(alone) == EXPECTED

    again = grade(graded_class, "--student", "ann", "--force")
    assert again.returncode == 0 and "1 graded" in again.stdout, again.stderr
    assert server.servers(graded_class) == [running]  # the same server answered

    assert server.stop(graded_class) == 1
    assert server.servers(graded_class) == []
    assert not list((runtime / "autograder").glob("*.sock"))


def test_a_server_ends_after_its_idle_time(graded_class, runtime):
    done = grade(graded_class, keep_warm="1")
    assert done.returncode == 0, done.stderr
    assert wait_for(lambda: server.servers(graded_class) == [], 30)
    assert not list((runtime / "autograder").glob("*.sock"))


def test_ctrl_c_is_one_line_and_the_next_run_finishes(graded_class, runtime):
    slow = graded_class / "submitted" / "ann" / ASSIGNMENT / "toy.ipynb"  # the first job: 5 s (5 calls)
    slow.write_text(slow.read_text().replace("return x * x", "import time; time.sleep(1); return x * x"))
    environment = dict(os.environ, AUTOGRADER_KEEP_WARM="60")
    command = [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, "--course-dir", str(graded_class)]
    client = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        # Ctrl-C as on a terminal: a shell's background job (CI) starts with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # a first result is shown while ann's job still sleeps: the run is in progress
    first = client.stderr.readline()
    assert first.startswith("[1/"), first
    client.send_signal(signal.SIGINT)
    _, errors = client.communicate(timeout=60)
    assert client.returncode == 130, errors
    assert errors.strip().splitlines()[-1] == "interrupted; run the same command again to finish"

    finished = grade(graded_class, timeout=120)  # the server ends the interrupted run, then this one
    assert finished.returncode == 0, finished.stderr
    assert set(scores(graded_class)) == set(EXPECTED)


def test_a_second_grade_on_a_busy_course_is_refused(graded_class):
    with course_lock(graded_class):
        done = grade(graded_class, keep_warm="0")
    assert done.returncode == 2, done.stderr
    assert f"another `autograder grade` is running on this course (pid {os.getpid()})" in done.stderr
    assert read_result(graded_class, "ann", ASSIGNMENT) is None  # nothing was graded


def test_a_runtime_folder_others_can_open_is_not_used(graded_class, runtime):
    (runtime / "autograder").mkdir(mode=0o777)
    os.chmod(runtime / "autograder", 0o777)
    done = grade(graded_class)
    assert done.returncode == 0, done.stderr
    assert "is not a private folder of this user; remove it; grading in this process" in done.stderr
    assert scores(graded_class) == EXPECTED


def test_the_command_that_talks_to_a_server_imports_neither_torch_nor_nbgrader(graded_class, runtime):
    assert grade(graded_class).returncode == 0  # the server is up
    probe = (
        "import sys; from autograder import cli; status = cli.main(sys.argv[1:]); "
        "print(sorted(m for m in ('torch', 'nbgrader', 'nbformat') if m in sys.modules)); sys.exit(status)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "grade", ASSIGNMENT, "--course-dir", str(graded_class), "--force"],
        capture_output=True,
        text=True,
        env=dict(os.environ, AUTOGRADER_KEEP_WARM="60"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
