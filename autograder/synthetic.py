"""A synthetic class made from the release notebooks, for the demo, tests and benchmarks.

Each student gets a profile: ``correct`` (every answer from the source),
``partial`` (every other answer), ``wrong`` (answers with a plausible slip: the
first number in each answer changed), ``blank`` (the release untouched), in
English or Russian, plus a few ``broken`` files an instructor really receives.
Files are written as an LMS download: loose ``<student>_<notebook>.ipynb``.
"""

import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

from autograder import LANGUAGES, notebooks
from autograder.solutions import solution_sources

PROFILES = ("correct", "partial", "wrong", "blank")
BROKEN = ("invalid_json", "empty", "renamed", "deleted_tests", "duplicated_answer", "wrong_kernel")
_REGION = re.compile(r"### BEGIN SOLUTION[^\n]*\n(?P<body>.*?)^[ \t]*### END SOLUTION", re.S | re.M)
_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)


@dataclass(frozen=True)
class SyntheticStudent:
    student: str
    profile: str
    language: str
    broken: str | None = None


def slip(cell_source: str) -> str:
    """The answer of a source solution cell with a plausible mistake in it.

    The first number in the solution region's code (not in its strings or
    comments) is changed; with no number there, its first ``return`` returns None.
    """
    match = _REGION.search(cell_source)
    if not match:
        return _MARKER.sub("", cell_source)
    region = match["body"]
    mutated = region
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(region).readline))
    except (tokenize.TokenError, IndentationError):
        tokens = []
    number = next((t for t in tokens if t.type == tokenize.NUMBER), None)
    if number is not None:
        lines = region.splitlines(keepends=True)
        row, start, end = number.start[0] - 1, number.start[1], number.end[1]
        value = number.string
        changed = str(int(value) + 1) if value.isdigit() else repr(float(value) * 2)
        lines[row] = lines[row][:start] + changed + lines[row][end:]
        mutated = "".join(lines)
    else:
        mutated = re.sub(r"\breturn\b[^\n]*", "return None", region, count=1)
    return _MARKER.sub("", cell_source[: match.start("body")] + mutated + cell_source[match.end("body") :])


def answered(release_nb, source_nb, profile: str):
    """The release notebook with the profile's answers filled in."""
    nb = notebooks.copy(release_nb)
    answers = solution_sources(source_nb)
    originals = {notebooks.grade_id(c): c.source for c in source_nb.cells if notebooks.is_solution(c)}
    position = 0
    for cell in nb.cells:
        if not notebooks.is_solution(cell) or cell.cell_type != "code":
            continue
        answer = answers.get(notebooks.grade_id(cell))
        if answer is None or profile == "blank":
            continue
        if profile == "correct" or (profile == "partial" and position % 2 == 0):
            cell.source = answer
        elif profile == "wrong":
            cell.source = slip(originals[notebooks.grade_id(cell)])
        position += 1
    return nb


def break_file(nb, kind: str, path: Path) -> Path:
    """Write ``nb`` to ``path`` damaged in the way ``kind`` says; returns the file written."""
    if kind == "invalid_json":
        path.write_text(notebooks.writes(nb)[:300], encoding="utf-8")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "renamed":
        path = path.with_name(path.stem + "_final.ipynb")
        notebooks.write(nb, path)
    elif kind == "deleted_tests":
        nb.cells = [c for c in nb.cells if not notebooks.is_grade(c)]
        notebooks.write(nb, path)
    elif kind == "duplicated_answer":
        first = next(i for i, c in enumerate(nb.cells) if notebooks.is_solution(c))
        nb.cells.insert(first + 1, notebooks.copy(nb).cells[first])
        nb.cells[first + 1].id = "duplicate-of-" + nb.cells[first].id
        notebooks.write(nb, path)
    elif kind == "wrong_kernel":
        nb.metadata["kernelspec"] = {"name": "julia-1.10", "display_name": "Julia 1.10", "language": "julia"}
        notebooks.write(nb, path)
    else:
        raise ValueError(f"unknown kind of broken file: {kind}")
    return path


def roster(n_students: int, n_broken: int | None = None) -> list[SyntheticStudent]:
    """Profiles and languages in turn; the last ``n_broken`` students send a broken file."""
    n_broken = min(len(BROKEN), max(1, n_students // 8)) if n_broken is None else n_broken
    students = []
    for i in range(n_students):
        profile = PROFILES[i % len(PROFILES)]
        language = LANGUAGES[(i // len(PROFILES)) % len(LANGUAGES)]
        broken = BROKEN[i - (n_students - n_broken)] if i >= n_students - n_broken else None
        students.append(SyntheticStudent(f"student{i + 1:03d}", profile, language, broken))
    return students


def write_class(
    course_dir: Path, release_dir: Path, assignment: str, students: list[SyntheticStudent], out: Path
):
    """Write every student's notebooks of ``assignment`` as loose LMS-style files into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for source_path in sorted((course_dir / "source" / assignment).glob("*.ipynb")):
        source_nb = notebooks.read(source_path)
        releases = {
            lang: notebooks.read(release_dir / lang / assignment / source_path.name) for lang in LANGUAGES
        }
        for s in students:
            nb = answered(releases[s.language], source_nb, s.profile)
            target = out / f"{s.student}_{source_path.name}"
            if s.broken:
                break_file(nb, s.broken, target)
            else:
                notebooks.write(nb, target)
