"""A student's own working copy of the lessons, outside release/ (which stays as generated)."""

import shutil
from pathlib import Path

from autograder import LANGUAGES

WORK_FOLDER = "my-work"


def working_copy(course_dir: Path, language: str, target: Path | None = None) -> tuple[Path, list[Path]]:
    """Copy ``release/<language>/`` to ``my-work/<language>/`` (or ``target``); files already
    there are the student's work and are never overwritten. Returns the folder and what was copied."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}: use one of {', '.join(LANGUAGES)}")
    course_dir = Path(course_dir).resolve()
    release = course_dir / "release" / language
    if not release.is_dir():
        raise FileNotFoundError(f"{release} does not exist: run `make release` first")
    target = Path(target or course_dir / WORK_FOLDER / language).resolve()
    copied = []
    for path in sorted(release.rglob("*")):
        if path.is_file():
            destination = target / path.relative_to(release)
            if not destination.exists():
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)
                copied.append(destination)
    return target, copied
