"""Grading throughput: plain sequential `nbgrader autograde` against `autograder grade`.

Builds N synthetic submissions (notebooks: students x lessons, a mix of
correct, partial, wrong and blank answers in both languages), grades the same
files both ways in two copies of one course, checks that every student's
score on every test cell is the same, and prints for each: wall time,
submissions per minute, CPU time, peak memory (proportional set size of the
whole process tree, sampled every 50 ms), and the ratio. `autograder grade`
runs sandboxed, as it does by default.

    .venv/bin/python benchmarks/grading.py            # 100 submissions, ~10 minutes on 2 cores
    .venv/bin/python benchmarks/grading.py --quick    # 8 submissions, correctness only
    .venv/bin/python benchmarks/grading.py --baseline /tmp/old --skip-nbgrader --submissions 24
        # this checkout against another one (`git worktree add /tmp/old <commit>`), same
        # submissions, alternating runs; medians of the cost per notebook

This is a script that prints figures, not a timed test; `make test` runs
`--quick` to check that both sides agree, never how fast they are.
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from nbgrader.api import Gradebook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder import LANGUAGES, notebooks  # noqa: E402
from autograder.release import assignments, release  # noqa: E402
from autograder.synthetic import SyntheticStudent, answered  # noqa: E402

PROFILES = ("correct", "partial", "wrong", "correct", "blank")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {memory:.1f} GiB RAM, {model}, {platform.system()} {platform.release()}"


def make_course(target: Path, lessons_from: Path = ROOT) -> Path:
    """A course folder with the lessons (source/ and nbgrader_config.py) of ``lessons_from``."""
    target.mkdir(parents=True)
    shutil.copytree(lessons_from / "source", target / "source")
    shutil.copy2(lessons_from / "nbgrader_config.py", target / "nbgrader_config.py")
    release(target)
    return target


def write_submissions(course: Path, count: int) -> list[tuple[str, str]]:
    """``count`` notebooks, spread over the lessons; returns (student, assignment) pairs."""
    lessons = assignments(course)
    written = []
    for k in range(count):
        assignment = lessons[k % len(lessons)]
        student = SyntheticStudent(
            f"s{k // len(lessons) + 1:03d}", PROFILES[k % len(PROFILES)], LANGUAGES[(k // 2) % len(LANGUAGES)]
        )
        (source,) = (course / "source" / assignment).glob("*.ipynb")
        released = notebooks.read(course / "release" / student.language / assignment / source.name)
        nb = answered(released, notebooks.read(source), student.profile)
        notebooks.write(nb, course / "submitted" / student.student / assignment / source.name)
        written.append((student.student, assignment))
    return written


def tree_sample(root_pid: int, cpu_seconds: dict[int, float]) -> int:
    """Proportional set size of a process and all its descendants, in bytes; records each
    one's CPU time (user + system seconds) into ``cpu_seconds``.

    Sandboxed processes live in PID namespaces of their own, but each also has a pid in
    ours, under its bubblewrap parent, so the walk from outside finds them."""
    try:
        root = psutil.Process(root_pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in tree:
        try:
            with process.oneshot():
                times = process.cpu_times()
                spent = times.user + times.system
                cpu_seconds[process.pid] = max(cpu_seconds.get(process.pid, 0.0), spent)
                total += process.memory_full_info().pss
        except psutil.Error:  # ended, or not ours to read
            continue
    return total


def measure(
    commands: list[list[str]],
    cwd: Path,
    watch_results: Path | None = None,
    env: dict | None = None,
    servers=lambda: [],
) -> dict:
    """Run commands one after the other; wall time, CPU time, peak memory, first result.

    CPU time is summed over every process of the tree as last sampled (sandboxed
    processes are not the command's direct children, so rusage would miss them), and over
    the trees of ``servers()`` (pids of warm grading servers, which outlive a command):
    for those, only what they spent during the commands counts. The first result is
    timed twice: the first progress line on stderr (what the instructor sees), and the
    first result.json on disk."""
    started = time.monotonic()
    peak, first, first_line = 0, None, None
    cpu_seconds: dict[int, float] = {}
    before: dict[int, float] = {}
    for pid in servers():
        tree_sample(pid, before)
    for command in commands:
        process = subprocess.Popen(
            command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        done = threading.Event()
        errors: list[str] = []

        def sample(process=process, done=done):
            nonlocal peak, first
            while not done.is_set():
                memory = tree_sample(process.pid, cpu_seconds)
                for pid in set(servers()):
                    memory += tree_sample(pid, cpu_seconds) if not _descends(pid, process.pid) else 0
                peak = max(peak, memory)
                if watch_results is not None and first is None and any(watch_results.glob("*/*/result.json")):
                    first = time.monotonic() - started
                time.sleep(0.05)

        def read(process=process, errors=errors):
            nonlocal first_line
            for line in process.stderr:
                if first_line is None and line.startswith("[") and "/" in line.split("]")[0]:
                    first_line = time.monotonic() - started
                errors.append(line)

        sampler, reader = threading.Thread(target=sample), threading.Thread(target=read)
        sampler.start()
        reader.start()
        process.wait()
        reader.join()
        done.set()
        sampler.join()
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{''.join(errors)[-3000:]}")
    return {
        "wall": time.monotonic() - started,
        "cpu": sum(t - before.get(pid, 0.0) for pid, t in cpu_seconds.items()),
        "peak_mib": peak / 2**20,
        "first": first,
        "first_line": first_line,
    }


def _descends(pid: int, ancestor: int) -> bool:
    """Whether ``pid`` is ``ancestor`` or below it (a server started by the command it serves)."""
    try:
        return pid == ancestor or any(p.pid == ancestor for p in psutil.Process(pid).parents())
    except psutil.Error:
        return False


def scores(course: Path) -> dict[tuple[str, str, str], float | None]:
    """(student, assignment, grade cell) -> automatic score, as the gradebook holds it."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {
            (submission.student_id, assignment.name, grade.name): grade.auto_score
            for assignment in gb.assignments
            for submission in assignment.submissions
            for notebook in submission.notebooks
            for grade in notebook.grades
        }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=12, help="students per assignment (default 12)")
    parser.add_argument(
        "--one-command", action="store_true", help="all lessons in one `grade` command (--submissions)"
    )
    parser.add_argument("--submissions", type=int, default=100, help="with --one-command")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument(
        "--quick", action="store_true", help="8 submissions: check agreement, skip the timings"
    )
    parser.add_argument(
        "--baseline", help="another checkout of this project to compare with, same submissions"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side with --baseline")
    parser.add_argument("--skip-nbgrader", action="store_true", help="with --baseline: no nbgrader run")
    parser.add_argument(
        "--cluster", action="store_true", help="a local Dask cluster (2 workers) against local grading"
    )
    args = parser.parse_args()
    if args.baseline:
        return compare(Path(args.baseline).resolve(), args)
    venv_bin = Path(sys.executable).parent
    os.environ["PATH"] = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    if args.cluster:
        return on_cluster(args, venv_bin)
    if args.quick or args.one_command:
        return one_command(args, venv_bin)
    return per_assignment(args, venv_bin)


def per_assignment(args, venv_bin: Path) -> int:
    """As instructors grade: one command per assignment, each with ``--students`` submissions;
    then one student regraded per assignment. Both graders on the same files."""
    import json
    import statistics

    from autograder.grading import server

    with tempfile.TemporaryDirectory(prefix="grading-benchmark-") as scratch:
        scratch = Path(scratch)
        lessons = assignments(ROOT)
        plain, ours, written = twin_courses(scratch, "nbgrader", "autograder", args.students * len(lessons))
        runtime = scratch / "run"
        runtime.mkdir(mode=0o700)
        env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), AUTOGRADER_KEEP_WARM="600")
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)  # server.servers() looks there too

        def servers() -> list[int]:
            return [int(d["pid"]) for d in server.servers(ours)]

        print(f"machine: {machine()}")
        print(f"submissions: {len(written)} notebooks ({args.students} students x {len(lessons)} lessons)")
        print("each grader: one command per assignment, one after the other, on the same files\n")
        nbgrader, autograder, per_job = {}, {}, {}
        for lesson in lessons:
            nbgrader[lesson] = measure([[str(venv_bin / "nbgrader"), "autograde", lesson, "--force"]], plain)
        grade = [sys.executable, "-m", "autograder", "grade"]
        workers = ["--workers", str(args.workers)]
        try:
            for lesson in lessons:
                autograder[lesson] = measure(
                    [[*grade, lesson, *workers]], ours, ours / "autograded", env=env, servers=servers
                )
                results = list((ours / "autograded").glob(f"*/{lesson}/result.json"))
                # seconds from the job's start to its score, in a worker
                per_job[lesson] = statistics.median(json.loads(r.read_text())["seconds"] for r in results)
                for result in results:
                    result.rename(result.with_name("result.first.json"))  # the next command's first result
            for result in (ours / "autograded").glob("*/*/result.first.json"):
                result.rename(result.with_name("result.json"))
            expected, got = scores(plain), scores(ours)
            regrade_plain, regrade_ours = {}, {}
            student = written[0][0]
            for lesson in lessons:
                regrade_plain[lesson] = measure(
                    [[str(venv_bin / "nbgrader"), "autograde", lesson, "--student", student, "--force"]],
                    plain,
                )
                regrade_ours[lesson] = measure(
                    [[*grade, lesson, "--student", student, "--force", *workers]],
                    ours,
                    env=env,
                    servers=servers,
                )
        finally:
            server.stop(ours)
        compute = warm_compute(plain, lessons)

        count = args.students
        print(
            f"{'':24}{'nbgrader':>10}{'autograder':>12}{'ratio':>8}{'first result s':>16}"
            f"{'stored s':>10}{'CPU s':>8}{'peak MiB':>10}"
        )
        for lesson in lessons:
            n, o = nbgrader[lesson], autograder[lesson]
            print(
                f"{lesson:<24}{n['wall']:>10.1f}{o['wall']:>12.1f}{n['wall'] / o['wall']:>7.1f}x"
                f"{o['first_line'] or 0:>16.2f}{o['first'] or 0:>10.2f}{o['cpu']:>8.1f}{o['peak_mib']:>10.0f}"
            )
        total_plain = sum(r["wall"] for r in nbgrader.values())
        total_ours = sum(r["wall"] for r in autograder.values())
        cpu_plain = sum(r["cpu"] for r in nbgrader.values())
        cpu_ours = sum(r["cpu"] for r in autograder.values())
        peak_plain = max(r["peak_mib"] for r in nbgrader.values())
        peak_ours = max(r["peak_mib"] for r in autograder.values())
        firsts = [autograder[lesson]["first_line"] or 0 for lesson in lessons]
        print(
            f"{'all assignments':<24}{total_plain:>10.1f}{total_ours:>12.1f}{total_plain / total_ours:>7.1f}x"
        )
        print(
            f"\nCPU s: nbgrader {cpu_plain:.1f}, autograder {cpu_ours:.1f}; "
            f"peak memory (PSS): nbgrader {peak_plain:.0f} MiB, autograder {peak_ours:.0f} MiB"
        )
        print(
            f"first result: {firsts[0]:.2f} s for the first command (server started by it), "
            f"median {statistics.median(firsts[1:]):.2f} s for the next ones"
        )
        print(f"\none student regraded ({student}, --force):")
        print(f"{'':24}{'nbgrader s':>11}{'autograder s':>13}{'share':>8}")
        for lesson in lessons:
            n, o = regrade_plain[lesson]["wall"], regrade_ours[lesson]["wall"]
            print(f"{lesson:<24}{n:>11.2f}{o:>13.2f}{o / n:>8.2f}")
        shares = [regrade_ours[a]["wall"] / regrade_plain[a]["wall"] for a in lessons]
        print(f"median share of nbgrader's time: {statistics.median(shares):.2f}")
        print(
            f"\nper notebook, per worker ({args.workers} workers): the command's wall time x workers / "
            "notebooks, and the median job (assemble, run in a sandbox, score; from result.json), against "
            "the notebook's own compute in a warm process (the solution, median of 3):"
        )
        print(f"{'':24}{'command s':>10}{'job s':>8}{'compute s':>11}{'job / compute':>15}")
        for lesson in lessons:
            cost = autograder[lesson]["wall"] * args.workers / count
            job = per_job[lesson]
            print(
                f"{lesson:<24}{cost:>10.2f}{job:>8.2f}{compute[lesson]:>11.2f}{job / compute[lesson]:>14.1f}x"
            )
        differing = sorted(k for k in expected if expected[k] != got.get(k))
        print(f"\nscores compared: {len(expected)} test cells; differing: {len(differing)}")
        for key in differing[:20]:
            print(f"  {key}: nbgrader {expected[key]}, autograder {got.get(key)}")
        if len(expected) == 0 or len(expected) != len(got) or differing:
            print("FAILED: the two graders disagree")
            return 1
        print("scores identical")
    return 0


WARM_COMPUTE = """
import json, os, statistics, sys, time
os.environ["OMP_NUM_THREADS"] = "1"
from autograder import notebooks
from autograder.grading.sandbox import zygote
zygote.preimport()
zygote.warm_up()
import matplotlib.pyplot as plt
times = {}
for lesson, path in json.loads(sys.argv[1]).items():
    nb = notebooks.read(path)
    os.chdir(os.path.dirname(path))
    runs = []
    for _ in range(3):
        namespace = {"__name__": "__main__"}
        started = time.perf_counter()
        for cell in nb.cells:
            if cell.cell_type == "code":
                lines = cell.source.splitlines()
                source = "\\n".join(l for l in lines if not l.lstrip().startswith(("%", "!")))
                exec(compile(source, "<cell>", "exec"), namespace)
                plt.close("all")
        runs.append(time.perf_counter() - started)
    times[lesson] = statistics.median(runs)
print(json.dumps(times))
"""


def warm_compute(course: Path, lessons: list[str]) -> dict[str, float]:
    """Each lesson's solution run in one warm process (torch imported and warmed up as in a
    sandbox's zygote), median of 3: the notebook's own compute."""
    import json

    paths = {a: str(next((course / "source" / a).glob("*.ipynb"))) for a in lessons}
    done = subprocess.run(
        [sys.executable, "-c", WARM_COMPUTE, json.dumps(paths)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def on_cluster(args, venv_bin: Path) -> int:
    """The same class graded in one command, here and on a Dask cluster of this machine
    (a scheduler and ``--workers`` workers of one thread, on loopback)."""
    import socket

    with tempfile.TemporaryDirectory(prefix="grading-cluster-") as scratch:
        scratch = Path(scratch)
        lessons = assignments(ROOT)
        here, there, written = twin_courses(scratch, "local", "cluster", args.students * len(lessons))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
        dask = str(venv_bin / "dask")
        logs = open(scratch / "cluster.log", "wb")  # open while the cluster runs
        port = address.rsplit(":", 1)[1]
        scheduler = [dask, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"]
        cluster = [subprocess.Popen(scheduler, stdout=logs, stderr=logs)]
        cluster += [
            subprocess.Popen(
                [dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"],
                stdout=logs,
                stderr=logs,
            )
            for _ in range(args.workers)
        ]
        try:
            from distributed import Client

            with Client(address, timeout=30) as client:
                client.wait_for_workers(args.workers, timeout=60)
            in_process = dict(os.environ, AUTOGRADER_KEEP_WARM="0")
            grade = [sys.executable, "-m", "autograder", "grade", *lessons]
            local = measure([[*grade, "--workers", str(args.workers)]], here, env=in_process)
            remote = measure(
                [[*grade, "--cluster", address]],
                there,
                env=in_process,
                servers=lambda: [p.pid for p in cluster],
            )
        finally:
            for process in cluster:
                process.kill()
                process.wait()
            logs.close()
        count = len(written)
        print(f"machine: {machine()}")
        print(f"submissions: {count} notebooks, graded in one command ({', '.join(lessons)})")
        print(f"\n{'':40}{'wall s':>8}{'notebooks/min':>15}{'CPU s':>8}")
        for name, run in (
            (f"local, {args.workers} sandboxed workers", local),
            (f"Dask cluster, {args.workers} workers x 1 sandbox", remote),
        ):
            print(f"{name:<40}{run['wall']:>8.1f}{count / run['wall'] * 60:>15.1f}{run['cpu']:>8.1f}")
        overhead = (remote["wall"] - local["wall"]) * args.workers / count
        print(
            f"\ncluster throughput: {local['wall'] / remote['wall']:.0%} of local; "
            f"overhead per task: {overhead * 1000:+.0f} ms of a worker's time"
        )
        expected, got = scores(here), scores(there)
        differing = sorted(k for k in expected if expected[k] != got.get(k))
        print(f"scores compared: {len(expected)} test cells; differing: {len(differing)}")
        if len(expected) == 0 or differing:
            print("FAILED: the two disagree")
            return 1
        print("scores identical")
    return 0


def twin_courses(scratch: Path, first: str, second: str, count: int):
    """Two identical course folders under ``scratch`` with ``count`` submissions, so that two
    graders (or two ways of grading) work on the same files: ``(first, second, written)``."""
    one = make_course(scratch / first)
    written = write_submissions(one, count)
    two = scratch / second
    shutil.copytree(one, two)
    return one, two, written


def one_command(args, venv_bin: Path) -> int:
    """Every lesson in one `autograder grade` command, against nbgrader one assignment at a time."""
    count = 8 if args.quick else args.submissions
    with tempfile.TemporaryDirectory(prefix="grading-benchmark-") as scratch:
        scratch = Path(scratch)
        plain, ours, written = twin_courses(scratch, "nbgrader", "autograder", count)
        lessons = sorted({a for _, a in written})

        print(f"machine: {machine()}")
        students = len({s for s, _ in written})
        print(f"submissions: {count} notebooks ({students} students x {len(lessons)} lessons)")
        nbgrader = [[str(venv_bin / "nbgrader"), "autograde", a, "--force"] for a in lessons]
        plain_run = measure(nbgrader, plain)
        ours_commands = [
            [sys.executable, "-m", "autograder", "grade", *lessons, "--workers", str(args.workers)]
        ]
        in_process = dict(os.environ, AUTOGRADER_KEEP_WARM="0")  # one command: a warm server buys nothing
        ours_run = measure(ours_commands, ours, watch_results=ours / "autograded", env=in_process)

        expected, got = scores(plain), scores(ours)
        differing = sorted(k for k in expected if expected[k] != got.get(k))
        print(f"scores compared: {len(expected)} test cells; differing: {len(differing)}")
        for key in differing[:20]:
            print(f"  {key}: nbgrader {expected[key]}, autograder {got.get(key)}")

        if not args.quick:
            print(f"\n{'':28}{'wall s':>9}{'subs/min':>10}{'CPU s':>9}{'peak MiB':>10}{'first result s':>16}")
            for name, run in (("nbgrader autograde (1 by 1)", plain_run), ("autograder grade", ours_run)):
                first = f"{run['first']:.1f}" if run["first"] is not None else "-"
                per_minute = count / run["wall"] * 60
                print(
                    f"{name:<28}{run['wall']:>9.1f}{per_minute:>10.1f}{run['cpu']:>9.1f}{run['peak_mib']:>10.0f}{first:>16}"
                )
            ratio = plain_run["wall"] / ours_run["wall"]
            print(f"\nthroughput ratio: {ratio:.1f}x  (workers: {args.workers}, sandboxed)")
        if len(expected) == 0 or len(expected) != len(got) or differing:
            print("FAILED: the two graders disagree")
            return 1
        print("scores identical")
    return 0


def _python_for(checkout: Path, scratch: Path) -> str:
    """A Python that imports ``checkout``'s packages before this environment's (sandboxed workers
    run with -I, which ignores PYTHONPATH): a small venv whose .pth lists both."""
    import site
    import venv

    target = scratch / "baseline-venv"
    venv.EnvBuilder(with_pip=False).create(target)
    (packages,) = target.glob("lib/python*/site-packages")
    ours = [p for p in site.getsitepackages() if p.endswith("site-packages")]
    (packages / "baseline.pth").write_text("\n".join([str(checkout), *ours]) + "\n")
    return str(target / "bin" / "python")


def compare(baseline: Path, args) -> int:
    """This checkout's `autograder grade` against ``baseline``'s, alternating, on the same files."""
    import statistics

    count = args.submissions
    with tempfile.TemporaryDirectory(prefix="grading-compare-") as scratch:
        scratch = Path(scratch)
        # The baseline's lessons, which both sides can grade: the same notebooks on both sides.
        template = make_course(scratch / "template", lessons_from=baseline)
        written = write_submissions(template, count)
        lessons = sorted({a for _, a in written})
        print(f"machine: {machine()}")
        print(
            f"submissions: {count} notebooks of {baseline}'s lessons; "
            f"{args.repeat} runs of each side, alternating"
        )
        sides = {"baseline": _python_for(baseline, scratch), "this checkout": sys.executable}
        runs: dict[str, list[dict]] = {name: [] for name in sides}
        results: dict[str, dict] = {}
        for k in range(args.repeat):
            for name, checkout in sides.items():
                course = scratch / f"{name.replace(' ', '-')}-{k}"
                shutil.copytree(template, course)
                env = dict(os.environ, PYTHONPATH=str(checkout))
                commands = [
                    [sys.executable, "-m", "autograder", "grade", a, "--workers", str(args.workers)]
                    for a in lessons
                ]
                runs[name].append(measure(commands, course, watch_results=course / "autograded", env=env))
                results[name] = scores(course)
        print(f"\n{'':16}{'wall s/notebook':>17}{'CPU s/notebook':>16}{'peak MiB':>10}{'first result s':>16}")
        medians = {}
        for name, measured in runs.items():
            wall = statistics.median(r["wall"] for r in measured) / count
            cpu = statistics.median(r["cpu"] for r in measured) / count
            peak = statistics.median(r["peak_mib"] for r in measured)
            first = statistics.median(r["first"] or 0 for r in measured)
            medians[name] = (wall, cpu)
            print(f"{name:<16}{wall:>17.3f}{cpu:>16.3f}{peak:>10.0f}{first:>16.1f}")
        (bw, bc), (ow, oc) = medians["baseline"], medians["this checkout"]
        print(f"\nthis checkout / baseline: wall {ow / bw:.2f}x, CPU {oc / bc:.2f}x per notebook")
        differing = sorted(
            k for k in results["baseline"] if results["baseline"][k] != results["this checkout"].get(k)
        )
        print(f"scores compared: {len(results['baseline'])} test cells; differing: {len(differing)}")
        for key in differing[:20]:
            print(
                f"  {key}: baseline {results['baseline'][key]}, "
                f"this checkout {results['this checkout'].get(key)}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
