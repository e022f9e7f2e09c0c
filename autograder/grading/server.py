"""Sandboxes kept warm between grading commands (`autograder serve`).

Instructors grade one assignment at a time, often a single late student. A
`grade` command that starts from nothing spends seconds before its first
result: the grader's imports (nbgrader, torch) and one zygote per worker
(importing torch and warming it up). A server keeps both for one course:
`autograder grade` starts one when there is none (unless ``--keep-warm 0``),
sends it its arguments over a Unix socket, and prints what it says. The server
ends after ``--idle`` seconds without a request, or with `autograder serve --stop`.

Nothing changes for the student's code: each notebook still runs in a fresh
child of a zygote, in a sandbox wiped after every job (`autograder.grading.sandbox`);
the server is the instructor's own process, in the place of the grading
command. Its socket lies in a folder only the instructor can open
(``$XDG_RUNTIME_DIR/autograder`` or ``/tmp/autograder-<uid>``), which the
sandboxes do not see. A server is found by a key made of the course, the
worker count, the sandbox mode and the grader's code, so an edited grader is
never served by an old one.
"""

import contextlib
import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DEFAULT_IDLE_SECONDS = 600.0
START_SECONDS = 30.0  # for a new server to open its socket


class ServerUnavailable(RuntimeError):
    """No server could be reached or started: the command grades by itself."""


class _Stopped(BaseException):
    """SIGTERM (`autograder serve --stop`) while no command is being served."""


def runtime_dir() -> Path:
    """A folder of this user's only, where servers keep their sockets, logs and pids."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(base) / "autograder" if base else Path(tempfile.gettempdir()) / f"autograder-{os.geteuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise ServerUnavailable(f"{folder} is not a private folder of this user; remove it")
    return folder


def _code_digest() -> str:
    """The grader's code as this process would run it: a server of other code is not used."""
    from importlib.util import find_spec  # finds the packages without importing them (torch)

    digest = hashlib.sha256(sys.executable.encode())
    for package in ("autograder", "course"):
        root = Path(find_spec(package).origin).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    digest.update(os.environ.get("COURSE_DEVICE", "cpu").encode())
    return digest.hexdigest()


def server_key(course: Path, workers: int, unsafe: bool) -> str:
    text = json.dumps([str(Path(course).resolve()), workers, unsafe, _code_digest()])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _paths(key: str) -> dict[str, Path]:
    folder = runtime_dir()
    return {
        "socket": folder / f"{key}.sock",
        "lock": folder / f"{key}.lock",
        "info": folder / f"{key}.json",
        "log": folder / f"{key}.log",
    }


# ---------------------------------------------------------------- the server


class _Relay:
    """A text stream that goes to the client as JSON lines ({"out": ...} or {"err": ...})."""

    def __init__(self, connection: socket.socket, name: str, tty: bool):
        self.connection, self.name, self.tty = connection, name, tty

    def write(self, text: str) -> int:
        if text:
            self.connection.sendall(json.dumps({self.name: text}).encode() + b"\n")
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.tty


def serve(
    course: Path, workers: int, unsafe: bool = False, idle_seconds: float = DEFAULT_IDLE_SECONDS
) -> int:
    """Serve `grade` requests for ``course`` until idle for ``idle_seconds``; returns 0.

    Only one server runs per key (a lock held for its life); a second one exits at once."""
    import fcntl

    from autograder.grading.sandbox import Worker, WorkerPool, check_available

    course = Path(course).resolve()
    key = server_key(course, workers, unsafe)
    paths = _paths(key)
    lock = os.open(paths["lock"], os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another server of the same key runs
    if not unsafe:
        check_available()
    sandboxes = WorkerPool(workers, unsafe=unsafe)  # first: the zygotes take longest to be ready
    # a sandbox for the instructor's notebooks only (never a student's), started at its first job
    reference = Worker(index=workers, unsafe=unsafe)
    loading = threading.Thread(target=__import__, args=("autograder.grading.grade",), daemon=True)
    loading.start()
    with contextlib.suppress(FileNotFoundError):
        paths["socket"].unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(paths["socket"]))
    os.chmod(paths["socket"], 0o600)
    listener.listen(4)
    paths["info"].write_text(json.dumps({"pid": os.getpid(), "course": str(course), "workers": workers}))
    state = {"busy": False, "stop": False}
    prefetching = threading.Thread()

    def stop(*_):
        if not state["busy"]:
            raise _Stopped  # out of accept()
        state["stop"] = True  # after the command in progress

    signal.signal(signal.SIGTERM, stop)
    try:
        with sandboxes:
            _stop_others(course)  # one course is graded by one run at a time: older servers are idle
            listener.settimeout(idle_seconds)
            while not state["stop"]:
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    break  # idle long enough
                state["busy"] = True
                with connection:
                    loading.join()
                    _handle(connection, course, sandboxes, reference)
                state["busy"] = False
                if not prefetching.is_alive():  # the next commands find their references ready
                    prefetching = threading.Thread(
                        target=_prefetch, args=(course, unsafe, reference), daemon=True
                    )
                    prefetching.start()
    except _Stopped:
        pass
    finally:
        reference.close()
        for name in ("socket", "info"):
            with contextlib.suppress(FileNotFoundError):
                paths[name].unlink()
        listener.close()
        os.close(lock)
    return 0


def _prefetch(course: Path, unsafe: bool, reference) -> None:
    """While the server waits: the references of every assignment of the course, where missing
    (a lesson whose solution fails is reported by the command that grades it, not here)."""
    from autograder.grading.references import ensure
    from autograder.grading.submission import load_solved_notebooks
    from autograder.notebooks import assignments

    for assignment in assignments(course):
        with contextlib.suppress(Exception):
            solved = load_solved_notebooks(course, assignment)
            ensure(course, assignment, solved, unsafe=unsafe, worker=reference)


def _handle(connection: socket.socket, course: Path, sandboxes, reference) -> None:
    from autograder import cli

    connection.settimeout(None)
    try:
        request = json.loads(connection.makefile("rb").readline() or b"{}")
    except ValueError:
        return
    tty = bool(request.get("tty"))
    here = os.getcwd()
    with contextlib.suppress(OSError, TypeError, ValueError):
        os.chdir(request.get("cwd") or here)  # the command's relative paths (--db) mean what they meant
    out, err = _Relay(connection, "out", tty), _Relay(connection, "err", tty)
    status = 1
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = cli.build_parser().parse_args(request.get("argv", []))
            if args.verb != "grade" or Path(args.course_dir).resolve() != course:
                print("error: this server grades only its own course", file=sys.stderr)
                status = 2
            else:
                status = cli.grade_with(args, course, sandboxes, reference)
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 2
    except (BrokenPipeError, ConnectionError):
        return  # the command was interrupted: what is recorded stays, the next run finishes
    except Exception:
        import traceback

        traceback.print_exc()  # into the server's log
        with contextlib.suppress(OSError):
            message = "error: the grading server failed; its log is in " + str(runtime_dir())
            connection.sendall(json.dumps({"err": message + "\n"}).encode() + b"\n")
    finally:
        os.chdir(here)
    with contextlib.suppress(OSError):
        connection.sendall(json.dumps({"exit": status}).encode() + b"\n")


# ---------------------------------------------------------------- the client


def _connect(path: Path) -> socket.socket | None:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(path))
    except OSError:
        client.close()
        return None
    return client


def connect_or_start(course: Path, workers: int, unsafe: bool, idle_seconds: float) -> socket.socket:
    """A connection to the course's server, started (detached) if there is none."""
    course = Path(course).resolve()
    paths = _paths(server_key(course, workers, unsafe))
    client = _connect(paths["socket"])
    if client is not None:
        return client
    command = [sys.executable, "-m", "autograder", "serve", "--course-dir", str(course)]
    command += ["--workers", str(workers), "--idle", str(idle_seconds)]
    command += ["--unsafe-no-sandbox"] if unsafe else []
    with open(paths["log"], "ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd=course
        )
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        client = _connect(paths["socket"])
        if client is not None:
            return client
        if process.poll() is not None and not paths["socket"].exists():
            break  # it could not start (no sandbox?), and no other server of the key is starting
        time.sleep(0.02)
    raise ServerUnavailable(f"the grading server did not start; its log is {paths['log']}")


def request(client: socket.socket, argv: list[str]) -> int:
    """Send a `grade` command line to the server, print what it says; its exit status."""
    tty = sys.stderr.isatty()
    with client:
        client.sendall(json.dumps({"argv": argv, "tty": tty, "cwd": os.getcwd()}).encode() + b"\n")
        for line in client.makefile("rb"):
            message = json.loads(line)
            if "exit" in message:
                return int(message["exit"])
            stream = sys.stdout if "out" in message else sys.stderr
            stream.write(message.get("out", message.get("err", "")))
            stream.flush()
    print("error: the grading server stopped during the command; run it again", file=sys.stderr)
    return 1


def servers(course: Path) -> list[dict]:
    """The running servers of ``course`` (any key): their info files, with the pid alive."""
    found = []
    for info in runtime_dir().glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(info.read_text())
            if data.get("course") == str(Path(course).resolve()) and _is_server(int(data["pid"])):
                found.append(data)
    return found


def _is_server(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"autograder" in command and b"serve" in command


def _stop_others(course: Path) -> None:
    """Stop the course's servers of other keys (an older version of the grader, other workers),
    each once it has finished the command it may be serving."""
    for data in servers(course):
        if int(data["pid"]) != os.getpid():
            with contextlib.suppress(OSError):
                os.kill(int(data["pid"]), signal.SIGTERM)


def stop(course: Path, wait_seconds: float = 10.0) -> int:
    """Stop the course's servers (their sandboxes end with them; one grading a command ends
    after it); how many were running."""
    running = servers(course)
    for data in running:
        with contextlib.suppress(OSError):
            os.kill(int(data["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline and any(_is_server(int(d["pid"])) for d in running):
        time.sleep(0.05)
    return len(running)
