"""environment.yml (conda) and pyproject.toml (pip) pin the same packages."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[A-Za-z0-9_,.\-]+\])?==([^\s;]+)$")  # extras allowed


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [
        d for group in project["optional-dependencies"].values() for d in group
    ]
    pins = {}
    for spec in specs:
        match = PIN.match(spec)
        assert match, f"pyproject.toml: {spec!r} is not pinned with =="
        pins[match[1].lower()] = match[2]
    return pins


def environment_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        item = line.strip()
        if item.startswith("- ") and "==" in item:
            name, _, pinned = item[2:].partition("==")
            pins[name.partition("[")[0].strip().lower()] = pinned.strip()
    return pins


def test_conda_and_pip_pin_the_same_packages_and_versions():
    assert environment_pins() == pyproject_pins()


def test_make_installs_the_pinned_torch_on_the_python_pyproject_requires():
    """The Makefile installs torch on its own first (a CPU build); it must be the pinned one."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.findall(r"pip install --quiet torch==(\S+)", makefile) == [pyproject_pins()["torch"]]
    (minimum,) = re.findall(r"sys.version_info >= \((\d+), (\d+)\)", makefile)
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=" + ".".join(minimum)


def test_torch_is_the_version_the_issue_names_and_python_is_recent_enough():
    assert pyproject_pins()["torch"] == "2.13.0"
    assert pyproject_pins()["nbgrader"] == "0.9.6"
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"] == ">=3.11"
