"""Report step: where the class struggles, on one HTML page with PNG plots.

Score distribution, pass rate per test, the failures grouped by check (each
check once, whatever the language the students worked in, with its messages in
English and how often each was given), and the submissions that could not be
graded and why.
"""

import re
import textwrap
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from autograder import pages
from autograder.grading.results import CellKind, SubmissionResult, read_result


def load_results(course_dir: Path) -> dict[str, list[SubmissionResult]]:
    """Every recorded result, by assignment."""
    by_assignment = defaultdict(list)
    for path in sorted((Path(course_dir) / "autograded").glob("*/*/result.json")):
        result = read_result(course_dir, path.parts[-3], path.parts[-2])
        if result:
            by_assignment[result.assignment].append(result)
    return dict(sorted(by_assignment.items()))


_CHECK_NAME = re.compile(r"^✘ (.+?): ", re.M)  # the course's message header: "✘ {name}: {reason}"


@dataclass
class CheckFailures:
    """The failures of one check: a grade cell, or one named check call in it."""

    exercise: str
    grade_id: str
    check: str  # the check's name, as the test cell gives it; "" for the cell as a whole
    tested: int = 0  # submissions whose grade cell was scored
    messages: Counter = field(default_factory=Counter)  # English message -> students told it

    @property
    def failed(self) -> int:
        return sum(self.messages.values())


def instructor_message(cell) -> str:
    """A failed cell's message in English (older results: in the student's language)."""
    return cell.message_en or cell.message or ""


def failures_by_check(results: list[SubmissionResult]) -> list[CheckFailures]:
    """Every check that failed at least once, in the order of the lesson, with its messages.

    A failure is counted once, under the check it names (``✘ {name}: ...``, the same in
    both languages), or under its grade cell when it names none (an exception, a cell not
    run). Messages are the English ones, so a Russian submission's failure and an English
    one's are the same message."""
    tested, found, order = Counter(), {}, {}
    for result in results:
        for notebook, cells in result.cells.items():
            for position, cell in enumerate(cells):
                if cell.kind != CellKind.TEST:
                    continue
                tested[cell.grade_id] += 1
                order.setdefault(cell.grade_id, (notebook, position))
                if cell.passed:
                    continue
                message = instructor_message(cell)
                name = _CHECK_NAME.search(message)
                key = (cell.grade_id, name.group(1) if name else "")
                if key not in found:
                    found[key] = CheckFailures(cell.exercise, cell.grade_id, key[1])
                one_line = "; ".join(" ".join(line.split()) for line in message.splitlines() if line.strip())
                found[key].messages[one_line or "(no message)"] += 1
    for group in found.values():
        group.tested = tested[group.grade_id]
    return sorted(found.values(), key=lambda g: (order[g.grade_id], -g.failed, g.check))


def _plot_scores(results: list[SubmissionResult], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    maximum = max((sum(c.points for cs in r.cells.values() for c in cs) for r in results), default=1)
    ax.hist([r.score for r in results], bins=min(20, int(maximum) + 1), range=(0, maximum), color="#3b82f6")
    ax.set_xlabel("score (points so far; written answers count once graded)")
    ax.set_ylabel("students")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Score distribution (n = {len(results)})")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def _plot_pass_rates(rates: dict[str, float], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rates) + 1.2))
    names = list(rates)
    ax.barh(names, [100 * rates[n] for n in names], color="#10b981")
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("students passing (%)")
    ax.set_title("Pass rate per test")
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def write_report(course_dir: Path, out: Path, top: int = 3, width: int = 160) -> Path:
    """Write ``out/report.html`` (markup: templates/report.html.j2) and its PNGs; returns the HTML path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    assignments = []
    for assignment, results in load_results(course_dir).items():
        graded = [r for r in results if r.status == "graded"]
        shown = {
            "name": assignment,
            "submissions": len(results),
            "graded": len(graded),
            "mean": sum(r.score for r in graded) / len(graded) if graded else 0,
            "failed": [r for r in results if r.status == "error"],
            "scores_plot": "",
            "pass_rates_plot": "",
            "checks": [],
        }
        if results:
            shown["scores_plot"] = f"{assignment}_scores.png"
            _plot_scores(results, out / shown["scores_plot"])
        passes, totals = Counter(), Counter()
        for result in graded:
            for cells in result.cells.values():
                for cell in cells:
                    if cell.kind != CellKind.TEST:
                        continue
                    totals[cell.grade_id] += 1
                    passes[cell.grade_id] += bool(cell.passed)
        if totals:
            shown["pass_rates_plot"] = f"{assignment}_pass_rates.png"
            _plot_pass_rates({g: passes[g] / totals[g] for g in totals}, out / shown["pass_rates_plot"])
        for group in failures_by_check(graded):
            common = group.messages.most_common(top)
            lines = [
                f"{count} × {textwrap.shorten(message, width=width, placeholder=' …')}"
                for message, count in common
            ]
            others = len(group.messages) - len(common)
            if others:
                lines.append(f"and {others} other message(s)")
            shown["checks"].append(
                {
                    "exercise": group.exercise,
                    "grade_id": group.grade_id,
                    "check": group.check,
                    "failed": group.failed,
                    "tested": group.tested,
                    "lines": lines,
                }
            )
        assignments.append(shown)
    page = out / "report.html"
    page.write_text(pages.render("report.html.j2", assignments=assignments), encoding="utf-8")
    return page
