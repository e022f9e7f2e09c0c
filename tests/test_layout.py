"""What importing a module brings with it: the steps that read results stay light, and
importing the configuration changes nothing in the process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# What only grading needs: seconds to import (torch), and the code that runs student notebooks.
GRADING_ONLY = ("torch", "autograder.grading.sandbox", "autograder.grading.verify")


def imported_after(statement: str) -> dict:
    """What a fresh interpreter holds after ``statement``: its modules, PATH and warning filters,
    as they changed."""
    script = f"""
import json, os, sys, warnings
path, filters = os.environ.get("PATH"), [repr(f) for f in warnings.filters]
{statement}
print(json.dumps({{
    "modules": sorted(sys.modules),
    "path_changed": os.environ.get("PATH") != path,
    "filters_added": [repr(f) for f in warnings.filters if repr(f) not in filters],
}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("module", ["autograder.feedback", "autograder.export", "autograder.report"])
def test_the_steps_that_read_results_import_no_sandbox_and_no_torch(module):
    modules = imported_after(f"import {module}")["modules"]
    assert module in modules
    assert "autograder.grading.results" in modules  # they do read results
    assert [name for name in GRADING_ONLY if name in modules] == []


def test_the_grader_imports_what_the_layout_test_looks_for():
    """The names above are the grader's real modules: the test above could fail."""
    modules = imported_after("import autograder.grading.grade")["modules"]
    assert [name for name in GRADING_ONLY if name not in modules] == []


def test_importing_the_configuration_changes_nothing():
    after = imported_after("import autograder.config")
    assert after["path_changed"] is False and after["filters_added"] == []
    # what it set at import before is now set where nbgrader is opened, and only there
    opened = imported_after("import autograder.config as c; c.nbgrader_environment()")
    on_path = str(Path(sys.executable).parent) in os.environ.get("PATH", "").split(os.pathsep)
    assert opened["path_changed"] is not on_path
    assert any("SAWarning" in f for f in opened["filters_added"])
