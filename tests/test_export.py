"""Roster, exports (csv, Moodle, Canvas) and the report, on the toy course.

Results are stored without running a sandbox: through the functions the grader
itself stores them with (``write_result`` into autograded/, ``write_scores`` into the
gradebook), from cells built on the toy lesson's real grade cells.
"""

import csv
import shutil

import pytest
from conftest import ASSIGNMENT, NOTEBOOK
from nbgrader.api import Gradebook

from autograder import roster
from autograder.cli import main
from autograder.export import CANVAS_IDENTITY, MOODLE_IDENTITY, export, gather
from autograder.grading.gradebook import write_scores
from autograder.grading.results import CellResult, SubmissionResult, write_result
from autograder.grading.submission import load_solved_notebooks
from autograder.report import failures_by_check, load_results, write_report

ROSTER = """\ufeffid,first_name,last_name,email,favourite_colour
ann, Ann ,Lee,ann@example.org,green
boris,Борис,Петров,boris@example.org,
cleo,Cleo,,cleo@example.org,red
dan,Dan,Brown,,blue
"""

SQUARE_EN = "✘ square([1, 2]): 1 of 2 values differ; first at index (0,): got 2, expected 1; max abs error 1"
SQUARE_RU = "✘ square([1, 2]): различаются 1 из 2 значений; первое в позиции (0,): получено 2, ожидалось 1"
RAISED_EN = "the code raised TypeError during the test"
RAISED_RU = "код выбросил TypeError во время теста"


def db(course) -> str:
    return f"sqlite:///{course / 'gradebook.db'}"


def cells(course, language: str, failed: dict[str, tuple[str, str]] | None = None) -> list[CellResult]:
    """The toy lesson's grade cells, all passed but ``failed`` ({grade_id: (message, message_en)})."""
    failed = failed or {}
    solved = load_solved_notebooks(course, ASSIGNMENT)[(NOTEBOOK, language)]
    out = []
    for g in solved.grade_cells:
        if g.kind == "written":
            out.append(CellResult(g.grade_id, "written", g.exercise, g.points, None, None, "", g.hidden))
        elif g.grade_id in failed:
            message, message_en = failed[g.grade_id]
            out.append(
                CellResult(
                    g.grade_id, "test", g.exercise, g.points, 0.0, False, message, g.hidden, message_en
                )
            )
        else:
            out.append(CellResult(g.grade_id, "test", g.exercise, g.points, g.points, True, "", g.hidden, ""))
    return out


def graded(course, student: str, language: str = "en", failed=None, *, on_roster: bool = True):
    result = SubmissionResult(student, ASSIGNMENT, "graded", language=language)
    result.timestamp = "2030-01-01 10:00:00.000000 UTC"
    result.cells = {NOTEBOOK: cells(course, language, failed)}
    write_result(course, result)
    if on_roster:
        with Gradebook(db(course)) as gb:
            write_scores(gb, result, allow_unknown=True)
    return result


@pytest.fixture
def course(toy_course, tmp_path):
    """The toy course with a roster of four, three graded, one graded but not on the roster,
    and a second assignment in source/ that nobody has submitted yet."""
    (tmp_path / "roster.csv").write_text(ROSTER, encoding="utf-8")
    roster.import_csv(toy_course, tmp_path / "roster.csv")
    graded(toy_course, "ann")
    graded(toy_course, "boris", "ru", {"square_test": (SQUARE_RU, SQUARE_EN)})
    graded(
        toy_course, "cleo", "en", {"square_test": (SQUARE_EN, SQUARE_EN), "grad_test": (RAISED_EN, RAISED_EN)}
    )
    graded(toy_course, "zed", on_roster=False)
    extra = toy_course / "source" / "extra"
    extra.mkdir()
    shutil.copy2(toy_course / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", extra / "extra.ipynb")
    return toy_course


def read_csv(path):
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


# roster


def test_roster_import_adds_then_updates_and_ignores_unknown_columns(toy_course, tmp_path, capsys):
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER, encoding="utf-8")
    assert main(["--course-dir", str(toy_course), "roster", "import", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "4 student(s) added, 0 updated"
    listed = {s["id"]: s for s in roster.students(toy_course)}
    assert sorted(listed) == ["ann", "boris", "cleo", "dan"]
    assert listed["ann"] == {
        "id": "ann", "first_name": "Ann", "last_name": "Lee", "email": "ann@example.org", "lms_user_id": None,
    }  # fmt: skip
    assert listed["boris"]["first_name"] == "Борис" and listed["dan"]["email"] is None

    path.write_text("ID,Email\nann,ann@new.example.org\neve,eve@example.org\n", encoding="utf-8")
    assert main(["--course-dir", str(toy_course), "roster", "import", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "1 student(s) added, 1 updated"
    ann = roster.students(toy_course)[0]
    assert ann["email"] == "ann@new.example.org" and ann["last_name"] == "Lee"  # columns absent: kept


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"student,email\nann,a@example.org\n", "no id column"),
        (b"id,email\nnew,n@example.org\n,b@example.org\n", "line 3: the student id is empty"),
        (b"id,email\nnew,n@example.org\nann,x@example.org\nnew,m@example.org\n", "'new' is also on line 2"),
        ("id,first_name\nnew,Jos\u00e9\n".encode("latin-1"), "is not UTF-8"),
        (b"id\nnew\n../etc\n", "cannot name a folder"),
        (b"", "is empty"),
    ],
)
def test_a_bad_roster_file_is_one_line_and_writes_nothing(toy_course, tmp_path, capsys, content, says):
    roster.add(toy_course, "ann", email="ann@example.org")
    before = roster.students(toy_course)
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    assert main(["--course-dir", str(toy_course), "roster", "import", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err and err.count("\n") == 1, err
    assert roster.students(toy_course) == before


def test_roster_add_and_list(toy_course, tmp_path, capsys):
    run = ["--course-dir", str(toy_course), "roster"]
    assert main([*run, "add", "ann", "--first-name", "Ann", "--email", "ann@example.org"]) == 0
    assert main([*run, "add", "ann", "--last-name", "Lee"]) == 0
    assert capsys.readouterr().out.splitlines() == ["added ann", "updated ann"]
    assert main([*run, "list"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == ["ann\tAnn Lee\tann@example.org"] and "1 student(s)" in out.err
    assert main([*run, "add", "a/b"]) == 2 and "cannot name a folder" in capsys.readouterr().err
    assert main([*run, "list", "--db", "not a url"]) == 2 and "check --db" in capsys.readouterr().err
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert main([*run, "add", "bob", "--db", other]) == 0
    assert [s["id"] for s in roster.students(toy_course)] == ["ann"]
    assert [s["id"] for s in roster.students(toy_course, db_url=other)] == ["bob"]


# exports


def test_csv_has_a_row_per_roster_student_and_assignment(course, capsys):
    assert main(["--course-dir", str(course), "export"]) == 0
    assert not (course / "grades.csv").exists()  # nbgrader's own file is left alone
    rows = list(csv.DictReader((course / "autograder-grades.csv").open(encoding="utf-8")))
    assert "10 row(s)" in capsys.readouterr().out
    by = {(r["student_id"], r["assignment"]): r for r in rows}
    assert sorted(by) == [
        (s, a) for s in ("ann", "boris", "cleo", "dan", "zed") for a in ("extra", ASSIGNMENT)
    ]
    assert by["ann", ASSIGNMENT]["status"] == "graded" and by["ann", ASSIGNMENT]["score"] == "4.0"
    assert by["ann", ASSIGNMENT]["max_score"] == "6.0" and by["ann", ASSIGNMENT]["toy:why"] == ""
    assert by["boris", ASSIGNMENT]["score"] == "3.0" and by["boris", ASSIGNMENT]["language"] == "ru"
    assert by["dan", ASSIGNMENT]["status"] == "missing" and by["dan", ASSIGNMENT]["on_roster"] == "yes"
    assert {by[s, "extra"]["status"] for s in ("ann", "dan", "zed")} == {"missing"}
    assert by["ann", "extra"]["max_score"] == ""  # in source/, not yet in the gradebook
    zed = by["zed", ASSIGNMENT]
    assert zed["on_roster"] == "no" and zed["status"] == "graded" and zed["score"] == "4.0"


def test_moodle_file(course, capsys):
    assert main(["--course-dir", str(course), "export", "--format", "moodle"]) == 0
    rows = read_csv(course / "moodle-grades.csv")
    assert rows[0] == [*MOODLE_IDENTITY, "extra", ASSIGNMENT]
    assert rows[1:] == [
        ["Ann", "Lee", "ann", "ann@example.org", "", "4"],
        ["Борис", "Петров", "boris", "boris@example.org", "", "3"],
        ["Cleo", "", "cleo", "cleo@example.org", "", "1"],
    ]
    with Gradebook(db(course)) as gb:  # the scores are the gradebook's
        for _, _, student, *_, score in rows[1:]:
            assert float(score) == gb.find_submission(ASSIGNMENT, student).score
    out = capsys.readouterr()
    assert "3 student(s) written" in out.out
    assert "2 student(s) left out, no email address on the roster: dan, zed" in out.err


def test_canvas_file(course):
    done = export(course, course / "canvas.csv", "canvas")
    rows = read_csv(course / "canvas.csv")
    assert done.rows == 5 and len(rows) == 7
    assert rows[0] == [*CANVAS_IDENTITY, "extra", ASSIGNMENT]
    assert rows[1] == ["Points Possible", "", "", "", "", "", "6"]
    students = {r[2]: r for r in rows[2:]}
    assert students["ann"] == ["Lee, Ann", "", "ann", "ann@example.org", "", "", "4"]
    assert students["boris"][0] == "Петров, Борис" and students["boris"][-1] == "3"
    assert students["cleo"][:2] == ["Cleo", ""] and students["dan"][-1] == ""  # missing: no score
    assert students["zed"] == ["zed", "", "zed", "", "", "", "4"]
    grades = gather(course)
    for student, row in students.items():
        expected = grades.score(student, ASSIGNMENT)
        assert row[-1] == ("" if expected is None else f"{expected:g}")


def test_export_to_a_folder_is_one_line(course, capsys):
    assert main(["--course-dir", str(course), "export", "--format", "canvas", "--to", str(course)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is a folder" in err and err.count("\n") == 1


# report


def test_report_lists_each_failing_check_once_in_english(course, tmp_path):
    long = "✘ grad_sum_squares([1, 2]): " + " ".join(f"word{i:03d}" for i in range(60))
    graded(course, "dan", "ru", {"grad_test": ("✘ grad_sum_squares([1, 2]): по-русски", long)})
    results = load_results(course)[ASSIGNMENT]
    checks = {(c.grade_id, c.check): c for c in failures_by_check(results)}
    assert sorted(checks) == [
        ("grad_test", ""),
        ("grad_test", "grad_sum_squares([1, 2])"),
        ("square_test", "square([1, 2])"),
    ]
    square = checks["square_test", "square([1, 2])"]
    assert square.failed == 2 and square.tested == 5 and dict(square.messages) == {SQUARE_EN: 2}
    assert checks["grad_test", ""].failed == 1

    page = write_report(course, tmp_path / "report").read_text(encoding="utf-8")
    assert "Failures by check" in page
    assert page.count("square([1, 2]): 1 of 2 values differ") == 1 and "2 × " in page and "2 of 5" in page
    assert "различаются" not in page and "по-русски" not in page  # one language: English
    shown = page.split("grad_sum_squares([1, 2]): word000", 1)[1].split("</td>", 1)[0]
    assert shown.endswith(" …") and all(w.startswith("word") and len(w) == 7 for w in shown[:-2].split())


def test_text_that_starts_like_a_formula_is_kept_as_text(course):
    """An LMS download can name a student `=HYPERLINK(...)`: a spreadsheet must not run it."""
    assert main(["--course-dir", str(course), "roster", "add", "ann", "--first-name", "=1+2"]) == 0
    graded(course, "@evil")
    for layout, name in (("csv", "autograder-grades.csv"), ("moodle", "moodle-grades.csv")):
        assert main(["--course-dir", str(course), "export", "--format", layout]) == 0
        cells = [cell for row in read_csv(course / name) for cell in row]
        assert not [cell for cell in cells if cell[:1] in ("=", "+", "@")], layout
    assert "'=1+2" in [cell for row in read_csv(course / "moodle-grades.csv") for cell in row]
    assert "'@evil" in [cell for row in read_csv(course / "autograder-grades.csv") for cell in row]
