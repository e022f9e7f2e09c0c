"""The HTML pages students and instructors read, rendered from ``autograder/templates/``.

Autoescaping is on for every template: a value reaches the page as text, whatever it holds
(a student's name, a check's message, a comment typed in formgrader), unless it is a
``markupsafe.Markup`` the grader built itself.
"""

from functools import cache

import jinja2


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("autograder", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["g"] = lambda number: f"{number:g}"  # 2.0 -> "2", 1.5 -> "1.5"
    return environment


def render(template: str, **values) -> str:
    """The page ``autograder/templates/<template>`` with ``values``."""
    return _environment().get_template(template).render(**values)
