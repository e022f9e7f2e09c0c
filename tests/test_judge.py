"""The judge model: a graded run holds no expected value, and every check still finds its reference."""

import ast
import contextlib
import io
from pathlib import Path

import pytest
import torch

from autograder import notebooks
from autograder.grading import protocol
from autograder.grading.testcells import CHECKS, TestCellError, lint, rewrite, sites, split_reference

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "source").glob("*/*.ipynb"))


def _test_cells(path: Path) -> list[tuple[str, str]]:
    return [
        (c.metadata.nbgrader["grade_id"], c.source)
        for c in notebooks.read(path).cells
        if c.cell_type == "code" and notebooks.is_grade(c)
    ]


def _student_names(path: Path) -> set[str]:
    names = set()
    for cell in notebooks.read(path).cells:
        if cell.cell_type == "code" and notebooks.is_solution(cell):
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.FunctionDef | ast.ClassDef):
                    names.add(node.name)
                for target in getattr(node, "targets", []):
                    names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.parent.name)
def test_every_test_cell_follows_the_reference_rules(path):
    student = _student_names(path)
    problems = {grade_id: lint(source, student) for grade_id, source in _test_cells(path)}
    assert {k: v for k, v in problems.items() if v} == {}


def _expected_arguments(source: str) -> list[ast.expr]:
    tree = ast.parse(split_reference(source)[0])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CHECKS:
            _, _, position = CHECKS[node.func.id]
            if position is not None and len(node.args) > position:
                found.append(node.args[position])
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.parent.name)
def test_graded_test_cells_hold_no_expected_value(path):
    for grade_id, source in _test_cells(path):
        graded = rewrite(source, "graded")
        tree = ast.parse(graded)
        called = {
            n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        assert not called & set(CHECKS), grade_id
        subtrees = {ast.dump(n) for n in ast.walk(tree)}
        _, blocks = split_reference(source)
        lines = source.split("\n")
        for start, end in blocks:
            for statement in ast.parse("\n".join(lines[start : end - 1])).body:
                assert ast.dump(statement) not in subtrees, f"{grade_id}: {ast.unparse(statement)}"
        outside = ast.parse(graded)
        for expected in _expected_arguments(source):
            if isinstance(expected, ast.Name) or not any(isinstance(n, ast.Name) for n in ast.walk(expected)):
                continue  # a name or a literal can also be an input (the lint checks names)
            shared = ast.dump(expected) in {ast.dump(n) for n in ast.walk(outside)}
            assert not shared, f"{grade_id}: {ast.unparse(expected)} is computed in the graded cell"


def _run(path: Path, mode: str) -> list[tuple[str, int, object]]:
    """The values every check site is given, running the notebook in this process."""
    nb = notebooks.read(path)
    seen = []
    current = [""]

    def report(site, kind, actual):
        seen.append((current[0], site, _copy(actual)))

    def check(site, function, *args, **kwargs):
        seen.append((current[0], site, _copy(args[1])))
        return function(*args, **kwargs)

    namespace = {"__name__": "__main__", "__report__": report, "__check__": check}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = cell.source
        if notebooks.is_grade(cell):
            current[0] = notebooks.grade_id(cell)
            torch.manual_seed(sum((i + 1) * ord(c) for i, c in enumerate(current[0])) % 2**31)
            source = rewrite(source, mode)
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(source, current[0] or "cell", "exec"), namespace)
    import matplotlib.pyplot as plt

    plt.close("all")  # the lessons' figures, drawn in this process
    return seen


def _copy(value):
    return value.detach().cpu().clone() if isinstance(value, torch.Tensor) else repr(value)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0))
    return a == b


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.parent.name)
def test_every_check_of_a_graded_run_finds_its_reference(path, monkeypatch):
    """With the REFERENCE blocks dropped, the solution's code gets the same inputs: each site
    reports, in the same order, the same value as in the reference run."""
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    graded, reference = _run(path, "graded"), _run(path, "reference")
    assert [(g, s) for g, s, _ in graded] == [(g, s) for g, s, _ in reference]
    differing = [(g, s) for (g, s, a), (_, _, b) in zip(graded, reference, strict=True) if not _same(a, b)]
    assert differing == []
    assert {g for g, _, _ in graded} == {g for g, _ in _test_cells(path)}


def test_rewrite_keeps_only_the_checked_value():
    source = (
        "_x = torch.ones(2)\n### BEGIN REFERENCE\n_leaf = _x.clone().requires_grad_()\n"
        "(_leaf * 3).sum().backward()\n"
        "### END REFERENCE\ncheck_tensor('f(x)', f(_x), _leaf.grad, atol=1e-6)\nfor _k in range(2):\n"
        "    check_scalar('g', g(_k), 3.5 * _k, reveal=False)\ncheck_true('called', len(_calls) > 0)\n"
    )
    graded = rewrite(source, "graded")
    assert "_leaf" not in graded and "3.5" not in graded and "atol" not in graded and "'f(x)'" not in graded
    assert "__report__(0, 'tensor', f(_x))" in graded
    assert "__report__(1, 'scalar', g(_k))" in graded
    assert "__report__(2, 'true', len(_calls) > 0)" in graded
    reference = rewrite(source, "reference")
    assert "__check__(0, check_tensor, 'f(x)', f(_x), _leaf.grad, atol=1e-06)" in reference
    assert [(s.number, s.kind) for s in sites(source)] == [(0, "tensor"), (1, "scalar"), (2, "true")]
    assert lint(source, {"f", "g"}) == []


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("_e = torch.ones(2) * 2\ncheck_tensor('f', f(_x), _e)", "outside a REFERENCE block"),
        (
            "_l = _x.clone()\n_l.sum().backward()\ncheck_tensor('f', f(_x), _l.grad)",
            "outside a REFERENCE block",
        ),
        (
            "### BEGIN REFERENCE\n_e = f(_x)\n### END REFERENCE\ncheck_tensor('f', f(_x), _e)",
            "calls the student",
        ),
        (
            "### BEGIN REFERENCE\n_e = 2\n### END REFERENCE\ncheck_tensor('f', f(_e), 1)",
            "used outside expected",
        ),
        ("### BEGIN REFERENCE\ncheck_true('x', True)\n### END REFERENCE", "inside a REFERENCE block"),
        ("### BEGIN REFERENCE\n_e = 1\n", "never closed"),
        ("if True:\n    ### BEGIN REFERENCE\n    _e = 1\n    ### END REFERENCE", "indented"),
        ("check_tensor('f', f(_x))", "expected value as its 3rd argument"),
    ],
)
def test_lint_finds_what_would_leave_a_reference_in_the_student_process(source, problem):
    problems = lint(source, {"f"})
    assert any(problem in p for p in problems), problems


def test_an_unclosed_reference_block_is_an_error_not_a_silent_drop():
    with pytest.raises(TestCellError, match="never closed"):
        rewrite("### BEGIN REFERENCE\n_e = 1\ncheck_true('x', True)\n", "graded")


# The protocol, checked at both ends


def _report(**changes) -> dict:
    message = {
        "type": "report",
        "job": 7,
        "cell": 3,
        "site": 0,
        "kind": "scalar",
        "value": {"t": "number", "v": "1.5"},
    }
    return message | changes


TOO_SHORT_TENSOR = {
    "t": "tensor",
    "dtype": "torch.float32",
    "np_dtype": "<f4",
    "shape": [1000],
    "data": "AAAA",
    "requires_grad": False,
    "is_leaf": True,
    "grad_set": False,
    "device": "cpu",
    "chain": [],
}


def test_protocol_accepts_a_well_formed_report():
    assert protocol.check(_report(), 7, protocol.FROM_NOTEBOOK)["value"] == {"t": "number", "v": "1.5"}


@pytest.mark.parametrize(
    "message",
    [
        _report(job=8),  # another job
        _report(job="7"),
        _report(type="stopped", reason="cell_time", cell=1),  # only the zygote may say this
        _report(type="job_finished", clean=True),
        _report(type="ready"),
        _report(kind="mystery"),
        _report(site=-1),
        _report(cell=None),
        _report(value={"t": "number", "v": "not a number"}),
        _report(value=TOO_SHORT_TENSOR),
        _report(value={"t": "list", "v": [{"t": "int", "v": "1"}]}),
        _report(value={"t": "secret", "v": 1}),
        {"type": "cell_finished", "job": 7, "cell": 1, "outputs": [{"output_type": "stream", "name": "x"}]},
        {"type": "cell_finished", "job": 7, "cell": 1, "outputs": "text"},
        [],
    ],
)
def test_protocol_refuses_malformed_or_foreign_messages(message):
    with pytest.raises(protocol.ProtocolError):
        protocol.check(message if isinstance(message, dict) else {"type": message}, 7, protocol.FROM_NOTEBOOK)


def test_protocol_text_with_lone_surrogates_can_be_written_as_utf8():
    frame = protocol.encode(
        {"type": "cell_finished", "job": 1, "cell": 0, "outputs": [
            {"output_type": "stream", "name": "stdout", "text": "a\ud800b"},
            {"output_type": "error", "ename": "E\udfff", "evalue": "\ud800", "traceback": ["\udc00"]},
        ]}
    )  # fmt: skip
    message = protocol.check(protocol.decode(frame[4:]), 1, protocol.FROM_NOTEBOOK)
    text = repr(message["outputs"])
    text.encode("utf-8")  # raises on a lone surrogate
    assert message["outputs"][0]["text"].startswith("a") and message["outputs"][0]["text"].endswith("b")


def test_protocol_refuses_frames_over_the_limit_and_bad_json():
    import os

    read, write = os.pipe()
    os.write(write, (2**30).to_bytes(4, "big"))
    with pytest.raises(protocol.ProtocolError):
        protocol.FrameReader(read).read(float("inf"))
    os.write(write, (3).to_bytes(4, "big") + b"{x}")
    os.close(write)
    reader = protocol.FrameReader(read)
    with pytest.raises(protocol.ProtocolError):
        reader.read(float("inf"))
    os.close(read)


@pytest.mark.slow  # grades in sandboxes
def test_references_are_learnt_once_per_assignment_version(toy_course, tmp_path, monkeypatch, warm_sandboxes):
    from test_pipeline import write_lms_folder

    from autograder.collect import collect
    from autograder.grading import references
    from autograder.grading.grade import grade_assignment

    write_lms_folder(toy_course, tmp_path / "lms")
    collect(toy_course, "toy", tmp_path / "lms")
    first = grade_assignment(toy_course, "toy", student="ann", **warm_sandboxes)
    stored = toy_course / "references" / "toy" / "toy.json"
    assert stored.is_file() and first.results[0].score > 0
    assert not (toy_course / "source" / "toy" / "references").exists()  # never where nbgrader copies from

    def no_second_run(*args, **kwargs):
        raise AssertionError("a grading command ran the reference again")

    monkeypatch.setattr(references, "compute", no_second_run)
    again = grade_assignment(toy_course, "toy", student="ann", force=True, **warm_sandboxes)
    assert again.results[0].score == first.results[0].score

    source = toy_course / "source" / "toy" / "toy.ipynb"  # a new version of the lesson: learnt again
    changed = source.read_text().replace("[3.0, -5.0]", "[3.0, -6.0]").replace("[9.0, 25.0]", "[9.0, 36.0]")
    source.write_text(changed)
    assert references.stored(toy_course, "toy", source) is None  # out of date
    monkeypatch.undo()
    grade_assignment(toy_course, "toy", student="ann", force=True, **warm_sandboxes)
    assert references.stored(toy_course, "toy", source) is not None
