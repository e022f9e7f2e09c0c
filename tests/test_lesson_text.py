"""What the lessons say: findings of a student's read-through that must not come back."""

import ast
import builtins
import keyword
import math
import re
from pathlib import Path

import pytest
import torch

from autograder import notebooks
from autograder.language import cell_language

ROOT = Path(__file__).resolve().parents[1]
SOURCES = notebooks.source_notebooks(ROOT)
LESSON_IDS = [p.parent.name for p in SOURCES]
LESSON_3 = ROOT / "source" / "03_accumulation" / "accumulation.ipynb"
# Lessons whose stubs' docstrings hold only formulas and identifiers, so that both releases can share them.
NEUTRAL_DOCSTRINGS = ["01_gradients", "02_autograd_graph", "03_accumulation", "04_optimizers"]
NEUTRAL_DOCSTRINGS += ["05_autograd_practice"]


def cells_by_id(path: Path) -> dict:
    return {c.id: c for c in notebooks.read(path).cells}


def stream_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.fixture(scope="module", params=SOURCES, ids=LESSON_IDS)
def lesson(request):
    return request.param, notebooks.read(request.param)


# --- Lesson 3: a value saved "before" backward() is a copy -----------------------------------


def test_on_cpu_returns_a_copy_that_backward_does_not_change():
    namespace = {"torch": torch}
    exec(cells_by_id(LESSON_3)["helper"].source, namespace)
    on_cpu = namespace["on_cpu"]
    w = torch.ones(3, requires_grad=True)
    (2 * w).sum().backward()
    before = on_cpu(w.grad)
    (2 * w).sum().backward()
    assert before.data_ptr() != w.grad.data_ptr()
    assert before.tolist() == [2.0, 2.0, 2.0] and w.grad.tolist() == [4.0, 4.0, 4.0]
    assert on_cpu(None) is None


def test_lesson_3_prints_the_gradient_before_and_after_each_call():
    cells = cells_by_id(LESSON_3)
    assert stream_text(cells["adds-demo"]).splitlines() == [
        "iteration 0 weights.grad: None -> tensor([3., 3., 3., 3.])",
        "iteration 1 weights.grad: tensor([3., 3., 3., 3.]) -> tensor([6., 6., 6., 6.])",
        "iteration 2 weights.grad: tensor([6., 6., 6., 6.]) -> tensor([9., 9., 9., 9.])",
    ]
    assert stream_text(cells["zero-demo"]).splitlines()[1:] == [
        "iteration 1 weights.grad: tensor([0., 0., 0., 0.]) -> tensor([3., 3., 3., 3.])",
        "iteration 2 weights.grad: tensor([0., 0., 0., 0.]) -> tensor([3., 3., 3., 3.])",
    ]
    alias = stream_text(cells["alias-demo"])
    assert "alias = tensor([6., 6., 6., 6.]) alias.data_ptr() == weights.grad.data_ptr(): True" in alias
    assert "copy = tensor([3., 3., 3., 3.]) copy.data_ptr() == weights.grad.data_ptr(): False" in alias


def test_no_lesson_asks_for_exactly_one_reset(lesson):
    _, nb = lesson
    wrong = re.compile(r"exactly (one reset|once per optimizer step)|ровно один (сброс|раз на шаг)", re.I)
    for cell in nb.cells:
        assert not wrong.search(cell.source), f"{cell.id}: {wrong.search(cell.source)[0]!r}"


def test_lesson_3_resets_at_least_once_and_never_between_backward_and_step():
    early = cells_by_id(LESSON_3)
    assert "at least one reset" in early["early-en"].source and "none between" in early["early-en"].source
    assert "хотя бы один сброс" in early["early-ru"].source and "ни одного" in early["early-ru"].source


# --- exercise headings carry their points -------------------------------------------------------


def points_en(n: int) -> str:
    return f"{n} point" if n == 1 else f"{n} points"


def points_ru(n: int) -> str:
    if n % 10 == 1 and n % 100 != 11:
        word = "балл"
    elif 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        word = "балла"
    else:
        word = "баллов"
    return f"{n} {word}"


def test_points_agree_with_their_number():
    assert [points_ru(n) for n in (1, 2, 4, 5, 11, 12, 14, 21, 22, 25, 111)] == [
        "1 балл", "2 балла", "4 балла", "5 баллов", "11 баллов", "12 баллов", "14 баллов",
        "21 балл", "22 балла", "25 баллов", "111 баллов",
    ]  # fmt: skip
    assert [points_en(n) for n in (1, 2)] == ["1 point", "2 points"]


def exercises(nb) -> list[tuple[object, list[int]]]:
    """Each answer cell with the points of its test cells (a written answer scores itself)."""
    found = []
    for i, cell in enumerate(nb.cells):
        meta = notebooks.nbgrader_metadata(cell)
        if not meta.get("solution"):
            continue
        if meta.get("grade"):
            found.append((cell, [meta["points"]]))
            continue
        points = []
        for test in nb.cells[i + 1 :]:
            if not (test.cell_type == "code" and notebooks.nbgrader_metadata(test).get("grade")):
                break
            points.append(notebooks.nbgrader_metadata(test)["points"])
        found.append((cell, points))
    return found


def last_heading(nb, before, language: str) -> str:
    index = nb.cells.index(before)
    for cell in reversed(nb.cells[:index]):
        if cell_language(cell) == language:
            headings = re.findall(r"^#+ .*$", cell.source, re.M)
            if headings:
                return headings[-1]
    return ""


def test_every_exercise_heading_shows_its_points(lesson):
    _, nb = lesson
    for answer, points in exercises(nb):
        total = sum(points)
        split = " + ".join(str(p) for p in points)
        for language, word, amount in (("en", "Exercise", points_en), ("ru", "Упражнение", points_ru)):
            heading = last_heading(nb, answer, language)
            if notebooks.nbgrader_metadata(answer).get("grade"):
                assert f"{amount(total)})" in heading, f"{answer.id}, {language}: {heading!r}"
                continue
            pattern = rf"^#+ {word} \d+\. .*\({re.escape(amount(total))}(: {re.escape(split)})?\)$"
            assert re.fullmatch(pattern, heading), f"{answer.id}, {language}: {heading!r}"


# --- Russian reads as Russian --------------------------------------------------------------------

# Glosses the English does not have, and words the glossary replaced.
NOT_IN_RUSSIAN = [
    "градиентов оптимизатором",
    "(метод оптимизатора)",
    "с фиксированным начальным",
    "(градиенты накапливаются",
    "накапливающий градиент листа",
    "Ответ можно писать на русском",
    "ошибка метода",
    "ошибка округления",
    "ошибкой округления",
]


def test_no_glosses_or_replaced_terms_in_russian_cells(lesson):
    _, nb = lesson
    for cell in nb.cells:
        if cell_language(cell) == "ru":
            for phrase in NOT_IN_RUSSIAN:
                assert phrase.lower() not in cell.source.lower(), f"{cell.id}: {phrase!r}"


# --- stubs shared by both releases ---------------------------------------------------------------

KNOWN_NAMESPACES = (torch, torch.Tensor, torch.nn.functional, torch.optim.Optimizer, math, builtins)
MATH_SYMBOL = re.compile(r"d?[A-Za-z](_\w{0,2})?")


def foreign_words(docstring: str, code: str) -> list[str]:
    """Words of a docstring that are neither identifiers of the cell or of torch/math nor math symbols."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            names.add(node.value)  # a name the code spells as a string, e.g. "AccumulateGrad"
    return [
        word
        for word in re.findall(r"[A-Za-z_]\w*", docstring)
        if not (
            word in names
            or keyword.iskeyword(word)
            or any(hasattr(space, word) for space in KNOWN_NAMESPACES)
            or MATH_SYMBOL.fullmatch(word)
        )
    ]


def test_foreign_word_detector():
    code = "def f(x, h):\n    return x"
    assert foreign_words("x, h -> d/dx sum(x ** 2), e_i", code) == []
    words = foreign_words("Derivative of f at x, by the formula.", code)
    assert words == ["Derivative", "of", "at", "by", "the", "formula"]


@pytest.mark.parametrize("assignment", NEUTRAL_DOCSTRINGS)
def test_stub_docstrings_hold_formulas_and_identifiers_only(assignment):
    (path,) = (ROOT / "source" / assignment).glob("*.ipynb")
    for cell in notebooks.read(path).cells:
        if cell.cell_type == "code" and notebooks.nbgrader_metadata(cell).get("solution"):
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.FunctionDef) and ast.get_docstring(node):
                    words = foreign_words(ast.get_docstring(node), cell.source)
                    assert not words, f"{cell.id}: {words}"
