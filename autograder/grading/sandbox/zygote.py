"""The process that lives inside one worker's sandbox and forks a child per notebook.

It imports torch, NumPy, matplotlib and the course once, then for each job:
forks, and the child sets its limits and runs the cells (``child.run_cells``)
while this process relays the child's messages to the grader and enforces
the time limits. After every job, every other process in the sandbox is
killed and the scratch folders are emptied, so nothing of one submission
meets the next. It never runs student code itself.

It speaks ``autograder.grading.protocol`` on stdin/stdout, and checks every message
of the child with it: a message of another job, or malformed, stops the job.
The grader keeps its own clock as well, and kills the whole sandbox if this
process stops answering.
"""

import ctypes
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

from autograder.grading import protocol

PR_SET_DUMPABLE = 4
CRASH_STATUS = 70  # the runner itself failed in the child
SCRATCH_DIRS = ("/scratch", "/tmp", "/dev/shm")
# Set by the sandbox. Without it (--unsafe-no-sandbox) this process shares the machine:
# it must then clean up only its own child and folder, never /tmp or other processes.
SANDBOXED = os.environ.get("GRADER_SANDBOXED") == "1"


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
        "autograder.grading.sandbox.child",
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
    if memory:  # on top of the address space the preloaded libraries already take
        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (mapped + memory, mapped + memory))
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
    try:  # the notebook's process is the one the kernel kills first when memory runs out
        with open("/proc/self/oom_score_adj", "w") as adjust:
            adjust.write("1000")
    except OSError:
        pass
    limit_child(job["limits"])
    from autograder.grading.sandbox.child import run_cells

    run_cells(job, write_fd)


def kill_everything_else() -> None:
    """Kill every process in this sandbox (its own PID namespace) but this one and its init."""
    assert SANDBOXED
    me = os.getpid()
    deadline = time.monotonic() + 2.0  # a fork bomb's processes take a moment to be reaped
    while time.monotonic() < deadline:
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


def _writable(path: str) -> None:
    """Give back the owner's rights on a tree the student locked (chmod 000), so it can go."""
    for root, folders, _ in os.walk(path, onerror=lambda error: None):
        for name in folders:
            try:
                os.chmod(os.path.join(root, name), stat.S_IRWXU, follow_symlinks=False)
            except OSError:
                pass


def wipe_scratch(keep: dict[str, set[str]]) -> bool:
    """Empty the sandbox's own scratch, /tmp and /dev/shm (private tmpfs mounts), but for ``keep``;
    remove System V IPC objects. Whether all of it is gone."""
    assert SANDBOXED
    for folder in SCRATCH_DIRS:
        if not os.path.isdir(folder):
            continue
        for name in set(os.listdir(folder)) - keep.get(folder, set()):
            path = os.path.join(folder, name)
            if os.path.isdir(path) and not os.path.islink(path):
                try:
                    os.chmod(path, stat.S_IRWXU)
                except OSError:
                    pass
                _writable(path)
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass
    if _ipc_objects():
        subprocess.run(["ipcrm", "--all"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    left = [n for f in SCRATCH_DIRS if os.path.isdir(f) for n in set(os.listdir(f)) - keep.get(f, set())]
    return not left and not _ipc_objects()


def _ipc_objects() -> bool:
    """Whether System V shared memory, semaphores or message queues exist in this IPC namespace."""
    for table in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{table}") as listing:
                if len(listing.read().strip().splitlines()) > 1:
                    return True
        except OSError:
            pass
    return False


def relay(job: dict, pid: int, read_fd: int, out_fd: int) -> None:
    """Forward the child's messages, checked, stopping it when a limit is hit or it breaks the protocol."""
    limits, job_id = job["limits"], job["job"]
    started = time.monotonic()
    cell_started, current = started, None
    reader = protocol.FrameReader(read_fd)
    stop, finished = None, False
    while True:
        now = time.monotonic()
        notebook_left = limits["notebook_seconds"] - (now - started)
        cell_left = limits["cell_seconds"] - (now - cell_started) if current is not None else notebook_left
        try:
            message = reader.read(now + max(0.0, min(notebook_left, cell_left)))
            if reader.total > limits["output_bytes"]:
                stop = "output_limit"
                break
            message = protocol.check(message, job_id, protocol.FROM_NOTEBOOK)
        except protocol.Timeout:
            stop = (
                "notebook_time" if time.monotonic() - started >= limits["notebook_seconds"] else "cell_time"
            )
            break
        except protocol.Closed:
            break
        except protocol.ProtocolError:
            stop = "protocol"
            break
        kind = message["type"]
        if kind == "cell_started":
            current, cell_started = message["cell"], time.monotonic()
        elif kind == "cell_finished":
            current = None
        elif kind == "finished":
            finished = True
        protocol.write(out_fd, message)
        if finished:
            break
    status = None
    if stop is None and not finished:  # the channel closed: let a process that is ending end
        deadline = time.monotonic() + 1.0
        while status is None and time.monotonic() < deadline:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = code
            else:
                time.sleep(0.01)
    if status is None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(pid, 0)
    if stop is None and not finished:
        if os.WIFEXITED(status):
            stop = "crashed" if os.WEXITSTATUS(status) == CRASH_STATUS else "exited"
        else:
            stop = "killed"
    if stop:
        protocol.write(out_fd, {"type": "stopped", "job": job_id, "cell": current, "reason": stop})


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
    if SANDBOXED:  # the warm-up's caches go now, so that every job starts from the same empty folders
        wipe_scratch(keep)
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # children cannot ptrace or read this process
    forget_ctypes()
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    protocol.write(stdout, {"type": "ready"})
    reader = protocol.FrameReader(stdin)
    while True:
        try:
            job = reader.read(float("inf"))
        except protocol.Closed:
            return
        if SANDBOXED:
            workdir = "/scratch/work"
            os.makedirs(workdir, exist_ok=True)
        else:
            workdir = tempfile.mkdtemp(prefix="grade-unsafe-")
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = CRASH_STATUS
            try:
                os.close(read_fd)
                os.close(stdin)
                os.close(stdout)
                child_main(job, write_fd, workdir)
                status = 0
            finally:
                os._exit(status)
        os.close(write_fd)
        relay(job, pid, read_fd, stdout)
        os.close(read_fd)
        clean = True
        if SANDBOXED:
            kill_everything_else()
            clean = wipe_scratch(keep) and not _others_alive()
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            shutil.rmtree(workdir, ignore_errors=True)
        protocol.write(stdout, {"type": "job_finished", "job": job["job"], "clean": clean})


def _others_alive() -> bool:
    me = os.getpid()
    return any(p.isdigit() and int(p) not in (1, me) for p in os.listdir("/proc"))


if __name__ == "__main__":
    main()
