"""What a student reads when a check fails: in the notebook and in feedback.html (issue 11's rules)."""

import pytest
import torch
from test_pipeline import write_lms_folder

from autograder.collect import collect
from autograder.feedback import FEEDBACK_DIR, plain_title, write_feedback
from autograder.grading import verify
from autograder.grading.grade import grade_assignment
from course import CheckFailed, check_scalar, check_tensor, check_type, set_language
from course.checks import type_name


def failure(check, *args, **kwargs) -> str:
    set_language("en")
    try:
        check(*args, **kwargs)
    except CheckFailed as failed:
        return str(failed)
    raise AssertionError("the check passed")


def test_numbers_that_print_alike_get_enough_digits_to_differ():
    text = failure(check_scalar, "forward difference", 3.0000003, 3.0, rtol=0, atol=1e-9)
    assert "got 3," not in text and "got 3.0000003" in text and "expected 3 " in text
    text = failure(
        check_tensor,
        "g",
        torch.tensor([2.0000001], dtype=torch.float64),
        torch.tensor([2.0], dtype=torch.float64),
        rtol=0,
        atol=0,
    )
    assert "got 2.0000001" in text


def test_an_input_the_function_changed_gets_its_own_message():
    text = failure(check_tensor, "x after f(x)", torch.tensor([1.0, 5.0]), [1.0, 2.0], input_name="x")
    assert "your function changed its input x" in text and "got" not in text
    assert "clone()" in text  # and how to avoid it


def test_grad_none_on_a_non_leaf_hints_retain_grad_not_torch_tensor():
    text = failure(check_tensor, "y.grad", None, [1.0])
    assert "retain_grad()" in text and "torch.tensor(...)" not in text


def test_a_type_check_says_which_type_came_back():
    assert "got one of type int" in failure(check_type, "type(err)", 3, float)
    assert "numpy.float32" in failure(check_type, "type(err)", torch.tensor(1.0).numpy()[()], float)
    check_type("type(err)", 0.5, float)  # passes


def test_relative_error_against_an_expected_zero_is_never_printed():
    text = failure(check_tensor, "g", torch.tensor([0.0, 1e-3]), torch.tensor([0.0, 0.0]), atol=1e-6)
    assert "rel error" not in text and "e+30" not in text
    text = failure(check_tensor, "g", torch.tensor([1.0, 2.5]), torch.tensor([0.0, 2.0]), atol=1e-6)
    assert "max rel error 0.25" in text  # relative to the non-zero reference only


def test_a_failed_check_renders_as_its_message_not_a_traceback():
    try:
        check_tensor("x.grad", torch.tensor([5.0]), [4.0])
    except CheckFailed as failed:
        lines = failed._render_traceback_()
    assert lines[0].startswith("✘ x.grad:") and len(lines) <= 2
    assert not any("checks.py" in line for line in lines)


def _reference(kind, expected, **options):
    return {"site": 0, "kind": kind, "name": "v", "expected": expected, "options": options}


def _report(kind, value):
    return {"site": 0, "kind": kind, "value": value}


def test_feedback_single_number_checks_use_the_checks_own_tolerances():
    text = verify.explain(
        [_reference("scalar", {"t": "number", "v": "0.0"}, atol="1e-07", rtol="1e-05", reveal=True)],
        [_report("scalar", {"t": "number", "v": "0.001"})],
        "en",
    )
    assert "atol=1e-07" in text and "atol=1e-08" not in text


def test_feedback_hidden_failures_say_what_kind_without_values():
    tensor = {"t": "tensor", "dtype": "torch.float32", "np_dtype": "<f4", "shape": [1], "data": "AACAPw=="}
    tensor |= {"requires_grad": False, "is_leaf": True, "grad_set": False, "device": "cpu", "chain": []}
    none = verify.explain(
        [_reference("tensor", tensor, reveal=False)], [_report("tensor", {"t": "none", "v": None})], "en"
    )
    assert "expected a torch.Tensor, got NoneType" in none
    needs_grad = verify.explain(
        [_reference("tensor", tensor, reveal=False, requires_grad=True)], [_report("tensor", tensor)], "en"
    )
    assert "requires_grad is False, expected True" in needs_grad


def test_feedback_never_names_a_students_own_class_or_node():
    text = verify.explain(
        [_reference("type", {"t": "type", "v": "float"})],
        [_report("type", {"t": "type", "v": "leak.HIDDEN"})],
        "en",
    )
    assert "HIDDEN" not in text and "another type" in text
    assert type_name(float) == "float" and type_name(torch.Tensor) == "torch.Tensor"
    chain = {"t": "tensor", "dtype": "torch.float32", "np_dtype": "<f4", "shape": [1], "data": "AACAPw=="}
    chain |= {"requires_grad": True, "is_leaf": False, "grad_set": False, "device": "cpu"}
    text = verify.explain(
        [_reference("chain", {"t": "list", "v": [{"t": "str", "v": "MulBackward0"}]})],
        [_report("chain", chain | {"chain": ["SECRETBackward"]})],
        "en",
    )
    assert "SECRET" not in text and "another node" in text


def test_titles_are_rendered_without_latex_or_backticks():
    assert plain_title(r"Exercise 1: $\nabla$ of $10\sum x_{ij}^2$") == "Exercise 1: ∇ of 10∑ x_ij²"
    assert plain_title("Упражнение 3: `central_difference`") == "Упражнение 3: central_difference"
    assert plain_title(r"$\frac{1}{N}$ and $\ln(1+f)$") == "1/N and ln(1+f)"


@pytest.mark.slow  # grades in sandboxes
def test_a_written_answer_graded_in_formgrader_shows_its_score_and_comment(
    toy_course, tmp_path, warm_sandboxes
):
    from nbgrader.api import Gradebook

    write_lms_folder(toy_course, tmp_path / "lms")
    collect(toy_course, "toy", tmp_path / "lms")
    grade_assignment(toy_course, "toy", student="ann", **warm_sandboxes)
    with Gradebook(f"sqlite:///{toy_course / 'gradebook.db'}") as gb:
        grade = gb.find_grade("why", "toy", "toy", "ann")
        grade.manual_score = 1.5
        comment = gb.find_comment("why", "toy", "toy", "ann")
        comment.manual_comment = "Good, but say why the gradient accumulates."
        gb.db.commit()
    write_feedback(toy_course, "toy", "ann")
    page = (toy_course / FEEDBACK_DIR / "ann" / "toy" / "feedback.html").read_text()
    assert "graded by the instructor" in page and "1.5 / 2" in page
    assert "say why the gradient accumulates" in page and "to be graded" not in page


def test_an_exception_is_named_and_explained_only_in_the_graders_words():
    from nbformat import from_dict

    from autograder.grading.score import _reason

    def cell(ename, evalue):
        return from_dict(
            {"outputs": [{"output_type": "error", "ename": ename, "evalue": evalue, "traceback": []}]}
        )

    known = _reason(
        cell("RuntimeError", "element 0 of tensors does not require grad and does not have a grad_fn"),
        [],
        [],
        "en",
    )
    assert "RuntimeError" in known and "was requires_grad=True set?" in known
    unknown = _reason(cell("RuntimeError", "HIDDEN TEST SOURCE"), [], [], "en")
    assert "RuntimeError" in unknown and "HIDDEN" not in unknown
    custom = _reason(cell("LeakHidden", "does not require grad and does not have a grad_fn"), [], [], "ru")
    assert "LeakHidden" not in custom and "исключение" in custom


# --- the catalogue (course.i18n) ---------------------------------------------------------------


def test_one_catalogue_in_the_language_asked_for_else_the_notebooks_else_english():
    from course.i18n import Text, message

    assert message("passed", "ru") == "пройдено" and message("passed", "en") == "passed"
    assert message("passed", "de") == "passed"  # a language the catalogue lacks
    set_language("ru")
    try:
        assert message("passed") == "пройдено"
        nested = message("fail_header", "en", name="x", reason=Text("stop.memory"))
    finally:
        set_language("en")
    assert nested == "✘ x: the notebook ran out of memory"  # a field in the language of its message


def test_every_stop_reason_of_the_protocol_has_its_words_and_no_other():
    from autograder.grading.protocol import STOP_REASONS
    from course.i18n import MESSAGES

    assert {key.removeprefix("stop.") for key in MESSAGES if key.startswith("stop.")} == STOP_REASONS


def test_a_known_error_is_recognised_by_a_fragment_and_told_only_in_the_catalogues_words():
    from course.i18n import KNOWN_ERRORS, LANGUAGES, known_error, message

    for fragment, key in KNOWN_ERRORS:
        for lang in LANGUAGES:
            assert known_error(f"RuntimeError: SECRET {fragment} SECRET", lang) == message(key, lang)
    assert known_error("SECRET", "en") is None
    assert len({key for _, key in KNOWN_ERRORS}) == len(KNOWN_ERRORS)


def test_the_catalogue_loads_without_torch_and_the_course_loads_its_names_on_first_use():
    import subprocess
    import sys

    script = (
        "import sys, course, course.i18n\n"
        "assert 'torch' not in sys.modules\n"
        "from course import check_tensor, pick_device, graph_tree\n"
        "assert 'torch' in sys.modules and set(course.__all__) <= set(dir(course))\n"
        "namespace = {}\n"
        "exec('from course import *', namespace)\n"
        "assert set(course.__all__) <= set(namespace)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_a_cell_that_reported_more_than_its_reference_is_told_its_values_do_not_match():
    from nbformat import from_dict

    from autograder.grading.score import _reason
    from course.i18n import message

    want = [{"site": 0, "kind": "true", "name": "c", "expected": {"t": "bool", "v": True}, "options": {}}]
    twice = [{"site": 0, "kind": "true", "value": {"t": "bool", "v": True}}] * 2
    assert not verify.cell_matches(want, twice) and verify.explain(want, twice, "en") is None
    quiet = from_dict({"outputs": []})
    assert _reason(quiet, want, twice, "ru") == message("verify.mismatch", "ru")
    warned = from_dict({"outputs": [{"output_type": "stream", "name": "stderr", "text": "UserWarning\n"}]})
    assert _reason(warned, want, twice[:1], "en") == message("stderr", "en")
