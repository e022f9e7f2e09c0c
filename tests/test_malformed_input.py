"""No byte of a submission crashes the grader: every damaged file is graded or refused with a reason.

Covers reading a submitted notebook (``autograder.grading.submission``), its ``timestamp.txt``
(``autograder.grading.gradebook.submission_time``) and bringing a download in (``autograder.collect``).
Fast and without a sandbox: nothing here runs a notebook.
"""

import json
import os
import stat
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nbgrader.utils import parse_utc

from autograder import notebooks
from autograder.collect import collect
from autograder.grading.gradebook import submission_time
from autograder.grading.submission import (
    InvalidSubmission,
    answer_cells,
    assemble,
    detect_language,
    load,
    read_solved_notebook,
)

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT / "release" / "en" / "01_gradients" / "gradients.ipynb"
SOURCE = ROOT / "source" / "01_gradients" / "gradients.ipynb"
SOLVED = read_solved_notebook(SOURCE, "en")
FIRST_ANSWER = SOLVED.answer_ids[0]


def released() -> dict:
    return json.loads(RELEASED.read_text(encoding="utf-8"))


def answer_index(data: dict, grade_id: str = FIRST_ANSWER) -> int:
    return next(
        i
        for i, cell in enumerate(data["cells"])
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id
    )


def grade(path: Path):
    """What grade_one does with a file before it runs it; the result must be writable as UTF-8."""
    submitted = load(path)
    assert detect_language(submitted) == "en"
    assembled = assemble(SOLVED, submitted)
    notebooks.writes(assembled.nb).encode("utf-8")
    return assembled


def write(tmp_path: Path, data, name: str = "gradients.ipynb") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


# --- lone surrogates ---------------------------------------------------------------------------


def test_lone_surrogates_in_sources_and_outputs_are_replaced_and_noted(tmp_path):
    data = released()
    answer = data["cells"][answer_index(data)]
    answer["source"] = "x = 1  # \ud800 and \udfff\n"
    data["cells"][0]["metadata"]["\udc80"] = "\ud83d"  # in a key and a value the grader never reads
    code = next(c for c in data["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "\udcff"}]
    text = json.dumps(data)  # escapes them: "\ud800"
    assert "\\ud800" in text
    assembled = grade(write(tmp_path, text))
    graded = next(c for c in assembled.nb.cells if notebooks.grade_id(c) == FIRST_ANSWER)
    assert graded.source == "x = 1  # \ufffd and \ufffd\n"
    assert any("not valid Unicode" in n for n in assembled.notices)


def test_a_surrogate_pair_written_as_escapes_is_one_character_and_no_notice(tmp_path):
    data = released()
    data["cells"][answer_index(data)]["source"] = "s = '\U0001f600'\n"
    assembled = grade(write(tmp_path, json.dumps(data)))  # written as "\ud83d\ude00"
    assert "s = '\U0001f600'\n" in [c.source for c in assembled.nb.cells]
    assert not any("Unicode" in n for n in assembled.notices)


# --- deep nesting ------------------------------------------------------------------------------


def test_deep_nesting_is_refused_with_a_reason(tmp_path):
    text = RELEASED.read_text(encoding="utf-8").replace(
        '"metadata": {', '"metadata": {"x": ' + "[" * 100_000 + "]" * 100_000 + ",", 1
    )
    with pytest.raises(InvalidSubmission, match="nested too deeply"):
        load(write(tmp_path, text))


def test_nesting_that_json_reads_is_never_walked(tmp_path):
    data = released()
    data["metadata"]["x"] = json.loads("[" * 400 + "]" * 400)
    data["cells"][0]["outputs"] = json.loads("[" * 400 + "]" * 400)
    assembled = grade(write(tmp_path, json.dumps(data)))
    assert assembled.missing_answers == []


def test_a_number_python_will_not_convert_is_refused(tmp_path):
    text = RELEASED.read_text(encoding="utf-8").replace(
        '"metadata": {', '"metadata": {"x": ' + "9" * 5000 + ",", 1
    )
    with pytest.raises(InvalidSubmission, match="not valid notebook JSON"):
        load(write(tmp_path, text))


# --- wrong types -------------------------------------------------------------------------------


def _answer_meta(value):
    def mutate(data):
        data["cells"][answer_index(data)]["metadata"]["nbgrader"] = value

    return mutate


def _answer_field(key, value):
    def mutate(data):
        data["cells"][answer_index(data)]["metadata"]["nbgrader"][key] = value

    return mutate


def _answer_cell(key, value):
    def mutate(data):
        data["cells"][answer_index(data)][key] = value

    return mutate


def _answer_delete(key):
    def mutate(data):
        del data["cells"][answer_index(data)][key]

    return mutate


def _top(path, value):
    def mutate(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


# mutation of the first answer cell, and the notice expected (None: none)
LOSES_THE_ANSWER = {
    "nbgrader-string": (_answer_meta("solution"), None),
    "nbgrader-list": (_answer_meta(["grade_id", FIRST_ANSWER]), None),
    "nbgrader-number": (_answer_meta(7), None),
    "grade-id-number": (_answer_field("grade_id", 12), None),
    "grade-id-dict": (_answer_field("grade_id", {"id": FIRST_ANSWER}), None),
    "solution-string": (_answer_field("solution", "true"), None),
    "cell-metadata-list": (_answer_cell("metadata", ["nbgrader"]), None),
    "source-number": (_answer_cell("source", 42), "damaged"),
    "source-list-of-numbers": (_answer_cell("source", [1, 2, 3]), "damaged"),
    "missing-cell-type": (_answer_delete("cell_type"), "damaged"),
    "unknown-cell-type": (_answer_cell("cell_type", "julia"), "damaged"),
}


@pytest.mark.parametrize("case", sorted(LOSES_THE_ANSWER))
def test_a_damaged_answer_cell_is_graded_as_missing(tmp_path, case):
    mutate, notice = LOSES_THE_ANSWER[case]
    data = released()
    mutate(data)
    assembled = grade(write(tmp_path, data))
    assert assembled.missing_answers == [FIRST_ANSWER]
    assert len([n for n in assembled.notices if "damaged" in n]) == (0 if notice is None else 1)


GRADED_IN_FULL = {
    "metadata-list": (_top(["metadata"], ["course"]), ""),
    "course-string": (_top(["metadata", "course"], "en"), ""),
    "language-list": (_top(["metadata", "course"], {"language": ["ru"]}), ""),
    "kernelspec-empty": (_top(["metadata", "kernelspec"], {}), ""),
    "kernelspec-list": (_top(["metadata", "kernelspec"], ["python3"]), "kernel other than python3"),
    "kernel-name-dict": (
        _top(["metadata", "kernelspec"], {"name": {"evil": 1}}),
        "kernel other than python3",
    ),
    "cell-not-a-dict": (lambda d: d["cells"].insert(1, 42), "damaged"),
    "cell-null": (lambda d: d["cells"].append(None), "damaged"),
    "tags-not-a-list": (lambda d: d["cells"][0]["metadata"].update(tags={"lang-en": 1}), ""),
    "tags-of-numbers": (lambda d: d["cells"][0]["metadata"].update(tags=[1, None]), ""),
    "cell-id-number": (_answer_cell("id", 5), ""),
}


@pytest.mark.parametrize("case", sorted(GRADED_IN_FULL))
def test_wrong_types_elsewhere_are_graded_in_full(tmp_path, case):
    mutate, notice = GRADED_IN_FULL[case]
    data = released()
    mutate(data)
    assembled = grade(write(tmp_path, data))
    assert assembled.missing_answers == []
    if notice:
        assert any(notice in n for n in assembled.notices), assembled.notices
    else:
        assert assembled.notices == []


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (_top(["cells"], {"0": {}}), "not a Jupyter notebook"),
        (_top(["cells"], "cells"), "not a Jupyter notebook"),
        (_top(["nbformat"], "4"), "nbformat 3 or 4"),
        (_top(["nbformat"], 4.0), "nbformat 3 or 4"),
        (_top(["nbformat"], [4]), "nbformat 3 or 4"),
        (_top(["nbformat"], 5), "nbformat 3 or 4"),
        (lambda d: d.update(cells=[42] * 5001), "over 5000 cells"),
        (
            lambda d: d.update(cells=[c for c in d["cells"] if "solution" not in str(c["metadata"])]),
            "none of the",
        ),
    ],
    ids=[
        "cells-dict",
        "cells-string",
        "nbformat-string",
        "nbformat-float",
        "nbformat-list",
        "nbformat-5",
        "too-many-cells",
        "no-answers",
    ],
)
def test_unusable_structure_is_refused_with_a_reason(tmp_path, mutate, reason):
    data = released()
    mutate(data)
    with pytest.raises(InvalidSubmission, match=reason):
        grade(write(tmp_path, data))


def test_a_notebook_nbformat_rejects_is_graded_from_its_answer_cells(tmp_path):
    data = released()
    code = next(c for c in data["cells"] if c["cell_type"] == "code")
    code["outputs"], code["execution_count"] = "not a list", "seven"
    data["cells"][0]["attachments"] = 5
    del data["nbformat_minor"]
    data["extra"] = {"anything": True}
    with pytest.raises(nbformat.ValidationError):
        nbformat.validate(data)
    assembled = grade(write(tmp_path, data))
    assert assembled.missing_answers == [] and assembled.notices == []


def test_nbformat_3_is_converted(tmp_path):
    nb3 = nbformat.convert(notebooks.read(RELEASED), 3)
    nb3.worksheets[0].cells.insert(
        0, nbformat.from_dict({"cell_type": "heading", "level": 2, "source": "Hi"})
    )
    assembled = grade(write(tmp_path, nbformat.writes(nb3)))
    assert assembled.notices == ["converted from nbformat 3"] and assembled.missing_answers == []


@pytest.mark.parametrize(
    ("worksheets", "reason"),
    [("sheet", "not a Jupyter notebook"), ([{"cells": 3}], "not a Jupyter notebook"), ([7], "not a Jupyter")],
)
def test_damaged_nbformat_3_worksheets_are_refused(tmp_path, worksheets, reason):
    data = {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": worksheets}
    with pytest.raises(InvalidSubmission, match=reason):
        load(write(tmp_path, data))


def test_reasons_and_notices_never_repeat_student_text(tmp_path):
    marker = "STUDENT-CHOSEN-TEXT"
    data = released()
    data["metadata"]["kernelspec"] = {"name": marker, "display_name": marker}
    data["cells"].insert(1, marker)
    assembled = grade(write(tmp_path, data))
    assert assembled.notices and not any(marker in n for n in assembled.notices)
    for bad in ({"nbformat": marker, "cells": []}, {"nbformat": 4, "cells": marker}):
        with pytest.raises(InvalidSubmission) as refused:
            load(write(tmp_path, bad))
        assert marker not in str(refused.value)
    assert marker not in json.dumps(load(write(tmp_path, data)))  # not even kept


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b'{"cells": [', "not valid notebook JSON"),
        (b"[1, 2, 3]", "not a Jupyter notebook"),
        (b"\xef\xbb\xbf[]", "not a Jupyter notebook"),  # a byte-order mark is read past
    ],
)
def test_bytes_that_are_not_a_notebook(tmp_path, content, reason):
    path = tmp_path / "gradients.ipynb"
    path.write_bytes(content)
    with pytest.raises(InvalidSubmission, match=reason):
        load(path)


def test_links_folders_and_pipes_are_not_read(tmp_path):
    target = write(tmp_path, released(), "classmate.ipynb")
    (tmp_path / "link.ipynb").symlink_to(target)
    (tmp_path / "folder.ipynb").mkdir()
    os.mkfifo(tmp_path / "pipe.ipynb")
    for name in ("link.ipynb", "folder.ipynb", "pipe.ipynb"):
        with pytest.raises(InvalidSubmission, match="not a notebook file"):
            load(tmp_path / name)
    with pytest.raises(InvalidSubmission, match="could not be read"):
        load(tmp_path / "absent.ipynb")


def test_answer_cells_and_detect_language_take_anything():
    for nb in ({}, {"cells": 3}, {"cells": [None, 1, {"metadata": []}]}, {"metadata": 1, "cells": {}}, []):
        assert answer_cells(nb) == []
        assert detect_language(nb) == "en"
    ru = {"cells": [{"cell_type": "markdown", "source": ["Привет"]}], "metadata": {"course": ["en"]}}
    assert detect_language(ru) == "ru"


# --- any mutation of a real notebook -----------------------------------------------------------

JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.characters(), max_size=8)
    | st.sampled_from(["code", "markdown", "raw", FIRST_ANSWER, "python3", "en", "ru", True]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(node, prefix=()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for k, value in enumerate(node):
            found += _paths(value, (*prefix, k))
    return found


KEYS = ["metadata", "nbgrader", "grade_id", "solution", "source", "cell_type", "cells", "id", "course"]
PATHS = [p for p in _paths(released()) if p]  # every place in the released notebook
# half the mutations hit what the grader reads: the cell list, the cells and their nbgrader marks
READ = [
    p
    for p in PATHS
    if p[-1] in [*KEYS, "kernelspec", "name", "language", "nbformat"] or (p[:1] == ("cells",) and len(p) == 2)
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mutations=st.lists(
        st.tuples(
            st.sampled_from(READ) | st.sampled_from(PATHS),
            st.sampled_from(["replace", "delete", "add"]),
            JSONISH,
            st.sampled_from(KEYS),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_no_mutation_of_a_real_notebook_raises_anything_but_invalid_submission(tmp_path, mutations):
    data = released()
    for path, action, value, key in mutations:
        parent = data
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed it
        if action == "replace":
            parent[path[-1]] = value
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][key] = value
        elif isinstance(parent[path[-1]], list):
            parent[path[-1]].insert(0, value)
    path = write(tmp_path, json.dumps(data))
    try:
        submitted = load(path)
        detect_language(submitted)
        assembled = assemble(SOLVED, submitted)
    except InvalidSubmission as error:
        assert str(error) and "\n" not in str(error)
        return
    notebooks.writes(assembled.nb).encode("utf-8")


# --- timestamp.txt -----------------------------------------------------------------------------

FILE_TIME = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def _folder(tmp_path: Path, stamp: bytes | None) -> Path:
    folder = tmp_path / "alice" / "01_gradients"
    folder.mkdir(parents=True)
    notebook = write(folder, released())
    os.utime(notebook, (FILE_TIME.timestamp(), FILE_TIME.timestamp()))
    if stamp is not None:
        (folder / "timestamp.txt").write_bytes(stamp)
    return folder


@pytest.mark.parametrize(
    "stamp",
    [
        b"",
        b"   \n",
        b"yesterday, I promise",
        b"\x00\xff\xfe binary \x89PNG",
        b"2024-13-45 99:99:99 UTC",
        b"9" * 5000,
        b"2024-01-01 00:00:00 " + b"X" * 10_000_000,
        b"2024-01-01 12:00:00 /proc/kmsg",
        b"2024-01-01 12:00:00 ../../../../dev/zero",
        b"0001-01-01 00:00:00 UTC",
        "2024-01-01 12:00:00 \u00e9t\u00e9".encode(),
    ],
    ids=[
        "empty",
        "blank",
        "words",
        "binary",
        "impossible",
        "digits",
        "huge",
        "path-tz",
        "dots-tz",
        "year-1",
        "not-ascii",
    ],
)
def test_an_unusable_timestamp_uses_the_file_time_and_says_so(tmp_path, stamp):
    folder = _folder(tmp_path, stamp)
    when, notice = submission_time(folder)
    assert notice == "timestamp.txt could not be read: the file time was used"
    assert parse_utc(when) == FILE_TIME.replace(tzinfo=None)


def test_a_timestamp_that_is_not_a_plain_file_uses_the_file_time(tmp_path):
    folder = _folder(tmp_path, None)
    (folder / "timestamp.txt").mkdir()
    assert submission_time(folder)[1].startswith("timestamp.txt could not be read")
    (folder / "timestamp.txt").rmdir()
    os.mkfifo(folder / "timestamp.txt")  # reading it would block
    assert submission_time(folder)[1].startswith("timestamp.txt could not be read")
    (folder / "timestamp.txt").unlink()
    (tmp_path / "elsewhere.txt").write_text("2020-01-01 00:00:00.000000 UTC\n")
    (folder / "timestamp.txt").symlink_to(tmp_path / "elsewhere.txt")
    when, notice = submission_time(folder)
    assert notice and parse_utc(when) == FILE_TIME.replace(tzinfo=None)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        (b"2024-03-01 12:34:56.789000 UTC\n", datetime(2024, 3, 1, 12, 34, 56, 789000)),
        (b"2024-03-01T13:34:56.789+01:00", datetime(2024, 3, 1, 12, 34, 56, 789000)),
        (b"2024-03-01T12:34:56Z", datetime(2024, 3, 1, 12, 34, 56)),
        (b"2024-03-01 14:34:56 Europe/Berlin", datetime(2024, 3, 1, 13, 34, 56)),
    ],
)
def test_a_good_timestamp_is_kept_in_utc(tmp_path, stamp, expected):
    when, notice = submission_time(_folder(tmp_path, stamp))
    assert notice == "" and parse_utc(when) == expected
    assert when == expected.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def test_no_timestamp_uses_the_file_time_silently(tmp_path):
    when, notice = submission_time(_folder(tmp_path, None))
    assert notice == "" and parse_utc(when) == FILE_TIME.replace(tzinfo=None)


# --- collect follows no links ------------------------------------------------------------------


@pytest.fixture
def course(tmp_path):
    course = tmp_path / "course"
    (course / "source" / "01_gradients").mkdir(parents=True)
    (course / "source" / "01_gradients" / "gradients.ipynb").write_text("{}")
    return course


def test_collect_refuses_links_in_a_folder_download(tmp_path, course):
    secret = tmp_path / "secret.ipynb"
    secret.write_text("the instructor's solution")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "gradients.ipynb").write_text("outside the download")
    lms = tmp_path / "lms"
    for student in ("alice", "bob", "carol"):
        (lms / student).mkdir(parents=True)
    (lms / "alice" / "gradients.ipynb").write_text("alice's work")
    (lms / "bob" / "gradients.ipynb").symlink_to(secret)
    os.link(secret, lms / "carol" / "gradients.ipynb")
    (lms / "dave").symlink_to(elsewhere, target_is_directory=True)
    (lms / "erin_gradients.ipynb").symlink_to(tmp_path / "missing.ipynb")  # a dangling link
    os.mkfifo(lms / "frank_gradients.ipynb")
    (lms / "gina\x1b[2J_gradients.ipynb").symlink_to(secret)  # a name that would clear the screen
    before = {p: p.lstat() for p in [secret, *lms.rglob("*")]}

    report = collect(course, "01_gradients", lms)

    assert report.collected == [("alice", "gradients")]
    assert sorted(report.refused) == [
        "bob/gradients.ipynb (symbolic link)",
        "carol/gradients.ipynb (hard link)",
        "dave (symbolic link)",
        "erin_gradients.ipynb (symbolic link)",
        "frank_gradients.ipynb (not a plain file)",
        "gina\x1b[2J_gradients.ipynb (symbolic link)",
    ]
    assert sorted(p.parent.name for p in (course / "submitted").glob("*/*")) == ["alice"]
    summary = report.summary()
    assert "6 refused" in summary.splitlines()[0]
    assert "  refused: carol/gradients.ipynb (hard link)" in summary
    assert "\x1b" not in summary and "gina\\x1b[2J_gradients.ipynb" in summary
    assert {p: p.lstat() for p in [secret, *lms.rglob("*")]} == before  # only read
    assert secret.read_text() == "the instructor's solution"


def _entry(archive: zipfile.ZipFile, name: str, data: str, mode: int = stat.S_IFREG | 0o644) -> None:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 5))
    info.create_system, info.external_attr = 3, mode << 16
    archive.writestr(info, data)


def test_collect_refuses_links_and_escaping_paths_in_a_zip(tmp_path, course):
    download = tmp_path / "download.zip"
    with zipfile.ZipFile(download, "w") as archive:
        _entry(archive, "alice/gradients.ipynb", "alice's work")
        _entry(archive, "bob/gradients.ipynb", "../../secret.ipynb", stat.S_IFLNK | 0o777)
        _entry(archive, "../carol/gradients.ipynb", "climbs out")
        _entry(archive, "dave/../../gradients.ipynb", "climbs out")
        _entry(archive, "/etc/erin_gradients.ipynb", "absolute")
        _entry(archive, "frank\\..\\..\\gradients.ipynb", "a Windows path that climbs")
        _entry(archive, "gina/gradients.ipynb", "", stat.S_IFIFO | 0o644)
    zipped = download.read_bytes()

    report = collect(course, "01_gradients", download)

    assert report.collected == [("alice", "gradients")]
    assert sorted(report.refused) == sorted(
        [
            "bob/gradients.ipynb (symbolic link)",
            "../carol/gradients.ipynb (path outside the download)",
            "dave/../../gradients.ipynb (path outside the download)",
            "/etc/erin_gradients.ipynb (path outside the download)",
            "frank\\..\\..\\gradients.ipynb (path outside the download)",
            "gina/gradients.ipynb (not a plain file)",
        ]
    )
    assert [p.relative_to(course).as_posix() for p in course.rglob("*.ipynb") if "submitted" in p.parts] == [
        "submitted/alice/01_gradients/gradients.ipynb"
    ]
    assert not (tmp_path / "carol").exists() and not (tmp_path / "gradients.ipynb").exists()
    assert "bob/gradients.ipynb (symbolic link)" in report.summary()
    assert download.read_bytes() == zipped


def test_collect_survives_a_zip_entry_with_an_impossible_date(tmp_path, course):
    download = tmp_path / "download.zip"
    with zipfile.ZipFile(download, "w") as archive:
        archive.writestr(zipfile.ZipInfo("alice/gradients.ipynb", date_time=(2024, 1, 1, 0, 0, 0)), "work")
    raw = bytearray(download.read_bytes())
    # the DOS date of both headers: day 0 of month 0, which datetime refuses
    dos_date = ((2024 - 1980) << 9 | 1 << 5 | 1).to_bytes(2, "little")
    for at in [i for i in range(len(raw) - 1) if raw[i : i + 2] == dos_date]:
        raw[at : at + 2] = ((2024 - 1980) << 9).to_bytes(2, "little")
    download.write_bytes(bytes(raw))
    report = collect(course, "01_gradients", download)
    assert report.collected == [("alice", "gradients")]
    stamp = (course / "submitted" / "alice" / "01_gradients" / "timestamp.txt").read_text().strip()
    assert parse_utc(stamp)
