"""The grader drops ignored stderr (``score.drop_ignored_stderr``) exactly as nbgrader's
``IgnorePattern`` does in ``nbgrader autograde``, with the course's pattern and others."""

from copy import deepcopy
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output
from nbgrader.preprocessors import IgnorePattern
from traitlets.config.loader import PyFileConfigLoader

from autograder.grading.score import drop_ignored_stderr

ROOT = Path(__file__).resolve().parents[1]
COURSE_PATTERN = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config().IgnorePattern.pattern
PATTERNS = [COURSE_PATTERN, r"DeprecationWarning", r"^ignore me$", ""]

TORCH_WARNING = "/x/site-packages/torch/nn/functional.py:12: UserWarning: size mismatch\n  warnings.warn(\n"
CORE_WARNING = "UserWarning: Converting a tensor (Triggered internally at aten/src/x.cpp:1.)\n"
OWN_WARNING = "<ipython-input-1>:3: UserWarning: my own warning\n"
TEXTS = [TORCH_WARNING, CORE_WARNING, OWN_WARNING, "DeprecationWarning: old\n", "ignore me", "hello\n", ""]


def _outputs(items) -> list:
    """Outputs from ``(kind, text)`` pairs: a stream (stdout, stderr), an error or a result."""
    outputs = []
    for kind, text in items:
        if kind in ("stdout", "stderr"):
            outputs.append(new_output("stream", name=kind, text=text))
        elif kind == "error":
            outputs.append(new_output("error", ename="ValueError", evalue=text, traceback=[]))
        else:
            outputs.append(new_output("execute_result", data={"text/plain": text}, execution_count=1))
    return outputs


def _both(cell, pattern: str):
    """(ours, nbgrader's): ``cell`` after each has dropped what ``pattern`` matches, on its own copy."""
    ours, theirs = deepcopy(cell), deepcopy(cell)
    drop_ignored_stderr(ours, pattern)
    IgnorePattern(pattern=pattern, enabled=True).preprocess_cell(theirs, {}, 0)
    return ours, theirs


def test_the_course_pattern_drops_library_warnings_only():
    warnings = [("stderr", text) for text in (TORCH_WARNING, CORE_WARNING, OWN_WARNING)]
    ours, theirs = _both(new_code_cell("x", outputs=_outputs(warnings)), COURSE_PATTERN)
    assert [o.text for o in ours.outputs] == [OWN_WARNING] == [o.text for o in theirs.outputs]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_stdout_errors_and_results_are_kept(pattern):
    items = [("stdout", TORCH_WARNING), ("error", CORE_WARNING), ("result", "DeprecationWarning")]
    cell = new_code_cell("x", outputs=_outputs(items))
    ours, theirs = _both(cell, pattern)
    assert ours.outputs == theirs.outputs == cell.outputs


def test_markdown_cells_are_left_alone():
    cell = new_markdown_cell("DeprecationWarning")
    ours, theirs = _both(cell, "DeprecationWarning")
    assert ours == theirs == cell


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(PATTERNS),
    st.lists(st.tuples(st.sampled_from(["stdout", "stderr", "error", "result"]), st.sampled_from(TEXTS))),
)
def test_agrees_with_nbgrader_on_any_outputs(pattern, items):
    cell = new_code_cell("x", outputs=_outputs(items))
    ours, theirs = _both(cell, pattern)
    assert ours.outputs == theirs.outputs
