"""The course's nbgrader preprocessors, named in nbgrader_config.py by their import path (so
that reading the configuration does not import nbgrader: seconds at every grading start)."""

from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade, is_solution
from traitlets import Unicode, validate

from autograder import LANGUAGES
from autograder.language import ANSWER_STUBS, select_language


class SelectLanguage(NbGraderPreprocessor):
    """nbgrader preprocessor: keep one language of a bilingual source notebook."""

    language = Unicode("en", help="Language of the generated notebooks: en or ru").tag(config=True)

    @validate("language")
    def _check_language(self, proposal):
        if proposal["value"] not in LANGUAGES:
            raise ValueError(f"SelectLanguage.language must be one of {LANGUAGES}")
        return proposal["value"]

    def preprocess(self, nb, resources):
        return select_language(nb, self.language), resources


class AnswerStub(NbGraderPreprocessor):
    """nbgrader preprocessor (autograde): a written answer left as another language's stub reads as
    the stub the gradebook knows, so that nbgrader scores it blank (0) rather than sending it to a person."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "markdown" and is_solution(cell) and is_grade(cell):
            if cell.source.strip() in ANSWER_STUBS.values():
                cell.source = ANSWER_STUBS["en"]
        return cell, resources
