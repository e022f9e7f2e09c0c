"""The course's nbgrader configuration, read afresh from its nbgrader_config.py at every call.

Importing this module changes nothing in the process: what nbgrader needs of it is set by
``nbgrader_environment``, called where nbgrader's gradebook or API is opened.
"""

import os
import sys
import warnings
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader


def nbgrader_environment() -> None:
    """What nbgrader needs of this process, set before its gradebook or API is opened (again: no change).

    nbgrader runs the ``alembic`` command of its own environment to check the gradebook schema:
    this environment's bin/ goes on ``PATH`` when it is not there. nbgrader's own gradebook code
    triggers SQLAlchemy session notices on every autograde, not about anything the course does:
    they are not shown.
    """
    from sqlalchemy.exc import SAWarning

    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
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
    nbgrader_environment()
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=config)
    api = NbGraderAPI(coursedir=coursedir, config=config)
    api.log_level = "WARN"
    return api


class GradebookURLError(ValueError):
    """A gradebook URL that is not a database URL; the message is one line that says what to give."""


def gradebook_url(config: Config, course_dir: Path, url: str | None = None) -> str:
    """The URL the gradebook is opened with: ``url`` (a user's ``--db``) or else the course's.

    Every place that opens the gradebook takes its URL from here. A relative SQLite path is made
    absolute: the course's to the course folder, a user's to the current folder (where the
    command was typed). ``postgresql://`` and ``postgres://`` (what PostgreSQL's own tools and
    hosting services write) use psycopg 3, ``postgresql+psycopg://``; an explicit driver
    (``postgresql+psycopg2://``) is kept. Anything that is not a database URL raises
    GradebookURLError.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    base = Path(course_dir) if url is None else Path.cwd()
    url = config.CourseDirectory.db_url if url is None else url
    example = "e.g. sqlite:///gradebook.db or postgresql://user@host:5432/gradebook"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise GradebookURLError(f"{url!r} is not a database URL ({example})") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername=f"postgresql+{driver or 'psycopg'}")
        url = parsed.render_as_string(hide_password=False)
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith(("/", ":memory:")) and url != prefix:
        url = prefix + str(base / url[len(prefix) :])
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        shown = parsed.render_as_string(hide_password=True)
        raise GradebookURLError(f"{shown!r} is not a database URL ({example})") from None
    return url
