"""Plain `nbgrader autograde`, driven from Python: the reference our own grader must agree with."""

import shutil
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook
from traitlets.config import Config

from autograder.config import load_config, nbgrader_api


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
    overrides = Config()
    overrides.CourseDirectory.db_url = f"sqlite:///{workdir / 'gradebook.db'}"
    overrides.CourseDirectory.release_directory = str(workdir / "release" / "en")
    config = load_config(workdir, overrides)
    result = nbgrader_api(config).generate_assignment(assignment, force=True, create=True)
    if not result["success"]:
        raise GradingError(f"could not register {assignment}:\n{result.get('log', '')}")
    return config


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
