"""One source notebook, one release per language.

Prose cells are tagged ``lang-en`` / ``lang-ru``; everything else is shared.
:class:`autograder.preprocessors.SelectLanguage` is an nbgrader preprocessor that keeps one language's
prose and points the setup cell at that language, so ``nbgrader
generate_assignment`` itself produces a one-language release.
"""

import re

from autograder import LANGUAGES

SETUP_TAG = "lang-setup"
# What a written-answer cell says before the student writes, per language. The gradebook keeps
# the English one's checksum (the release generates English last), so a blank answer in any
# language is told apart from a written one (see ``AnswerStub``).
ANSWER_STUBS = {"en": "YOUR ANSWER HERE", "ru": "ВАШ ОТВЕТ"}
_SET_LANGUAGE = re.compile(r"""course\.set_language\(\s*["'](\w+)["']\s*\)""")


def _tags(cell) -> list[str]:
    """A cell's tags; none where its metadata is not what Jupyter writes."""
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    tags = metadata.get("tags") if isinstance(metadata, dict) else None
    return [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []


def cell_language(cell) -> str | None:
    """'en' or 'ru' for a prose cell, None for a shared cell."""
    for tag in _tags(cell):
        if tag.startswith("lang-") and tag[5:] in LANGUAGES:
            return tag[5:]
    return None


def notebook_language(nb) -> str | None:
    """The language a released (or submitted) notebook was generated for; None when unmarked.

    A submitted notebook's metadata may hold anything: only the string "en" or "ru" counts.
    """
    metadata = nb.get("metadata") if isinstance(nb, dict) else None
    course = metadata.get("course") if isinstance(metadata, dict) else None
    lang = course.get("language") if isinstance(course, dict) else None
    return lang if isinstance(lang, str) and lang in LANGUAGES else None


def select_language(nb, language: str):
    """Keep the shared cells and ``language``'s prose; set the setup cell's language."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}: use one of {', '.join(LANGUAGES)}")
    cells = [c for c in nb.cells if cell_language(c) in (None, language)]
    setup = [c for c in cells if SETUP_TAG in _tags(c)]
    if len(setup) != 1 or not _SET_LANGUAGE.search(setup[0].source):
        raise ValueError(
            f"the notebook needs exactly one code cell tagged {SETUP_TAG!r} that calls "
            'course.set_language("..."); see docs/authoring.md'
        )
    setup[0].source = _SET_LANGUAGE.sub(f'course.set_language("{language}")', setup[0].source)
    nb.cells = cells
    nb.metadata["course"] = {"language": language}
    return nb


def __getattr__(name: str):
    """The preprocessors' former home, for nbgrader_config.py files that import them from here."""
    if name in ("SelectLanguage", "AnswerStub"):
        from autograder import preprocessors

        return getattr(preprocessors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
