"""Turn a released notebook into what a student who solved everything would submit."""

import re

from autograder import notebooks

_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)


def solution_sources(source_nb) -> dict[str, str]:
    """``{grade_id: source}`` of every solution cell, with the solution markers removed."""
    return {
        notebooks.grade_id(cell): _MARKER.sub("", cell.source)
        for cell in source_nb.cells
        if notebooks.is_solution(cell)
    }


def solve(release_nb, source_nb):
    """A copy of ``release_nb`` whose solution cells hold the source's answers."""
    answers = solution_sources(source_nb)
    solved = notebooks.copy(release_nb)
    for cell in solved.cells:
        if notebooks.is_solution(cell) and notebooks.grade_id(cell) in answers:
            cell.source = answers[notebooks.grade_id(cell)]
    return solved
