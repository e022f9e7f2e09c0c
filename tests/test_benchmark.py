"""The grading benchmark's short mode: both graders agree on every score (no timing is asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # plain nbgrader (a kernel per notebook) and the sandboxed grader
ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_finds_identical_scores():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "grading.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "differing: 0" in done.stdout and "scores identical" in done.stdout
