"""The checks test cells rely on: right values pass, wrong ones fail with a useful message."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import course
from course import (
    CheckFailed,
    check_grad_fn_chain,
    check_scalar,
    check_tensor,
    check_true,
    check_value,
)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def english_and_no_warnings():
    course.set_language("en")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a check that warns would zero a correct nbgrader cell
        yield
    course.set_language("en")


def fails(check, *args, **kwargs) -> str:
    with pytest.raises(CheckFailed) as info:
        check(*args, **kwargs)
    return str(info.value)


# --- check_tensor: right values -------------------------------------------------


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        (torch.tensor([20.0]), [20.0]),
        (torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[1.0, 2.0], [3.0, 4.0]])),
        (torch.tensor([1.0, 2.0]) + 1e-7, [1.0, 2.0]),  # within float32 tolerance
        (torch.arange(12, dtype=torch.float64), np.arange(12, dtype=np.float64)),
        (torch.tensor([1, 2, 3]), [1, 2, 3]),
        (torch.tensor([True, False]), [True, False]),
        (torch.tensor(3.5), 3.5),
        (torch.tensor([math.inf, -math.inf, 1.0]), [math.inf, -math.inf, 1.0]),
        (torch.tensor([math.nan, 1.0]), [math.nan, 1.0]),  # NaN where the reference has NaN
        (torch.nn.Parameter(torch.ones(2)), [1.0, 1.0]),
        (torch.ones(3, requires_grad=True) * 2, [2.0, 2.0, 2.0]),
    ],
)
def test_check_tensor_accepts_right_values(actual, expected, capsys):
    check_tensor("x", actual, expected)
    assert capsys.readouterr().out == "✔ x: correct\n"


def test_check_tensor_returns_none_so_nbgrader_sees_no_partial_credit():
    assert check_tensor("x", torch.ones(1), [1.0]) is None


# --- check_tensor: wrong values -------------------------------------------------


def test_wrong_shape_names_both_shapes():
    text = fails(check_tensor, "x.grad", torch.ones(3, 4), torch.ones(4, 3))
    assert "x.grad" in text and "(3, 4)" in text and "(4, 3)" in text


def test_wrong_dtype_is_reported_unless_disabled():
    text = fails(check_tensor, "x", torch.ones(2, dtype=torch.float64), [1.0, 1.0])
    assert "torch.float64" in text and "torch.float32" in text
    check_tensor("x", torch.ones(2, dtype=torch.float64), [1.0, 1.0], check_dtype=False)


def test_wrong_values_report_first_mismatch_and_errors():
    actual = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    text = fails(check_tensor, "X", actual, [[1.0, 2.0], [3.0, 4.0]])
    assert "1 of 4" in text
    assert "(1, 1)" in text
    assert "got 5" in text and "expected 4" in text
    assert "max abs error 1" in text and "max rel error 0.25" in text


def test_float32_default_tolerance_rejects_visible_error():
    fails(check_tensor, "x", torch.tensor([1.001]), [1.0])


def test_explicit_tolerance_is_honoured():
    check_tensor("w.grad", torch.tensor([0.02012]), [0.0201], atol=1e-4)
    fails(check_tensor, "w.grad", torch.tensor([0.0203]), [0.0201], atol=1e-4)


def test_nan_where_a_number_is_expected_fails_with_its_index():
    text = fails(check_tensor, "x", torch.tensor([1.0, math.nan]), [1.0, 2.0])
    assert "NaN" in text and "(1,)" in text


def test_number_where_nan_is_expected_fails():
    fails(check_tensor, "x", torch.tensor([1.0, 2.0]), [1.0, math.nan])


def test_inf_of_wrong_sign_fails():
    fails(check_tensor, "x", torch.tensor([-math.inf]), [math.inf])
    fails(check_tensor, "x", torch.tensor([1e30]), [math.inf])


def test_integers_compare_exactly():
    fails(check_tensor, "n", torch.tensor([1, 2, 4]), [1, 2, 3])


# --- check_tensor: autograd state and device -------------------------------------


def test_requires_grad_is_checked_when_asked():
    x = torch.ones(2, requires_grad=True)
    check_tensor("x", x, [1.0, 1.0], requires_grad=True)
    assert "requires_grad is False" in fails(check_tensor, "x", torch.ones(2), [1.0, 1.0], requires_grad=True)
    assert "requires_grad is True" in fails(check_tensor, "x", x, [1.0, 1.0], requires_grad=False)


def test_leaf_is_checked_when_asked():
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    check_tensor("x", x, [1.0, 1.0], is_leaf=True)
    check_tensor("y", y, [2.0, 2.0], is_leaf=False)
    assert "MulBackward0" in fails(check_tensor, "y", y, [2.0, 2.0], is_leaf=True)
    assert "is a leaf" in fails(check_tensor, "x", x, [1.0, 1.0], is_leaf=False)


def test_presence_of_grad_is_checked_without_warning_for_non_leaves():
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    y.sum().backward()
    check_tensor("x", x, [1.0, 1.0], has_grad=True)
    check_tensor("y", y, [2.0, 2.0], has_grad=False)  # reading y.grad would warn
    assert ".grad is None" in fails(check_tensor, "y", y, [2.0, 2.0], has_grad=True)
    assert "expected None" in fails(check_tensor, "x", x, [1.0, 1.0], has_grad=False)


def test_device_is_ignored_unless_the_exercise_asks_for_one():
    check_tensor("x", torch.ones(1), [1.0])
    assert "on cpu, expected on cuda" in fails(check_tensor, "x", torch.ones(1), [1.0], device="cuda")
    check_tensor("x", torch.ones(1), [1.0], device="cpu")


def test_meta_tensors_have_no_values_and_fail():
    fails(check_tensor, "x", torch.ones(1, device="meta"), [1.0])


def test_reference_may_require_grad_and_sit_on_any_device():
    reference = torch.ones(2, requires_grad=True) * 3
    check_tensor("x", torch.full((2,), 3.0), reference)


@cuda
def test_cuda_tensor_matches_cpu_reference():
    actual = torch.tensor([20.0], device="cuda")
    check_tensor("x.grad", actual, [20.0])
    check_tensor("x.grad", actual, torch.tensor([20.0]), device="cuda")
    fails(check_tensor, "x.grad", actual, [21.0])
    fails(check_tensor, "x.grad", actual, [20.0], device="cpu")


@cuda
def test_cuda_reference_matches_cpu_tensor():
    check_tensor("x", torch.ones(3), torch.ones(3, device="cuda"))
    check_scalar("f", torch.tensor(650.0, device="cuda"), 650.0)


# --- reveal=False -----------------------------------------------------------------


def test_hidden_reference_values_never_appear_in_messages():
    secret = [0.123456, 9.87654]
    text = fails(check_tensor, "w", torch.tensor([0.5, 0.5]), secret, reveal=False)
    assert "0.123456" not in text and "9.87654" not in text and "0.123" not in text
    assert "2 of 2" in text
    text = fails(check_tensor, "w", torch.tensor([math.nan, 0.5]), secret, reveal=False)
    assert "0.123" not in text
    text = fails(check_scalar, "loss", 1.5, 0.271828, reveal=False)
    assert "0.271828" not in text and "1.5" in text
    text = fails(check_value, "name", "Mul", "SumBackward0", reveal=False)
    assert "SumBackward0" not in text


# --- values that only pretend ------------------------------------------------------


class AlwaysEqual:
    def __eq__(self, other):
        return True

    def __bool__(self):
        return True


class TorchFunctionImpostor:
    shape = (1,)
    dtype = torch.float32

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return torch.tensor(True)


class TensorSubclass(torch.Tensor):
    def __eq__(self, other):
        return torch.ones_like(self, dtype=torch.bool)


class LyingSubclass(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return torch.tensor([20.0])


@pytest.mark.parametrize(
    ("impostor", "what"),
    [
        (AlwaysEqual(), "AlwaysEqual"),
        (TorchFunctionImpostor(), "TorchFunctionImpostor"),
        ([20.0], "list"),
        (np.array([20.0], dtype=np.float32), "numpy.ndarray"),
        (20.0, "float"),
        (None, "NoneType"),
        (torch.tensor([1.0]).as_subclass(TensorSubclass), "subclass"),
        (torch.tensor([1.0]).as_subclass(LyingSubclass), "subclass"),
    ],
)
def test_impostors_never_pass_check_tensor(impostor, what):
    assert what in fails(check_tensor, "x.grad", impostor, [20.0])


@pytest.mark.parametrize(
    "impostor",
    [
        AlwaysEqual(),
        TorchFunctionImpostor(),
        "650",
        [650.0],
        True,
        torch.tensor([650.0]).as_subclass(LyingSubclass),
    ],
)
def test_impostors_never_pass_check_scalar(impostor):
    fails(check_scalar, "f", impostor, 650.0)


def test_always_true_objects_are_not_booleans():
    assert "AlwaysEqual" in fails(check_true, "cond", AlwaysEqual())
    fails(check_true, "cond", torch.tensor(True))
    fails(check_true, "cond", 1)


def test_check_value_requires_the_exact_type():
    fails(check_value, "v", AlwaysEqual(), None)
    fails(check_value, "v", 1, True)
    fails(check_value, "v", "None", None)
    fails(check_value, "v", ["MulBackward0", AlwaysEqual()], ["MulBackward0", "SumBackward0"])
    fails(check_value, "v", ("a",), ["a"])


def test_not_a_tensor_message_has_a_hint_in_the_current_language():
    text = fails(check_tensor, "x", [1.0], [1.0])
    assert "Hint:" in text and "torch.tensor" in text
    course.set_language("ru")
    text = fails(check_tensor, "x", [1.0], [1.0])
    assert "Подсказка:" in text and "ожидался torch.Tensor" in text


# --- check_scalar, check_value, check_true ------------------------------------------


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        (650.0, 650),
        (650, 650.0),
        (torch.tensor(650.0), 650.0),
        (torch.tensor([650.0], requires_grad=True) * 1, 650.0),  # float() of it would warn
        (np.float32(0.3), 0.3),
        (3.656158440062973e-05, 3.656158440062973e-05),
        (math.nan, math.nan),
        (math.inf, math.inf),
    ],
)
def test_check_scalar_accepts(actual, expected):
    check_scalar("v", actual, expected)


def test_check_scalar_rejects_wrong_numbers_with_the_error():
    text = fails(check_scalar, "w", 1.2, 0.3)
    assert "got 1.2" in text and "expected 0.3" in text and "abs error 0.9" in text
    fails(check_scalar, "w", math.nan, 0.3)
    fails(check_scalar, "w", 0.3, math.nan)
    fails(check_scalar, "w", -math.inf, math.inf)
    assert "3 elements" in fails(check_scalar, "w", torch.ones(3), 1.0)


def test_check_value():
    check_value("g", None, None)
    check_value("names", ["MulBackward0", "AccumulateGrad"], ["MulBackward0", "AccumulateGrad"])
    check_value("flag", True, True)
    check_value("pair", (1, "a"), (1, "a"))
    text = fails(check_value, "names", ["MulBackward0"], ["SumBackward0"])
    assert "SumBackward0" in text and "MulBackward0" in text
    with pytest.raises(TypeError):
        check_value("t", torch.ones(1), torch.ones(1))


def test_check_true():
    check_true("x is leaf", torch.ones(1).is_leaf)
    assert "condition is False" in fails(check_true, "x is leaf", False)


# --- check_grad_fn_chain ---------------------------------------------------------------


def seed_function():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    return x, 10 * (x**2).sum()


SEED_CHAIN = ["MulBackward0", "SumBackward0", "PowBackward0", "AccumulateGrad"]


def test_grad_fn_chain_of_the_seed_example():
    _, f = seed_function()
    assert course.grad_fn_chain(f) == SEED_CHAIN
    check_grad_fn_chain("f", f, SEED_CHAIN)


@pytest.mark.parametrize(
    ("expected", "words"),
    [
        (["MulBackward0", "MeanBackward0", "PowBackward0", "AccumulateGrad"], "step 1"),
        (SEED_CHAIN[:3], "goes on past"),
        ([*SEED_CHAIN, "AccumulateGrad"], "ends after 4"),
    ],
)
def test_grad_fn_chain_mismatches(expected, words):
    _, f = seed_function()
    assert words in fails(check_grad_fn_chain, "f", f, expected)


def test_grad_fn_chain_of_a_leaf_fails():
    x, _ = seed_function()
    assert "no grad_fn" in fails(check_grad_fn_chain, "x", x, SEED_CHAIN)
    fails(check_grad_fn_chain, "f", AlwaysEqual(), SEED_CHAIN)


# --- languages ---------------------------------------------------------------------------


def test_messages_follow_the_chosen_language(capsys):
    course.set_language("ru")
    check_tensor("x", torch.ones(1), [1.0])
    assert capsys.readouterr().out == "✔ x: верно\n"
    text = fails(check_tensor, "x", torch.ones(2), torch.ones(3))
    assert "форма (2,), ожидалась (3,)" in text


def test_hints_given_in_both_languages_follow_the_notebook():
    hint = {"en": "differentiate each term", "ru": "продифференцируйте каждое слагаемое"}
    assert "differentiate" in fails(check_scalar, "f", 1.0, 2.0, hint=hint)
    course.set_language("ru")
    assert "продифференцируйте" in fails(check_scalar, "f", 1.0, 2.0, hint=hint)


def test_unknown_language_is_refused():
    with pytest.raises(ValueError, match="unknown language"):
        course.set_language("de")


def test_every_message_exists_in_both_languages_with_the_same_fields():
    import string

    from course.i18n import LANGUAGES, MESSAGES

    for key, texts in MESSAGES.items():
        assert set(texts) == set(LANGUAGES), key
        fields = [{f for _, f, _, _ in string.Formatter().parse(t) if f} for t in texts.values()]
        assert fields[0] == fields[1], key


# --- the pure core ----------------------------------------------------------------------------

CORE_CASES = [
    # (kind, actual, expected, options, the check that reads the same values)
    (
        "tensor",
        torch.tensor([1.0, 5.0]),
        torch.tensor([1.0, 2.0]),
        {},
        lambda: check_tensor("v", torch.tensor([1.0, 5.0]), torch.tensor([1.0, 2.0])),
    ),
    (
        "tensor",
        torch.tensor([1.0, 5.0]),
        torch.tensor([1.0, 2.0]),
        {"input_name": "x"},
        lambda: check_tensor("v", torch.tensor([1.0, 5.0]), torch.tensor([1.0, 2.0]), input_name="x"),
    ),
    ("scalar", 1.2, 0.3, {"rtol": 1e-5, "atol": 1e-8}, lambda: check_scalar("v", 1.2, 0.3)),
    ("value", "a", "b", {"reveal": False}, lambda: check_value("v", "a", "b", reveal=False)),
    ("true", 1, True, {}, lambda: check_true("v", 1)),
    ("type", int, float, {}, lambda: course.check_type("v", 3, float)),
    (
        "chain",
        ["SumBackward0", "AccumulateGrad"],
        ["MulBackward0"],
        {},
        lambda: check_grad_fn_chain("v", torch.ones(1, requires_grad=True).sum(), ["MulBackward0"]),
    ),
]


def test_compare_is_pure_and_each_check_renders_its_verdict_in_the_notebooks_language(capsys):
    from course.checks import compare, failure_text, tensor_facts
    from course.i18n import LANGUAGES

    def core(kind, actual, expected, options):
        if kind == "tensor":
            actual, expected = tensor_facts(actual), tensor_facts(expected)
        return compare(kind, actual, expected, options)

    for lang in LANGUAGES:
        course.set_language(lang)
        for kind, actual, expected, options, check in CORE_CASES:
            verdict = core(kind, actual, expected, options)
            assert not verdict.ok and verdict == core(kind, actual, expected, options)
            assert failure_text("v", verdict, lang) == fails(check)
            assert core(kind, expected, expected, options).ok
    assert capsys.readouterr() == ("", "")


def test_compare_of_right_values_passes_without_a_reason():
    from course.checks import PASSED, compare, tensor_facts

    same = tensor_facts(torch.tensor([1.0, 2.0]))
    assert compare("tensor", same, same, {}) == PASSED and PASSED.reason is None
    assert compare("true", True, True, {}) == PASSED
    assert compare("type", "float", "float", {}) == PASSED  # names, as the grader receives them


# --- properties ----------------------------------------------------------------------------

finite_floats = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=4), elements=finite_floats))
def test_any_tensor_matches_itself_and_its_cuda_free_copy(values):
    check_tensor("x", torch.from_numpy(values.copy()), values.copy())


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_side=1, max_dims=2, max_side=4),
        elements=st.floats(-1e3, 1e3),
    ),
    st.data(),
)
def test_any_single_perturbation_beyond_tolerance_is_caught_at_its_index(values, data):
    index = data.draw(st.integers(0, values.size - 1))
    wrong = values.copy()
    wrong.flat[index] += 1e-3 + 1e-5 * abs(wrong.flat[index])
    text = fails(check_tensor, "x", torch.from_numpy(wrong), values, rtol=1e-6, atol=1e-6)
    position = tuple(int(i) for i in np.unravel_index(index, values.shape))
    assert f"at index {position}" in text and "1 of" in text


@settings(max_examples=60, deadline=None)
@given(st.floats(-1e9, 1e9), st.floats(1e-3, 1.0))
def test_scalar_relative_error_beyond_rtol_fails(value, scale):
    check_scalar("v", value, value)
    wrong = value + (abs(value) + 1.0) * scale
    fails(check_scalar, "v", wrong, value, rtol=1e-5, atol=1e-8)
