"""Instructor tooling: author -> release -> grade, on top of nbgrader."""

LANGUAGES = ("en", "ru")
