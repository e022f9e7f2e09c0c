"""Run notebooks in sandboxes: one bubblewrap sandbox per worker, one fresh process per notebook.

Each worker is a bubblewrap sandbox (``bwrap``) holding a zygote process that
has imported torch, NumPy, matplotlib and the course once. For every notebook
the zygote forks a child that runs the cells; afterwards every other process
in the sandbox is killed and its scratch folders are emptied. Inside: no
network, a read-only view of the Python environment and of the ``course`` and
``autograder`` packages only, a private ``/scratch`` and ``/tmp``; no view of
the gradebook, ``source/``, other submissions or anyone's home. When started
as root, each worker runs under its own unprivileged user id, so that process
limits hold.
"""

import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field

INSTALL_HINT = (
    "Grading runs student code inside a bubblewrap sandbox, and `bwrap` was not found or does not work here. "
    "Install it (Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora: `sudo dnf install bubblewrap`) "
    "and make sure unprivileged user namespaces are enabled. On macOS or Windows, grade on Linux "
    "(a VM or a container). To grade without isolation anyway, at your own risk, pass --unsafe-no-sandbox."
)
FIRST_WORKER_UID = 61000
MAX_FRAME_BYTES = 32 * 2**20  # as in zygote.py
FIRST_WORKER_HEAD_START_S = 2.0
STARTUP_SECONDS = 120


class SandboxUnavailable(RuntimeError):
    """No sandbox can be made on this machine."""


class SandboxBroken(RuntimeError):
    """A worker stopped answering (its zygote died); the job did not run to the end."""


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
    """What one notebook run reported, cell by cell."""

    outputs: dict[int, list[dict]] = field(default_factory=dict)
    records: dict[int, list[dict]] = field(default_factory=dict)
    started: list[int] = field(default_factory=list)
    stopped: str | None = None
    stopped_at: int | None = None
    restored: list[str] = field(default_factory=list)  # library attributes the notebook changed


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def _read_only_paths() -> list[str]:
    """What the sandbox may read: the system, the Python installation, the two packages."""
    import autograder
    import course

    paths = ["/usr", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives"]
    paths += [sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))]
    paths += [os.path.dirname(autograder.__file__), os.path.dirname(course.__file__)]
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


def sandbox_command(index: int, program: list[str] | None = None, staging: str | None = None) -> list[str]:
    """The command that starts worker ``index``'s sandbox running ``program`` (default: the zygote).

    As root, the worker runs under an unprivileged uid of its own (root's processes ignore
    process limits). Paths that uid cannot reach (a Python under /root) are first bound,
    in a private mount namespace, to folders under ``staging`` that it can.
    """
    program = program or [sys.executable, "-I", "-m", "autograder.sandbox.zygote"]
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
    if prefix:
        script = (
            'while [ "$1" != "--" ]; do mount --bind "$1" "$2" || exit 111; shift 2; done; shift; exec "$@"'
        )
        command += ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh"]
        command += [*prefix, "--"]
    if as_root:
        uid = FIRST_WORKER_UID + index
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
    command += ["--size", str(256 * 2**20), "--tmpfs", "/tmp"]
    command += ["--size", str(512 * 2**20), "--tmpfs", "/scratch"]
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
    return [python, "-m", "autograder.sandbox.zygote"]


def check_available() -> None:
    """Raise SandboxUnavailable, saying how to fix it, unless bubblewrap is here.

    Whether it works (user namespaces may be off) shows when a worker starts; then
    ``probe()`` says why."""
    if platform.system() != "Linux":
        raise SandboxUnavailable(f"{platform.system()} has no bubblewrap. {INSTALL_HINT}")
    if bwrap_path() is None:
        raise SandboxUnavailable(INSTALL_HINT)


def probe() -> str:
    """bwrap's own complaint when a sandbox cannot be made here ('' when it can)."""
    staging = tempfile.mkdtemp(prefix="grader-stage-")
    os.chmod(staging, 0o755)
    try:
        command = sandbox_command(0, ["/bin/true"], staging=staging)
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return "" if done.returncode == 0 else done.stderr.strip()[:300]


def _read_exact(stream, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class Worker:
    """One sandbox with its zygote; runs one notebook at a time."""

    def __init__(self, index: int, unsafe: bool = False):
        self.index, self.unsafe = index, unsafe
        self.process: subprocess.Popen | None = None
        self.ready = False
        self.spawned = threading.Event()
        self.lock = threading.Lock()
        self.staging = tempfile.mkdtemp(prefix="grader-stage-")
        os.chmod(self.staging, 0o755)

    def spawn(self) -> None:
        """Start the sandbox without waiting for it to be ready.

        bwrap dies with the *thread* that started it (--die-with-parent), so pools
        spawn their workers from the thread that owns them."""
        command = unsafe_command() if self.unsafe else sandbox_command(self.index, staging=self.staging)
        environment = None
        if self.unsafe:
            environment = dict(
                os.environ, OMP_NUM_THREADS="1", MPLCONFIGDIR=os.environ.get("MPLCONFIGDIR", "/tmp")
            )
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=environment
        )
        self.ready = False
        self.spawned.set()

    def _start(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.spawn()
        if not self.ready:
            ready = self._receive()
            if ready is None or ready.get("e") != "ready":
                self.close()
                why = "" if self.unsafe else probe()
                raise SandboxUnavailable(
                    f"the sandboxed worker did not start ({why or 'no answer'}). {INSTALL_HINT}"
                )
            self.ready = True

    def _send(self, message: dict) -> None:
        data = json.dumps(message).encode("utf-8")
        self.process.stdin.write(len(data).to_bytes(4, "big") + data)
        self.process.stdin.flush()

    def _receive(self) -> dict | None:
        header = _read_exact(self.process.stdout, 4)
        if header is None:
            return None
        size = int.from_bytes(header, "big")
        if size > MAX_FRAME_BYTES:
            return None
        body = _read_exact(self.process.stdout, size)
        return None if body is None else json.loads(body)

    def run(self, cells: list[dict], limits: Limits = DEFAULT_LIMITS) -> RunEvents:
        """Run ``cells`` (dicts with index, kind 'code'/'test', source, grade_id) in a fresh child."""
        self.spawned.wait()
        with self.lock:
            if self.process is None or self.process.poll() is not None or not self.ready:
                self._start()
            events = RunEvents()
            try:
                self._send({"cells": cells, "limits": asdict(limits)})
                while True:
                    message = self._receive()
                    if message is None:
                        raise SandboxBroken("the sandbox stopped during the run")
                    kind = message.get("e")
                    if kind == "job_end":
                        return events
                    index = message.get("i")
                    if kind == "start":
                        events.started.append(index)
                    elif kind == "end":
                        events.outputs[index] = message.get("outputs", [])
                    elif kind == "rec":
                        events.records.setdefault(index, []).append(message)
                    elif kind == "note":
                        events.restored += [str(n) for n in message.get("restored", [])][:20]
                    elif kind == "stopped":
                        events.stopped, events.stopped_at = message.get("why"), index
            except (SandboxBroken, BrokenPipeError, ValueError) as error:
                self.close()
                events.stopped = events.stopped or f"the sandbox was stopped ({error})"
                events.stopped_at = events.started[-1] if events.started else 0
                return events

    def close(self) -> None:
        if self.process is not None:
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
            self.process = None
            self.ready = False
        shutil.rmtree(self.staging, ignore_errors=True)  # empty mount points, unmounted with the sandbox


class WorkerPool:
    """``size`` workers handed out one at a time to grading threads."""

    def __init__(self, size: int, unsafe: bool = False):
        import queue

        self.workers = [Worker(i, unsafe) for i in range(size)]
        self.free: queue.Queue[Worker] = queue.Queue()
        for worker in self.workers:
            self.free.put(worker)
        self._closing = threading.Event()
        threading.Thread(target=self._spawn_all, daemon=True).start()

    def _spawn_all(self) -> None:
        """Start the sandboxes (each imports torch once: seconds of CPU), the first with a
        head start so that the first results come early; then stay alive, because bwrap
        dies with the thread that started it (--die-with-parent)."""
        for number, worker in enumerate(self.workers):
            with worker.lock:
                if self._closing.is_set():
                    return
                worker.spawn()
            if number == 0 and len(self.workers) > 1:
                self._closing.wait(FIRST_WORKER_HEAD_START_S)
        self._closing.wait()

    def run(self, cells: list[dict], limits: Limits = DEFAULT_LIMITS) -> RunEvents:
        worker = self.free.get()
        try:
            return worker.run(cells, limits)
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
