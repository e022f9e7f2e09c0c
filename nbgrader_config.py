# nbgrader configuration of the course. The repository root is the course directory.
# It imports nothing: the course's own preprocessors are named by their import path, and
# nbgrader's defaults are extended where they are read (traitlets' append/extend/prepend).
c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "autograd-course"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
# nbgrader's steps copy a folder's other files along with its notebooks (generate_feedback:
# autograded/<student>/<assignment>/ -> feedback/...); autograder's records stay with the instructor.
c.CourseDirectory.ignore.extend(["result.json", "grader-error.txt", "*.partial"])

# The release is per language: `nbgrader generate_assignment ASSIGNMENT` gives the
# English one in release/en/; `autograder release` makes both (release/en, release/ru).
c.CourseDirectory.release_directory = "release/en"
c.SelectLanguage.language = "en"
c.GenerateAssignment.preprocessors.prepend(["autograder.preprocessors.SelectLanguage"])

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# Written answers say "ВАШ ОТВЕТ" in Russian releases; read as blank like the English stub.
c.Autograde.sanitize_preprocessors.append("autograder.preprocessors.AnswerStub")
c.Execute.timeout = 120

# A warning on stderr makes nbgrader score a test cell 0 even when the answer is
# right. Library warnings are dropped before scoring: those raised in torch, numpy or
# matplotlib code ("site-packages/torch/x.py:123: UserWarning: ...") and those torch's
# C++ core raises on the user's line ("UserWarning: ... (Triggered internally at ...)",
# e.g. float() of a tensor that requires grad). Anything else on stderr still counts.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = (
    r"[/\\](torch|numpy|matplotlib)[/\\][^\n]*\.py:\d+: \w*Warning: "
    r"|(?s:\w*Warning: .*?\(Triggered internally at )"
)
