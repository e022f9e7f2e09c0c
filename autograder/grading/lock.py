"""One grading run at a time on a course (or on an assignment): a second one is refused."""

import contextlib
import os
from pathlib import Path


class CourseBusy(RuntimeError):
    """Another grading run holds the course."""


@contextlib.contextmanager
def course_lock(course_dir: Path, assignments: list[str] | None = None, db_url: str | None = None):
    """One grading run at a time: a second one is refused, not interleaved.

    With SQLite (one writer at a time) the whole course is locked; with a database server
    (PostgreSQL) each assignment is, so that graders of different assignments share it."""
    import fcntl

    if db_url is None or db_url.startswith("sqlite") or not assignments:
        names = [".grading.lock"]
    else:
        names = [f".grading-{assignment}.lock" for assignment in sorted(set(assignments))]
    with contextlib.ExitStack() as held:
        for name in names:
            handle = os.open(Path(course_dir) / name, os.O_RDWR | os.O_CREAT, 0o644)
            held.callback(os.close, handle)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "?"
                what = "this course" if name == ".grading.lock" else f"{name[9:-5]} of this course"
                raise CourseBusy(
                    f"another `autograder grade` is running on {what} (pid {holder}); "
                    "wait until it ends, then run this one again"
                ) from None
            os.ftruncate(handle, 0)
            os.pwrite(handle, str(os.getpid()).encode(), 0)
        yield
