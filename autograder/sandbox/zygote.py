"""The process that lives inside one worker's sandbox and forks a child per notebook.

It imports torch, NumPy, matplotlib and the course once, then for each job:
forks, and the child sets its limits and runs the cells (``child.run_cells``)
while this process relays the child's messages to the grader and enforces
the time limits. After every job, every other process in the sandbox is
killed and the scratch folders are emptied, so nothing of one submission
meets the next. It never runs student code itself.

Protocol on stdin/stdout: frames of a 4-byte big-endian length and UTF-8 JSON.
"""

import ctypes
import hashlib
import hmac
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time

PR_SET_DUMPABLE = 4
MAX_FRAME_BYTES = 32 * 2**20
SCRATCH_DIRS = ("/scratch", "/tmp", "/dev/shm")
# Set by the sandbox. Without it (--unsafe-no-sandbox) this process shares the machine:
# it must then clean up only its own child and folder, never /tmp or other processes.
SANDBOXED = os.environ.get("GRADER_SANDBOXED") == "1"


def read_exact(fd: int, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(fd: int) -> dict | None:
    header = read_exact(fd, 4)
    if header is None:
        return None
    size = int.from_bytes(header, "big")
    if size > MAX_FRAME_BYTES:
        raise ValueError(f"message of {size} bytes is over the limit")
    body = read_exact(fd, size)
    if body is None:
        return None
    return json.loads(body)


def write_frame(fd: int, message: dict) -> None:
    data = json.dumps(message).encode("utf-8")
    frame = len(data).to_bytes(4, "big") + data
    while frame:
        frame = frame[os.write(fd, frame) :]


def preimport() -> None:
    """Import once what every notebook needs; children inherit it already loaded."""
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    for module in (
        "matplotlib.pyplot",
        "numpy",
        "torch",
        "course",
        "course.plotting",
        "autograder.sandbox.child",
    ):
        importlib.import_module(module)

    # Seeding a device that is absent is a no-op, but torch records a stack trace
    # for it (sys._getframe), which the child's audit hook refuses.
    for backend_name in ("cuda", "mps", "xpu", "mtia"):
        backend = importlib.import_module(f"torch.{backend_name}")
        if not backend.is_available():
            for name in ("manual_seed", "manual_seed_all"):
                if hasattr(backend, name):
                    setattr(backend, name, lambda seed: None)


WARM_UP = """
import matplotlib.pyplot as plt
import torch

torch.set_num_threads(1)
x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
(x * x).backward(gradient=torch.ones(3, dtype=torch.float64))
(g,) = torch.autograd.grad((x ** 3).sum(), x, create_graph=True)
g.sum().backward()
torch.autograd.functional.jacobian(lambda t: t.sin(), x.detach())
torch.autograd.gradcheck(torch.sin, (x.detach().requires_grad_(),))
w = torch.zeros(2, requires_grad=True)
optimizers = (torch.optim.SGD([w], lr=0.1, momentum=0.9), torch.optim.Adam([w]), torch.optim.RMSprop([w]))
for optimizer in optimizers:
    optimizer.zero_grad()
    ((w - 1) ** 2).sum().backward()
    optimizer.step()
lbfgs = torch.optim.LBFGS([w])
def closure():
    lbfgs.zero_grad()
    loss = ((w - 1) ** 2).sum()
    loss.backward()
    return loss
lbfgs.step(closure)
figure, axes = plt.subplots()
axes.plot([0, 1], [0, 1], label="x")
axes.contour([[0, 1], [1, 0]])
axes.legend()
axes.set_title("warm-up")
figure.canvas.draw()
plt.close("all")
"""


def warm_up() -> None:
    """Run what the lessons use once, so that torch's and matplotlib's lazy imports and caches
    are loaded here, not in every child (where importing ctypes is refused)."""
    exec(compile(WARM_UP, "<warm-up>", "exec"), {"__name__": "__warm_up__"})


def limit_child(limits: dict) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    memory = limits.get("memory_bytes")
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    cpu = int(limits["notebook_seconds"]) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))


def child_main(job: dict, write_fd: int, workdir: str) -> None:
    os.setsid()
    os.chdir(workdir)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    limit_child(job["limits"])
    from autograder.sandbox.child import run_cells

    run_cells(job["cells"], write_fd)


def kill_everything_else() -> None:
    """Kill every process in this sandbox (its own PID namespace) but this one and its init."""
    assert SANDBOXED
    me = os.getpid()
    for _ in range(5):
        others = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
        if not others:
            return
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def scratch_contents() -> dict[str, set[str]]:
    """What the scratch folders hold at the start: read-only binds of the Python
    environment sit under /tmp when the course itself lives there."""
    return {folder: set(os.listdir(folder)) if os.path.isdir(folder) else set() for folder in SCRATCH_DIRS}


def wipe_scratch(keep: dict[str, set[str]]) -> None:
    """Empty the sandbox's own scratch, /tmp and /dev/shm (private tmpfs mounts), but for ``keep``."""
    assert SANDBOXED
    for folder in SCRATCH_DIRS:
        if not os.path.isdir(folder):
            continue
        for name in set(os.listdir(folder)) - keep.get(folder, set()):
            path = os.path.join(folder, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def relay(job: dict, pid: int, read_fd: int, out_fd: int) -> None:
    """Forward the child's messages, stopping it when a limit is hit."""
    limits = job["limits"]
    started = time.monotonic()
    cell_started, current = started, None
    total = 0
    buffer = b""
    stop = None
    key, sequence = None, 0
    while True:
        now = time.monotonic()
        cell_left = (
            limits["cell_seconds"] - (now - cell_started) if current is not None else limits["cell_seconds"]
        )
        left = min(limits["notebook_seconds"] - (now - started), cell_left)
        if left <= 0:
            if now - started >= limits["notebook_seconds"]:
                stop = f"notebook time limit ({limits['notebook_seconds']:g} s)"
            else:
                stop = f"cell time limit ({limits['cell_seconds']:g} s)"
            break
        ready, _, _ = select.select([read_fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:
            break
        total += len(chunk)
        if total > limits["output_bytes"]:
            stop = f"output limit ({limits['output_bytes'] // 2**20} MB)"
            break
        buffer += chunk
        while len(buffer) >= 4:
            size = int.from_bytes(buffer[:4], "big")
            if size > MAX_FRAME_BYTES:
                stop = "a message over the size limit"
                break
            if len(buffer) < 4 + size:
                break
            body, buffer = buffer[4 : 4 + size], buffer[4 + size :]
            if key is None:
                if len(body) != 35 or not body.startswith(b"KEY"):
                    stop = "the notebook's output channel was tampered with"
                    break
                key = body[3:]
                continue
            sequence += 1
            mac, body = body[:32], body[32:]
            expected = hashlib.sha256(key + sequence.to_bytes(8, "big") + body).digest()
            if not hmac.compare_digest(mac, expected):
                stop = "the notebook's output channel was tampered with"
                break
            try:
                message = json.loads(body)
            except ValueError:
                stop = "unreadable output from the notebook"
                break
            if message.get("e") == "start":
                current, cell_started = message.get("i"), time.monotonic()
            elif message.get("e") == "end":
                current = None
            write_frame(out_fd, message)
        if stop:
            break
    if stop:
        write_frame(out_fd, {"e": "stopped", "i": current, "why": stop})
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _, status = os.waitpid(pid, 0)
    if not stop and (os.WIFSIGNALED(status) or os.WEXITSTATUS(status) != 0):
        why = "the notebook ended the process" if not os.WIFSIGNALED(status) else "the process was killed"
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGKILL, signal.SIGSEGV):
            why += " (out of memory, a crash, or a signal)"
        write_frame(out_fd, {"e": "stopped", "i": current, "why": why})


def forget_ctypes() -> None:
    """Drop every reference to ctypes that libraries keep, so student code must import it (refused)."""
    modules = [m for m in sys.modules if m in ("ctypes", "_ctypes") or m.startswith("ctypes.")]
    ctypes_modules = {id(sys.modules[m]) for m in modules}
    for module in list(sys.modules.values()):
        try:
            attributes = list(vars(module).items())
        except TypeError:
            continue
        for name, value in attributes:
            if id(value) in ctypes_modules:
                setattr(module, name, None)
    for name in modules:
        del sys.modules[name]


def main() -> None:
    keep = scratch_contents()  # before the warm-up writes its caches: those go after each job
    os.environ["OMP_NUM_THREADS"] = "1"
    preimport()
    warm_up()
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # children cannot ptrace or read this process
    forget_ctypes()
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    write_frame(stdout, {"e": "ready"})
    while True:
        job = read_frame(stdin)
        if job is None:
            return
        if SANDBOXED:
            workdir = "/scratch/work"
            os.makedirs(workdir, exist_ok=True)
        else:
            workdir = tempfile.mkdtemp(prefix="grade-unsafe-")
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_fd)
                os.close(stdin)
                child_main(job, write_fd, workdir)
            finally:
                os._exit(0)
        os.close(write_fd)
        relay(job, pid, read_fd, stdout)
        os.close(read_fd)
        if SANDBOXED:
            kill_everything_else()
            wipe_scratch(keep)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            shutil.rmtree(workdir, ignore_errors=True)
        write_frame(stdout, {"e": "job_end"})


if __name__ == "__main__":
    main()
