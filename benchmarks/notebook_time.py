"""How long each source notebook takes to execute, kernel start included.

Run: .venv/bin/python benchmarks/notebook_time.py [--repeat N]
Prints the machine, then per notebook the median and spread of N fresh runs,
against the course's target of 20 s on a 2-core CPU. Nothing is written back.
"""

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

from nbclient import NotebookClient

from autograder import notebooks

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 20.0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_once(path: Path) -> float:
    nb = notebooks.read(path)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    client.execute(env=dict(os.environ, COURSE_DEVICE=os.environ.get("COURSE_DEVICE", "cpu")))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"machine: {os.cpu_count()} cores, {memory:.1f} GiB, {cpu_model()}")
    print(f"{'notebook':<44}{'median s':>10}{'min s':>8}{'max s':>8}  target {TARGET_S:g} s")
    for path in notebooks.source_notebooks(ROOT):
        times = [run_once(path) for _ in range(args.repeat)]
        verdict = "ok" if statistics.median(times) < TARGET_S else "SLOW"
        name = str(path.relative_to(ROOT))
        print(f"{name:<44}{statistics.median(times):>10.2f}{min(times):>8.2f}{max(times):>8.2f}  {verdict}")


if __name__ == "__main__":
    main()
