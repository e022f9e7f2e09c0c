"""Run notebooks in sandboxes: one bubblewrap sandbox per worker, one fresh process per notebook.

Each worker is a bubblewrap sandbox (``bwrap``) holding a zygote process that
has imported torch, NumPy, matplotlib and the course once. For every notebook
the zygote forks a child that runs the cells; afterwards every other process
in the sandbox is killed and its scratch folders are emptied. Inside: no
network, a read-only view of the Python environment and of the ``course`` and
``autograder`` packages only, a private ``/scratch`` and ``/tmp``; no view of
the gradebook, ``source/``, other submissions or anyone's home. When started
as root, each worker runs under its own unprivileged user id, so that process
limits hold; two graders on one machine never share a user id.

The grader owns the clock: a job that runs past its limits, or a sandbox that
stops answering (its zygote stopped or dead), is ended by killing the whole
sandbox, which is then started again. So is a sandbox whose zygote broke the
protocol or could not clean up after a job. Where the kernel lets this
process make memory cgroups, each sandbox gets one, so that one limit covers
every byte a job holds, tmpfs files included.
"""

import fcntl
import itertools
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder.grading import protocol

INSTALL_HINT = (
    "Grading runs student code inside a bubblewrap sandbox, and `bwrap` was not found or does not work here. "
    "Install it (Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora: `sudo dnf install bubblewrap`) "
    "and make sure unprivileged user namespaces are enabled. On macOS or Windows, grade on Linux "
    "(a VM or a container). To grade without isolation anyway, at your own risk, pass --unsafe-no-sandbox."
)
FIRST_WORKER_UID = 61000
WORKER_UIDS = 1000  # 61000 .. 61999, each held by one worker of one grader at a time
UID_LOCKS = (
    "/run/lock/autograder-uids"
    if os.path.isdir("/run/lock")
    else os.path.join(tempfile.gettempdir(), "autograder-uids")
)
FIRST_WORKER_HEAD_START_S = 5.0
STARTUP_SECONDS = 120
GRACE_SECONDS = 10.0  # the zygote's own timers fire first; the grader's end what they could not
TMPFS_BYTES = {"/tmp": 128 * 2**20, "/scratch": 256 * 2**20, "/dev/shm": 64 * 2**20}
ZYGOTE_ALLOWANCE_BYTES = 1 * 2**30  # what the zygote itself holds (torch, NumPy, matplotlib loaded)


class SandboxUnavailable(RuntimeError):
    """No sandbox can be made on this machine."""


class PoolLost(RuntimeError):
    """The machines that run the sandboxes went away (a Dask scheduler): the run stops, and
    running it again grades what is left."""


@dataclass(frozen=True)
class Limits:
    cell_seconds: float = 60.0
    notebook_seconds: float = 300.0
    memory_bytes: int = 2 * 2**30  # on top of what the preloaded libraries take
    processes: int = 256  # threads count too
    file_bytes: int = 64 * 2**20
    output_bytes: int = 64 * 2**20


DEFAULT_LIMITS = Limits()


@dataclass
class RunEvents:
    """What one notebook run reported, cell by cell (checked against ``autograder.grading.protocol``)."""

    outputs: dict[int, list[dict]] = field(default_factory=dict)
    reports: dict[int, list[dict]] = field(default_factory=dict)  # graded mode: values the checks got
    references: dict[int, list[dict]] = field(default_factory=dict)  # reference mode: expected values
    started: list[int] = field(default_factory=list)
    stopped: str | None = None  # a reason code of protocol.STOP_REASONS
    stopped_at: int | None = None
    restored: int = 0  # library attributes the notebook changed, put back before tests


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def _read_only_paths() -> list[str]:
    """What the sandbox may read: the system, the Python installation, the two packages."""
    from importlib.util import find_spec  # where the packages are, without importing them (torch)

    paths = ["/usr", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives"]
    paths += [sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))]
    paths += [os.path.dirname(find_spec(package).origin) for package in ("autograder", "course")]
    paths += [p for p in sys.path if p.endswith("site-packages")]
    seen, unique = set(), []
    for path in paths:
        real = os.path.realpath(path)
        if os.path.exists(real) and real not in seen:
            seen.add(real)
            unique.append(real)
    return unique


def _reachable_by_anyone(path: str) -> bool:
    """Whether a user with no special rights can reach and read ``path``."""
    current = os.path.realpath(path)
    if not os.stat(current).st_mode & stat.S_IROTH:
        return False
    while current != "/":
        current = os.path.dirname(current)
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return False
    return True


def sandbox_command(
    uid: int, program: list[str] | None = None, staging: str | None = None, cgroup: str | None = None
) -> list[str]:
    """The command that starts a sandbox running ``program`` (default: the zygote) as ``uid`` when root.

    As root, the worker runs under an unprivileged uid of its own (root's processes ignore
    process limits). Paths that uid cannot reach (a Python under /root) are first bound,
    in a private mount namespace, to folders under ``staging`` that it can.
    """
    program = program or [sys.executable, "-I", "-m", "autograder.grading.sandbox.zygote"]
    as_root = (
        os.geteuid() == 0 and shutil.which("setpriv") is not None and shutil.which("unshare") is not None
    )
    prefix, binds = [], []
    for number, path in enumerate(_read_only_paths()):
        if as_root and not _reachable_by_anyone(path):
            if staging is None:
                raise SandboxUnavailable(f"{path} needs a staging folder to be bound for the worker")
            stage = os.path.join(staging, str(number))
            os.makedirs(stage, exist_ok=True)
            os.chmod(stage, 0o755)
            prefix += [path, stage]
            binds += ["--ro-bind", stage, path]
        else:
            binds += ["--ro-bind", path, path]
    command = []
    if cgroup:  # join the sandbox's memory cgroup first, so that everything started after is in it
        command += ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup]
    if prefix:
        script = (
            'while [ "$1" != "--" ]; do mount --bind "$1" "$2" || exit 111; shift 2; done; shift; exec "$@"'
        )
        command += ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh"]
        command += [*prefix, "--"]
    if as_root:
        command += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all"]
    command += [
        bwrap_path() or "bwrap",
        "--unshare-all",
        "--unshare-user",
        "--die-with-parent",
        "--new-session",
    ]
    command += ["--disable-userns", "--cap-drop", "ALL", "--proc", "/proc", "--dev", "/dev", "--clearenv"]
    for link, target in (
        ("/bin", "usr/bin"),
        ("/lib", "usr/lib"),
        ("/lib64", "usr/lib64"),
        ("/sbin", "usr/sbin"),
    ):
        if os.path.islink(link):
            command += ["--symlink", target, link]
    # The private /tmp first: read-only binds below it (a course cloned under /tmp) stay visible.
    command += ["--size", str(TMPFS_BYTES["/tmp"]), "--tmpfs", "/tmp"]
    command += ["--size", str(TMPFS_BYTES["/scratch"]), "--tmpfs", "/scratch"]
    command += ["--size", str(TMPFS_BYTES["/dev/shm"]), "--tmpfs", "/dev/shm"]
    command += binds
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/scratch",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "OMP_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "COURSE_DEVICE": os.environ.get("COURSE_DEVICE", "cpu"),
        "LANG": "C.UTF-8",
        "GRADER_SANDBOXED": "1",
    }
    for name, value in environment.items():
        command += ["--setenv", name, value]
    command += ["--chdir", "/scratch", "--", *program]
    return command


def unsafe_command(python: str = sys.executable) -> list[str]:
    return [python, "-m", "autograder.grading.sandbox.zygote"]


def check_available() -> None:
    """Raise SandboxUnavailable, saying how to fix it, unless bubblewrap is here.

    Whether it works (user namespaces may be off) shows when a worker starts; then
    ``probe()`` says why."""
    if platform.system() != "Linux":
        raise SandboxUnavailable(f"{platform.system()} has no bubblewrap. {INSTALL_HINT}")
    if bwrap_path() is None:
        raise SandboxUnavailable(INSTALL_HINT)


STAGE_PREFIX = "grader-stage-"
_swept = threading.Event()


def staging_folder() -> str:
    """A folder for a worker's mount points, named after this process, so that the folders of
    graders that were killed (and could not remove theirs) are removed by the next one."""
    if not _swept.is_set():
        _swept.set()
        for folder in Path(tempfile.gettempdir()).glob(STAGE_PREFIX + "*-*"):
            pid = folder.name[len(STAGE_PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def probe() -> str:
    """bwrap's own complaint when a sandbox cannot be made here ('' when it can)."""
    staging = staging_folder()
    os.chmod(staging, 0o755)
    try:
        command = sandbox_command(FIRST_WORKER_UID, ["/bin/true"], staging=staging)
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return "" if done.returncode == 0 else done.stderr.strip()[:300]


class UidLease:
    """A worker user id that no other worker on this machine holds (a lock file per id)."""

    def __init__(self):
        os.makedirs(UID_LOCKS, mode=0o755, exist_ok=True)
        for uid in range(FIRST_WORKER_UID, FIRST_WORKER_UID + WORKER_UIDS):
            handle = open(os.path.join(UID_LOCKS, str(uid)), "a")  # held while the lease lives
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self.uid, self.handle = uid, handle
            return
        raise SandboxUnavailable(f"all {WORKER_UIDS} worker user ids are in use by other graders")

    def release(self) -> None:
        self.handle.close()


class MemoryCgroup:
    """A memory cgroup for one sandbox, where this process may make one (cgroup v2 or v1)."""

    def __init__(self, path: str, limit_file: str, events_file: str):
        self.path, self.limit_file, self.events_file = path, limit_file, events_file

    @classmethod
    def make(cls, name: str, limit_bytes: int) -> "MemoryCgroup | None":
        for parent, limit_file, events_file in _cgroup_parents():
            group = cls(os.path.join(parent, name), limit_file, events_file)
            try:
                os.makedirs(group.path, exist_ok=True)
            except OSError:
                continue
            if group.limit(limit_bytes):
                return group
            group.remove()
        return None

    def usage(self) -> int:
        name = "memory.current" if self.limit_file == "memory.max" else "memory.usage_in_bytes"
        try:
            with open(os.path.join(self.path, name)) as usage:
                return int(usage.read().strip())
        except (OSError, ValueError):
            return ZYGOTE_ALLOWANCE_BYTES

    def limit(self, limit_bytes: int) -> bool:
        """Set the limit (and, on cgroup v1, the memory+swap limit with it); whether it was set."""
        files = [self.limit_file]
        swap = os.path.join(self.path, "memory.memsw.limit_in_bytes")
        if self.limit_file == "memory.limit_in_bytes" and os.path.exists(swap):
            # v1 wants memory+swap >= memory at every step: raise it first when growing
            current = self._read(self.limit_file)
            files = ["memory.memsw.limit_in_bytes", self.limit_file]
            if current is not None and limit_bytes < current:
                files.reverse()
        done = False
        for name in files:
            try:
                with open(os.path.join(self.path, name), "w") as limit:
                    limit.write(str(limit_bytes))
                done = done or name == self.limit_file
            except OSError:
                pass
        return done

    def _read(self, name: str) -> int | None:
        try:
            with open(os.path.join(self.path, name)) as value:
                return int(value.read().strip())
        except (OSError, ValueError):
            return None

    def oom_kills(self) -> int:
        try:
            with open(os.path.join(self.path, self.events_file)) as events:
                for line in events:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def remove(self) -> None:
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:  # processes still leaving it
                time.sleep(0.02)


def _cgroup_parents() -> list[tuple[str, str, str]]:
    """Where this process could make memory cgroups: (folder, limit file, events file)."""
    parents = []
    try:
        with open("/proc/self/cgroup") as own:
            lines = own.read().splitlines()
    except OSError:
        return parents
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                folder = root + path
                if os.path.exists(os.path.join(folder, "memory.max")) or _v2_memory(root + path):
                    parents.append((folder, "memory.max", "memory.events"))
        elif "memory" in controllers.split(","):
            parents.append(("/sys/fs/cgroup/memory" + path, "memory.limit_in_bytes", "memory.oom_control"))
    return [p for p in parents if os.access(p[0], os.W_OK)]


def _v2_memory(folder: str) -> bool:
    try:
        with open(os.path.join(folder, "cgroup.subtree_control")) as control:
            return "memory" in control.read().split()
    except OSError:
        return False


_JOBS = itertools.count(1)


class Worker:
    """One sandbox with its zygote; runs one notebook at a time, on the grader's clock."""

    def __init__(self, index: int, unsafe: bool = False, limits: Limits = DEFAULT_LIMITS):
        self.index, self.unsafe = index, unsafe
        self.process: subprocess.Popen | None = None
        self.reader: protocol.FrameReader | None = None
        self.ready = False
        self.spawned = threading.Event()
        self.started = threading.Event()  # its zygote said it is ready
        self.lock = threading.Lock()
        self.staging = staging_folder()
        os.chmod(self.staging, 0o755)
        self.lease = UidLease() if not unsafe and os.geteuid() == 0 else None
        self.cgroup: MemoryCgroup | None = None
        self.memory_limit = limits.memory_bytes
        self._alive = threading.Event()

    def spawn(self) -> None:
        """Start the sandbox without waiting for it to be ready.

        bwrap dies with the *thread* that started it (--die-with-parent), so each sandbox is
        started from a keeper thread of its own that lives until the sandbox is killed."""
        started, alive = threading.Event(), threading.Event()
        failure: list[BaseException] = []

        def keep() -> None:
            try:
                self._popen()
            except BaseException as error:  # raised again in the caller's thread
                failure.append(error)
            finally:
                started.set()
            alive.wait()

        self._alive = alive
        threading.Thread(target=keep, daemon=True, name=f"sandbox-{self.index}").start()
        started.wait()
        if failure:
            raise failure[0]

    def _popen(self) -> None:
        environment = None
        if self.unsafe:
            command = unsafe_command()
            environment = dict(
                os.environ, OMP_NUM_THREADS="1", MPLCONFIGDIR=os.environ.get("MPLCONFIGDIR", "/tmp")
            )
        else:
            if self.cgroup is None:
                name = f"autograder-{os.getpid()}-{self.index}-{id(self):x}"
                self.cgroup = MemoryCgroup.make(name, self.memory_limit + ZYGOTE_ALLOWANCE_BYTES)
            uid = self.lease.uid if self.lease else FIRST_WORKER_UID + self.index
            command = sandbox_command(
                uid, staging=self.staging, cgroup=self.cgroup.path if self.cgroup else None
            )
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=environment,
            start_new_session=True,
        )
        self.reader = protocol.FrameReader(self.process.stdout.fileno())
        self.ready = False
        self.spawned.set()

    def _start(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.spawn()
        if not self.ready:
            try:
                ready = protocol.check(
                    self.reader.read(time.monotonic() + STARTUP_SECONDS), None, frozenset({"ready"})
                )
            except (protocol.Timeout, protocol.Closed, protocol.ProtocolError):
                ready = None
            if ready is None:
                self.close()
                why = "" if self.unsafe else probe()
                raise SandboxUnavailable(
                    f"the sandboxed worker did not start ({why or 'no answer'}). {INSTALL_HINT}"
                )
            self.ready = True
            self.started.set()
            if self.cgroup is not None:  # from now on: what the zygote holds, plus the job's limit
                self.cgroup.limit(self.cgroup.usage() + self.memory_limit)

    def run(self, cells: list[dict], limits: Limits = DEFAULT_LIMITS, mode: str = "graded") -> RunEvents:
        """Run ``cells`` (dicts with index, kind 'code'/'test', source, grade_id) in a fresh child.

        Never waits past the job's limits (plus a grace): then the sandbox is killed."""
        self.spawned.wait()
        with self.lock:
            if limits.memory_bytes != self.memory_limit and not self.unsafe:
                self.memory_limit = limits.memory_bytes
                self._kill()
                self._drop_cgroup()
            if self.process is None or self.process.poll() is not None or not self.ready:
                self._start()
            job = next(_JOBS)
            events = RunEvents()
            oom_before = self.cgroup.oom_kills() if self.cgroup else 0
            broken = None
            try:
                self.process.stdin.write(
                    protocol.encode(
                        {"type": "job", "job": job, "mode": mode, "cells": cells, "limits": asdict(limits)}
                    )
                )
                self.process.stdin.flush()
                broken = self._collect(job, limits, events)
            except (BrokenPipeError, OSError):
                broken = "sandbox"
            if broken:
                self._kill()
                if self.cgroup and self.cgroup.oom_kills() > oom_before:
                    broken = "memory"
                if broken != "unclean" and (events.stopped is None or broken in ("memory", "protocol")):
                    events.stopped = broken
                    events.stopped_at = events.started[-1] if events.started else None
            elif events.stopped == "killed" and self.cgroup and self.cgroup.oom_kills() > oom_before:
                events.stopped = "memory"
            return events

    def _collect(self, job: int, limits: Limits, events: RunEvents) -> str | None:
        """Read the job's messages into ``events``; what broke the sandbox, or None.

        A cell cannot be silent longer than the cell limit (the zygote stops it), so a
        sandbox that says nothing for that long, plus a grace, is stuck, whatever it is
        doing."""
        started = time.monotonic()
        notebook_deadline = started + limits.notebook_seconds + GRACE_SECONDS
        silence = limits.cell_seconds + GRACE_SECONDS
        cell_deadline = started + silence
        allowed = protocol.FROM_ZYGOTE - {"ready"}
        while True:
            deadline = min(notebook_deadline, cell_deadline)
            try:
                message = protocol.check(self.reader.read(deadline), job, allowed)
            except protocol.Timeout:
                events.stopped = "notebook_time" if time.monotonic() >= notebook_deadline else "cell_time"
                events.stopped_at = events.started[-1] if events.started else None
                return "timeout"
            except protocol.Closed:
                return "sandbox"
            except protocol.ProtocolError:
                return "protocol"
            kind = message["type"]
            cell_deadline = time.monotonic() + silence
            if kind == "job_finished":
                return None if message["clean"] else "unclean"
            cell = message.get("cell")
            if kind == "cell_started":
                events.started.append(cell)
            elif kind == "cell_finished":
                events.outputs[cell] = message["outputs"]
            elif kind == "report":
                events.reports.setdefault(cell, []).append(message)
            elif kind == "reference":
                events.references.setdefault(cell, []).append(message)
            elif kind == "restored":
                events.restored += message["count"]
            elif kind == "stopped":
                events.stopped, events.stopped_at = message["reason"], message["cell"]
            if sum(len(r) for r in events.reports.values()) > 100_000:
                return "protocol"

    def _kill(self) -> None:
        """End the sandbox and everything in it, whatever state its zygote is in."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, 9)
        except OSError:
            pass
        try:
            self.process.kill()
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.process, self.reader, self.ready = None, None, False
        self._alive.set()  # its keeper thread may end

    def _drop_cgroup(self) -> None:
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None

    def close(self) -> None:
        self._kill()
        self._drop_cgroup()
        if self.lease is not None:
            self.lease.release()
            self.lease = None
        shutil.rmtree(self.staging, ignore_errors=True)  # empty mount points, unmounted with the sandbox


class WorkerPool:
    """``size`` workers handed out one at a time to grading threads."""

    def __init__(self, size: int, unsafe: bool = False, limits: Limits = DEFAULT_LIMITS):
        import queue

        self.workers = [Worker(i, unsafe, limits) for i in range(size)]
        self.free: queue.Queue[Worker] = queue.Queue()
        for worker in self.workers:
            self.free.put(worker)
        self._closing = threading.Event()
        threading.Thread(target=self._spawn_all, daemon=True).start()

    def _spawn_all(self) -> None:
        """Start the sandboxes (each imports torch once: seconds of CPU), the first with a
        head start so that the first results come early."""
        for number, worker in enumerate(self.workers):
            with worker.lock:
                if self._closing.is_set():
                    return
                worker.spawn()
            if number == 0 and len(self.workers) > 1:  # until it is ready, or its head start is over
                worker.started.wait(FIRST_WORKER_HEAD_START_S)

    def run(self, cells: list[dict], limits: Limits = DEFAULT_LIMITS, mode: str = "graded") -> RunEvents:
        worker = self.free.get()
        try:
            return worker.run(cells, limits, mode)
        finally:
            self.free.put(worker)

    def close(self) -> None:
        self._closing.set()
        for worker in self.workers:  # without the worker's lock: a run in progress is cut short
            worker.spawned.set()  # nobody waits for a sandbox that will not come
            worker.close()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
