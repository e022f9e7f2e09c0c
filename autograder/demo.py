"""The instructor's whole job on a synthetic class, in a scratch course directory.

release -> a class of N students (correct, partial, wrong and blank answers, in
English and Russian, a few broken files) downloaded as an LMS would give it ->
collect -> grade -> feedback -> export -> report. The repository is only read.
"""

import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from autograder.cli import progress_bar
from autograder.collect import collect
from autograder.export import DEFAULT_FILES, export_csv
from autograder.feedback import FEEDBACK_DIR, write_feedback
from autograder.grading.grade import grade_assignment
from autograder.grading.results import CellKind, read_result
from autograder.grading.sandbox import WorkerPool, check_available
from autograder.release import assignments, release
from autograder.report import write_report
from autograder.synthetic import roster, write_class


def scratch_course(course_dir: Path, target: Path) -> Path:
    """A new course directory with the lessons and configuration of ``course_dir``."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(course_dir / "source", target / "source", dirs_exist_ok=True)
    shutil.copy2(course_dir / "nbgrader_config.py", target / "nbgrader_config.py")
    return target


def run_demo(
    course_dir: Path,
    out: Path | None = None,
    n_students: int = 40,
    only: list[str] | None = None,
    workers: int | None = None,
) -> int:
    started = time.monotonic()
    workdir = Path(out).resolve() if out else Path(tempfile.mkdtemp(prefix="autograder-demo-"))
    print(f"Demo course in {workdir} (the repository is left unchanged)\n", flush=True)
    check_available()
    course = scratch_course(Path(course_dir).resolve(), workdir / "course")
    release(course)
    students = roster(n_students)
    chosen = only or assignments(course)
    with WorkerPool(workers or os.cpu_count() or 1) as sandboxes:
        for assignment in chosen:
            grade_and_give_feedback(course, workdir, assignment, students, sandboxes)
    grades = course / DEFAULT_FILES["csv"]

    rows = export_csv(course, grades)
    page = write_report(course, course / "report")

    print(summary_table(course, chosen, students))
    print(f"\nfinished in {time.monotonic() - started:.0f} s")
    print(f"  student notebooks:  {course / 'release'}")
    print(f"  submissions:        {course / 'submitted'}")
    print(f"  feedback (HTML):    {course / FEEDBACK_DIR}/<student>/<assignment>/feedback.html")
    print(f"  grades (CSV):       {grades} ({rows} rows)")
    print(f"  report:             {page}")
    print(f"  gradebook:          {course / 'gradebook.db'} (nbgrader commands work in {course})")
    print(f"These files stay so that you can open them; remove them with: rm -rf {workdir}")
    return 0


def grade_and_give_feedback(course: Path, workdir: Path, assignment: str, students, sandboxes) -> None:
    lms = workdir / "lms-download" / assignment
    write_class(course, course / "release", assignment, students, lms)
    report = collect(course, assignment, lms)
    print(f"collect {assignment}: {report.summary()}")
    print(f"grade {assignment}:", flush=True)
    outcome = grade_assignment(course, assignment, progress=progress_bar(), sandboxes=sandboxes)
    print(outcome.summary() + "\n", flush=True)
    write_feedback(course, assignment)


def summary_table(course: Path, chosen: list[str], students) -> str:
    profile = {s.student: (s.broken and f"broken:{s.broken}") or s.profile for s in students}
    scores = defaultdict(list)
    errors = defaultdict(int)
    maximum = {}
    for assignment in chosen:
        for s in students:
            result = read_result(course, s.student, assignment)
            if result is None:
                continue
            key = (assignment, profile[s.student])
            scores[key].append(result.score)
            errors[key] += result.status == "error"
            maximum[assignment] = max(
                maximum.get(assignment, 0),
                sum(c.points for cs in result.cells.values() for c in cs if c.kind == CellKind.TEST),
            )
    lines = [f"{'assignment':<22}{'students':<28}{'n':>4}{'mean score':>12}{'errors':>8}"]
    for (assignment, kind), values in sorted(scores.items()):
        mean = f"{sum(values) / len(values):.1f}/{maximum[assignment]:g}"
        lines.append(f"{assignment:<22}{kind:<28}{len(values):>4}{mean:>12}{errors[(assignment, kind)]:>8}")
    return "\n".join(lines)
