"""The adversarial corpus graded in one run: no false pass, no crash, nothing outside the sandbox touched."""

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import nbformat
import pytest
from adversarial.corpus import CANARY, CHEATS, MALFORMED

from autograder import notebooks
from autograder.feedback import write_feedback
from autograder.grade import grade_assignment, read_result
from autograder.sandbox import Limits
from autograder.synthetic import answered, break_file

ROOT = Path(__file__).resolve().parents[1]
LIMITS = Limits(
    cell_seconds=10, notebook_seconds=90, memory_bytes=1 * 2**30, processes=64, output_bytes=16 * 2**20
)
CLASSMATE = "zz-classmate"


def _points() -> dict[str, dict[str, float]]:
    table = {}
    for path in (ROOT / "source").glob("*/*.ipynb"):
        cells = notebooks.read(path).cells
        table[path.parent.name] = {
            c.metadata.nbgrader["grade_id"]: float(c.metadata.nbgrader["points"])
            for c in cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
        }
    return table


POINTS = _points()
FULL_MARKS = {assignment: sum(points.values()) for assignment, points in POINTS.items()}
FIGURES: dict[str, int] = {}


def correct_notebook(course: Path, assignment: str, language: str = "en"):
    (source,) = (course / "source" / assignment).glob("*.ipynb")
    release = course / "release" / language / assignment / source.name
    return source.name, answered(notebooks.read(release), notebooks.read(source), "correct")


def with_answer(nb, grade_id: str, code: str):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = code
            return nb
    raise AssertionError(f"no answer cell {grade_id}")


def write_malformed(course: Path, kind: str, folder: Path) -> None:
    name, nb = correct_notebook(course, "01_gradients")
    path = folder / name
    if kind in ("invalid_json", "empty", "renamed", "deleted_tests", "duplicated_answer", "wrong_kernel"):
        break_file(nb, kind, path)
    elif kind == "nbformat3":
        path.write_text(nbformat.writes(nbformat.convert(nb, 3)), encoding="utf-8")
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 64)
    elif kind == "json_list":
        path.write_text("[1, 2, 3]")
    elif kind == "duplicated_tests":
        tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
        nb.cells += [notebooks.copy(nb).cells[nb.cells.index(t)] for t in tests]
        for k, cell in enumerate(nb.cells[-len(tests) :]):
            cell.id = f"copy-{k}"
        notebooks.write(nb, path)
    elif kind == "points_changed":
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                meta["points"] = 100
            if meta.get("solution") and cell.cell_type == "code":
                meta["grade"], meta["points"] = True, 50  # an answer cell claiming to be a test
        notebooks.write(nb, path)
    elif kind == "huge_file":
        nb.cells[0].outputs = [] if nb.cells[0].cell_type == "markdown" else nb.cells[0].outputs
        nb.metadata["padding"] = "x" * (50 * 2**20)
        notebooks.write(nb, path)
    elif kind == "million_lines":
        answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))
        answer.source = "x = 1\n" * 1_000_000
        notebooks.write(nb, path)
    elif kind == "no_answers":
        nb.cells = [c for c in nb.cells if not c.metadata.get("nbgrader", {}).get("solution")]
        notebooks.write(nb, path)
    else:
        raise AssertionError(kind)


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def graded_corpus(tmp_path_factory):
    course = tmp_path_factory.mktemp("adversarial") / "course"
    course.mkdir()
    for item in ("source", "release"):
        shutil.copytree(ROOT / item, course / item)
    shutil.copy2(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")

    for cheat in CHEATS:
        assignment, answer_id, _ = cheat.target
        name, nb = correct_notebook(course, assignment)
        notebooks.write(
            with_answer(nb, answer_id, cheat.code), course / "submitted" / cheat.name / assignment / name
        )
    for case in MALFORMED:
        folder = course / "submitted" / case.name / case.assignment
        folder.mkdir(parents=True)
        write_malformed(course, case.build, folder)
    # canaries: a classmate's work, the instructor's notes, a file elsewhere on the machine
    name, nb = correct_notebook(course, "01_gradients", "ru")
    nb.cells.append(nbformat.v4.new_markdown_cell(f"my notes {CANARY}", id="classmate-notes"))
    notebooks.write(nb, course / "submitted" / CLASSMATE / "01_gradients" / name)
    (course / "instructor-notes.txt").write_text(f"answers: {CANARY}\n")
    outside = Path("/tmp") / f"grader-canary-{uuid.uuid4().hex}.txt"
    outside.write_text(f"{CANARY}\n")

    watched = {"source": course / "source", "submitted": course / "submitted", "release": course / "release"}
    before = {key: digests(path) for key, path in watched.items()}
    before["canaries"] = {p.name: p.read_text() for p in (course / "instructor-notes.txt", outside)}

    crashes = 0
    for assignment in sorted({c.target[0] for c in CHEATS} | {m.assignment for m in MALFORMED}):
        batch = grade_assignment(course, assignment, workers=2, limits=LIMITS)
        crashes += batch.grader_errors
        write_feedback(course, assignment)
    after = {key: digests(path) for key, path in watched.items()}
    after["canaries"] = {p.name: p.read_text() for p in (course / "instructor-notes.txt", outside)}
    outside.unlink()
    return course, before, after, crashes


def scores_of(course: Path, student: str, assignment: str) -> dict[str, float | None]:
    result = read_result(course, student, assignment)
    assert result is not None, f"{student} has no result: the batch lost it"
    return {c.grade_id: c.score for cells in result.cells.values() for c in cells}


@pytest.mark.parametrize("cheat", CHEATS, ids=lambda c: c.name)
def test_no_cheat_earns_points(graded_corpus, cheat):
    course = graded_corpus[0]
    assignment, _, tests = cheat.target
    scores = scores_of(course, cheat.name, assignment)
    earned = {t: scores[t] for t in tests if scores[t]}
    FIGURES["tried"] = FIGURES.get("tried", 0) + 1
    FIGURES["false passes"] = FIGURES.get("false passes", 0) + bool(earned)
    assert not earned, f"{cheat.name} ({cheat.trick}) earned {earned}"
    # and the rest of the notebook was really graded (the corpus is not passing on empty runs)
    others = [v or 0 for k, v in scores.items() if k in POINTS[assignment] and k not in tests]
    if not cheat.costs_everything:
        assert sum(others) > 0, scores


@pytest.mark.parametrize("case", MALFORMED, ids=lambda c: c.name)
def test_malformed_files_get_a_clear_result(graded_corpus, case):
    course = graded_corpus[0]
    result = read_result(course, case.name, case.assignment)
    FIGURES["malformed"] = FIGURES.get("malformed", 0) + 1
    assert result is not None
    assert result.status == case.outcome, (result.status, result.reason, result.notices)
    said = result.reason + " " + " ".join(result.notices)
    assert case.reason in said, said
    if case.outcome == "error":
        assert result.score == 0
    if case.build == "points_changed":
        assert sum(c.points for cs in result.cells.values() for c in cs) == 16  # 14 autograded + 2 written


def test_the_classmate_is_unharmed_and_graded_in_full(graded_corpus):
    course = graded_corpus[0]
    scores = scores_of(course, CLASSMATE, "01_gradients")
    assert sum(v for k, v in scores.items() if v is not None) == FULL_MARKS["01_gradients"]
    assert read_result(course, CLASSMATE, "01_gradients").language == "ru"


def test_nothing_outside_the_sandbox_was_read_or_changed(graded_corpus):
    course, before, after, _ = graded_corpus
    assert after == before  # submissions, solutions, release and canaries are byte-identical
    for path in list((course / "autograded").rglob("*")) + list((course / "feedback").rglob("*")):
        if path.is_file() and CLASSMATE not in path.parts:
            assert CANARY not in path.read_text(errors="replace"), f"{path} shows a canary"
    injected = (course / "feedback" / "feedback-injection" / "01_gradients" / "feedback.html").read_text()
    assert "INJECTED" not in injected and "<script>" not in injected
    climbed = json.loads(
        (course / "autograded" / "zygote-frames" / "01_gradients" / "gradients.ipynb").read_text()
    )
    assert "BEGIN HIDDEN TESTS" not in json.dumps([c.get("outputs") for c in climbed["cells"]])
    leaked = course / "autograded" / "read-secrets" / "01_gradients" / "gradients.ipynb"
    outputs = json.loads(leaked.read_text())
    assert "BEGIN SOLUTION" not in json.dumps([c.get("outputs") for c in outputs["cells"]])


def test_the_batch_never_crashed(graded_corpus):
    course, _, _, crashes = graded_corpus
    FIGURES["crashes"] = crashes
    students = [c.name for c in CHEATS] + [m.name for m in MALFORMED] + [CLASSMATE]
    missing = [s for s in students if not list((course / "autograded" / s).glob("*/result.json"))]
    assert crashes == 0 and not missing
