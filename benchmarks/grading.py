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
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

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


def tree_sample(root_pid: int, cpu_ticks: dict[int, int]) -> int:
    """Proportional set size of a process and all its descendants, in KiB; records each
    one's CPU time (user + system clock ticks) into ``cpu_ticks``."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            children.setdefault(int(fields[1]), []).append(pid)
            ticks[pid] = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        cpu_ticks[pid] = max(cpu_ticks.get(pid, 0), ticks.get(pid, 0))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


def measure(
    commands: list[list[str]], cwd: Path, watch_results: Path | None = None, env: dict | None = None
) -> dict:
    """Run commands one after the other; wall time, CPU time, peak memory, first result.

    CPU time is summed over every process of the tree as last sampled (sandboxed
    processes are not the command's direct children, so rusage would miss them)."""
    started = time.monotonic()
    peak, first = 0, None
    cpu_ticks: dict[int, int] = {}
    for command in commands:
        process = subprocess.Popen(
            command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        done = threading.Event()

        def sample(process=process, done=done):
            nonlocal peak, first
            while not done.is_set():
                peak = max(peak, tree_sample(process.pid, cpu_ticks))
                if watch_results is not None and first is None and any(watch_results.glob("*/*/result.json")):
                    first = time.monotonic() - started
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        _, errors = process.communicate()
        done.set()
        sampler.join()
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{errors[-3000:]}")
    return {
        "wall": time.monotonic() - started,
        "cpu": sum(cpu_ticks.values()) / os.sysconf("SC_CLK_TCK"),
        "peak_mib": peak / 1024,
        "first": first,
    }


def scores(course: Path) -> dict[tuple[str, str, str], float | None]:
    with sqlite3.connect(course / "gradebook.db") as db:
        rows = db.execute(
            "select student.id, assignment.name, base_cell.name, grade.auto_score from grade "
            "join base_cell on grade.cell_id = base_cell.id "
            "join grade_cells on grade_cells.id = base_cell.id "
            "join submitted_notebook on grade.notebook_id = submitted_notebook.id "
            "join submitted_assignment on submitted_notebook.assignment_id = submitted_assignment.id "
            "join assignment on submitted_assignment.assignment_id = assignment.id "
            "join student on submitted_assignment.student_id = student.id"
        ).fetchall()
    return {(s, a, c): score for s, a, c, score in rows}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument(
        "--quick", action="store_true", help="8 submissions: check agreement, skip the timings"
    )
    parser.add_argument(
        "--baseline", help="another checkout of this project to compare with, same submissions"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side with --baseline")
    parser.add_argument("--skip-nbgrader", action="store_true", help="with --baseline: no nbgrader run")
    args = parser.parse_args()
    if args.baseline:
        return compare(Path(args.baseline).resolve(), args)
    count = 8 if args.quick else args.submissions
    venv_bin = Path(sys.executable).parent
    env_path = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["PATH"] = env_path

    with tempfile.TemporaryDirectory(prefix="grading-benchmark-") as scratch:
        scratch = Path(scratch)
        plain = make_course(scratch / "nbgrader")
        written = write_submissions(plain, count)
        ours = scratch / "autograder"
        shutil.copytree(plain, ours)
        lessons = sorted({a for _, a in written})

        print(f"machine: {machine()}")
        students = len({s for s, _ in written})
        print(f"submissions: {count} notebooks ({students} students x {len(lessons)} lessons)")
        nbgrader = [[str(venv_bin / "nbgrader"), "autograde", a, "--force"] for a in lessons]
        plain_run = measure(nbgrader, plain)
        ours_commands = [
            [sys.executable, "-m", "autograder", "grade", *lessons, "--workers", str(args.workers)]
        ]
        ours_run = measure(ours_commands, ours, watch_results=ours / "autograded")

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
