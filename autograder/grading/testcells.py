"""Test cells as the grader runs them: the student's process never holds an expected value.

A test cell calls course checks, ``check_tensor(name, actual, expected, **options)``.
Before it runs, the grader rewrites it in one of two ways:

* **graded** (a student's notebook): every check call becomes
  ``__report__(site, kind, actual)``; the name, the expected value and the options
  are dropped, and so is every ``### BEGIN REFERENCE`` ... ``### END REFERENCE``
  block, where a test computes what it compares with. What runs next to the
  student's code is the student's values being reported, nothing else.
* **reference** (the instructor's solution, in a sandbox that runs no student
  code): every check call becomes ``__check__(site, check, ...)`` with all its
  arguments, so the grader learns, per site, the name, kind, options and the
  expected value as the check itself normalised it.

The grader then compares, in its own process, what each site reported with the
reference for the same site (``autograder.grading.verify``).

Sites are the check calls of a cell numbered in source order; a check in a
loop reports once per pass, in order. Authors' rules (``docs/authoring.md``) are
enforced by :func:`lint`.
"""

import ast
import functools
import re
import threading
from dataclasses import dataclass

# check function -> (kind reported, index of the value checked, index of the expected value or None)
CHECKS = {
    "check_tensor": ("tensor", 1, 2),
    "check_scalar": ("scalar", 1, 2),
    "check_value": ("value", 1, 2),
    "check_true": ("true", 1, None),
    "check_grad_fn_chain": ("chain", 1, 2),
    "check_type": ("type", 1, 2),
}
REPORT, CHECK = "__report__", "__check__"
_ACTUAL_KEYWORDS = ("actual", "tensor", "condition")
_MARKER = re.compile(r"^(\s*)###\s*(BEGIN|END)\s+REFERENCE\s*$")


class TestCellError(ValueError):
    __test__ = False  # not a pytest test class

    """A test cell breaks the authoring rules; the message says which and how to fix it."""


@dataclass(frozen=True)
class Site:
    number: int
    check: str  # check_tensor, ...
    kind: str  # tensor, scalar, value, true, chain
    line: int


def split_reference(source: str) -> tuple[str, list[tuple[int, int]]]:
    """The cell with its REFERENCE blocks blanked (line numbers kept), and the blocks' line ranges."""
    lines = source.split("\n")
    kept, blocks, start = [], [], None
    for number, line in enumerate(lines, 1):
        marker = _MARKER.match(line)
        if marker and marker.group(1):
            raise TestCellError(f"line {number}: REFERENCE markers must not be indented")
        if marker and marker.group(2) == "BEGIN":
            if start is not None:
                raise TestCellError(f"line {number}: a REFERENCE block starts inside another one")
            start = number
            kept.append("")
        elif marker:
            if start is None:
                raise TestCellError(f"line {number}: ### END REFERENCE without ### BEGIN REFERENCE")
            blocks.append((start, number))
            start = None
            kept.append("")
        else:
            kept.append("" if start is not None else line)
    if start is not None:
        raise TestCellError(f"line {start}: ### BEGIN REFERENCE is never closed")
    return "\n".join(kept), blocks


def _check_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name) and func.id in CHECKS:
        return func.id
    if (
        isinstance(func, ast.Attribute)
        and func.attr in CHECKS
        and isinstance(func.value, ast.Name)
        and func.value.id == "course"
    ):
        return func.attr
    return None


def _calls(tree: ast.AST) -> list[tuple[ast.Call, str]]:
    found = [
        (node, name) for node in ast.walk(tree) if isinstance(node, ast.Call) and (name := _check_name(node))
    ]
    return sorted(found, key=lambda item: (item[0].lineno, item[0].col_offset))


def _argument(call: ast.Call, position: int, keywords: tuple[str, ...]) -> ast.expr | None:
    if len(call.args) > position and not any(isinstance(a, ast.Starred) for a in call.args[: position + 1]):
        return call.args[position]
    for keyword in call.keywords:
        if keyword.arg in keywords:
            return keyword.value
    return None


def _parse(source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as error:
        raise TestCellError(f"line {error.lineno}: {error.msg}") from None


def sites(source: str) -> list[Site]:
    """The check calls of a test cell, numbered as both rewrites number them."""
    tree = _parse(split_reference(source)[0])
    return [
        Site(number, name, CHECKS[name][0], call.lineno) for number, (call, name) in enumerate(_calls(tree))
    ]


class _Rewrite(ast.NodeTransformer):
    def __init__(self, mode: str):
        self.mode, self.numbers = mode, {}

    def visit_Call(self, node: ast.Call):
        self.generic_visit(node)
        name = _check_name(node)
        if name is None:
            return node
        number = self.numbers[id(node)]
        if self.mode == "reference":
            call = ast.Call(
                func=ast.Name(CHECK, ast.Load()),
                args=[ast.Constant(number), ast.Name(name, ast.Load()), *node.args],
                keywords=node.keywords,
            )
        else:
            kind, position, _ = CHECKS[name]
            actual = _argument(node, position, _ACTUAL_KEYWORDS)
            if actual is None:
                raise TestCellError(f"line {node.lineno}: {name} needs the checked value as its 2nd argument")
            call = ast.Call(
                func=ast.Name(REPORT, ast.Load()),
                args=[ast.Constant(number), ast.Constant(kind), actual],
                keywords=[],
            )
        return ast.copy_location(call, node)


# CPython 3.11 checks a process-wide depth while converting ASTs: threads that parse at
# once can trip it (SystemError: AST constructor recursion depth mismatch).
_AST_LOCK = threading.Lock()


def rewrite(source: str, mode: str) -> str:
    """The test cell as it runs: ``mode`` is "graded" (a student's notebook) or "reference"."""
    if mode not in ("graded", "reference"):
        raise ValueError(mode)
    with _AST_LOCK:
        return _rewrite(source, mode)


@functools.lru_cache(maxsize=1024)
def _rewrite(source: str, mode: str) -> str:
    blanked, _ = split_reference(source)
    tree = _parse(blanked if mode == "graded" else source)
    calls = _calls(tree)
    if mode == "reference" and len(calls) != len(_calls(_parse(blanked))):
        raise TestCellError("a check is called inside a REFERENCE block; move it out of the block")
    numbered = {id(call): number for number, (call, _) in enumerate(calls)}
    rewriter = _Rewrite(mode)
    rewriter.numbers = numbered
    tree = ast.fix_missing_locations(rewriter.visit(tree))
    return ast.unparse(tree) if tree.body else "pass"


def _loads(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _stores(node: ast.AST) -> set[str]:
    names = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store | ast.Del):
            names.add(n.id)
        elif isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(n.name)
        elif isinstance(n, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in n.names)
    return names


def _simple(body: list[ast.stmt]) -> list[ast.stmt]:
    """Simple statements in order, the headers of compound ones included (their bodies follow)."""
    found = []
    for statement in body:
        nested = [getattr(statement, name, []) for name in ("body", "orelse", "finalbody")]
        nested += [h.body for h in getattr(statement, "handlers", [])]
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) or not any(nested):
            found.append(statement)
            continue
        header = {
            ast.For: lambda s: ast.Assign(targets=[s.target], value=s.iter),
            ast.AsyncFor: lambda s: ast.Assign(targets=[s.target], value=s.iter),
            ast.While: lambda s: ast.Expr(value=s.test),
            ast.If: lambda s: ast.Expr(value=s.test),
            ast.With: lambda s: ast.Expr(
                value=ast.Tuple(elts=[i.context_expr for i in s.items], ctx=ast.Load())
            ),
        }.get(type(statement))
        if header is not None:
            found.append(ast.copy_location(header(statement), statement))
        for block in nested:
            found += _simple(block)
    return found


def _effects(statement: ast.stmt) -> set[str]:
    """Names a statement binds or may change."""
    changed = _stores(statement)
    if isinstance(statement, ast.Expr):
        changed |= _loads(statement)
    for target in [*getattr(statement, "targets", []), getattr(statement, "target", None)]:
        while isinstance(target, ast.Attribute | ast.Subscript):
            target = target.value
        if isinstance(target, ast.Name):
            changed.add(target.id)
    return changed


def _depend(names: set[str], statements: list[tuple]) -> None:
    """Grow ``names`` with what the statements that change one of them read, until nothing changes."""
    grown = True
    while grown:
        grown = False
        for _, _, changed, loads, _ in statements:
            if changed & names and not loads <= names:
                names |= loads
                grown = True


def lint(source: str, student_names: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """What in a test cell would leave an expected value in the student's process, or break grading.

    ``student_names``: what the notebook's answer cells define; a REFERENCE block
    must not call them (its values would come from the student's code).
    """
    try:
        blanked, blocks = split_reference(source)
        tree, full = _parse(blanked), _parse(source)
    except TestCellError as error:
        return [str(error)]
    problems = []
    lines = source.split("\n")
    reference_source = "\n".join(
        line if any(a < n < b for a, b in blocks) else "" for n, line in enumerate(lines, 1)
    )
    reference_tree = _parse(reference_source)
    if len(_calls(full)) != len(_calls(tree)):
        problems.append("a check is called inside a REFERENCE block; move it out of the block")
    reference_names = _stores(reference_tree)
    used_by_student_code = _loads(reference_tree) & set(student_names)
    if used_by_student_code:
        problems.append(
            f"a REFERENCE block calls the student's {', '.join(sorted(used_by_student_code))}: "
            "references must not depend on the answer"
        )
    expected_loads = set()
    for call, name in _calls(tree):
        _, position, expected_at = CHECKS[name]
        if _argument(call, position, _ACTUAL_KEYWORDS) is None:
            problems.append(f"line {call.lineno}: {name} needs the checked value as its 2nd argument")
        expected = _argument(call, expected_at, ("expected",)) if expected_at is not None else None
        if expected_at is not None and expected is None:
            problems.append(f"line {call.lineno}: {name} needs the expected value as its 3rd argument")
        if expected is not None:
            expected_loads |= _loads(expected)
    if problems:
        return problems
    # The graded rewrite has the expected arguments dropped: its statements show what the
    # student's process needs. A statement outside REFERENCE blocks that only feeds expected
    # values is a reference computation left in the student's process.
    stripped = _parse(rewrite(source, "graded"))
    assigned = _stores(tree)
    outside = _loads(stripped)
    leaked_names = sorted(reference_names & outside - _stores(stripped))
    if leaked_names:
        problems.append(
            f"{', '.join(leaked_names)} assigned in a REFERENCE block but used outside expected values: "
            "the graded run drops the block"
        )
    # Data flow over the simple statements: what the checked values need, backwards from the
    # check calls, against what only the expected values need. A call statement counts as
    # changing what it touches (``_leaf.grad.zero_()``, ``loss.backward()``).
    flat = list(zip(_simple(tree.body), _simple(stripped.body), strict=True))
    needed = set()
    for original, graded in flat:
        if _calls(original):
            needed |= _loads(graded) & assigned
    wanted = expected_loads & assigned
    statements = [
        (
            o.lineno,
            isinstance(o, ast.Expr),
            _effects(o) & assigned,
            _loads(o) & assigned,
            bool(_loads(o) & set(student_names)),
        )
        for o, _ in flat
        if not _calls(o)
    ]
    # what the checked values depend on (a call into student code may change what it is given)
    _depend(needed, [s for s in statements if s[4] or not s[1]])
    _depend(wanted, statements)  # what the expected values depend on
    only_expected = wanted - needed
    flagged = sorted(
        line
        for line, is_call, changed, loads, calls_student in statements
        if (is_call and loads & only_expected and not calls_student)
        or (not is_call and changed & only_expected and not changed & needed)
    )
    if flagged:
        problems.append(
            f"line {', '.join(map(str, flagged))}: computes what only expected values use "
            f"({', '.join(sorted(only_expected))}) outside a REFERENCE block, so the student's process "
            "would hold it; wrap it in ### BEGIN REFERENCE / ### END REFERENCE"
        )
    return problems
