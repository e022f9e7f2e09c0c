"""The sandbox's limits, on one worker, without the rest of the pipeline.

Each test runs real jobs in a real bubblewrap sandbox: the grader's clock against a
stopped zygote, the memory limit against tmpfs files and forked children, a second job
against what the first one left behind, and the protocol against forged frames.
"""

import contextlib
import fcntl
import os
import shutil
import threading
import time

import pytest

from autograder.grading.sandbox import (
    GRACE_SECONDS,
    UID_LOCKS,
    Limits,
    MemoryCgroup,
    UidLease,
    Worker,
    _cgroup_parents,
)

pytestmark = [
    pytest.mark.slow,  # real sandboxes, each importing torch, and jobs that run into their limits
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]

LIMITS = Limits(cell_seconds=5, notebook_seconds=20, memory_bytes=1 * 2**30, processes=64)


@contextlib.contextmanager
def started(index: int, limits: Limits):
    """A sandbox of its own for one test, with ``limits``."""
    worker = Worker(index=index, limits=limits)
    try:
        worker.spawn()
        yield worker
    finally:
        worker.close()


@pytest.fixture(scope="module")
def worker():
    worker = Worker(index=0, limits=LIMITS)
    worker.spawn()
    yield worker
    worker.close()


def code(*sources: str) -> list[dict]:
    return [{"index": i, "kind": "code", "source": s, "grade_id": ""} for i, s in enumerate(sources)]


def printed(events, cell: int) -> str:
    return "".join(o.get("text", "") for o in events.outputs.get(cell, []) if o["output_type"] == "stream")


def test_a_plain_job_runs_and_reports(worker):
    test = {"index": 1, "kind": "test", "source": "__report__(0, 'scalar', x)", "grade_id": "t"}
    cells = [*code("x = 2 + 3\nprint(x)"), test]
    events = worker.run(cells, LIMITS)
    assert events.stopped is None
    assert printed(events, 0) == "5\n"
    assert [r["value"] for r in events.reports[1]] == [{"t": "number", "v": "5.0"}]


def test_the_grader_kills_a_stopped_zygote_on_its_own_clock(worker):
    started = time.monotonic()
    events = worker.run(
        code("import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\nwhile True: pass"), LIMITS
    )
    elapsed = time.monotonic() - started
    assert events.stopped == "cell_time"
    assert elapsed < LIMITS.cell_seconds + GRACE_SECONDS + 5
    again = worker.run(code("print('next')"), LIMITS)  # a fresh sandbox took the next job
    assert again.stopped is None and printed(again, 0) == "next\n"


def test_a_dead_zygote_ends_the_job_with_a_reason(worker):
    events = worker.run(
        code("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(30)"), LIMITS
    )
    assert events.stopped == "sandbox"
    assert worker.run(code("print(1)"), LIMITS).stopped is None


def test_forged_frames_of_another_job_end_the_job(worker):
    forged = (
        "import json, os\n"
        "body = json.dumps({'type': 'report', 'job': 2 ** 40, 'cell': 0, 'site': 0, 'kind': 'true',"
        " 'value': {'t': 'bool', 'v': True}}).encode()\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        os.write(fd, len(body).to_bytes(4, 'big') + body)\n"
        "    except OSError:\n"
        "        pass\n"
    )
    events = worker.run(code(forged, "print('after')"), LIMITS)
    assert events.stopped == "protocol"
    assert 1 not in events.outputs  # nothing after the bad message counts
    assert worker.run(code("print(1)"), LIMITS).stopped is None


def test_a_child_that_ends_itself_says_so(worker):
    events = worker.run(code("import os\nos._exit(0)", "print('never')"), LIMITS)
    assert events.stopped == "exited" and 1 not in events.outputs


def test_printed_lone_surrogates_come_back_as_writable_text(worker):
    events = worker.run(code("print('a\\ud800b')"), LIMITS)
    assert events.stopped is None
    printed(events, 0).encode("utf-8")


def test_nothing_survives_into_the_next_job(worker):
    look = (
        "import os\n"
        "print(sorted(n for d in ('/scratch', '/tmp', '/dev/shm') for n in os.listdir(d)))\n"
        "print(open('/proc/sysvipc/shm').read().strip().count('\\n'))\n"
        "mine = (1, os.getpid(), os.getppid())\n"
        "print(sorted(p for p in os.listdir('/proc') if p.isdigit() and int(p) not in mine))\n"
    )
    before = printed(worker.run(code(look), LIMITS), 0)  # what a fresh job sees (mount points included)
    leave = (
        "import os, subprocess, multiprocessing.shared_memory as sm\n"
        "for d in ('/scratch', '/tmp', '/dev/shm'):\n"
        "    os.makedirs(d + '/left/deep', exist_ok=True)\n"
        "    open(d + '/left/deep/x', 'w').write('x')\n"
        "    open(d + '/file', 'w').write('x')\n"
        "    os.chmod(d + '/left/deep', 0)\n"
        "    os.chmod(d + '/left', 0)\n"
        "keep = sm.SharedMemory(create=True, size=4096, name='leftover')\n"
        "subprocess.run(['ipcmk', '-M', '4096'], capture_output=True)\n"
        "subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
    )
    first = worker.run(code(leave), LIMITS)
    assert first.stopped is None, first.outputs
    after = printed(worker.run(code(look), LIMITS), 0)
    assert after == before
    assert before.splitlines()[1:] == ["0", "[]"] and "left" not in before


@pytest.mark.skipif(not _cgroup_parents(), reason="no memory cgroup can be made here")
def test_one_memory_limit_covers_forked_children():
    """Each process may map 3 GiB more (RLIMIT_AS), but the sandbox as a whole holds what the zygote
    holds plus 3 GiB: eight children of 1.2 GiB each cannot all live."""
    limits = Limits(cell_seconds=60, notebook_seconds=90, memory_bytes=3 * 2**30, processes=64)
    with started(1, limits) as worker:
        hog = (
            "import os, time\n"
            "children = []\n"
            "for _ in range(8):\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            "        block = b'x' * (1200 * 2**20)\n"
            "        time.sleep(15)\n"
            "        os._exit(0)\n"
            "    children.append(pid)\n"
            "killed = sum(os.WIFSIGNALED(os.waitpid(pid, 0)[1]) for pid in children)\n"
            "print(killed)\n"
        )
        events = worker.run(code(hog), limits)
        if events.stopped is None:
            assert int(printed(events, 0)) > 0  # the kernel killed children at the sandbox's limit
        else:
            assert events.stopped == "memory", events.stopped
        assert worker.run(code("print(1)"), limits).stopped is None


def test_tmpfs_files_count_against_a_limit():
    limits = Limits(cell_seconds=30, notebook_seconds=60, memory_bytes=512 * 2**20, processes=64)
    with started(2, limits) as worker:
        fill = (
            "written = 0\n"
            "try:\n"
            "    with open('/dev/shm/fill', 'wb') as f:\n"
            "        for _ in range(4096):\n"
            "            f.write(b'x' * 2**20)\n"
            "            written += 1\n"
            "except OSError:\n"
            "    pass\n"
            "print(written)\n"
        )
        events = worker.run(code(fill), limits)
        if events.stopped is None:
            assert int(printed(events, 0)) < 4096  # the tmpfs is full long before 4 GiB
        else:
            assert events.stopped == "memory"


@pytest.mark.skipif(os.geteuid() != 0, reason="worker user ids are leased only as root")
def test_two_graders_never_share_a_worker_uid():
    first, second = UidLease(), UidLease()
    try:
        assert first.uid != second.uid
        lock_file = os.path.join(UID_LOCKS, str(first.uid))
        with open(lock_file, "a") as other, pytest.raises(OSError):  # another grader cannot take it
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        first.release()
        with open(lock_file, "a") as other:  # given back, it can be leased again
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        second.release()


def test_a_memory_cgroup_is_removed_with_its_worker():
    if not _cgroup_parents():
        pytest.skip("no memory cgroup can be made here")
    group = MemoryCgroup.make(f"autograder-test-{os.getpid()}", 2**30)
    assert group is not None and os.path.isdir(group.path)
    group.remove()
    assert not os.path.exists(group.path)


def test_staging_folders_of_killed_graders_are_removed_by_the_next(tmp_path, monkeypatch):
    import subprocess
    import tempfile

    import autograder.grading.sandbox as sandbox

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that has ended
    stale = tmp_path / f"{sandbox.STAGE_PREFIX}{gone.pid}-abc"
    (stale / "0").mkdir(parents=True)
    live = tmp_path / f"{sandbox.STAGE_PREFIX}{os.getpid()}-def"
    live.mkdir()
    monkeypatch.setattr(sandbox, "_swept", threading.Event())
    mine = sandbox.staging_folder()
    assert not stale.exists() and live.exists() and os.path.isdir(mine)
