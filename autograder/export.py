"""Export step: one CSV row per student and assignment.

Scores come from the gradebook, so a person's scores (formgrader) override the
autograder's; status and reason come from the grading result.
"""

import csv
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from autograder.config import gradebook_url, load_config
from autograder.grade import read_result

FIXED_COLUMNS = [
    "student_id",
    "assignment",
    "language",
    "status",
    "reason",
    "score",
    "max_score",
    "submitted_at",
    "seconds_late",
]


def collect_rows(course_dir: Path, db_url: str | None = None) -> tuple[list[str], list[dict]]:
    """Column names and rows for every (student on the roster, assignment in the gradebook)."""
    course_dir = Path(course_dir).resolve()
    db_url = db_url or gradebook_url(load_config(course_dir), course_dir)
    rows, cell_columns = [], []
    with Gradebook(db_url) as gb:
        for assignment in sorted(gb.assignments, key=lambda a: a.name):
            cells = [
                f"{assignment.name}:{cell.name}"
                for notebook in assignment.notebooks
                for cell in sorted(notebook.grade_cells, key=lambda c: c.name)
            ]
            cell_columns += cells
            for student in sorted(gb.students, key=lambda s: s.id):
                row = {
                    "student_id": student.id,
                    "assignment": assignment.name,
                    "max_score": assignment.max_score,
                }
                try:
                    submission = gb.find_submission(assignment.name, student.id)
                except MissingEntry:
                    rows.append(row | {"status": "not submitted", "score": 0, "reason": "", "language": ""})
                    continue
                result = read_result(course_dir, student.id, assignment.name)
                row |= {
                    "score": round(submission.score, 4),
                    "status": result.status if result else "not graded",
                    "reason": result.reason if result else "",
                    "language": result.language if result else "",
                    "submitted_at": submission.timestamp.isoformat(sep=" ") if submission.timestamp else "",
                    "seconds_late": round(submission.total_seconds_late, 1),
                }
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        # nbgrader counts "not graded yet" as 0; the CSV leaves it empty instead
                        pending = grade.manual_score is None and grade.auto_score is None
                        row[f"{assignment.name}:{grade.name}"] = "" if pending else grade.score
                rows.append(row)
    return FIXED_COLUMNS + cell_columns, rows


def export_csv(course_dir: Path, path: Path, db_url: str | None = None) -> int:
    """Write the grades CSV; returns the number of rows."""
    columns, rows = collect_rows(course_dir, db_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
