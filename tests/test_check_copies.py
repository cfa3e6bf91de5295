"""utils/check_copies.py: the repository's marked copies match their originals; an edited copy (or original) is
reported at its file:line, and ``--fix`` writes the original back."""
from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

from run_helpers import REPO

SCRIPT = Path("utils") / "check_copies.py"
COPIES = Path("modeling_kgsf") / "baselines" / "redial_baseline.py"  # REDIAL repeats pieces of KGSF's head
MARKER = re.compile(r"^\s*# Copied from (\S+)")


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / SCRIPT), "--root", str(root), *args], capture_output=True, text=True,
                          timeout=120)


def scratch_repository(tmp_path: Path) -> Path:
    """The script and the model package (copies and originals) in a folder of their own."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "modeling_kgsf", root / "modeling_kgsf", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "utils", root / "utils", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def first_marked_definition(path: Path) -> tuple[str, int]:
    """(target of the first ``# Copied from`` marker in ``path``, last line of the definition below it)."""
    lines = path.read_text().splitlines()
    marker = next(number for number, line in enumerate(lines, 1) if MARKER.match(line))
    node = next(node for node in ast.walk(ast.parse("\n".join(lines)))
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.lineno == marker + 1)
    return MARKER.match(lines[marker - 1]).group(1), node.end_lineno


def edit_line(path: Path, number: int) -> str:
    lines = path.read_text().split("\n")
    lines[number - 1] += " + 0"
    path.write_text("\n".join(lines))
    return lines[number - 1]


def test_the_repository_copies_match_their_originals():
    result = run(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    found = int(re.search(r"(\d+) marked copies checked", result.stderr).group(1))
    assert found >= sum(bool(MARKER.match(line)) for line in (REPO / COPIES).read_text().splitlines()) > 0


def test_an_edited_copy_is_reported_at_its_line_and_fix_restores_it(tmp_path):
    root = scratch_repository(tmp_path)
    original_text = (root / COPIES).read_text()
    target, last_line = first_marked_definition(root / COPIES)
    edit_line(root / COPIES, last_line)

    result = run(root)
    assert result.returncode == 1
    problems = result.stdout.splitlines()
    assert problems == [problem for problem in problems if problem.startswith(f"{COPIES}:{last_line}: differs from {target}")]
    assert len(problems) == 1

    fixed = run(root, "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert (root / COPIES).read_text() == original_text
    assert run(root).returncode == 0


def test_an_edited_original_flags_its_copy(tmp_path):
    root = scratch_repository(tmp_path)
    target, copy_last_line = first_marked_definition(root / COPIES)
    parts = target.split(".")
    cut = next(cut for cut in range(len(parts) - 1, 0, -1) if (root / Path(*parts[:cut])).with_suffix(".py").is_file())
    original = (root / Path(*parts[:cut])).with_suffix(".py")
    node = ast.parse(original.read_text())
    for name in parts[cut:]:  # Class.method
        node = next(child for child in node.body if isinstance(child, (ast.FunctionDef, ast.ClassDef)) and child.name == name)
    edit_line(original, node.end_lineno)

    result = run(root)
    assert result.returncode == 1
    assert f"{COPIES}:{copy_last_line}: differs from {target}" in result.stdout
    assert run(root, "--fix").returncode == 0
    assert (root / COPIES).read_text().split("\n")[copy_last_line - 1].endswith(" + 0")  # the copy follows the original


def test_a_marker_without_an_original_or_a_definition_is_an_error(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(REPO / "utils", root / "utils", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "pkg").mkdir()
    (root / "pkg" / "a.py").write_text("def f():\n    return 1\n")
    (root / "pkg" / "b.py").write_text(
        "# Copied from pkg.a.g\ndef g():\n    return 1\n\n\n# Copied from pkg.a.f\nX = 1\n"
    )
    result = run(root)
    assert result.returncode == 1
    assert "pkg/b.py:1: pkg.a.g: 'g' not found in pkg/a.py" in result.stdout

    (root / "pkg" / "b.py").write_text("# Copied from pkg.a.f\nX = 1\n")
    result = run(root)
    assert result.returncode == 1 and "pkg/b.py:1: no function, method or class right below" in result.stdout

    (root / "pkg" / "b.py").write_text("x = '# Copied from pkg.a.nothing'\n# Copied from pkg.a.f with return 1->return 2\ndef f():\n    return 2\n")
    assert run(root).returncode == 1  # "return 1->return 2" is not one OLD->NEW pair (spaces)
    (root / "pkg" / "b.py").write_text("x = '# Copied from pkg.a.nothing'\n# Copied from pkg.a.f with 1->2\ndef f():\n    return 2\n")
    result = run(root)
    assert result.returncode == 0, result.stdout  # text in a string is not a marker; the replacement applies
