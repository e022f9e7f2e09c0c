"""A student's and an instructor's first minutes, in a real browser.

JupyterLab serves a scratch copy of the course after `make student` in both
languages. Headless Chromium opens Lesson 1 from my-work/ru/ and my-work/en/,
puts a wrong answer into the first exercise, runs it and its visible test and
reads the ✘ line on the page, then the right answer (the source notebook's
solution) and the ✔ lines. Formgrader, on the same server, lists the course's
assignments.

Chromium is Debian's `chromium` (`make browser`, a step of `make test`, installs
it; CHROMIUM=/path/to/chromium picks another), driven by Playwright. The steps
leave screenshots and the server its log in $TMPDIR/browser-test-screens/; a
failed step adds a screenshot of its own and names the folder.
"""

import contextlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

import course
from autograder import LANGUAGES, notebooks
from autograder.solutions import solution_sources
from autograder.student import WORK_FOLDER, working_copy

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    pytest.skip("Chromium is not installed (make browser: apt-get install chromium)", allow_module_level=True)
expect = sync_api.expect
pytestmark = pytest.mark.slow  # JupyterLab and formgrader servers driven in Chromium

ROOT = Path(__file__).resolve().parents[1]
LESSON = "01_gradients"
NOTEBOOK = "gradients.ipynb"
SOLUTION, VISIBLE_TEST = "l1_sumsq_solution", "l1_sumsq_test1"
WRONG = "def grad_sum_squares_scaled(X):\n    return 2 * X\n"
# What the visible test prints for the wrong answer and (every line) for the right one, per language.
WRONG_SAYS = {"ru": "получено 2, ожидалось 20", "en": "got 2, expected 20"}
RIGHT_SAYS = {"ru": ": верно", "en": ": correct"}
SERVER_START_S = 60
KERNEL_MS = 60_000  # a kernel starts, imports torch and matplotlib, runs the lesson up to the exercise
UI_MS = 30_000
SCREENS = Path(tempfile.gettempdir()) / "browser-test-screens"


def expected_output(language: str, answer: str, test_source: str) -> list[str]:
    """The lines the course library prints for ``test_source`` run after ``answer`` in
    ``language``, on the CPU: what the page must show under the test cell."""
    namespace = {"torch": torch, "device": torch.device("cpu")}
    namespace.update({name: getattr(course, name) for name in course.__all__ if name.startswith("check_")})
    printed = io.StringIO()
    previous = course.get_language()
    course.set_language(language)
    try:
        with contextlib.redirect_stdout(printed):
            exec(answer, namespace)
            exec(test_source, namespace)
    except course.CheckFailed as failed:
        printed.write(str(failed) + "\n")
    finally:
        course.set_language(previous)
    return printed.getvalue().splitlines()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None when there is no such process."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, start time) of every process below ``pid``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(
                int(stat.parent.name)
            )
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            started = process_start(child)
            if started is not None:
                found.append((child, started))
            todo.append(child)
    return found


@pytest.fixture(scope="module")
def screens() -> Path:
    """$TMPDIR/browser-test-screens/, emptied: a screenshot of every step, and the server's log."""
    shutil.rmtree(SCREENS, ignore_errors=True)
    SCREENS.mkdir(parents=True)
    return SCREENS


@pytest.fixture(scope="module")
def scratch_course(tmp_path_factory) -> Path:
    """A clone's course folder (nbgrader_config.py, source/, the committed release/) after
    `make student` in both languages: my-work/ru/ and my-work/en/."""
    target = tmp_path_factory.mktemp("browser-course")
    for folder in ("source", "release"):
        shutil.copytree(ROOT / folder, target / folder)
    shutil.copy2(ROOT / "nbgrader_config.py", target / "nbgrader_config.py")
    for language in LANGUAGES:
        working_copy(target, language)
    return target


@pytest.fixture(scope="module")
def jupyter(scratch_course, screens, tmp_path_factory):
    """JupyterLab on the scratch course, with a Jupyter config of its own (no news, every cell
    rendered, nbgrader's exchange in the scratch folder rather than /srv/nbgrader/exchange);
    yields its URL and token, and stops it and its kernels afterwards."""
    home = tmp_path_factory.mktemp("jupyter-home")
    exchange = home / "exchange"
    exchange.mkdir(mode=0o777)  # nbgrader only checks that it exists and is writable
    (home / "config").mkdir()
    (home / "config" / "nbgrader_config.py").write_text(f"c.Exchange.root = {str(exchange)!r}\n")
    settings = home / "config" / "lab" / "user-settings" / "@jupyterlab"
    for name, values in {
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "notebook-extension/tracker": {"windowingMode": "none"},
    }.items():
        path = settings / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    token = secrets.token_hex(16)
    env = dict(
        os.environ,
        # as in an activated environment: formgrader's gradebook runs this environment's `alembic`
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
    )
    log_path = screens / "jupyter-server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root"),
                *("--ServerApp.ip=127.0.0.1", f"--ServerApp.port={free_port()}"),  # or the next free one
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={scratch_course}",
            ],
            cwd=scratch_course,  # formgrader reads nbgrader_config.py from here
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = None
    try:
        info = home / "runtime" / f"jpserver-{server.pid}.json"
        deadline = time.monotonic() + SERVER_START_S
        while True:
            with contextlib.suppress(OSError, ValueError, KeyError):
                url = url or json.loads(info.read_text())["url"].rstrip("/")
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5):
                    break
            log = log_path.read_text(errors="replace")[-3000:]
            assert server.poll() is None, f"JupyterLab exited ({server.returncode}):\n{log}"
            assert time.monotonic() < deadline, f"JupyterLab did not answer in {SERVER_START_S} s:\n{log}"
            time.sleep(0.2)
        yield url, token
    finally:
        stop(server, url, token)


def stop(server: subprocess.Popen, url: str | None, token: str) -> None:
    """Shut JupyterLab down through its API (it stops its kernels), then kill what is left:
    its process group and the kernels, which run in sessions of their own."""
    kernels = descendants(server.pid)
    if url:
        with contextlib.suppress(OSError):
            request = urllib.request.Request(f"{url}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(request, timeout=10).close()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    for pid, started in kernels:
        if process_start(pid) == started:  # still the same process, not a new one with its pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, jupyter):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@contextlib.contextmanager
def step(page, screens: Path, name: str):
    """A named step; a failure leaves ``<name>-failed.png`` and says where it is."""
    try:
        yield
    except Exception as error:
        with contextlib.suppress(Exception):
            page.screenshot(path=screens / f"{name}-failed.png")
        raise AssertionError(f"{name}: {error}\nscreenshots and the server's log: {screens}") from error


def set_source(cell, text: str) -> None:
    """Replace the code in ``cell`` through its editor, as a student would."""
    editor = cell.locator(".cm-content")
    editor.click()
    cell.page.keyboard.press("Control+a")
    cell.page.keyboard.insert_text(text)
    typed = editor.inner_text().rstrip("\n")
    assert typed == text.rstrip("\n"), f"the editor holds {typed!r}, not {text!r}"


def run_two_cells(page, solution_cell) -> None:
    """Run the solution cell and the test cell after it (Shift+Enter twice)."""
    solution_cell.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    page.keyboard.press("Shift+Enter")


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_student_sees_a_wrong_answer_fail_and_the_right_one_pass(
    page, jupyter, scratch_course, screens, language
):
    url, token = jupyter
    notebook_path = Path(WORK_FOLDER) / language / LESSON / NOTEBOOK
    student_nb = notebooks.read(scratch_course / notebook_path)
    ids = [notebooks.grade_id(cell) for cell in student_nb.cells]
    solution_at, test_at = ids.index(SOLUTION), ids.index(VISIBLE_TEST)
    assert test_at == solution_at + 1, "the visible test is expected right after the solution cell"
    right = solution_sources(notebooks.read(ROOT / "source" / LESSON / NOTEBOOK))[SOLUTION]
    test_source = student_nb.cells[test_at].source
    wrong_lines = expected_output(language, WRONG, test_source)
    right_lines = expected_output(language, right, test_source)
    assert wrong_lines[0].startswith("✘ ") and WRONG_SAYS[language] in wrong_lines[0], wrong_lines
    assert right_lines and all(
        line.startswith("✔ ") and line.endswith(RIGHT_SAYS[language]) for line in right_lines
    ), right_lines

    with step(page, screens, f"{language}-open"):
        page.goto(
            f"{url}/lab/workspaces/browser-test-{language}/tree/{notebook_path.as_posix()}?token={token}"
        )
        panel = page.locator(".jp-NotebookPanel")
        cells = panel.locator(".jp-Notebook .jp-Cell")
        expect(cells).to_have_count(len(student_nb.cells), timeout=UI_MS)
        # the kernel's status in the status bar goes Connecting, Unknown, Idle
        expect(page.locator("#jp-main-statusbar")).to_contain_text("| Idle", timeout=KERNEL_MS)
        solution, output = cells.nth(solution_at), cells.nth(test_at).locator(".jp-OutputArea")
        expect(solution.locator(".cm-content")).to_contain_text("raise NotImplementedError()", timeout=UI_MS)

    with step(page, screens, f"{language}-run-above"):  # a student runs the lesson from the top
        solution.locator(".jp-InputPrompt").click()
        expect(solution).to_have_class(re.compile(r"\bjp-mod-active\b"), timeout=UI_MS)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Above Selected Cell").click()
        last_above = max(i for i in range(solution_at) if student_nb.cells[i].cell_type == "code")
        expect(cells.nth(last_above).locator(".jp-InputPrompt")).to_have_text(
            re.compile(r"\[\d+\]"), timeout=KERNEL_MS
        )

    with step(page, screens, f"{language}-wrong"):
        set_source(solution, WRONG)
        run_two_cells(page, solution)
        expect(output).to_contain_text(wrong_lines[0], timeout=KERNEL_MS)
        expect(output).not_to_contain_text("✔", timeout=UI_MS)
        output.scroll_into_view_if_needed()
        page.screenshot(path=screens / f"{language}-wrong.png")

    with step(page, screens, f"{language}-right"):
        set_source(solution, right)
        run_two_cells(page, solution)
        for line in right_lines:
            expect(output).to_contain_text(line, timeout=KERNEL_MS)
        expect(output).not_to_contain_text("✘", timeout=UI_MS)
        output.scroll_into_view_if_needed()
        page.screenshot(path=screens / f"{language}-right.png")


def test_formgrader_lists_the_assignments(page, jupyter, scratch_course, screens):
    url, token = jupyter
    with step(page, screens, "formgrader"):
        page.goto(f"{url}/formgrader?token={token}")
        table = page.locator("#main-table")
        for assignment in notebooks.assignments(scratch_course):
            expect(table).to_contain_text(assignment, timeout=UI_MS)
        page.screenshot(path=screens / "formgrader.png", full_page=True)
