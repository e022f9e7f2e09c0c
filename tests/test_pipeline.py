"""The instructor pipeline end to end on the toy course: collect, grade, feedback, export, report."""

import csv
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from conftest import ASSIGNMENT, HIDDEN_MARKERS, NOTEBOOK, digests
from nbgrader.api import Gradebook

from autograder import notebooks
from autograder.collect import collect, parse_name
from autograder.export import export_csv
from autograder.feedback import FEEDBACK_DIR, write_feedback
from autograder.grading.grade import grade_assignment
from autograder.grading.results import read_result
from autograder.report import write_report
from autograder.synthetic import BROKEN, break_file

ANSWERS = {
    "correct": {"square": "def square(x):\n    return x * x", "grad": None},
    "partial": {"square": "def square(x):\n    return x * x"},
    "wrong": {"square": "def square(x):\n    return x * 2"},
    "hardcoded": {"square": "def square(x):\n    return torch.tensor([1.0, 4.0])"},
}
GRAD = (
    "def grad_sum_squares(x):\n    x = x.detach().clone().requires_grad_(True)\n"
    "    square(x).sum().backward()\n    return x.grad"
)
GRAD_WITHOUT_SQUARE = "def grad_sum_squares(x):\n    return 2 * x"
WRITTEN = "Because the update must not be recorded in the graph."

# (student, language, answers, written) -> exact expected score per grade cell
CLASS = {
    "ann": ("en", {"square": ANSWERS["correct"]["square"], "grad": GRAD}, WRITTEN),
    "boris": ("ru", {"square": ANSWERS["correct"]["square"], "grad": GRAD}, None),
    "chen": ("en", {"square": ANSWERS["partial"]["square"]}, None),
    "dana": ("ru", {"square": ANSWERS["wrong"]["square"], "grad": GRAD}, None),
    "eve": ("en", {"square": ANSWERS["hardcoded"]["square"], "grad": GRAD}, None),
    "fay": ("en", {"square": ANSWERS["correct"]["square"], "grad": GRAD_WITHOUT_SQUARE}, None),
    "gil": ("en", {}, None),
}
EXPECTED = {
    # square_test (1), grad_test (2), grad_spy (1), why (2, manual: None when answered, 0 when blank)
    "ann": {"square_test": 1, "grad_test": 2, "grad_spy": 1, "why": None},
    "boris": {"square_test": 1, "grad_test": 2, "grad_spy": 1, "why": 0},
    "chen": {"square_test": 1, "grad_test": 0, "grad_spy": 0, "why": 0},
    "dana": {"square_test": 0, "grad_test": 0, "grad_spy": 1, "why": 0},
    "eve": {"square_test": 0, "grad_test": 0, "grad_spy": 0, "why": 0},
    "fay": {"square_test": 1, "grad_test": 2, "grad_spy": 0, "why": 0},
    "gil": {"square_test": 0, "grad_test": 0, "grad_spy": 0, "why": 0},
}


def submission(course: Path, language: str, answers: dict, written: str | None):
    nb = notebooks.read(course / "release" / language / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    for cell in nb.cells:
        grade_id = notebooks.grade_id(cell)
        if grade_id in answers:
            cell.source = answers[grade_id]
        if grade_id == "why" and written:
            cell.source = written
    return nb


def write_lms_folder(course: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for student, (language, answers, written) in CLASS.items():
        notebooks.write(
            submission(course, language, answers, written), folder / f"{student}_{NOTEBOOK}.ipynb"
        )


def scores(course: Path) -> dict[str, dict[str, float | None]]:
    out = {}
    for student in CLASS:
        result = read_result(course, student, ASSIGNMENT)
        out[student] = {c.grade_id: c.score for c in result.cells[NOTEBOOK]}
    return out


def grade_rows(course: Path) -> list[tuple]:
    """(student, grade cell, automatic score) of every grade the gradebook holds."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return sorted(
            (submission.student_id, grade.name, grade.auto_score)
            for assignment in gb.assignments
            for submission in assignment.submissions
            for notebook in submission.notebooks
            for grade in notebook.grades
        )


@pytest.mark.slow  # grades the class in sandboxes, then feedback, export and report
def test_whole_class_end_to_end(toy_course, tmp_path, warm_sandboxes):
    lms = tmp_path / "lms"
    write_lms_folder(toy_course, lms)
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(lms.iterdir()):
            z.write(path, f"submissions/{path.name}")
    before = digests(lms) | {"zip": hashlib.sha256(archive.read_bytes()).hexdigest()}

    report = collect(toy_course, ASSIGNMENT, archive)
    assert sorted(report.collected) == sorted((s, NOTEBOOK) for s in CLASS)
    assert report.unknown == [] and report.ambiguous == []

    batch = grade_assignment(toy_course, ASSIGNMENT, **warm_sandboxes)
    assert len(batch.results) == len(CLASS) and all(r.status == "graded" for r in batch.results)
    assert scores(toy_course) == EXPECTED

    # languages travel with the submission into the feedback
    assert read_result(toy_course, "boris", ASSIGNMENT).language == "ru"
    pages = write_feedback(toy_course, ASSIGNMENT)
    assert len(pages) == len(CLASS)
    boris = (toy_course / FEEDBACK_DIR / "boris" / ASSIGNMENT / "feedback.html").read_text()
    assert 'lang="ru"' in boris and "Итого: 4 / 6" in boris and "Квадрат" in boris
    dana = (toy_course / FEEDBACK_DIR / "dana" / ASSIGNMENT / "feedback.html").read_text()
    assert "различаются" in dana  # the check's own message, in Russian
    for page in pages:
        text = page.read_text()
        for secret in HIDDEN_MARKERS:
            assert secret not in text, (page, secret)

    grades = tmp_path / "grades.csv"
    assert export_csv(toy_course, grades) == len(CLASS)
    rows = {r["student_id"]: r for r in csv.DictReader(grades.open())}
    assert rows["ann"]["score"] == "4.0" and rows["ann"]["max_score"] == "6.0"
    assert rows["ann"]["status"] == "graded" and rows["ann"]["language"] == "en"
    assert rows["dana"]["toy:square_test"] == "0.0" and rows["dana"]["toy:grad_spy"] == "1.0"
    assert rows["ann"]["toy:why"] == "" and rows["boris"]["toy:why"] == "0.0"
    assert {r["score"] for s, r in rows.items() if s in ("eve", "gil")} == {"0.0"}

    page = write_report(toy_course, tmp_path / "report")
    assert (tmp_path / "report" / f"{ASSIGNMENT}_scores.png").stat().st_size > 1000
    assert "Failures by check" in page.read_text()
    # a Russian student's failure reaches the report in English, under the check it names
    square = read_result(toy_course, "dana", ASSIGNMENT).cells[NOTEBOOK][0]
    assert "различаются" in square.message and square.message_en.startswith("✘ square([1, 2]): ")
    assert "различаются" not in page.read_text()

    # nothing the students sent was changed
    assert digests(lms) | {"zip": hashlib.sha256(archive.read_bytes()).hexdigest()} == before


@pytest.mark.slow  # grades three times in sandboxes
def test_grading_again_gives_the_same_scores_and_no_duplicate_rows(toy_course, tmp_path, warm_sandboxes):
    write_lms_folder(toy_course, tmp_path / "lms")
    collect(toy_course, ASSIGNMENT, tmp_path / "lms")
    grade_assignment(toy_course, ASSIGNMENT, **warm_sandboxes)
    first = grade_rows(toy_course)
    again = grade_assignment(toy_course, ASSIGNMENT, **warm_sandboxes)
    assert again.results == [] and sorted(again.skipped) == sorted(CLASS)
    forced = grade_assignment(toy_course, ASSIGNMENT, force=True, **warm_sandboxes)
    assert len(forced.results) == len(CLASS)
    assert grade_rows(toy_course) == first
    assert len(first) == len(EXPECTED["ann"]) * len(CLASS)


KILLED_AFTER_THREE = """
import os, signal, sys
import autograder.grading.grade as grade
written, real = [], grade.write_result
def write_result(course_dir, result):
    real(course_dir, result)
    written.append(result.student)
    if len(written) == 3:  # the third result is on disk, its gradebook rows are not
        os.kill(os.getpid(), signal.SIGKILL)
grade.write_result = write_result
from autograder.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # a grading command with sandboxes of its own
def test_an_interrupted_run_finishes_when_started_again(toy_course, tmp_path, warm_sandboxes):
    """A grader killed (SIGKILL) between writing a result and its gradebook rows: the next run
    keeps what was fully recorded and grades the rest, that one included."""
    write_lms_folder(toy_course, tmp_path / "lms")
    collect(toy_course, ASSIGNMENT, tmp_path / "lms")
    arguments = ["--course-dir", str(toy_course), "grade", ASSIGNMENT, "--workers", "1"]
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_THREE, *arguments], capture_output=True)
    assert killed.returncode == -9
    on_disk = sorted(p.parts[-3] for p in (toy_course / "autograded").glob("*/*/result.json"))
    assert len(on_disk) == 3

    finish = grade_assignment(toy_course, ASSIGNMENT, **warm_sandboxes)
    assert len(finish.skipped) == 2 and len(finish.regraded) == 1 and set(finish.skipped) < set(on_disk)
    assert sorted(r.student for r in finish.results) == sorted(set(CLASS) - set(finish.skipped))
    assert scores(toy_course) == EXPECTED
    assert len(grade_rows(toy_course)) == len(EXPECTED["ann"]) * len(CLASS)


@pytest.mark.slow  # grades in sandboxes
def test_bad_files_get_a_clear_result_and_the_batch_goes_on(toy_course, tmp_path, warm_sandboxes):
    correct = submission(toy_course, "en", {"square": ANSWERS["correct"]["square"], "grad": GRAD}, None)
    root = toy_course / "submitted"
    for kind in BROKEN:
        folder = root / kind.replace("_", "-") / ASSIGNMENT
        folder.mkdir(parents=True)
        break_file(notebooks.copy(correct), kind, folder / f"{NOTEBOOK}.ipynb")
    folder = root / "binary" / ASSIGNMENT
    folder.mkdir(parents=True)
    (folder / f"{NOTEBOOK}.ipynb").write_bytes(bytes(range(256)) * 4)
    folder = root / "foreign" / ASSIGNMENT
    folder.mkdir(parents=True)
    notebooks.write(nbformat_notebook_without_answers(), folder / f"{NOTEBOOK}.ipynb")

    batch = grade_assignment(toy_course, ASSIGNMENT, **warm_sandboxes)
    results = {r.student: r for r in batch.results}
    assert len(results) == len(BROKEN) + 2
    for student in ("invalid-json", "empty", "binary", "foreign"):
        assert results[student].status == "error" and results[student].score == 0
    assert "not valid notebook JSON" in results["invalid-json"].reason
    assert "empty" in results["empty"].reason
    assert "not UTF-8" in results["binary"].reason
    assert "none of the answer cells" in results["foreign"].reason
    for student in ("renamed", "deleted-tests", "duplicated-answer", "wrong-kernel"):
        assert results[student].status == "graded" and results[student].score == 4, student
    assert any("renamed" in n for n in results["renamed"].notices)
    assert any("appears twice" in n for n in results["duplicated-answer"].notices)
    assert any("kernel other than python3" in n for n in results["wrong-kernel"].notices)
    assert not any("julia" in n for n in results["wrong-kernel"].notices)  # no student-chosen text
    assert "could not be graded" in batch.summary()


def nbformat_notebook_without_answers():
    from nbformat.v4 import new_code_cell, new_notebook

    return new_notebook(cells=[new_code_cell("print('my own notebook')")])


@pytest.mark.slow  # grades in sandboxes
def test_unknown_students_are_added_with_a_notice_or_refused(toy_course, tmp_path, warm_sandboxes):
    write_lms_folder(toy_course, tmp_path / "lms")
    collect(toy_course, ASSIGNMENT, tmp_path / "lms")
    refused = grade_assignment(toy_course, ASSIGNMENT, student="ann", allow_unknown=False, **warm_sandboxes)
    assert refused.refused == ["ann"] and refused.results == []
    added = grade_assignment(toy_course, ASSIGNMENT, student="ann", **warm_sandboxes)
    assert any("not on the roster" in n for n in added.results[0].instructor_notes)
    assert not any("roster" in n for n in added.results[0].notices)  # never on the student's page
    assert added.added == ["ann"] and "1 added to the roster" in added.summary()
    write_feedback(toy_course, ASSIGNMENT, "ann")
    page = (toy_course / FEEDBACK_DIR / "ann" / ASSIGNMENT / "feedback.html").read_text()
    assert "roster" not in page


@pytest.mark.slow  # grades in sandboxes
def test_late_submissions_are_marked_from_timestamp_and_due_date(toy_course, tmp_path, warm_sandboxes):
    write_lms_folder(toy_course, tmp_path / "lms")
    collect(toy_course, ASSIGNMENT, tmp_path / "lms")
    (toy_course / "submitted" / "ann" / ASSIGNMENT / "timestamp.txt").write_text("2030-01-02 00:00:00 UTC\n")
    (toy_course / "submitted" / "gil" / ASSIGNMENT / "timestamp.txt").write_text("2029-12-31 00:00:00 UTC\n")
    with Gradebook(f"sqlite:///{toy_course / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate="2030-01-01 00:00:00 UTC")
    grade_assignment(toy_course, ASSIGNMENT, **warm_sandboxes)
    export_csv(toy_course, tmp_path / "grades.csv")
    rows = {r["student_id"]: r for r in csv.DictReader((tmp_path / "grades.csv").open())}
    assert float(rows["ann"]["seconds_late"]) == 86400
    assert float(rows["gil"]["seconds_late"]) == 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("alice_toy.ipynb", ("alice", "toy")),
        ("alice-toy.ipynb", ("alice", "toy")),
        ("alice/toy.ipynb", ("alice", "toy")),
        ("alice/toy/toy.ipynb", ("alice", "toy")),
        ("download/alice_toy.ipynb", ("alice", "toy")),
        ("alice_12345_67890_toy.ipynb", ("alice", "toy")),
        ("alice_LATE_12345_67890_toy-1.ipynb", ("alice", "toy")),
        ("Alice Smith_98765_assignsubmission_file_toy.ipynb", ("alice_smith", "toy")),
        ("alice_toy (1).ipynb", ("alice", "toy")),
        ("toy.ipynb", None),
        ("alice_other.ipynb", None),
        ("alice_toy.py", None),
    ],
)
def test_collect_recognises_common_file_names(name, expected):
    assert parse_name(PurePosixPath(name), ["toy"], "toy") == expected


def test_collect_reports_unknown_and_ambiguous_files_and_copies_neither(toy_course, tmp_path):
    lms = tmp_path / "lms"
    write_lms_folder(toy_course, lms)
    (lms / "notes.txt").write_text("not a notebook")
    (lms / "ann-toy.ipynb").write_bytes((lms / "ann_toy.ipynb").read_bytes())  # a second file for ann
    report = collect(toy_course, ASSIGNMENT, lms)
    assert report.unknown == ["notes.txt"]
    assert len(report.ambiguous) == 2 and all("ann" in a for a in report.ambiguous)
    assert not (toy_course / "submitted" / "ann").exists()
    again = collect(toy_course, ASSIGNMENT, lms)
    assert again.collected == [] and len(again.unchanged) == len(CLASS) - 1


@pytest.mark.parametrize(
    "verb", ["release", "collect", "grade", "feedback", "export", "report", "demo", "execute", "student"]
)
def test_every_verb_has_help(verb):
    done = subprocess.run(
        [sys.executable, "-m", "autograder", verb, "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "usage: autograder" in done.stdout


def test_a_folder_that_is_not_a_course_is_a_clear_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "--course-dir", str(tmp_path), "grade", "x"],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "not a course directory" in done.stderr


def test_grading_refuses_without_a_sandbox_and_says_how_to_get_one(toy_course, monkeypatch):
    import autograder.grading.sandbox as sandbox

    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    with pytest.raises(sandbox.SandboxUnavailable, match="apt-get install bubblewrap"):
        grade_assignment(toy_course, ASSIGNMENT)


@pytest.mark.slow  # runs the notebook and its reference
def test_unsafe_grading_is_written_into_every_result(toy_course, tmp_path):
    write_lms_folder(toy_course, tmp_path / "lms")
    collect(toy_course, ASSIGNMENT, tmp_path / "lms")
    batch = grade_assignment(toy_course, ASSIGNMENT, student="ann", unsafe=True)
    result = read_result(toy_course, "ann", ASSIGNMENT)
    assert result.unsafe is True and any("WITHOUT a sandbox" in n for n in result.notices)
    assert result.score == 4 and batch.results[0].unsafe


def test_an_unknown_assignment_is_one_line_and_status_2(toy_course):
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", "nope", "--course-dir", str(toy_course)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: no assignment 'nope' in {toy_course / 'source'}; the assignments are: {ASSIGNMENT}"
    ]


@pytest.mark.slow  # a grading command
def test_course_dir_works_after_the_verb_and_an_empty_class_is_explained(toy_course):
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, "--course-dir", str(toy_course)],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    assert "nothing to grade" in done.stdout and f"autograder collect {ASSIGNMENT} --from" in done.stdout


@pytest.mark.slow  # a grading command with sandboxes
def test_a_lesson_whose_solution_fails_is_one_line_and_status_2(toy_course, tmp_path):
    write_lms_folder(toy_course, tmp_path / "lms")
    collect(toy_course, ASSIGNMENT, tmp_path / "lms")
    source = toy_course / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    source.write_text(source.read_text().replace("[9.0, 25.0]", "[9.0, 26.0]"))  # a wrong hidden expected
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "autograder",
            "grade",
            ASSIGNMENT,
            "--student",
            "ann",
            "--course-dir",
            str(toy_course),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "the solution fails in the grader" in lines[0] and "square_test" in lines[0]


def test_a_students_working_copy_leaves_release_alone_and_keeps_their_work(toy_course):
    from autograder.student import working_copy

    release_before = digests(toy_course / "release")
    folder, copied = working_copy(toy_course, "ru")
    assert folder == toy_course / "my-work" / "ru" and copied == [folder / ASSIGNMENT / f"{NOTEBOOK}.ipynb"]
    mine = copied[0]
    mine.write_text(mine.read_text().replace("ВАШ ОТВЕТ", "мой ответ"))
    _, again = working_copy(toy_course, "ru")
    assert again == [] and "мой ответ" in mine.read_text()  # the student's work is kept
    assert digests(toy_course / "release") == release_before
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "student", "--language", "xx", "--course-dir", str(toy_course)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "unknown language 'xx'" in done.stderr
