"""Selecting one language of a bilingual notebook."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.language import cell_language, notebook_language, select_language


def bilingual():
    def prose(stem, lang, text):
        cell = new_markdown_cell(text, id=f"{stem}-{lang}")
        cell.metadata.tags = [f"lang-{lang}"]
        return cell

    setup = new_code_cell('import course\ncourse.set_language("en")', id="setup")
    setup.metadata.tags = ["lang-setup"]
    return new_notebook(
        cells=[
            prose("intro", "en", "The gradient"),
            prose("intro", "ru", "Градиент"),
            setup,
            new_code_cell("x = 1", id="code"),
        ]
    )


@pytest.mark.parametrize(("lang", "kept"), [("en", "The gradient"), ("ru", "Градиент")])
def test_keeps_one_language_and_all_shared_cells(lang, kept):
    nb = select_language(bilingual(), lang)
    assert [c.id for c in nb.cells] == [f"intro-{lang}", "setup", "code"]
    assert nb.cells[0].source == kept
    assert f'course.set_language("{lang}")' in nb.cells[1].source
    assert notebook_language(nb) == lang
    nbformat.validate(nb)


def test_cell_language():
    nb = bilingual()
    assert [cell_language(c) for c in nb.cells] == ["en", "ru", None, None]


def test_unknown_language_is_refused():
    with pytest.raises(ValueError, match="unknown language 'de'"):
        select_language(bilingual(), "de")


def test_a_notebook_without_setup_cell_is_refused_with_a_pointer_to_the_guide():
    nb = bilingual()
    nb.cells[2].metadata.tags = []
    with pytest.raises(ValueError, match=r"docs/authoring\.md"):
        select_language(nb, "ru")


def test_the_languages_are_defined_once_in_the_catalogue():
    import autograder
    from course import i18n

    assert autograder.LANGUAGES is i18n.LANGUAGES
