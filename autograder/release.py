"""Release step: source/ -> release/<lang>/<assignment>/<notebook>.ipynb for every language."""

from pathlib import Path

from traitlets.config import Config

from autograder import LANGUAGES
from autograder.config import load_config, nbgrader_api
from autograder.language import ANSWER_STUBS
from autograder.notebooks import assignments


class ReleaseError(RuntimeError):
    """nbgrader could not generate a student version."""


def generate(
    course_dir: Path, assignment: str, release_dir: Path, db_url: str | None = None, language: str = "en"
) -> Config:
    """``nbgrader generate_assignment`` for one language: the student version in
    ``release_dir`` and the assignment recorded in the gradebook. Returns the config used."""
    overrides = Config()
    overrides.SelectLanguage.language = language
    overrides.ClearSolutions.text_stub = ANSWER_STUBS[language]
    overrides.CourseDirectory.release_directory = str(release_dir)
    if db_url:
        overrides.CourseDirectory.db_url = db_url
    config = load_config(course_dir, overrides)
    result = nbgrader_api(config).generate_assignment(assignment, force=True, create=True)
    if not result["success"]:
        details = f"{result.get('log', '')}\n{result.get('error', '')}"
        raise ReleaseError(f"generating {language}/{assignment} failed:\n{details}")
    return config


def release(course_dir: Path, output_dir: Path | None = None, db_url: str | None = None) -> list[Path]:
    """Generate the student notebooks of every assignment in every language.

    Writes ``output_dir/<lang>/<assignment>/`` (default: the course's
    ``release/``) and records the assignments in the gradebook (``db_url``,
    default: the course's). Returns the notebooks written.
    """
    course_dir = Path(course_dir).resolve()
    output_dir = Path(output_dir or course_dir / "release").resolve()
    written = []
    for lang in sorted(LANGUAGES, key=lambda lang: lang == "en"):  # English last: see ANSWER_STUBS
        for assignment in assignments(course_dir):
            generate(course_dir, assignment, output_dir / lang, db_url, lang)
            written += sorted((output_dir / lang / assignment).glob("*.ipynb"))
    return written
