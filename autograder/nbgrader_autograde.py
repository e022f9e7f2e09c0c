"""Plain `nbgrader autograde`, driven from Python: the reference our own grader must agree with."""

import shutil
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook
from traitlets.config import Config

from autograder import LANGUAGES, notebooks
from autograder.config import nbgrader_api
from autograder.release import assignments, generate, release
from autograder.solutions import solve


@dataclass(frozen=True)
class CellScore:
    grade_id: str
    score: float | None  # None: waits for manual grading
    max_score: float
    auto: bool  # scored by a test cell, not by a person


class GradingError(RuntimeError):
    """nbgrader could not grade a submission."""


def prepare_course(course_dir: Path, workdir: Path, assignment: str) -> Config:
    """A scratch nbgrader course in ``workdir`` that knows ``assignment``.

    Only the assignment's source and the configuration are copied, so grading
    never touches the real course's gradebook or working folders.
    """
    course_dir, workdir = Path(course_dir).resolve(), Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(course_dir / "nbgrader_config.py", workdir / "nbgrader_config.py")
    shutil.copytree(course_dir / "source" / assignment, workdir / "source" / assignment, dirs_exist_ok=True)
    return generate(workdir, assignment, workdir / "release" / "en", f"sqlite:///{workdir / 'gradebook.db'}")


def autograde(
    config: Config, assignment: str, student: str, notebooks: dict[str, Path]
) -> dict[str, dict[str, CellScore]]:
    """Autograde one student's notebooks (``{notebook name: path}``) in a prepared course.

    Returns ``{notebook name: {grade_id: CellScore}}``.
    """
    root = Path(config.CourseDirectory.root)
    target = root / "submitted" / student / assignment
    target.mkdir(parents=True, exist_ok=True)
    for name, path in notebooks.items():
        shutil.copyfile(path, target / f"{name}.ipynb")
    result = nbgrader_api(config).autograde(assignment, student, force=True, create=True)
    if not result["success"]:
        raise GradingError(f"autograde of {student}/{assignment} failed:\n{result.get('log', '')}")
    return read_scores(config.CourseDirectory.db_url, assignment, student)


def read_scores(db_url: str, assignment: str, student: str) -> dict[str, dict[str, CellScore]]:
    with Gradebook(db_url) as gradebook:
        submission = gradebook.find_submission(assignment, student)
        return {
            notebook.name: {
                grade.name: CellScore(
                    grade_id=grade.name,
                    score=grade.score,
                    max_score=grade.max_score,
                    auto=grade.cell.cell_type == "code",
                )
                for grade in notebook.grades
            }
            for notebook in submission.notebooks
        }


@dataclass(frozen=True)
class TwoSidedRow:
    assignment: str
    language: str
    kind: str  # "solved" or "blank"
    auto_score: float
    auto_max: float
    manual_max: float


def grade_solved_and_blank(course_dir: Path, workdir: Path) -> list[TwoSidedRow]:
    """Release every lesson, then grade with plain nbgrader, in each language, a notebook
    with every answer from the source ("solved": must earn every autograded point) and
    the untouched release ("blank": must earn none)."""
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
                    TwoSidedRow(
                        assignment=assignment,
                        language=lang,
                        kind=kind,
                        auto_score=sum(c.score or 0 for c in cells if c.auto),
                        auto_max=sum(c.max_score for c in cells if c.auto),
                        manual_max=sum(c.max_score for c in cells if not c.auto),
                    )
                )
    return rows
