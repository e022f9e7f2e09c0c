"""Collect step: bring submissions into ``submitted/<student>/<assignment>/``.

Accepts a folder of student folders (``alice/gradients.ipynb`` or
``alice/01_gradients/gradients.ipynb``), a folder of loose files named after
the student (``alice_gradients.ipynb``, ``alice-gradients.ipynb``, and the
names LMS downloads produce: ``alice_12345_67890_gradients.ipynb``,
``alice_LATE_12345_67890_gradients-1.ipynb``, ``Alice Smith_12345_assignsubmission_file_gradients.ipynb``),
or a zip of either. The originals are only read. A file that matches no
notebook of the assignment, or a second file for the same student and
notebook, is reported and not copied: nothing is guessed.
"""

import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MOODLE = re.compile(r"^(?P<name>.+?)_\d+_assignsubmission_file_(?P<rest>.+)$")
CANVAS = re.compile(r"^(?P<name>[^_]+)(?:_LATE)?_\d+_\d+_(?P<rest>.+)$")
COPY_SUFFIX = re.compile(r"(?:-\d+| ?\(\d+\))$")


@dataclass
class CollectReport:
    collected: list[tuple[str, str]] = field(default_factory=list)  # (student, notebook)
    updated: list[tuple[str, str]] = field(default_factory=list)
    unchanged: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # files matching no notebook
    ambiguous: list[str] = field(default_factory=list)  # several files for one student and notebook

    def summary(self) -> str:
        lines = [
            f"{len(self.collected)} new, {len(self.updated)} updated, {len(self.unchanged)} unchanged, "
            f"{len(self.unknown)} not recognised, {len(self.ambiguous)} ambiguous"
        ]
        lines += [f"  not recognised: {name}" for name in self.unknown]
        lines += [f"  ambiguous: {name}" for name in self.ambiguous]
        return "\n".join(lines)


def student_slug(name: str) -> str:
    """A student id nbgrader accepts: letters, digits, '.', '_' and '-'."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("_.-").lower()
    return slug


def parse_name(path: PurePosixPath, notebooks: list[str], assignment: str) -> tuple[str, str] | None:
    """``(student, notebook)`` for a submitted file's path, or None when it is not recognised."""
    if path.suffix != ".ipynb":
        return None
    parts = [p for p in path.parts[:-1] if p not in (".", assignment)]
    stem = COPY_SUFFIX.sub("", path.stem)
    if parts and stem in notebooks:  # <student>/[<assignment>/]<notebook>.ipynb
        return student_slug(parts[-1]), stem
    for pattern in (MOODLE, CANVAS):
        match = pattern.match(stem)
        if match and COPY_SUFFIX.sub("", match["rest"]) in notebooks:
            return student_slug(match["name"]), COPY_SUFFIX.sub("", match["rest"])
    for notebook in notebooks:
        for separator in ("_", "-"):
            if stem.endswith(separator + notebook) and len(stem) > len(notebook) + 1:
                return student_slug(stem[: -len(notebook) - 1]), notebook
    return None


def _files(source: Path, scratch: Path) -> list[tuple[PurePosixPath, Path, float]]:
    """(name inside the source, readable path, modification time) of every file."""
    if source.is_file() and zipfile.is_zipfile(source):
        found = []
        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                name = PurePosixPath(info.filename)
                if info.is_dir() or name.is_absolute() or ".." in name.parts or "__MACOSX" in name.parts:
                    continue
                target = scratch / f"{len(found)}.ipynb"
                with archive.open(info) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
                stamp = datetime(*info.date_time, tzinfo=UTC).timestamp()
                found.append((name, target, stamp))
        return found
    if source.is_dir():
        return [
            (PurePosixPath(p.relative_to(source).as_posix()), p, p.stat().st_mtime)
            for p in sorted(source.rglob("*"))
            if p.is_file() and ".ipynb_checkpoints" not in p.parts
        ]
    raise FileNotFoundError(f"{source} is neither a folder nor a zip file")


def collect(course_dir: Path, assignment: str, source: Path) -> CollectReport:
    course_dir, source = Path(course_dir).resolve(), Path(source).resolve()
    notebooks = sorted(p.stem for p in (course_dir / "source" / assignment).glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks in source/{assignment}/: is the assignment name right?")
    report = CollectReport()
    with tempfile.TemporaryDirectory() as scratch:
        matched: dict[tuple[str, str], list[tuple[PurePosixPath, Path, float]]] = {}
        for name, path, stamp in _files(source, Path(scratch)):
            key = parse_name(name, notebooks, assignment)
            if key is None or not STUDENT_ID.match(key[0]):
                if name.name != "timestamp.txt":
                    report.unknown.append(str(name))
                continue
            matched.setdefault(key, []).append((name, path, stamp))
        for (student, notebook), entries in sorted(matched.items()):
            if len(entries) > 1:
                report.ambiguous += [f"{e[0]} ({student}/{notebook})" for e in entries]
                continue
            (_, path, stamp) = entries[0]
            target_dir = course_dir / "submitted" / student / assignment
            target = target_dir / f"{notebook}.ipynb"
            data = path.read_bytes()
            if target.is_file() and target.read_bytes() == data:
                report.unchanged.append((student, notebook))
                continue
            (report.updated if target.exists() else report.collected).append((student, notebook))
            target_dir.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            when = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
            (target_dir / "timestamp.txt").write_text(when + "\n")
    return report
