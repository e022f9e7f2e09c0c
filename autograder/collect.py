"""Collect step: bring submissions into ``submitted/<student>/<assignment>/``.

Accepts a folder of student folders (``alice/gradients.ipynb`` or
``alice/01_gradients/gradients.ipynb``), a folder of loose files named after
the student (``alice_gradients.ipynb``, ``alice-gradients.ipynb``, and the
names LMS downloads produce: ``alice_12345_67890_gradients.ipynb``,
``alice_LATE_12345_67890_gradients-1.ipynb``, ``Alice Smith_12345_assignsubmission_file_gradients.ipynb``),
or a zip of either. The originals are only read. A file that matches no
notebook of the assignment, or a second file for the same student and
notebook, is reported and not copied: nothing is guessed. No link is ever
followed: a symbolic link (file or folder, in a folder or a zip), a file with
hard links, anything that is not a plain file and a zip entry whose path leaves
the archive (``..``, an absolute path) are refused by name and never read.
"""

import os
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MOODLE = re.compile(r"^(?P<name>.+?)_\d+_assignsubmission_file_(?P<rest>.+)$")
CANVAS = re.compile(r"^(?P<name>[^_]+)(?:_LATE)?_\d+_\d+_(?P<rest>.+)$")
COPY_SUFFIX = re.compile(r"(?:-\d+| ?\(\d+\))$")
MAX_FILE_BYTES = 64 * 2**20  # a zip entry larger than this is not unpacked (the grader refuses > 20 MB)


@dataclass
class CollectReport:
    collected: list[tuple[str, str]] = field(default_factory=list)  # (student, notebook)
    updated: list[tuple[str, str]] = field(default_factory=list)
    unchanged: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # files matching no notebook
    ambiguous: list[str] = field(default_factory=list)  # several files for one student and notebook
    refused: list[str] = field(default_factory=list)  # "name (why)": links, paths out of the download, …

    def summary(self) -> str:
        lines = [
            f"{len(self.collected)} new, {len(self.updated)} updated, {len(self.unchanged)} unchanged, "
            f"{len(self.unknown)} not recognised, {len(self.ambiguous)} ambiguous, "
            f"{len(self.refused)} refused"
        ]
        lines += [f"  not recognised: {_shown(name)}" for name in self.unknown]
        lines += [f"  ambiguous: {_shown(name)}" for name in self.ambiguous]
        lines += [f"  refused: {_shown(name)}" for name in self.refused]
        return "\n".join(lines)


def _shown(name: str) -> str:
    """A file name as it can be printed: control characters and undecodable bytes escaped."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in name)


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


def _files(source: Path, scratch: Path, refused: list[str]) -> list[tuple[PurePosixPath, Path, float]]:
    """(name inside the source, readable path, modification time) of every plain file.

    Links and other entries that are not plain files go to ``refused`` as "name (why)".
    """
    if source.is_file() and zipfile.is_zipfile(source):
        return _zip_files(source, scratch, refused)
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is neither a folder nor a zip file")
    found = []

    def unreadable(error: OSError) -> None:
        where = Path(error.filename or source)
        refused.append(f"{_relative(where, source)} (could not be read)")

    for root, dirs, files in os.walk(source, onerror=unreadable):  # never into a linked folder
        here = Path(root)
        dirs[:] = [d for d in sorted(dirs) if d != ".ipynb_checkpoints"]
        for name in [d for d in dirs if (here / d).is_symlink()]:
            refused.append(f"{_relative(here / name, source)} (symbolic link)")
            dirs.remove(name)
        for name in sorted(files):
            path = here / name
            try:
                info = path.lstat()
            except OSError:
                refused.append(f"{_relative(path, source)} (could not be read)")
                continue
            why = _not_plain(info)
            if why:
                refused.append(f"{_relative(path, source)} ({why})")
            else:
                found.append((PurePosixPath(_relative(path, source)), path, info.st_mtime))
    return sorted(found)


def _relative(path: Path, source: Path) -> str:
    return path.relative_to(source).as_posix()


def _not_plain(info: os.stat_result) -> str:
    """Why a file is not read ("" when it is a plain file with no other name)."""
    if stat.S_ISLNK(info.st_mode):
        return "symbolic link"
    if not stat.S_ISREG(info.st_mode):
        return "not a plain file"
    if info.st_nlink > 1:
        return "hard link"
    return ""


def _zip_files(source: Path, scratch: Path, refused: list[str]) -> list[tuple[PurePosixPath, Path, float]]:
    found = []
    with zipfile.ZipFile(source) as archive:
        for info in archive.infolist():
            parts = re.split(r"[/\\]", info.filename)
            if info.is_dir() or "__MACOSX" in parts:
                continue
            kind = stat.S_IFMT(info.external_attr >> 16)  # the Unix file type, 0 when none is stored
            if info.filename.startswith(("/", "\\")) or ".." in parts or re.match(r"[A-Za-z]:", parts[0]):
                refused.append(f"{info.filename} (path outside the download)")
                continue
            if kind == stat.S_IFLNK:
                refused.append(f"{info.filename} (symbolic link)")
                continue
            if kind not in (0, stat.S_IFREG):
                refused.append(f"{info.filename} (not a plain file)")
                continue
            if info.file_size > MAX_FILE_BYTES:
                refused.append(f"{info.filename} (over {MAX_FILE_BYTES // 2**20} MB)")
                continue
            target = scratch / f"{len(found)}.ipynb"
            try:  # zipfile reads no more than the entry's stated size
                with archive.open(info) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
            except Exception:  # zipfile raises many unrelated types on a damaged or encrypted entry
                refused.append(f"{info.filename} (could not be unpacked)")
                target.unlink(missing_ok=True)
                continue
            try:
                stamp = datetime(*info.date_time, tzinfo=UTC).timestamp()
            except ValueError:  # a date the zip's writer got wrong: the archive's own time
                stamp = source.stat().st_mtime
            found.append((PurePosixPath(info.filename), target, stamp))
    return found


def _read_plain(path: Path) -> bytes:
    """The bytes of a plain file with no other name, without following a link (OSError otherwise)."""
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as file:
        if _not_plain(os.fstat(file.fileno())):
            raise OSError(f"{path} is no longer a plain file")
        return file.read()


def collect(course_dir: Path, assignment: str, source: Path) -> CollectReport:
    course_dir, source = Path(course_dir).resolve(), Path(source).resolve()
    notebooks = sorted(p.stem for p in (course_dir / "source" / assignment).glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks in source/{assignment}/: is the assignment name right?")
    report = CollectReport()
    with tempfile.TemporaryDirectory() as scratch:
        matched: dict[tuple[str, str], list[tuple[PurePosixPath, Path, float]]] = {}
        for name, path, stamp in _files(source, Path(scratch), report.refused):
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
            (name, path, stamp) = entries[0]
            target_dir = course_dir / "submitted" / student / assignment
            target = target_dir / f"{notebook}.ipynb"
            try:
                data = _read_plain(path)
            except OSError:
                report.refused.append(f"{name} (could not be read)")
                continue
            if target.is_file() and target.read_bytes() == data:
                report.unchanged.append((student, notebook))
                continue
            (report.updated if target.exists() else report.collected).append((student, notebook))
            target_dir.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            when = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
            (target_dir / "timestamp.txt").write_text(when + "\n")
    return report
