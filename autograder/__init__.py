"""Instructor tooling: author -> release -> grade, on top of nbgrader."""

import sys

from course.i18n import LANGUAGES as LANGUAGES  # the languages of the course, defined there

# jsonschema, which nbformat imports, loads rfc3987_syntax when it is installed (JupyterLab's
# dependencies bring it) to check "iri" formats: a second of grammar building at every start of
# a grading command, for a format the notebook schema does not use.
sys.modules.setdefault("rfc3987_syntax", None)
