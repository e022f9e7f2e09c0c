"""A submission's result, and where it is kept: ``autograded/<student>/<assignment>/result.json``.

What feedback, export and the report read. Importing this module imports neither
the sandbox, nor torch, nor nbgrader: reading results does not need them.
"""

import json
import os
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path

from autograder import notebooks

RESULT_FILE = "result.json"


class CellKind(StrEnum):
    """What a cell is to the grader (its value is what ``result.json`` and the sandbox's jobs hold)."""

    TEST = "test"  # an autograded test cell
    WRITTEN = "written"  # an answer graded by a person
    CODE = "code"  # any other code cell of a run job


@dataclass
class CellResult:
    grade_id: str
    kind: CellKind  # TEST or WRITTEN
    exercise: str
    points: float
    score: float | None  # None: waits for a person
    passed: bool | None
    message: str  # in the student's language
    hidden: bool
    message_en: str = ""  # the same message in English, for the instructor's report

    def __post_init__(self) -> None:
        self.kind = CellKind(self.kind)


@dataclass
class SubmissionResult:
    student: str
    assignment: str
    status: str  # "graded" or "error"
    reason: str = ""
    language: str = "en"
    timestamp: str | None = None
    digest: str = ""
    notices: list[str] = field(default_factory=list)  # shown to the student
    instructor_notes: list[str] = field(default_factory=list)  # the instructor's only (roster, logs)
    cells: dict[str, list[CellResult]] = field(default_factory=dict)  # notebook -> cells
    seconds: float = 0.0
    unsafe: bool = False
    executed: dict = field(default_factory=dict, repr=False)  # notebook -> run notebook; not saved

    @property
    def score(self) -> float:
        return sum(c.score or 0 for cells in self.cells.values() for c in cells)

    def to_json(self) -> str:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "executed"}
        data["cells"] = {nb: [asdict(c) for c in cells] for nb, cells in self.cells.items()}
        return json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SubmissionResult":
        data = json.loads(text)
        data["cells"] = {nb: [CellResult(**c) for c in cells] for nb, cells in data["cells"].items()}
        return cls(**data)


def write_result(course_dir: Path, result: SubmissionResult) -> None:
    """The run notebooks, then ``result.json``; each file is replaced whole, never left half written."""
    folder = course_dir / "autograded" / result.student / result.assignment
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in result.executed.items():
        _atomic_write(folder / f"{name}.ipynb", notebooks.writes(nb))
    _atomic_write(folder / RESULT_FILE, result.to_json())


def read_result(course_dir: Path, student: str, assignment: str) -> SubmissionResult | None:
    """The stored result, or None when the submission has none."""
    path = Path(course_dir) / "autograded" / student / assignment / RESULT_FILE
    return SubmissionResult.from_json(path.read_text(encoding="utf-8")) if path.is_file() else None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
