"""The project's import graph, read from the source (``ast``; nothing is imported), and its four floors.

Each top-level folder is on one floor (docs/DESIGN.md, "Floors")::

    3 scripts    kgsf_cli/, examples/, benchmarks/, utils/
    2 training   training_kgsf/
    1 data       datasets_scripts/
    0 model      modeling_kgsf/

and a module may import its own floor or a lower one. :func:`read_imports` lists every import of a
project module, at any depth (imports inside functions and ``try`` blocks too): ``import a.b``,
``from a import b`` (``a.b`` when it is a module, else ``a``), relative imports resolved against the
importing module's package, ``importlib.import_module("...")`` / ``__import__("...")`` calls with a
string (the constant start of an f-string), and, in a script folder without ``__init__.py``, a bare
import of a sibling script (``import run_tables`` in ``examples/`` is ``examples.run_tables``).
:func:`violations` lists the imports that go up a floor. ``tests/test_floors.py`` asserts there are
none; ``utils/draw_floors.py`` draws the graph (``docs/figures/floors.png``).

    python utils/import_graph.py [--root DIR]   # one line per upward import (file:line), exit 1 if any
"""
from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOOR_NAMES = ("model", "data", "training", "scripts")
FLOORS = {  # top-level folder -> floor (index into FLOOR_NAMES)
    "modeling_kgsf": 0,
    "datasets_scripts": 1,
    "training_kgsf": 2,
    "kgsf_cli": 3,
    "examples": 3,
    "benchmarks": 3,
    "utils": 3,
}
SCRIPTS = FLOOR_NAMES.index("scripts")


@dataclass(frozen=True)
class Import:
    """One import of a project module: where it is written and what it names."""

    path: Path  # the importing file, relative to the root
    line: int
    source: str  # the importing module (``modeling_kgsf.baselines.kbrd``)
    target: str  # the imported module or package, absolute (the deepest one of the tree the import names)

    def describe(self) -> str:
        return (f"{self.path.as_posix()}:{self.line} imports {self.target} "
                f"(floor {FLOOR_NAMES[floor_of(self.source)]} -> floor {FLOOR_NAMES[floor_of(self.target)]})")


def floor_of(module: str) -> int | None:
    """The floor of a dotted module name; None outside the project."""
    return FLOORS.get(module.split(".", 1)[0])


def python_files(root: Path = REPO, folders=FLOORS) -> list[Path]:
    """Every ``.py`` file below the floor folders of ``root`` (relative paths), ``__pycache__`` and hidden folders left out."""
    files = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            relative = path.relative_to(root)
            if not any(part.startswith(".") or part == "__pycache__" for part in relative.parts[:-1]):
                files.append(relative)
    return files


def module_name(relative: Path) -> str:
    """``modeling_kgsf/baselines/kbrd.py`` -> ``modeling_kgsf.baselines.kbrd``; a package's ``__init__.py`` -> the package."""
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(relative: Path) -> str:
    """The package a module's relative imports start from (the module itself for an ``__init__.py``)."""
    return ".".join(relative.parent.parts)


def _resolve_relative(name: str, level: int, package: str) -> str:
    """``from ..x import`` (``level`` 2, name ``x``) in package ``a.b`` -> ``a.x``."""
    parts = package.split(".") if package else []
    if level - 1 > len(parts):
        raise ValueError(f"relative import beyond the top-level package: {'.' * level}{name} in {package}")
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([name] if name else []))


class _Tree:
    """The modules of one source tree, to resolve an imported name to the module that defines it."""

    def __init__(self, root: Path, files: list[Path]):
        self.root = root
        self.modules = {module_name(path) for path in files}
        self.modules |= {".".join(path.parts[:depth]) for path in files for depth in range(1, len(path.parts))}

    def deepest(self, dotted: str) -> str:
        """The longest prefix of ``dotted`` that is a module or package of the tree (else ``dotted`` itself)."""
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            if ".".join(parts[:cut]) in self.modules:
                return ".".join(parts[:cut])
        return dotted

    def absolute(self, name: str, relative: Path) -> str | None:
        """A project module for an absolute import ``name`` written in ``relative``; None for another library."""
        if floor_of(name) is not None:
            return self.deepest(name)
        folder = relative.parent
        if not (self.root / folder / "__init__.py").exists():  # a script: its folder is sys.path[0]
            sibling = ".".join(folder.parts + (name.split(".", 1)[0],))
            if sibling in self.modules:
                return self.deepest(".".join(folder.parts + (name,)))
        return None


def _string_start(node: ast.expr) -> str | None:
    """The text of a string constant, or the constant start of an f-string; None otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        start = ""
        for value in node.values:
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                break
            start += value.value
        return start or None
    return None


def _dynamic_import(call: ast.Call, relative: Path, module: str) -> str | None:
    """The module an ``importlib.import_module(...)`` / ``import_module(...)`` / ``__import__(...)`` call names."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in ("import_module", "__import__") or not call.args:
        return None
    text = _string_start(call.args[0])
    if text is None:
        return None
    if not text.startswith("."):
        return text
    anchor = call.args[1] if len(call.args) > 1 else next((kw.value for kw in call.keywords if kw.arg == "package"), None)
    if isinstance(anchor, ast.Name) and anchor.id == "__package__":
        package = _package_of(relative)
    elif isinstance(anchor, ast.Name) and anchor.id == "__name__":
        package = module
    elif anchor is not None and _string_start(anchor) is not None:
        package = _string_start(anchor)
    else:
        return None
    level = len(text) - len(text.lstrip("."))
    return _resolve_relative(text[level:].rstrip("."), level, package)


def file_imports(root: Path, relative: Path, tree: _Tree | None = None) -> list[Import]:
    """The imports of project modules in one file (``relative`` to ``root``), in the order written."""
    tree = tree or _Tree(root, python_files(root))
    module = module_name(relative)
    package = _package_of(relative)
    syntax = ast.parse((root / relative).read_text(encoding="utf-8"), filename=str(relative))
    found = []

    def add(node: ast.AST, target: str | None):
        if target is not None and floor_of(target) is not None:
            found.append(Import(relative, node.lineno, module, target))

    for node in ast.walk(syntax):
        try:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(node, tree.absolute(alias.name, relative))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = _resolve_relative(node.module or "", node.level, package)
                elif floor_of(node.module) is not None:
                    base = node.module
                else:
                    base = tree.absolute(node.module, relative)
                    if base is None:
                        continue
                for alias in node.names:
                    child = f"{base}.{alias.name}"
                    add(node, tree.deepest(child) if child in tree.modules else tree.deepest(base))
            elif isinstance(node, ast.Call):
                name = _dynamic_import(node, relative, module)
                if name is not None:
                    add(node, tree.deepest(name) if floor_of(name) is not None else tree.absolute(name, relative))
        except ValueError as error:  # a relative import above the top-level package
            raise ValueError(f"{relative.as_posix()}:{node.lineno}: {error}") from None
    return sorted(set(found), key=lambda item: (item.line, item.target))


def read_imports(root: Path = REPO, folders=FLOORS) -> list[Import]:
    """Every import of a project module in every ``.py`` file below the floor folders of ``root``."""
    files = python_files(root, folders)
    tree = _Tree(root, files)
    return [found for path in files for found in file_imports(root, path, tree)]


def violations(imports: list[Import]) -> list[Import]:
    """The imports that go up a floor (a scripts-floor module imported from below is one of them)."""
    return [found for found in imports if floor_of(found.target) > floor_of(found.source)]


def module_edges(imports: list[Import]) -> set[tuple[str, str]]:
    """(importing module, imported module) pairs between different modules."""
    return {(found.source, found.target) for found in imports if found.source != found.target}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="List the imports that go up a floor (docs/DESIGN.md, \"Floors\").")
    parser.add_argument("--root", type=Path, default=REPO, help="the repository (default: this one)")
    args = parser.parse_args(argv)
    imports = read_imports(args.root)
    upward = violations(imports)
    for found in upward:
        print(found.describe())
    print(f"{len(imports)} imports read, {len(upward)} going up a floor", file=sys.stderr)
    return 1 if upward else 0


if __name__ == "__main__":
    sys.exit(main())
