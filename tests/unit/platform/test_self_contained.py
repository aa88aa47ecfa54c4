"""The repository explains itself: nothing it tracks cites a document kept outside it, and no comment sends
the reader to an issue tracker.

The rules the code relies on are in ``docs/rules/`` and ``docs/architecture.md``; a newcomer needs neither the
background handbooks the project was started from nor the history of the issues that shaped a line.
"""

from __future__ import annotations

import ast
import io
import posixpath
import re
import subprocess
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
# This file holds the patterns and the samples they are tested on, so it is the one file not scanned.
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()

TEXT_SUFFIXES = frozenset(
    {
        ".py",
        ".md",
        ".toml",
        ".yaml",
        ".yml",
        ".sh",
        ".j2",
        ".sql",
        ".conf",
        ".txt",
        ".cfg",
        ".ini",
        ".example",
    }
)
TEXT_NAMES = frozenset({"Makefile", "Dockerfile"})

# -- references to what is outside the repository ----------------------------------------------------------

# The background handbooks, by file name, wherever they are said to be.
_HANDBOOK = re.compile(r"\b(?:DESIGN|DOMAIN|STYLE)\.md\b")
# The background folders next to the repository (design notes and the seed article).
_OUTSIDE_FOLDER = re.compile(r"(?<![\w.-])(?:/work/)?shared/(?:design|seed)\b")
# A relative path that climbs: it leaves the repository when it climbs above the file's own folder depth.
_CLIMB = re.compile(r"(?<![\w.])((?:\.\./)+)([\w.-]+(?:/[\w.-]+)*)?")

# -- references to issues ----------------------------------------------------------------------------------

_ISSUE_WORD = re.compile(
    r"\b(?:issues?|tickets?|pull\s+requests?)\s*(?:no\.?\s*)?#?\d+\b|\bPR\s*#?\d+\b", re.IGNORECASE
)
# "#12" on its own: not an anchor (](#1-x)), an entity (&#38;), a colour (#333;) or a format (#,##0).
_HASH_NUMBER = re.compile(r"(?:^|(?<=[\s(\[]))#(\d{1,5})(?=$|[\s.,;:)\]])")
_CSS_CONTEXT = re.compile(r"colou?r|background|border|fill|stroke|style", re.IGNORECASE)
_COLOUR_LENGTHS = frozenset({3, 4, 6, 8})


@dataclass(frozen=True, slots=True)
class Finding:
    path: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text.strip()[:160]}"


# An applied migration is immutable: the runner refuses a migration whose checksum changed after it was
# applied (kumkm_shared.db.migrations), so a comment in one is corrected by a later migration, never in place.
APPLIED_MIGRATION = re.compile(r"(^|/)(platform_)?migrations/\d{3}_[^/]+\.sql$")


def tracked_text_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    files = []
    for name in listed:
        if not name or name == SELF or APPLIED_MIGRATION.search(name) or not (ROOT / name).is_file():
            continue
        base = posixpath.basename(name)
        if Path(base).suffix in TEXT_SUFFIXES or base in TEXT_NAMES or _is_script(ROOT / name):
            files.append(name)
    return sorted(files)


def _is_script(path: Path) -> bool:
    if path.suffix:
        return False
    with path.open("rb") as handle:
        return handle.read(2) == b"#!"


def _read(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8")


def outside_references(path: str, text: str) -> list[Finding]:
    """Every line of ``text`` (the file at ``path``) that cites a file or folder outside the repository."""
    depth = len(posixpath.dirname(path).split("/")) if posixpath.dirname(path) else 0
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        leaves = any(m.group(1).count("../") > depth for m in _CLIMB.finditer(line))
        if leaves or _HANDBOOK.search(line) or _OUTSIDE_FOLDER.search(line):
            found.append(Finding(path, number, line))
    return found


def _mentions_issue(text: str) -> bool:
    if _ISSUE_WORD.search(text):
        return True
    for match in _HASH_NUMBER.finditer(text):
        colour = len(match.group(1)) in _COLOUR_LENGTHS and _CSS_CONTEXT.search(text)
        if not colour:
            return True
    return False


def _python_prose(text: str) -> list[tuple[int, str, bool]]:
    """(line, text, is_comment_or_docstring) for every comment, docstring and string literal."""
    prose: list[tuple[int, str, bool]] = []
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    prose.extend((tok.start[0], tok.string, True) for tok in tokens if tok.type == tokenize.COMMENT)
    tree = ast.parse(text)
    docstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for offset, line in enumerate(node.value.splitlines()):
                prose.append((node.lineno + offset, line, id(node) in docstrings))
    return prose


def issue_references(path: str, text: str) -> list[Finding]:
    """Every comment or docstring line of ``text`` that names an issue by number.

    In Python, comments and docstrings are checked for both forms ("issue 5", "#5"), other string literals
    for the spelled-out form only (a literal "#5" may be data). Other files are prose or configuration,
    where every line is checked.
    """
    if path.endswith(".py"):
        found = []
        for number, line, is_prose in _python_prose(text):
            if (is_prose and _mentions_issue(line)) or (not is_prose and _ISSUE_WORD.search(line)):
                found.append(Finding(path, number, line))
        return sorted(set(found), key=lambda f: f.line)
    return [
        Finding(path, number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if _mentions_issue(line)
    ]


# -- the detectors, on samples -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ("README.md", "see " + "DESIGN" + ".md section 5"),
        ("services/loans/README.md", "rules in `../../../shared/design/x.md`"),
        ("README.md", "the article in ../shared/seed/"),
        ("docs/rules/x.md", "background: /work/shared/design/"),
        ("shared/kumkm_shared/x.py", '"""As ' + "STYLE" + '.md says."""'),
    ],
)
def test_outside_references_are_found(path: str, line: str) -> None:
    assert outside_references(path, line) == [Finding(path, 1, line)]


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ("docs/rules/loans.md", "[messaging](messaging.md) and [the map](../architecture.md)"),
        ("services/loans/README.md", "see [the docs](../../docs/rules/loans.md)"),
        ("shared/kumkm_shared/x.py", "from kumkm_shared.design import y  # kumkm_shared/seed.py"),
        ("README.md", "the DESIGNATED.md file"),
    ],
)
def test_paths_inside_the_repository_are_not_found(path: str, line: str) -> None:
    assert outside_references(path, line) == []


@pytest.mark.parametrize(
    "source",
    [
        '"""The Kranggan flow of ' + "issue" + ' 3."""\n',
        "x = 1  # fixed in " + "Issue" + " 11\n",
        "x = 1  # see " + "#" + "12\n",
        "def f() -> None:\n    " + '"""Asserts what ' + "issues" + ' 7 asks."""\n',
        'LABEL = "the table of ' + "issue" + ' 5"\n',
    ],
)
def test_issue_numbers_in_python_are_found(source: str) -> None:
    assert issue_references("x.py", source), source


@pytest.mark.parametrize(
    "source",
    [
        'import re  # noqa: F401 - "#,##0" is a number format\n',
        'PATTERN = "#,##0.00"\n',
        'CODE = "#12"  # data, not a comment\n',
        "x = 1  # type: ignore[arg-type]\n",
        'COLOUR = "#fff"  # a colour\n',
        '"""A test of the issue table: which event notifies whom."""\n',
    ],
)
def test_python_without_issue_numbers_is_not_found(source: str) -> None:
    assert issue_references("x.py", source) == [], source


@pytest.mark.parametrize(
    ("path", "line", "found"),
    [
        ("docs/x.md", "as " + "issue" + " 10 asks", True),
        ("docs/x.md", "fixed by " + "#" + "42.", True),
        ("docs/x.md", "see [reliability](#5-reliability)", False),
        ("docs/x.md", "## 3. Event catalog", False),
        ("x.j2", '<p style="color: #333;">Halo</p>', False),
        ("x.j2", "&#38; more", False),
        ("Makefile", "test:  # run everything", False),
    ],
)
def test_issue_numbers_in_other_files(path: str, line: str, found: bool) -> None:
    assert bool(issue_references(path, line)) is found


# -- the repository ----------------------------------------------------------------------------------------


def test_the_scan_sees_the_repository() -> None:
    files = tracked_text_files()
    assert "README.md" in files
    assert "docs/architecture.md" in files
    assert "Makefile" in files
    assert any(f.endswith(".j2") for f in files)


def test_nothing_cites_a_file_outside_the_repository() -> None:
    found = [f for path in tracked_text_files() for f in outside_references(path, _read(path))]
    assert not found, (
        "cite the project's own docs (docs/rules/, docs/architecture.md) instead of files outside the "
        "repository:\n" + "\n".join(map(str, found))
    )


def test_no_comment_names_an_issue_number() -> None:
    found = [f for path in tracked_text_files() for f in issue_references(path, _read(path))]
    assert not found, (
        "say why in the comment itself; issue numbers mean nothing to a reader of the code:\n"
        + "\n".join(map(str, found))
    )
