"""Grading on a Dask cluster of real processes: a `dask scheduler` and two `dask worker`s on
loopback, each worker with its own sandboxes. The scores must be the local ones, whatever
happens to a worker or the scheduler midway."""

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ASSIGNMENT, NOTEBOOK, wait_for
from nbgrader.api import Gradebook
from test_pipeline import EXPECTED, write_lms_folder

from autograder import notebooks
from autograder.collect import collect
from autograder.grading.results import read_result

pytestmark = pytest.mark.slow  # a Dask scheduler and workers, each worker with its sandboxes
DASK = Path(sys.executable).parent / "dask"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """A scheduler and ``workers`` workers (one thread, no nanny: a killed worker stays dead)."""

    def __init__(self, folder: Path, workers: int = 2):
        self.folder, self.processes = folder, []
        self.address = f"tcp://127.0.0.1:{free_port()}"
        port = self.address.rsplit(":", 1)[1]
        self.scheduler = self._start("scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard")
        for number in range(workers):
            self._start(f"worker-{number}", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard")
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(workers, timeout=60)

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        verb = "scheduler" if name == "scheduler" else "worker"
        with open(self.folder / f"{name}.log", "wb") as log:
            process = subprocess.Popen(
                [str(DASK), verb, *args], stdout=log, stderr=log, start_new_session=True
            )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def cluster(tmp_path):
    started = Cluster(tmp_path)
    yield started
    started.stop()


@pytest.fixture
def graded_class(toy_course, tmp_path):
    write_lms_folder(toy_course, tmp_path / "lms")
    collect(toy_course, ASSIGNMENT, tmp_path / "lms")
    return toy_course


def slow_down(course: Path, seconds: float) -> None:
    """Each student's first answer cell sleeps first: the runs last long enough to be cut."""
    for path in (course / "submitted").glob(f"*/{ASSIGNMENT}/{NOTEBOOK}.ipynb"):
        nb = notebooks.read(path)
        answer = next(c for c in nb.cells if notebooks.is_solution(c))
        answer.source = f"import time\ntime.sleep({seconds})\n" + answer.source
        notebooks.write(nb, path)


def grade(course: Path, address: str, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, "--course-dir", str(course)]
    return subprocess.Popen(
        [*command, "--cluster", address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def scores(course: Path) -> dict:
    return {
        student: {c.grade_id: c.score for c in read_result(course, student, ASSIGNMENT).cells[ASSIGNMENT]}
        for student in EXPECTED
    }


def submissions_in_gradebook(course: Path) -> list[str]:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return sorted(s.student_id for a in gb.assignments for s in a.submissions)


def test_a_cluster_grades_exactly_as_local_grading(graded_class, cluster):
    done = grade(graded_class, cluster.address)
    out, errors = done.communicate(timeout=300)
    assert done.returncode == 0, errors
    assert f"{len(EXPECTED)} graded" in out
    assert scores(graded_class) == EXPECTED  # the scores of local grading (tests/test_pipeline.py)


def test_a_worker_killed_midway_changes_no_score_and_duplicates_no_row(graded_class, cluster):
    from distributed import Client

    slow_down(graded_class, 2)
    command = grade(graded_class, cluster.address)
    with Client(cluster.address, timeout=30) as client:
        assert wait_for(lambda: any(client.processing().values()))
        busy = next(address for address, tasks in client.processing().items() if tasks)
        os.kill(client.run(os.getpid, workers=[busy])[busy], signal.SIGKILL)
    _, errors = command.communicate(timeout=300)
    assert command.returncode == 0, errors
    assert scores(graded_class) == EXPECTED
    assert submissions_in_gradebook(graded_class) == sorted(EXPECTED)


def test_a_lost_scheduler_stops_the_command_and_the_next_run_finishes(graded_class, cluster, tmp_path):
    from distributed import Client

    slow_down(graded_class, 2)
    command = grade(graded_class, cluster.address)
    with Client(cluster.address, timeout=30) as client:
        assert wait_for(lambda: any(client.processing().values()))
    os.killpg(cluster.scheduler.pid, signal.SIGKILL)
    _, errors = command.communicate(timeout=120)
    assert command.returncode == 2
    lost = f"error: the Dask scheduler at {cluster.address} went away; run the same command again"
    assert errors.strip().splitlines()[-1] == lost + " to grade the rest"
    cluster.stop()

    (tmp_path / "again").mkdir()
    again = Cluster(tmp_path / "again")
    try:
        finished = grade(graded_class, again.address)
        _, errors = finished.communicate(timeout=300)
    finally:
        again.stop()
    assert finished.returncode == 0, errors
    assert scores(graded_class) == EXPECTED
    assert submissions_in_gradebook(graded_class) == sorted(EXPECTED)


def test_without_a_cluster_dask_is_not_imported(graded_class):
    probe = (
        "import sys; from autograder import cli; status = cli.main(sys.argv[1:]); "
        "print('distributed' in sys.modules, 'dask' in sys.modules); sys.exit(status)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "grade", ASSIGNMENT, "--course-dir", str(graded_class)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False False"


def test_an_address_where_no_scheduler_answers_is_one_line(graded_class):
    address = f"tcp://127.0.0.1:{free_port()}"
    done = grade(graded_class, address)
    _, errors = done.communicate(timeout=120)
    assert done.returncode == 2
    assert errors.strip().splitlines()[-1].startswith(f"error: no Dask scheduler answers at {address}")
    assert shutil.which("true")  # the class was not touched
    assert read_result(graded_class, "ann", ASSIGNMENT) is None
