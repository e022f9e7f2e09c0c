"""The lessons: structure, both languages, no leaks, release up to date, two-sided grading."""

import re
from pathlib import Path

import pytest

from autograder import LANGUAGES, notebooks
from autograder.language import ANSWER_STUBS, SETUP_TAG, cell_language
from autograder.nbgrader_autograde import grade_solved_and_blank
from autograder.release import assignments, release

ROOT = Path(__file__).resolve().parents[1]
SOURCES = notebooks.source_notebooks(ROOT)
LESSON_IDS = [p.parent.name for p in SOURCES]
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
PROPER_NAMES = {
    "PyTorch",
    "NumPy",
    "SGD",
    "Adam",
    "RMSprop",
    "LBFGS",
    "L-BFGS",
    "CUDA",
    "CPU",
    "GPU",
    "MSE",
}


def is_test_cell(cell) -> bool:
    meta = notebooks.nbgrader_metadata(cell)
    return cell.cell_type == "code" and meta.get("grade", False) and not meta.get("solution", False)


def is_code_solution(cell) -> bool:
    return cell.cell_type == "code" and notebooks.nbgrader_metadata(cell).get("solution", False)


def is_written_answer(cell) -> bool:
    meta = notebooks.nbgrader_metadata(cell)
    return cell.cell_type == "markdown" and meta.get("solution", False) and meta.get("grade", False)


@pytest.fixture(scope="module", params=SOURCES, ids=LESSON_IDS)
def lesson(request):
    return request.param, notebooks.read(request.param)


def test_the_course_has_four_lessons():
    assert LESSON_IDS == [
        "01_gradients",
        "02_autograd_graph",
        "03_accumulation",
        "04_optimizers",
        "05_autograd_practice",
    ]


# --- structure ---------------------------------------------------------------------------


def test_cells_have_stable_unique_ids_and_no_noise_metadata(lesson):
    path, nb = lesson
    ids = [c.id for c in nb.cells]
    assert len(ids) == len(set(ids))
    assert not any(re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){0,4}.*", i) for i in ids), (
        "random-looking cell ids"
    )
    assert path.read_text(encoding="utf-8") == notebooks.writes(notebooks.normalize(notebooks.copy(nb)))


def test_one_setup_cell_first_among_code_cells(lesson):
    _, nb = lesson
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and SETUP_TAG in code[0].metadata.get("tags", [])
    assert sum(SETUP_TAG in c.metadata.get("tags", []) for c in nb.cells) == 1
    assert 'course.set_language("en")' in code[0].source


def test_executed_outputs_are_committed_without_errors_or_stderr(lesson):
    _, nb = lesson
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "run top to bottom once"
    for cell in code:
        for output in cell.outputs:
            assert output.output_type != "error", f"{cell.id} raised"
            assert not (output.output_type == "stream" and output.name == "stderr"), (
                f"{cell.id} wrote to stderr"
            )
            assert "object at 0x" not in str(output.get("text", "")), f"{cell.id} prints a memory address"


def test_exercises_have_points_visible_and_hidden_tests(lesson):
    _, nb = lesson
    exercises, current = [], None
    for cell in nb.cells:
        if is_code_solution(cell):
            current = {"solution": cell.metadata.nbgrader["grade_id"], "tests": []}
            exercises.append(current)
        elif is_test_cell(cell):
            assert current is not None, f"test cell {cell.id} has no solution cell before it"
            assert cell.metadata.nbgrader.get("locked") and cell.metadata.nbgrader["points"] > 0
            current["tests"].append(cell)
    assert len(exercises) >= 4, "at least four autograded exercises per lesson"
    for exercise in exercises:
        tests = exercise["tests"]
        assert tests, f"{exercise['solution']} has no test cell"
        visible = [
            t for t in tests if re.search(r"^check_\w+\(", t.source.split("### BEGIN HIDDEN TESTS")[0], re.M)
        ]
        assert visible, f"{exercise['solution']}: no visible check gives immediate feedback"
        assert any("### BEGIN HIDDEN TESTS" in t.source for t in tests), (
            f"{exercise['solution']}: no hidden tests"
        )
        for test in tests:
            assert "course" in test.source or "check_" in test.source
    assert sum(len(e["tests"]) > 1 for e in exercises) >= 2, "partial credit: split some exercises"


def test_the_course_has_at_least_sixteen_exercises_and_two_written_answers():
    solutions = answers = 0
    for path in SOURCES:
        nb = notebooks.read(path)
        solutions += sum(is_code_solution(c) for c in nb.cells)
        answers += sum(is_written_answer(c) for c in nb.cells)
    assert solutions >= 16
    assert answers >= 2


# --- two languages -------------------------------------------------------------------------


def prose_pairs(nb):
    cells = nb.cells
    for i, cell in enumerate(cells):
        if cell_language(cell) == "en":
            twin = cells[i + 1] if i + 1 < len(cells) else None
            yield cell, twin


def test_every_prose_cell_has_a_twin_in_the_other_language(lesson):
    _, nb = lesson
    for cell in nb.cells:
        if cell.cell_type == "markdown" and not notebooks.nbgrader_metadata(cell):
            assert cell_language(cell) in LANGUAGES, f"markdown cell {cell.id} has no lang-en/lang-ru tag"
        if cell.cell_type == "code":
            assert cell_language(cell) is None, f"code cell {cell.id} must be shared by both languages"
    en = [c for c in nb.cells if cell_language(c) == "en"]
    ru = [c for c in nb.cells if cell_language(c) == "ru"]
    assert len(en) == len(ru) > 0
    for cell, twin in prose_pairs(nb):
        assert twin is not None and cell_language(twin) == "ru", (
            f"{cell.id} is not followed by its Russian twin"
        )
        assert cell.id.removesuffix("-en") == twin.id.removesuffix("-ru"), f"{cell.id} / {twin.id}"
        assert cell.source.strip() and twin.source.strip(), f"empty prose in {cell.id}"


def test_no_cyrillic_in_english_cells(lesson):
    _, nb = lesson
    for cell in nb.cells:
        if cell_language(cell) == "en":
            assert not CYRILLIC.search(cell.source), f"{cell.id}: {CYRILLIC.search(cell.source)[0]!r}"


def strip_non_prose(text: str) -> str:
    """Markdown without code, formulas, links and HTML: the words a reader reads as sentences."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\$[^$]*\$", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"<[^>]+>", " ", text)
    return text


def english_runs(text: str) -> list[str]:
    """Runs of three or more Latin words in a row (proper names excepted)."""
    words = re.findall(r"[A-Za-zА-Яа-яЁё][\w'-]*|[.!?;:]", strip_non_prose(text))
    runs, run = [], []
    for word in [*words, "."]:
        if re.fullmatch(r"[A-Za-z][\w'-]*", word) and word not in PROPER_NAMES:
            run.append(word)
            continue
        if len(run) >= 3:
            runs.append(" ".join(run))
        run = []
    return runs


def test_no_untranslated_english_in_russian_cells(lesson):
    _, nb = lesson
    for cell in nb.cells:
        if cell_language(cell) == "ru":
            assert CYRILLIC.search(cell.source), f"{cell.id} has no Russian text"
            assert not english_runs(cell.source), f"{cell.id}: {english_runs(cell.source)}"


def test_english_run_detector():
    assert english_runs("Градиент is the direction of steepest ascent") == [
        "is the direction of steepest ascent"
    ]
    assert english_runs("Вызовите `optimizer.zero_grad()` перед шагом, $x^{t+1}$ и PyTorch SGD Adam.") == []


def glossary() -> list[tuple[str, list[str]]]:
    rows = []
    for line in (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and CYRILLIC.search(cells[1]):
            rows.append((cells[0], [alt.strip() for alt in cells[1].split("/")]))
    return rows


def russian_stems(term: str) -> list[str]:
    """Enough of each word of a Russian term to match its inflected forms."""
    stems = []
    for word in term.lower().split():
        if len(word) <= 2:
            continue
        keep = len(word) - 4 if len(word) > 6 else len(word) - 2
        stems.append(word[: max(3, keep)])
    return stems


def uses_term(russian_text: str, alternatives: list[str]) -> bool:
    text = russian_text.lower()
    return any(all(stem in text for stem in russian_stems(alt)) for alt in alternatives)


def test_glossary_has_the_core_terms():
    terms = dict(glossary())
    for english in ("gradient", "learning rate", "leaf tensor", "computational graph", "optimizer"):
        assert english in terms
    assert uses_term("Скорости обучения бывают разные", terms["learning rate"])
    assert not uses_term("Темп обучения", terms["learning rate"])


def test_russian_cells_use_the_glossary_terms(lesson):
    _, nb = lesson
    terms = glossary()
    for cell, twin in prose_pairs(nb):
        english = strip_non_prose(cell.source).lower()
        for term, russian in terms:
            if re.search(r"\b" + re.escape(term.lower()), english):
                assert uses_term(twin.source, russian), (
                    f"{twin.id}: '{term}' should read '{' / '.join(russian)}'"
                )


# --- release ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    release(ROOT, out, db_url=f"sqlite:///{out / 'gradebook.db'}")
    return out


def release_files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix != ".db" and ".ipynb_checkpoints" not in p.parts
    }


def test_committed_release_is_exactly_what_generation_produces(regenerated):
    committed, fresh = release_files(ROOT / "release"), release_files(regenerated)
    assert sorted(committed) == sorted(fresh), "run `make release` and commit release/"
    stale = [name for name in fresh if committed[name] != fresh[name]]
    assert not stale, f"release/ is stale for {stale}: run `make release` and commit it"


@pytest.mark.parametrize("assignment", LESSON_IDS)
def test_both_languages_have_the_same_grade_cells(assignment):
    def grade_cells(lang):
        (path,) = (ROOT / "release" / lang / assignment).glob("*.ipynb")
        nb = notebooks.read(path)
        cells = []
        for c in nb.cells:
            if notebooks.nbgrader_metadata(c):
                meta = dict(c.metadata.nbgrader)
                written = c.cell_type == "markdown" and meta.get("solution")
                if written:  # the stub is in the notebook's language, so are its source and checksum
                    assert c.source == ANSWER_STUBS[lang], (lang, c.id, c.source)
                    meta.pop("checksum", None)
                cells.append((c.id, None if written else c.source, meta))
        return path.name, cells

    assert grade_cells("en") == grade_cells("ru")


def released_notebooks():
    return sorted((ROOT / "release").glob("*/*/*.ipynb"))


@pytest.mark.parametrize("path", released_notebooks(), ids=lambda p: str(p.relative_to(ROOT / "release")))
def test_nothing_hidden_or_solved_leaks_into_a_release(path):
    nb = notebooks.read(path)
    text = path.read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    lang = path.parts[-3]
    assert nb.metadata["course"]["language"] == lang
    assert all(cell_language(c) in (None, lang) for c in nb.cells)
    source = notebooks.read(ROOT / "source" / path.parts[-2] / path.name)
    secret = set()
    for cell in source.cells:
        for region in re.findall(r"### BEGIN (?:SOLUTION|HIDDEN TESTS)\n(.*?)### END", cell.source, re.S):
            secret |= {line.strip() for line in region.splitlines() if len(line.strip()) >= 12}
    public = set()
    for cell in source.cells:
        outside = re.sub(r"### BEGIN (SOLUTION|HIDDEN TESTS).*?### END \1", "", cell.source, flags=re.S)
        public |= {line.strip() for line in outside.splitlines()}
    secret -= public
    released_lines = {line.strip() for cell in nb.cells for line in cell.source.splitlines()}
    assert not (secret & released_lines), sorted(secret & released_lines)[:3]
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
        if is_code_solution(cell):
            assert "raise NotImplementedError()" in cell.source


# --- grading both ways ---------------------------------------------------------------------------


@pytest.mark.slow  # nbgrader runs every lesson, solved and blank
def test_solutions_score_full_marks_and_releases_zero(tmp_path):
    rows = grade_solved_and_blank(ROOT, tmp_path)
    assert {(r.assignment, r.language, r.kind) for r in rows} == {
        (a, lang, kind) for a in assignments(ROOT) for lang in LANGUAGES for kind in ("solved", "blank")
    }
    for row in rows:
        assert row.auto_max > 0
        expected = row.auto_max if row.kind == "solved" else 0
        assert row.auto_score == expected, row
