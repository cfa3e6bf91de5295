#!/usr/bin/env python
"""Check that code marked as a copy is still the same as its original (as transformers' ``utils/check_copies.py``).

A function, method or class that repeats one defined elsewhere in the repository carries, on the
line above it (above its decorators), the marker::

    # Copied from modeling_kgsf.modeling_kgsf.KGSFModel.load_word_embeddings with self.shared->self.embedding

The dotted path names a module of the repository (``modeling_kgsf/modeling_kgsf.py``) and an object
in it (``Class.method``, ``function``, ``Class``); each ``A->B`` of the optional ``with`` list (comma
separated) replaces the literal text A by B in the original, in order. The copy (decorators to last
line, the marker line itself left out) must then equal the original re-indented to the copy's
indentation.

    python utils/check_copies.py          # one line per copy that differs (file:line), exit 1 if any
    python utils/check_copies.py --fix    # overwrite those copies with their (replaced) original

Reads the files as text and ``ast`` (imports nothing from the repository). Scans every ``.py`` file
below ``--root`` (default: the repository), leaving out hidden folders, ``__pycache__`` and ``*.egg-info``.
"""
from __future__ import annotations

import argparse
import ast
import io
import re
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^#\s*Copied from\s+(?P<target>[A-Za-z_][\w.]*)(?:\s+with\s+(?P<replacements>.+?))?\s*$")
STARTS_MARKER = re.compile(r"^#\s*Copied from\b")
REPLACEMENT = re.compile(r"^\s*(?P<old>\S+)->(?P<new>\S+)\s*$")
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass
class Copy:
    """One marked copy: where it is and what it must equal."""

    path: Path
    marker_line: int  # 1-based line of the ``# Copied from`` comment
    start: int  # 1-based first line of the copy (its first decorator, or ``def`` / ``class``)
    end: int  # 1-based last line of the copy
    target: str  # dotted module.object path
    replacements: list[tuple[str, str]]


class CopyError(Exception):
    """A marker that cannot be checked (bad syntax, no definition below it, original not found)."""


def python_files(root: Path) -> list[Path]:
    """Every ``.py`` file below ``root``, without hidden folders, ``__pycache__`` and ``*.egg-info``."""
    files = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts[:-1]
        if any(part.startswith(".") or part == "__pycache__" or part.endswith(".egg-info") for part in parts):
            continue
        files.append(path)
    return files


def definition_spans(tree: ast.Module) -> dict[int, ast.AST]:
    """First line (decorators included) -> definition, for every function / method / class at any depth."""
    spans = {}
    for node in ast.walk(tree):
        if isinstance(node, DEFINITIONS):
            spans[min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])] = node
    return spans


def parse_replacements(text: str | None, where: str) -> list[tuple[str, str]]:
    """``"A->B, C->D"`` -> ``[("A", "B"), ("C", "D")]``."""
    if not text:
        return []
    pairs = []
    for part in text.split(","):
        match = REPLACEMENT.match(part)
        if match is None:
            raise CopyError(f"{where}: replacement {part.strip()!r} is not of the form OLD->NEW")
        pairs.append((match["old"], match["new"]))
    return pairs


def find_copies(path: Path, root: Path) -> tuple[list[Copy], list[str]]:
    """The marked copies of one file and the markers that cannot be checked (markers are real comments,
    found with ``tokenize``, not text in strings)."""
    source = path.read_text(encoding="utf-8")
    if "Copied from" not in source:
        return [], []
    lines = source.splitlines()
    spans = definition_spans(ast.parse(source, filename=str(path)))
    copies, errors = [], []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT or lines[token.start[0] - 1].strip() != token.string.strip():
            continue  # a comment after code on the same line is not a marker
        if not STARTS_MARKER.match(token.string):
            continue
        line = token.start[0]
        where = f"{display(path, root)}:{line}"
        match = MARKER.match(token.string)
        start = line + 1
        while start <= len(lines) and not lines[start - 1].strip():
            start += 1
        node = spans.get(start)
        try:
            if match is None:
                raise CopyError(f"{where}: marker not of the form '# Copied from module.object[ with OLD->NEW, ...]'")
            if node is None:
                raise CopyError(f"{where}: no function, method or class right below the '# Copied from' marker")
            replacements = parse_replacements(match["replacements"], where)
        except CopyError as error:
            errors.append(str(error))
            continue
        copies.append(Copy(path, line, start, node.end_lineno, match["target"], replacements))
    return copies, errors


def locate(target: str, root: Path) -> tuple[Path, list[str]]:
    """``a.b.C.f`` -> (``root/a/b.py``, ``["C", "f"]``): the longest module prefix that is a file of the repository."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        base = root.joinpath(*parts[:cut])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate, parts[cut:]
    raise CopyError(f"{target}: no module of the repository in this path")


def original_lines(target: str, root: Path) -> tuple[list[str], int]:
    """The original's lines (decorators to last line) and its indentation width."""
    path, names = locate(target, root)
    source = path.read_text(encoding="utf-8")
    scope: list[ast.stmt] = ast.parse(source, filename=str(path)).body
    node = None
    for name in names:
        node = next((child for child in scope if isinstance(child, DEFINITIONS) and child.name == name), None)
        if node is None:
            raise CopyError(f"{target}: {name!r} not found in {display(path, root)}")
        scope = node.body
    start = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
    lines = source.splitlines()[start - 1:node.end_lineno]
    return lines, node.col_offset


def expected_lines(copy: Copy, copy_lines: list[str], root: Path) -> list[str]:
    """The original, re-indented to the copy's indentation, with the copy's replacements applied."""
    lines, indent = original_lines(copy.target, root)
    copy_indent = len(copy_lines[0]) - len(copy_lines[0].lstrip())
    moved = [("" if not line.strip() else " " * copy_indent + line[indent:] if not line[:indent].strip() else line)
             for line in lines]  # a line left of the definition (inside a multi-line string) stays where it is
    text = "\n".join(moved)
    for old, new in copy.replacements:
        text = text.replace(old, new)
    return text.split("\n")


def display(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def check(root: Path, fix: bool = False) -> tuple[list[str], int]:
    """One message per copy that differs from its original (or cannot be checked), and the number of copies
    found; with ``fix`` the copies that differ are rewritten."""
    problems, found = [], 0
    for path in python_files(root):
        try:
            copies, errors = find_copies(path, root)
        except SyntaxError as error:
            problems.append(f"{display(path, root)}:{error.lineno}: cannot parse: {error.msg}")
            continue
        problems += errors
        found += len(copies)
        if not copies:
            continue
        lines = path.read_text(encoding="utf-8").split("\n")
        changed, found_here = False, []
        for copy in sorted(copies, key=lambda c: c.start, reverse=True):  # bottom up: line numbers above stay valid
            observed = [line.rstrip() for line in lines[copy.start - 1:copy.end]]
            try:
                expected = [line.rstrip() for line in expected_lines(copy, observed, root)]
            except (CopyError, SyntaxError) as error:
                found_here.append(f"{display(path, root)}:{copy.marker_line}: {error}")
                continue
            if observed == expected:
                continue
            offset = next((i for i, (a, b) in enumerate(zip(observed, expected)) if a != b), min(len(observed), len(expected)))
            line = copy.start + min(offset, len(observed) - 1)
            if fix:
                lines[copy.start - 1:copy.end] = expected
                changed = True
                found_here.append(f"{display(path, root)}:{line}: fixed: copy of {copy.target} overwritten with the original")
            else:
                found_here.append(f"{display(path, root)}:{line}: differs from {copy.target} (marked at line {copy.marker_line});"
                                " make them match or run utils/check_copies.py --fix")
        problems += reversed(found_here)  # top down
        if changed:
            path.write_text("\n".join(lines), encoding="utf-8")
    return problems, found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fix", action="store_true", help="overwrite every copy that differs with its original")
    parser.add_argument("--root", type=Path, default=REPO, help="the repository (default: the one holding this script)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    problems, found = check(root, fix=args.fix)
    for problem in problems:
        print(problem)
    print(f"{found} marked copies checked, {len(problems)} {'reported' if args.fix else 'differ'}", file=sys.stderr)
    if args.fix:
        unfixed = [problem for problem in problems if ": fixed: " not in problem]
        return 1 if unfixed else 0
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
