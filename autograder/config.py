"""The course's nbgrader configuration, read from its nbgrader_config.py."""

import os
import sys
import warnings
from pathlib import Path

from sqlalchemy.exc import SAWarning
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

# nbgrader runs the `alembic` command of its own environment to check the gradebook
# schema; make it findable when this environment's bin/ is not on PATH.
_bin = str(Path(sys.executable).parent)
if _bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")

# nbgrader's own gradebook code triggers these SQLAlchemy session notices on every
# autograde; they are not about anything the course does.
warnings.filterwarnings("ignore", category=SAWarning, module=r"nbgrader\.")


def load_config(course_dir: Path, overrides: Config | None = None) -> Config:
    """``nbgrader_config.py`` of ``course_dir``, with its root set and ``overrides`` on top."""
    course_dir = Path(course_dir).resolve()
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
    config.CourseDirectory.root = str(course_dir)
    if overrides is not None:
        config.merge(overrides)
    return config


def nbgrader_api(config: Config):
    """nbgrader's Python API on ``config`` (imported here: seconds, which grading does not wait for)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=config)
    api = NbGraderAPI(coursedir=coursedir, config=config)
    api.log_level = "WARN"
    return api


def gradebook_url(config: Config, course_dir: Path) -> str:
    """The gradebook's database URL, with a relative SQLite path made absolute to the course."""
    url = config.CourseDirectory.db_url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + str(Path(course_dir) / url[len(prefix) :])
    return url
