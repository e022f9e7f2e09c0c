"""The grader's judgement (``autograder.grading.verify``) on reference and student payloads built
by hand, without sandboxes; and the sandbox's grad_fn chain walk against the course's."""

import base64
import threading

import numpy as np
import pytest
import torch

from autograder.grading import protocol, verify
from autograder.grading.sandbox import child
from course import checks
from course.i18n import LANGUAGES, get_language, message, set_language


def tensor(values, dtype="float32", **state) -> dict:
    """A tensor payload as the notebook's process encodes one (see child.encode_tensor)."""
    array = np.ascontiguousarray(np.asarray(values, dtype=dtype))
    payload = {
        "t": "tensor",
        "dtype": f"torch.{dtype}",
        "np_dtype": array.dtype.str,
        "shape": list(array.shape),
        "data": base64.b64encode(array.tobytes()).decode("ascii"),
    }
    defaults = {"requires_grad": False, "is_leaf": True, "grad_set": False, "device": "cpu", "chain": []}
    return payload | defaults | state


def number(value: float) -> dict:
    return {"t": "number", "v": repr(float(value))}


def plain(value) -> dict:
    if isinstance(value, list | tuple):
        return {"t": type(value).__name__, "v": [plain(v) for v in value]}
    kind = "none" if value is None else type(value).__name__
    return {"t": kind, "v": repr(value) if kind == "float" else value}


def reference(kind: str, expected: dict, name: str = "v", site: int = 0, **options) -> dict:
    return {"site": site, "kind": kind, "name": name, "expected": expected, "options": options}


def report(kind: str, value: dict, site: int = 0) -> dict:
    return {"site": site, "kind": kind, "value": value}


def in_notebook(call) -> dict[str, str]:
    """The message a course check raises in a notebook, per language."""
    said = {}
    for lang in LANGUAGES:
        set_language(lang)
        try:
            call()
        except checks.CheckFailed as failed:
            said[lang] = str(failed)
        finally:
            set_language("en")
    assert set(said) == set(LANGUAGES), "the check passed"
    return said


CHAIN = ["MulBackward0", "SumBackward0", "PowBackward0", "AccumulateGrad"]
MEAN_CHAIN = ["MulBackward0", "MeanBackward0", "PowBackward0", "AccumulateGrad"]
CASES = [
    # (reference, student report, the course check that says the same in a notebook)
    (
        reference("tensor", tensor([1.0, 2.0])),
        report("tensor", tensor([1.0, 2.5])),
        lambda: checks.check_tensor("v", torch.tensor([1.0, 2.5]), torch.tensor([1.0, 2.0])),
    ),
    (
        reference("tensor", tensor([[1.0, 2.0]])),
        report("tensor", tensor([1.0, 2.0])),
        lambda: checks.check_tensor("v", torch.tensor([1.0, 2.0]), torch.tensor([[1.0, 2.0]])),
    ),
    (
        reference("tensor", tensor([1.0, 2.0])),
        report("tensor", tensor([1.0, 2.0], "float64")),
        lambda: checks.check_tensor(
            "v", torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([1.0, 2.0])
        ),
    ),
    (
        reference("tensor", tensor([1.0, 2.0]), reveal=False),
        report("tensor", tensor([1.0, 9.0])),
        lambda: checks.check_tensor("v", torch.tensor([1.0, 9.0]), torch.tensor([1.0, 2.0]), reveal=False),
    ),
    (
        reference("tensor", tensor([1.0, 2.0]), input_name="x"),
        report("tensor", tensor([1.0, 5.0])),
        lambda: checks.check_tensor("v", torch.tensor([1.0, 5.0]), torch.tensor([1.0, 2.0]), input_name="x"),
    ),
    (
        reference("tensor", tensor([1.0]), requires_grad=True),
        report("tensor", tensor([1.0])),
        lambda: checks.check_tensor("v", torch.tensor([1.0]), torch.tensor([1.0]), requires_grad=True),
    ),
    (
        reference("scalar", number(0.3), rtol="1e-05", atol="1e-08", reveal=True),
        report("scalar", number(1.2)),
        lambda: checks.check_scalar("v", 1.2, 0.3),
    ),
    (
        reference("scalar", number(0.3), rtol="1e-05", atol="1e-08", reveal=False),
        report("scalar", number(1.2)),
        lambda: checks.check_scalar("v", 1.2, 0.3, reveal=False),
    ),
    (
        reference("value", plain(2.5)),
        report("value", plain(1.5)),
        lambda: checks.check_value("v", 1.5, 2.5),
    ),
    (
        reference("value", plain(None)),
        report("value", plain(1)),
        lambda: checks.check_value("v", 1, None),
    ),
    (
        reference("true", plain(True)),
        report("true", plain(False)),
        lambda: checks.check_true("v", False),
    ),
    (
        reference("type", {"t": "type", "v": "float"}),
        report("type", {"t": "type", "v": "int"}),
        lambda: checks.check_type("v", 3, float),
    ),
    (
        reference("chain", plain(CHAIN)),
        report("chain", tensor([1.0], chain=MEAN_CHAIN, is_leaf=False)),
        lambda: checks.check_grad_fn_chain("v", 10 * (torch.ones(2, requires_grad=True) ** 2).mean(), CHAIN),
    ),
]


@pytest.mark.parametrize(("want", "got", "call"), CASES)
def test_a_mismatch_is_explained_in_the_words_of_the_course_check(want, got, call):
    assert not verify.same(want, got) and not verify.cell_matches([want], [got])
    assert {lang: verify.explain([want], [got], lang) for lang in LANGUAGES} == in_notebook(call)


@pytest.mark.parametrize(
    ("want", "got"),
    [
        (reference("tensor", tensor([1.0, 2.0])), report("tensor", tensor([1.0, 2.0 + 1e-6]))),
        (reference("tensor", tensor([1, 2], "int64")), report("tensor", tensor([1, 2], "int64"))),
        (
            reference("tensor", tensor([1.0]), check_dtype=False, atol="0.5"),
            report("tensor", tensor([1.25], "float64")),
        ),
        (reference("scalar", number(0.3), rtol="1e-05", atol="1e-08"), report("scalar", tensor([0.3]))),
        (reference("value", plain(["a", 1, None])), report("value", plain(["a", 1, None]))),
        (reference("value", plain(float("nan"))), report("value", plain(float("nan")))),
        (reference("true", plain(True)), report("true", plain(True))),
        (
            reference("type", {"t": "type", "v": "torch.Tensor"}),
            report("type", {"t": "type", "v": "torch.Tensor"}),
        ),
        (reference("chain", plain(CHAIN)), report("chain", tensor([1.0], chain=CHAIN, is_leaf=False))),
    ],
)
def test_a_right_value_matches_and_needs_no_explanation(want, got):
    assert verify.same(want, got) and verify.cell_matches([want], [got])
    assert verify.explain([want], [got], "en") is None


def test_a_cell_matches_only_site_by_site_in_order_with_nothing_left_over():
    first = reference("scalar", number(1.0), name="a", site=0, rtol="1e-05", atol="1e-08")
    second = reference("scalar", number(2.0), name="b", site=1, rtol="1e-05", atol="1e-08")
    one, two = report("scalar", number(1.0), site=0), report("scalar", number(2.0), site=1)
    assert verify.cell_matches([first, second], [one, two])
    assert not verify.cell_matches([first, second], [two, one])
    assert not verify.cell_matches([first, second], [one])
    assert not verify.cell_matches([first], [one, two])
    assert not verify.cell_matches([first], [report("tensor", tensor([1.0]), site=0)])
    assert verify.explain([first, second], [one], "en") == "✘ b: " + message("verify.not_reached", "en")
    assert verify.explain([first, second], [two, one], "ru") == "✘ a: " + message("verify.mismatch_at", "ru")


def test_a_value_taken_while_the_libraries_were_changed_never_matches():
    want = reference("scalar", number(1.0), rtol="1e-05", atol="1e-08")
    got = report("scalar", {"t": "tampered"})
    assert not verify.same(want, got)
    assert verify.explain([want], [got], "en") == "✘ v: the value does not match the instructor's solution"


def test_text_the_students_process_chose_is_never_repeated():
    leaks = [
        (reference("type", {"t": "type", "v": "float"}), report("type", {"t": "type", "v": "leak.SECRET"})),
        (reference("value", plain("right")), report("value", plain("SECRET"))),
        (reference("chain", plain(CHAIN)), report("chain", tensor([1.0], chain=["SECRETBackward"]))),
        (
            reference("tensor", tensor([1.0]), is_leaf=True),
            report("tensor", tensor([1.0], is_leaf=False, chain=["SECRETBackward0x"])),
        ),
        (reference("true", plain(True)), report("true", {"t": "other", "type": "SECRET.Thing"})),
    ]
    for want, got in leaks:
        for lang in LANGUAGES:
            explained = verify.explain([want], [got], lang)
            assert explained.startswith("✘ v: ") and "SECRET" not in explained, explained


def test_a_language_the_catalogue_lacks_falls_back_to_english():
    want, got = CASES[0][:2]
    assert verify.explain([want], [got], "de") == verify.explain([want], [got], "en")


def test_threads_explaining_in_different_languages_at_once_each_get_their_own():
    """No process-wide language: each explanation is in the language it was asked for."""
    want, got = CASES[0][:2]
    expected = {lang: verify.explain([want], [got], lang) for lang in LANGUAGES}
    assert expected["en"] != expected["ru"]
    start = threading.Barrier(8)
    wrong: list[str] = []

    def explain_many(lang: str) -> None:
        start.wait()
        for _ in range(300):
            if verify.explain([want], [got], lang) != expected[lang]:
                wrong.append(lang)

    threads = [threading.Thread(target=explain_many, args=(LANGUAGES[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_explaining_prints_nothing_and_leaves_the_notebook_language_alone(capsys):
    set_language("ru")
    try:
        for want, got, _ in CASES:
            verify.explain([want], [got], "en")
        assert get_language() == "ru"
    finally:
        set_language("en")
    assert capsys.readouterr() == ("", "")


# --- the grad_fn chain walk: the sandbox's closure copy and course.checks ----------------------


def _graphs():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    w = torch.ones(2, requires_grad=True)
    deep = w
    for _ in range(checks.CHAIN_LIMIT + 10):  # longer than the walk follows
        deep = deep * 1.5
    exactly = w
    for _ in range(checks.CHAIN_LIMIT - 1):  # the leaf's AccumulateGrad is the limit-th node
        exactly = exactly + 1
    return {
        "seed": 10 * (x**2).sum(),
        "branches": (x @ x.T).relu().mean() + w.sum(),
        "detached": (x.detach() * 2).sum(),
        "leaf": w,
        "view": x[0].exp().view(1, 2).squeeze(),
        "deep": deep,
        "exactly at the limit": exactly,
    }


@pytest.mark.parametrize("name", list(_graphs()))
def test_the_sandbox_walks_the_same_grad_fn_chain_as_the_course(name):
    tensor_ = _graphs()[name]
    walked = child._TOOLS["encode"]("chain", tensor_)["chain"]
    assert walked == checks.grad_fn_chain(tensor_)
    assert len(walked) <= checks.CHAIN_LIMIT
    message_ = {"type": "report", "job": 1, "cell": 0, "site": 0, "kind": "chain"}
    message_["value"] = child._TOOLS["encode"]("chain", tensor_)
    protocol.check(message_, 1, protocol.FROM_NOTEBOOK)  # the protocol takes the longest chain


def test_the_protocol_carries_chains_exactly_as_long_as_the_walk():
    assert protocol.MAX_CHAIN == checks.CHAIN_LIMIT


def test_a_chain_longer_than_the_limit_is_cut_alike_and_judged_alike():
    deep = _graphs()["deep"]
    walked = checks.grad_fn_chain(deep)
    assert len(walked) == checks.CHAIN_LIMIT and walked == ["MulBackward0"] * checks.CHAIN_LIMIT
    expected = ["MulBackward0"] * (checks.CHAIN_LIMIT + 10) + ["AccumulateGrad"]
    payload = child._TOOLS["encode"]("chain", deep)
    want = reference("chain", plain(expected))
    in_grader = verify.explain([want], [report("chain", payload)], "en")
    with pytest.raises(checks.CheckFailed) as in_notebook:
        checks.check_grad_fn_chain("v", deep, expected)
    assert in_grader == str(in_notebook.value)
    assert f"ends after {checks.CHAIN_LIMIT} steps" in in_grader
