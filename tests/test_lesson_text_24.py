"""Lessons 2 and 4: what a student found in their text and pictures (issue 11), kept from coming back."""

import re
from pathlib import Path

import pytest
import torch

from autograder import LANGUAGES, notebooks
from autograder.language import cell_language

ROOT = Path(__file__).resolve().parents[1]
LESSON_2 = ROOT / "source" / "02_autograd_graph" / "autograd_graph.ipynb"
LESSON_4 = ROOT / "source" / "04_optimizers" / "optimizers.ipynb"


@pytest.fixture(scope="module")
def l2():
    return notebooks.read(LESSON_2)


@pytest.fixture(scope="module")
def l4():
    return notebooks.read(LESSON_4)


@pytest.fixture(scope="module", params=[LESSON_2, LESSON_4], ids=["02", "04"])
def lesson(request):
    return notebooks.read(request.param)


def cell(nb, cell_id: str):
    return next(c for c in nb.cells if c.id == cell_id)


def prose(nb, language: str) -> list:
    return [c for c in nb.cells if cell_language(c) == language]


def flat(text: str) -> str:
    return " ".join(text.split())


def printed(code_cell) -> str:
    return "".join(
        o.get("text", "") for o in code_cell.get("outputs", []) if o.get("output_type") == "stream"
    )


def twin(nb, english_cell):
    return cell(nb, english_cell.id.removesuffix("-en") + "-ru")


# --- Lesson 2: which results are tracked --------------------------------------------------------


def test_l2_no_longer_says_every_result_of_a_tracked_input_is_tracked(l2):
    english = flat(" ".join(c.source for c in prose(l2, "en")))
    assert not re.search(r"has `requires_grad=True`, the result gets `requires_grad=True` too", english)
    assert "floating-point tensor, the result gets `requires_grad=True` too" in english


def test_l2_says_only_floating_point_and_complex_tensors_can_require_gradients(l2):
    english = [
        c
        for c in prose(l2, "en")
        if "Only floating-point and complex tensors can require gradients" in flat(c.source)
    ]
    assert english, "the rule is stated in English"
    for c in english:
        russian = flat(twin(l2, c).source)
        assert "только тензоры с плавающей точкой и комплексные" in russian, twin(l2, c).id


def test_l2_prints_that_comparisons_argmax_and_integers_are_not_tracked(l2):
    demo = next(
        c for c in l2.cells if c.cell_type == "code" and "x.argmax()" in c.source and "x > 0" in c.source
    )
    lines = {
        line.split(" dtype=")[0].strip(): line for line in printed(demo).splitlines() if " dtype=" in line
    }
    for untracked in ("x > 0", "x.argmax()", "x.long()"):
        assert "requires_grad=False" in lines[untracked] and "grad_fn=None" in lines[untracked], lines
    assert "requires_grad=True" in lines["x.max()"], lines
    assert "Only Tensors of floating point and complex dtype can require gradients" in printed(demo)


def test_pytorch_behaves_as_lesson_2_says():
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    assert not (x > 0).requires_grad
    assert not x.argmax().requires_grad
    assert not x.long().requires_grad
    assert x.max().requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        torch.tensor([1, 2, 3], requires_grad=True)


# --- every exercise heading shows its points, in the right plural ----------------------------------

HEADING = {
    "en": re.compile(r"^#{2,3} .*\b(Exercise \d+|Written (answer|question))"),
    "ru": re.compile(r"^#{2,3} .*\b(Упражнение \d+|Письменный (ответ|вопрос))"),
}
POINTS = {
    "en": re.compile(r"\((\d+) (points?)(?:: (\d+(?: \+ \d+)+))?\)$"),
    "ru": re.compile(r"\((\d+) (балл\w*)(?:: (\d+(?: \+ \d+)+))?\)$"),
}


def points_word(n: int, language: str) -> str:
    if language == "en":
        return "point" if n == 1 else "points"
    if n % 10 == 1 and n % 100 != 11:
        return "балл"
    if n % 10 in (2, 3, 4) and n % 100 not in (12, 13, 14):
        return "балла"
    return "баллов"


def test_points_word_agrees_with_the_number():
    assert [points_word(n, "ru") for n in (1, 2, 4, 5, 11, 12, 21, 22, 25)] == [
        "балл",
        "балла",
        "балла",
        "баллов",
        "баллов",
        "баллов",
        "балл",
        "балла",
        "баллов",
    ]
    assert [points_word(n, "en") for n in (1, 2)] == ["point", "points"]


def exercise_headings(nb, language: str) -> list[tuple[str, list[int]]]:
    """(heading line, points of each graded cell up to the next heading of that language)."""
    groups: list[tuple[str, list[int]]] = []
    for c in nb.cells:
        meta = notebooks.nbgrader_metadata(c)
        if cell_language(c) == language and c.source.startswith("#"):
            first = c.source.splitlines()[0]
            groups.append((first, []) if HEADING[language].search(first) else ("", []))
        elif meta.get("grade"):
            assert groups and groups[-1][0], f"{meta['grade_id']} follows no exercise heading in {language}"
            groups[-1][1].append(meta["points"])
    return [g for g in groups if g[0]]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_exercise_heading_shows_its_points(lesson, language):
    headings = exercise_headings(lesson, language)
    assert headings
    for line, points in headings:
        found = POINTS[language].search(line)
        assert found, f"no points in {line!r}"
        total, word, parts = int(found[1]), found[2], found[3]
        assert total == sum(points), f"{line!r}: the graded cells give {points}"
        assert word == points_word(total, language), line
        if len(points) > 1:
            assert parts and [int(p) for p in parts.split(" + ")] == points, f"{line!r}: parts {points}"
        else:
            assert parts is None, line


# --- Russian read as a native speaker would --------------------------------------------------------

GLOSSES = {
    LESSON_2: [
        "узел, накапливающий градиент листа",
        "Ответ можно писать на русском",
        "который накапливает градиент в листе",
        "которые накапливают градиент",
        "накапливает (прибавляет)",
        "штраф на градиент",
    ],
    LESSON_4: [
        "у оптимизатора",
        "методом оптимизатора",
        "(`list`)",
        "без записи на месте",
        "с новым тензором",
    ],
}


@pytest.mark.parametrize("path", [LESSON_2, LESSON_4], ids=["02", "04"])
def test_russian_has_no_glosses_the_english_lacks(path):
    for c in prose(notebooks.read(path), "ru"):
        for gloss in GLOSSES[path]:
            assert gloss not in flat(c.source), f"{c.id}: {gloss!r}"


def test_terms_gradient_penalty_and_out_of_place(l2, l4):
    for nb, english, russian in (
        (l2, r"gradient penalt", "градиентный штраф"),
        (l4, r"out[- ]of[- ]place", "не на месте"),
    ):
        pairs = [(c, twin(nb, c)) for c in prose(nb, "en") if re.search(english, c.source, re.I)]
        assert pairs, english
        for _, ru in pairs:
            assert russian in ru.source.lower(), f"{ru.id}: {russian!r}"


def test_rounding_error_reads_pogreshnost(l4):
    english = next(c for c in prose(l4, "en") if "`float32` rounding, not a bug" in flat(c.source))
    assert "погрешность округления" in flat(twin(l4, english).source)


# --- less repetition, less dictation -------------------------------------------------------------


def test_data_versus_detach_is_demonstrated_in_lesson_2_only(l2, l4):
    def demos(nb):
        return [c for c in nb.cells if c.cell_type == "code" and "nbgrader" not in c.metadata]

    assert any(re.search(r"\.data\.\w+_\(", c.source) for c in demos(l2))
    assert not [c.id for c in demos(l4) if ".data" in c.source]
    refers = [c for c in prose(l4, "en") if "`x.data`" in c.source and c.source.startswith("###")]
    assert refers and all("Lesson 2" in c.source and "урок 2" in twin(l4, c).source for c in refers)


RECIPE_FREE = {
    LESSON_2: ["l2_vjp_solution", "l2_second_solution"],
    LESSON_4: ["l4_manual_loop_solution", "l4_run_optimizer_solution"],
}


def statement(nb, solution_id: str) -> list:
    """The prose cells between the exercise heading and its solution cell."""
    end = next(i for i, c in enumerate(nb.cells) if notebooks.grade_id(c) == solution_id)
    cells = nb.cells[:end]
    start = max(i for i, c in enumerate(cells) if cell_language(c) == "en" and HEADING["en"].search(c.source))
    return [c for c in cells[start:] if cell_language(c)]


@pytest.mark.parametrize("path", [LESSON_2, LESSON_4], ids=["02", "04"])
def test_rewritten_exercises_state_the_goal_not_the_lines(path):
    nb = notebooks.read(path)
    for solution_id in RECIPE_FREE[path]:
        solution = next(c for c in nb.cells if notebooks.grade_id(c) == solution_id)
        body = solution.source.split("### BEGIN SOLUTION")[1]
        signature = flat(solution.source.split("\n")[0])
        for c in statement(nb, solution_id):
            for span in re.findall(r"`([^`]+)`", c.source):
                dictated = len(span) >= 10 and re.search(r"[(=]", span) and flat(span) in flat(body)
                assert not (dictated and flat(span) not in signature), f"{c.id} dictates `{span}`"
            assert not re.search(r"^\s*\d\. ", c.source, re.M), f"{c.id} lists the steps"


# --- pictures -------------------------------------------------------------------------------------


def run_cells(nb, cell_ids: list[str], language: str, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import course

    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: None)
    namespace: dict = {}
    try:
        for cell_id in ["setup", *cell_ids]:
            source = cell(nb, cell_id).source
            if cell_id == "setup":
                source = source.replace('course.set_language("en")', f'course.set_language("{language}")')
            exec(compile(source, cell_id, "exec"), namespace)
    finally:
        course.set_language("en")
    return namespace


@pytest.mark.parametrize("language", LANGUAGES)
def test_l4_draws_q_to_the_t_for_every_learning_rate_regime(l4, language, monkeypatch, capsys):
    import matplotlib.pyplot as plt

    from course.i18n import message

    ns = run_cells(l4, ["lr-regimes-demo"], language, monkeypatch)
    ax = ns["fig"].axes[0]
    curves = [line.get_ydata() for line in ax.get_lines() if not line.get_label().startswith("_")]
    ratios = [float(y[1] / y[0]) for y in curves]
    regimes = [sum(0 < q < 1 for q in ratios), ratios.count(0), sum(-1 < q < 0 for q in ratios)]
    regimes += [ratios.count(-1), sum(q < -1 for q in ratios)]
    assert regimes == [1, 1, 1, 1, 1], ratios
    assert ax.get_xlabel() == message("plot.step", language)
    assert "q^t" in ax.get_ylabel()
    plt.close("all")


@pytest.mark.parametrize("language", LANGUAGES)
def test_l4_race_paths_can_be_told_apart_over_labelled_contours(l4, language, monkeypatch, capsys):
    import matplotlib.pyplot as plt

    from course.i18n import message

    ns = run_cells(l4, ["race-demo"], language, monkeypatch)
    ax_paths, ax_loss = ns["fig"].axes
    names = list(ns["paths"])
    paths = {line.get_label(): line for line in ax_paths.get_lines() if line.get_label() in names}
    assert set(paths) == set(names)
    looks = {(line.get_linestyle(), line.get_marker(), line.get_color()) for line in paths.values()}
    assert len({(style, marker) for style, marker, _ in looks}) == len(names), looks
    assert r"\ln(1 + f" in ax_paths.get_title()
    assert ax_paths.texts, "the level lines carry their values"
    legend = [t.get_text() for t in ax_paths.get_legend().get_texts()]
    assert message("plot.start", language) in legend and message("plot.minimum", language) in legend
    for line in ax_loss.get_lines():
        if line.get_label() in paths:
            path = paths[line.get_label()]
            assert (line.get_linestyle(), line.get_marker()) == (path.get_linestyle(), path.get_marker())
    plt.close("all")


def test_the_forgotten_zero_grad_oscillation_is_shown_once_in_lesson_3():
    lesson_4 = notebooks.read(LESSON_4)
    assert not any(c.cell_type == "code" and "use_zero_grad" in c.source for c in lesson_4.cells)
    prose = {c.id: c.source for c in lesson_4.cells if c.id in ("zero-grad-en", "zero-grad-ru")}
    assert "Lesson 3" in prose["zero-grad-en"] and "уроке 3" in prose["zero-grad-ru"]
