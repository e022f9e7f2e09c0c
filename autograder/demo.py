"""The main job on the course itself: release, then grade a solved and a blank
notebook of every lesson in every language, in a scratch folder.

It checks both sides of grading: a fully solved notebook earns every
autograded point, an untouched release earns none.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

from autograder import LANGUAGES, notebooks
from autograder.nbgrader_autograde import autograde, prepare_course
from autograder.release import assignments, release
from autograder.solutions import solve


@dataclass(frozen=True)
class DemoRow:
    assignment: str
    language: str
    kind: str  # "solved" or "blank"
    auto_score: float
    auto_max: float
    manual_max: float


def grade_solved_and_blank(course_dir: Path, workdir: Path) -> list[DemoRow]:
    course_dir, workdir = Path(course_dir).resolve(), Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    release_dir = workdir / "release"
    release(course_dir, release_dir, db_url=f"sqlite:///{workdir / 'release.db'}")
    rows = []
    for assignment in assignments(course_dir):
        config = prepare_course(course_dir, workdir / "course" / assignment, assignment)
        sources = {
            p.stem: notebooks.read(p) for p in sorted((course_dir / "source" / assignment).glob("*.ipynb"))
        }
        for lang in LANGUAGES:
            released = {name: release_dir / lang / assignment / f"{name}.ipynb" for name in sources}
            solved = {}
            for name, path in released.items():
                solved[name] = workdir / "solved" / lang / assignment / f"{name}.ipynb"
                notebooks.write(solve(notebooks.read(path), sources[name]), solved[name])
            for kind, files in (("solved", solved), ("blank", released)):
                scores = autograde(config, assignment, f"{kind}-{lang}", files)
                cells = [c for per_nb in scores.values() for c in per_nb.values()]
                rows.append(
                    DemoRow(
                        assignment=assignment,
                        language=lang,
                        kind=kind,
                        auto_score=sum(c.score or 0 for c in cells if c.auto),
                        auto_max=sum(c.max_score for c in cells if c.auto),
                        manual_max=sum(c.max_score for c in cells if not c.auto),
                    )
                )
    return rows


def format_table(rows: list[DemoRow]) -> str:
    lines = [f"{'assignment':<22}{'lang':<6}{'submission':<12}{'autograded':>12}{'manual (to grade)':>20}"]
    for r in rows:
        lines.append(
            f"{r.assignment:<22}{r.language:<6}{r.kind:<12}"
            f"{f'{r.auto_score:g}/{r.auto_max:g}':>12}{f'{r.manual_max:g} pts':>20}"
        )
    return "\n".join(lines)


def run_demo(course_dir: Path, out: Path | None = None) -> int:
    workdir = Path(out) if out else Path(tempfile.mkdtemp(prefix="autograder-demo-"))
    print(f"Releasing and grading in {workdir} (the repository is left unchanged)...", flush=True)
    rows = grade_solved_and_blank(course_dir, workdir)
    print(format_table(rows))
    print(
        f"\nStudent notebooks: {workdir / 'release'}\nGraded notebooks:  {workdir / 'course'}/*/autograded/"
    )
    wrong = [r for r in rows if r.auto_score != (r.auto_max if r.kind == "solved" else 0)]
    if wrong:
        print(f"\n{len(wrong)} result(s) differ from expectation: solved should earn all points, blank none.")
        return 1
    return 0
