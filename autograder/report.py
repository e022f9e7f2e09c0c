"""Report step: where the class struggles, on one HTML page with PNG plots.

Score distribution, pass rate per test, the most frequent failure messages per
exercise, and the submissions that could not be graded and why.
"""

import html
from collections import Counter, defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from autograder.grade import SubmissionResult, read_result

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; color: #1f2933; }
table { border-collapse: collapse; margin: 1rem 0; }
td, th { border-bottom: 1px solid #d9e2ec; padding: .35rem .6rem; text-align: left; vertical-align: top; }
th { background: #f0f4f8; }
img { max-width: 100%; }
"""


def load_results(course_dir: Path) -> dict[str, list[SubmissionResult]]:
    """Every recorded result, by assignment."""
    by_assignment = defaultdict(list)
    for path in sorted((Path(course_dir) / "autograded").glob("*/*/result.json")):
        result = read_result(course_dir, path.parts[-3], path.parts[-2])
        if result:
            by_assignment[result.assignment].append(result)
    return dict(sorted(by_assignment.items()))


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


def write_report(course_dir: Path, out: Path, top: int = 3) -> Path:
    """Write ``out/report.html`` and its PNGs; returns the HTML path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    esc = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Grading report</title>"]
    parts.append(f"<style>{STYLE}</style></head><body><h1>Grading report</h1>")
    for assignment, results in load_results(course_dir).items():
        graded = [r for r in results if r.status == "graded"]
        failed = [r for r in results if r.status == "error"]
        parts.append(f"<h2>{esc(assignment)}</h2>")
        mean = sum(r.score for r in graded) / len(graded) if graded else 0
        parts.append(
            f"<p>{len(results)} submissions: {len(graded)} graded (mean score {mean:.1f}), "
            f"{len(failed)} could not be graded.</p>"
        )
        if results:
            _plot_scores(results, out / f"{assignment}_scores.png")
            parts.append(f"<img src='{esc(assignment)}_scores.png' alt='score distribution'>")
        passes, totals, messages = Counter(), Counter(), defaultdict(Counter)
        for result in graded:
            for cells in result.cells.values():
                for cell in cells:
                    if cell.kind != "test":
                        continue
                    totals[cell.grade_id] += 1
                    passes[cell.grade_id] += bool(cell.passed)
                    if not cell.passed and cell.message:
                        messages[cell.exercise][cell.message.splitlines()[0][:160]] += 1
        if totals:
            rates = {g: passes[g] / totals[g] for g in totals}
            _plot_pass_rates(rates, out / f"{assignment}_pass_rates.png")
            parts.append(f"<img src='{esc(assignment)}_pass_rates.png' alt='pass rate per test'>")
        if messages:
            parts.append(
                "<h3>Most frequent failures</h3><table><tr><th>exercise</th><th>message</th><th>n</th></tr>"
            )
            for exercise, counter in sorted(messages.items()):
                for message, count in counter.most_common(top):
                    parts.append(f"<tr><td>{esc(exercise)}</td><td>{esc(message)}</td><td>{count}</td></tr>")
            parts.append("</table>")
        if failed:
            parts.append("<h3>Could not be graded</h3><table><tr><th>student</th><th>why</th></tr>")
            for result in failed:
                parts.append(f"<tr><td>{esc(result.student)}</td><td>{esc(result.reason)}</td></tr>")
            parts.append("</table>")
    parts.append("</body></html>")
    page = out / "report.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    return page
