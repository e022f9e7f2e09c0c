"""The adversarial corpus graded in one run: no false pass, no leak, no crash, no hang, nothing outside
the sandbox touched, nothing left for the next job, no memory beyond the limit.

Grading runs in a separate process per assignment, killed at a time bound, so that a submission that
hangs the grader shows as a hang here instead of hanging the test run. The fixture computes every
figure at once (a run stopped by ``-x`` still prints whole figures).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest
from adversarial.corpus import CANARY, CHEATS, HELD_BYTES, MALFORMED, SURVIVOR_FOUND
from conftest import digests

from autograder import notebooks
from autograder.feedback import FEEDBACK_DIR, write_feedback
from autograder.grading.results import read_result
from autograder.grading.sandbox import Limits
from autograder.synthetic import BROKEN, answered, break_file

pytestmark = pytest.mark.slow  # the whole corpus graded in sandboxes, every lesson, in one fixture

ROOT = Path(__file__).resolve().parents[1]
LIMITS = Limits(
    cell_seconds=10, notebook_seconds=90, memory_bytes=1 * 2**30, processes=64, output_bytes=16 * 2**20
)
CLASSMATE = "zz-classmate"
HANG_SECONDS = LIMITS.notebook_seconds + 30  # a submission whose result took longer hung the grader
BATCH_SECONDS = 900  # a whole grading command (every submission of one assignment) longer than this hung
STUDENT_SECONDS = 2 * LIMITS.notebook_seconds + 120  # grading one submission alone (with the reference run)
STUDENT_TEXT = "STUDENT-TEXT"  # text a submission chose (kernel-name-text), which no notice may repeat


def _points(cell_type: str) -> dict[str, dict[str, float]]:
    """{lesson: {grade_id: points}} of the grade cells of ``cell_type`` ("code": autograded tests,
    "markdown": written answers) in the instructor's notebooks."""
    table = {}
    for path in (ROOT / "source").glob("*/*.ipynb"):
        cells = notebooks.read(path).cells
        table[path.parent.name] = {
            c.metadata.nbgrader["grade_id"]: float(c.metadata.nbgrader["points"])
            for c in cells
            if c.cell_type == cell_type and notebooks.is_grade(c)
        }
    return table


POINTS = _points("code")
WRITTEN_POINTS = _points("markdown")
FULL_MARKS = {assignment: sum(points.values()) for assignment, points in POINTS.items()}
FIGURES: dict[str, int] = {}
OUTCOME: dict = {}  # per-cheat details the fixture found: false passes, leaks, hangs, crashes


def hidden_markers() -> list[str]:
    """Text only the instructor has: private names and seeds of the hidden tests and reference blocks
    (string literals, which name the checks and are shown, left out), minus anything a student sees
    in the released notebooks."""
    released = " ".join(p.read_text(encoding="utf-8") for p in (ROOT / "release").glob("*/*/*.ipynb"))
    found = set()
    block = re.compile(r"### BEGIN (HIDDEN TESTS|REFERENCE)(.*?)### END \1", re.S)
    for path in (ROOT / "source").glob("*/*.ipynb"):
        for cell in notebooks.read(path).cells:
            for _, code in block.findall(cell.source):
                code = re.sub(r"\"[^\"\n]*\"|'[^'\n]*'", "", code)
                found |= set(re.findall(r"(?<![A-Za-z0-9_])_[A-Za-z][A-Za-z0-9_]{4,}", code))
                found |= set(re.findall(r"manual_seed\(\d+\)", code))
    return sorted(m for m in found if m not in released)


LEAK_MARKERS = [*hidden_markers(), CANARY, STUDENT_TEXT]


def markers_in(text: str) -> list[str]:
    """The leak markers in ``text``, names matched as whole words (``_total`` is not in ``grand_total``)."""
    return [
        m for m in LEAK_MARKERS if re.search(r"(?<![A-Za-z0-9_])" + re.escape(m) + r"(?![A-Za-z0-9_])", text)
    ]


# Grading one assignment, in its own process (see the module docstring); prints the batch's figures.
GRADE_SCRIPT = """
import json, sys
from pathlib import Path
from autograder.grading.grade import grade_assignment
from autograder.grading.sandbox import Limits
course, assignment, workers, limits, student = sys.argv[1:6]
limits = Limits(**json.loads(limits))
batch = grade_assignment(
    Path(course), assignment, student=student or None, workers=int(workers), limits=limits
)
print("BATCH " + json.dumps({"grader_errors": batch.grader_errors}))
"""


def correct_notebook(course: Path, assignment: str, language: str = "en"):
    (source,) = (course / "source" / assignment).glob("*.ipynb")
    release = course / "release" / language / assignment / source.name
    return source.name, answered(notebooks.read(release), notebooks.read(source), "correct")


def with_answer(nb, grade_id: str, code: str):
    for cell in nb.cells:
        if notebooks.grade_id(cell) == grade_id:
            cell.source = code
            return nb
    raise AssertionError(f"no answer cell {grade_id}")


def write_malformed(course: Path, kind: str, folder: Path) -> None:
    name, nb = correct_notebook(course, "01_gradients")
    path = folder / name
    if kind in BROKEN:
        break_file(nb, kind, path)
    elif kind == "nbformat3":
        path.write_text(nbformat.writes(nbformat.convert(nb, 3)), encoding="utf-8")
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 64)
    elif kind == "json_list":
        path.write_text("[1, 2, 3]")
    elif kind == "duplicated_tests":
        tests = [c for c in nb.cells if notebooks.is_grade(c)]
        nb.cells += [notebooks.copy(nb).cells[nb.cells.index(t)] for t in tests]
        for k, cell in enumerate(nb.cells[-len(tests) :]):
            cell.id = f"copy-{k}"
        notebooks.write(nb, path)
    elif kind == "points_changed":
        for cell in nb.cells:
            meta = notebooks.nbgrader_metadata(cell)
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
        answer = next(c for c in nb.cells if notebooks.is_solution(c))
        answer.source = "x = 1\n" * 1_000_000
        notebooks.write(nb, path)
    elif kind == "no_answers":
        nb.cells = [c for c in nb.cells if not notebooks.is_solution(c)]
        notebooks.write(nb, path)
    elif kind == "surrogates":  # lone surrogates, which UTF-8 cannot hold, as JSON escapes ("\ud800")
        answer = next(c for c in nb.cells if notebooks.is_solution(c))
        answer.source = "# \ud800 \udfff\n" + answer.source
        nb.cells[0].metadata["\udc80"] = "\ud83d"
        code = next(c for c in nb.cells if c.cell_type == "code")
        code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="\udcff\n")]
        path.write_text(json.dumps(nb, indent=1), encoding="ascii")
    elif kind == "deep_nesting":
        nested = '"metadata": {"x": ' + "[" * 100_000 + "]" * 100_000 + ","
        path.write_text(notebooks.writes(nb).replace('"metadata": {', nested, 1), encoding="utf-8")
    elif kind == "wrong_types":  # each in a place the grader does not need: graded in full, with a notice
        data = json.loads(notebooks.writes(nb))
        data["metadata"]["course"], data["metadata"]["kernelspec"] = "en", ["python3"]
        test = next(c for c in data["cells"] if c["metadata"].get("nbgrader", {}).get("grade"))
        test["metadata"]["nbgrader"] = "grade"
        data["cells"][0]["metadata"] = ["tags"]
        data["cells"][1:1] = [42, None, {"source": 7}, {"cell_type": "code", "source": [1, 2]}]
        path.write_text(json.dumps(data), encoding="utf-8")
    elif kind == "bad_timestamp":
        notebooks.write(nb, path)
        (folder / "timestamp.txt").write_bytes(b"\x00\xff next Tuesday \x89PNG" + b"9" * 5000)
    else:
        raise AssertionError(kind)


def new_course(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for item in ("source", "release"):
        shutil.copytree(ROOT / item, folder / item)
    shutil.copy2(ROOT / "nbgrader_config.py", folder / "nbgrader_config.py")
    return folder


def write_cheat(course: Path, cheat) -> None:
    assignment, answer_id, _ = cheat.target
    name, nb = correct_notebook(course, assignment)
    nb = with_answer(nb, answer_id, cheat.code)
    if cheat.metadata:
        nb.metadata.update(cheat.metadata)
    notebooks.write(nb, course / "submitted" / cheat.name / assignment / name)


def grade_in_a_process(
    course: Path, assignment: str, workers: int, student: str = "", bound: float = BATCH_SECONDS
) -> tuple[int, bool, bool, str]:
    """(grader errors, raised, hung, what went wrong) of grading one assignment (or one student's
    submission) in a process of its own, killed after ``bound`` seconds."""
    from dataclasses import asdict

    limits = json.dumps(asdict(LIMITS))
    command = [sys.executable, "-c", GRADE_SCRIPT, str(course), assignment, str(workers), limits, student]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    what = f"grading {assignment}" + (f" for {student} alone" if student else "")
    try:
        out, err = process.communicate(timeout=bound)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the grader, its sandboxes and whatever they started
        process.communicate()
        return 0, False, True, f"{what} ran past {bound:g} s"
    figures = [line for line in out.splitlines() if line.startswith("BATCH ")]
    if process.returncode != 0 or not figures:
        return 0, True, False, f"{what} raised (exit {process.returncode}): {err[-1500:]}"
    return json.loads(figures[-1][6:])["grader_errors"], False, False, ""


def grade_all(course: Path, assignment: str, workers: int) -> tuple[int, int, list[str]]:
    """(crashes, hangs, what went wrong) of grading every submission of ``assignment``.

    When the batch raises or hangs, the submissions it left without a result are graded one by one
    (each in its own process), so that every other submission still gets a result and each one that
    breaks the grader is counted."""
    errors, raised, hung, problem = grade_in_a_process(course, assignment, workers)
    problems = [problem] if problem else []
    if not (raised or hung):
        return errors, 0, problems
    crashes, hangs = 0, 0
    for folder in sorted((course / "submitted").glob(f"*/{assignment}")):
        if (course / "autograded" / folder.parent.name / assignment / "result.json").is_file():
            continue
        alone = grade_in_a_process(course, assignment, 1, folder.parent.name, STUDENT_SECONDS)
        crashes, hangs = crashes + alone[0] + alone[1], hangs + alone[2]
        problems += [alone[3]] if alone[3] else []
    # the batch's own failure counts once, whether or not a submission alone reproduces it
    return errors + max(crashes, int(raised)), max(hangs, int(hung)), problems


def printed(course: Path, student: str, assignment: str) -> str:
    """Everything the student's notebook printed (the autograded notebook, which only instructors see)."""
    texts = []
    for path in (course / "autograded" / student / assignment).glob("*.ipynb"):
        for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
            texts.append(json.dumps(cell.get("outputs", []), ensure_ascii=False))
    return "\n".join(texts)


def student_visible(course: Path, out: Path) -> dict[str, str]:
    """What students and instructors read as the grader's words: feedback pages, each result's reason,
    notices and cell messages, the CSV export and the report (student code's own output excluded)."""
    from autograder.export import export_csv
    from autograder.report import write_report

    texts = {}
    for path in sorted((course / FEEDBACK_DIR).glob("*/*/feedback.html")):
        texts[str(path.relative_to(course))] = path.read_text(encoding="utf-8", errors="replace")
    for path in sorted((course / "autograded").glob("*/*/result.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        said = [data.get("reason", ""), *data.get("notices", [])]
        said += [c.get("message", "") for cells in data.get("cells", {}).values() for c in cells]
        texts[str(path.relative_to(course))] = "\n".join(str(x) for x in said)
    export_csv(course, out / "grades.csv")
    texts["grades.csv"] = (out / "grades.csv").read_text(encoding="utf-8", errors="replace")
    write_report(course, out / "report")
    for path in sorted((out / "report").rglob("*")):
        if path.is_file() and path.suffix in (".html", ".csv", ".txt", ".json", ".svg"):
            texts[f"report/{path.name}"] = path.read_text(encoding="utf-8", errors="replace")
    return texts


@pytest.fixture(scope="module")
def graded_corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("adversarial")
    course = new_course(base / "course")
    alone = [c for c in CHEATS if not c.sequence]
    for cheat in alone:
        write_cheat(course, cheat)
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
    # sequences: graded one after the other on one worker, in a course of their own
    sequenced = course.parent / "sequenced"
    sequences = sorted({c.sequence for c in CHEATS if c.sequence})
    courses = {c.name: course for c in alone}
    if sequences:
        new_course(sequenced)
        for cheat in CHEATS:
            if cheat.sequence:
                write_cheat(sequenced, cheat)
                courses[cheat.name] = sequenced

    watched = {"source": course / "source", "submitted": course / "submitted", "release": course / "release"}
    before = {key: digests(path) for key, path in watched.items()}
    before["canaries"] = {p.name: p.read_text() for p in (course / "instructor-notes.txt", outside)}

    crashes, hangs, problems = 0, 0, []
    runs = [(course, a, 2) for a in sorted({c.target[0] for c in alone} | {m.assignment for m in MALFORMED})]
    runs += [(sequenced, a, 1) for a in sorted({c.target[0] for c in CHEATS if c.sequence})]
    for where, assignment, workers in runs:
        crashed, hung, said = grade_all(where, assignment, workers)
        crashes, hangs, problems = crashes + crashed, hangs + hung, problems + said
        try:
            write_feedback(where, assignment)
        except Exception as error:  # a grader that cannot write feedback crashed
            crashes += 1
            problems.append(f"feedback of {assignment}: {type(error).__name__}: {error}")
    after = {key: digests(path) for key, path in watched.items()}
    after["canaries"] = {p.name: p.read_text() for p in (course / "instructor-notes.txt", outside)}
    outside.unlink()

    # what each cheat earned, and how long each submission took
    false_passes, slow = {}, {}
    for cheat in CHEATS:
        assignment, _, tests = cheat.target
        result = read_result(courses[cheat.name], cheat.name, assignment)
        if result is None:
            continue
        scores = {c.grade_id: c.score for cells in result.cells.values() for c in cells}
        earned = {t: scores.get(t) for t in tests if scores.get(t)}
        if earned:
            false_passes[cheat.name] = earned
    for where in {course, sequenced} if sequences else {course}:
        for path in (where / "autograded").glob("*/*/result.json"):
            seconds = json.loads(path.read_text(encoding="utf-8")).get("seconds", 0) or 0
            if seconds > HANG_SECONDS:
                slow[path.parent.parent.name] = seconds
    hangs += len(slow)

    # hidden-test text, canaries and student-chosen text in what students and instructors read
    leaks = {}
    for where in [course, sequenced] if sequences else [course]:
        try:
            texts = student_visible(where, base / f"out-{where.name}")
        except Exception as error:  # the export or the report broke on a submission
            crashes += 1
            problems.append(f"export or report of {where.name}: {type(error).__name__}: {error}")
            continue
        for place, text in texts.items():
            found = markers_in(text)
            if found:
                leaks[f"{where.name}/{place}"] = found

    OUTCOME.update(
        false_passes=false_passes, leaks=leaks, slow=slow, problems=problems, courses=courses, base=base
    )
    FIGURES.update(
        {
            "cheats": len(CHEATS),
            "malformed files": len(MALFORMED),
            "false passes": len(false_passes),
            "leaks": len(leaks),
            "crashes": crashes,
            "hangs": hangs,
        }
    )
    return course, before, after, crashes


def scores_of(course: Path, student: str, assignment: str) -> dict[str, float | None]:
    result = read_result(course, student, assignment)
    assert result is not None, f"{student} has no result: the batch lost it"
    return {c.grade_id: c.score for cells in result.cells.values() for c in cells}


@pytest.mark.parametrize("cheat", CHEATS, ids=lambda c: c.name)
def test_no_cheat_earns_points(graded_corpus, cheat):
    course = OUTCOME["courses"][cheat.name]
    assignment, _, tests = cheat.target
    scores = scores_of(course, cheat.name, assignment)
    earned = {t: scores[t] for t in tests if scores[t]}
    assert not earned, f"{cheat.name} ({cheat.trick}) earned {earned}"
    # and the rest of the notebook was really graded (the corpus is not passing on empty runs)
    others = [v or 0 for k, v in scores.items() if k in POINTS[assignment] and k not in tests]
    if not cheat.costs_everything:
        assert sum(others) > 0, scores


@pytest.mark.parametrize("case", MALFORMED, ids=lambda c: c.name)
def test_malformed_files_get_a_clear_result(graded_corpus, case):
    course = graded_corpus[0]
    result = read_result(course, case.name, case.assignment)
    assert result is not None
    assert result.status == case.outcome, (result.status, result.reason, result.notices)
    said = result.reason + " " + " ".join(result.notices)
    if case.reason is None:  # damage to what the grader takes from the instructor: undone, unmentioned
        tests = [c for cs in result.cells.values() for c in cs if c.kind == "test"]
        assert result.notices == [] and sum(c.score for c in tests) == FULL_MARKS[case.assignment], said
    else:
        assert case.reason in said, said
    if case.outcome == "error":
        assert result.score == 0
    if case.build == "points_changed":  # the instructor's points, autograded and written
        total = FULL_MARKS[case.assignment] + sum(WRITTEN_POINTS[case.assignment].values())
        assert sum(c.points for cs in result.cells.values() for c in cs) == total


def test_the_classmate_is_unharmed_and_graded_in_full(graded_corpus):
    course = graded_corpus[0]
    scores = scores_of(course, CLASSMATE, "01_gradients")
    assert sum(v for k, v in scores.items() if v is not None) == FULL_MARKS["01_gradients"]
    assert read_result(course, CLASSMATE, "01_gradients").language == "ru"


def test_nothing_outside_the_sandbox_was_read_or_changed(graded_corpus):
    course, before, after, _ = graded_corpus
    assert after == before  # submissions, solutions, release and canaries are byte-identical
    for path in list((course / "autograded").rglob("*")) + list((course / FEEDBACK_DIR).rglob("*")):
        if path.is_file() and CLASSMATE not in path.parts:
            assert CANARY not in path.read_text(errors="replace"), f"{path} shows a canary"
    injected = (course / FEEDBACK_DIR / "feedback-injection" / "01_gradients" / "feedback.html").read_text()
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
    students = [(OUTCOME["courses"][c.name], c.name) for c in CHEATS]
    students += [(course, m.name) for m in MALFORMED] + [(course, CLASSMATE)]
    missing = [s for where, s in students if not list((where / "autograded" / s).glob("*/result.json"))]
    assert crashes == 0 and not missing, (OUTCOME["problems"], missing)


def test_no_hidden_text_reaches_anyone(graded_corpus):
    """Feedback, results, the CSV and the report hold no hidden-test text, canary or student-chosen text."""
    assert FIGURES["leaks"] == 0, OUTCOME["leaks"]


def test_no_submission_hangs_the_batch(graded_corpus):
    assert FIGURES["hangs"] == 0, (OUTCOME["slow"], OUTCOME["problems"])


def test_nothing_survives_into_the_next_job(graded_corpus):
    """The later cheats of a sequence, graded on the same worker, find nothing the earlier ones left."""
    probes = [c for c in CHEATS if c.sequence and "probe" in c.name]
    assert probes
    for cheat in probes:
        seen = printed(OUTCOME["courses"][cheat.name], cheat.name, cheat.target[0])
        assert SURVIVOR_FOUND not in seen, seen[seen.find(SURVIVOR_FOUND) :][:500]
        assert "nothing left by an earlier job" in seen  # the probe ran


@pytest.mark.parametrize("cheat", [c for c in CHEATS if HELD_BYTES in c.code], ids=lambda c: c.name)
def test_memory_limit_holds(graded_corpus, cheat):
    """A submission never holds more than its memory limit, files in tmpfs and other processes included."""
    seen = printed(OUTCOME["courses"][cheat.name], cheat.name, cheat.target[0])
    held = [int(n) for n in re.findall(HELD_BYTES + r" (\d+)", seen)]
    assert all(n <= LIMITS.memory_bytes for n in held), f"{cheat.name} held {held} bytes"
    if not held:  # the notebook did not live to say: the kernel stopped it at the limit
        result = read_result(OUTCOME["courses"][cheat.name], cheat.name, cheat.target[0])
        assert any("memory" in n or "killed" in n for n in result.notices), result.notices
