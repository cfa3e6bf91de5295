"""The four floors (docs/DESIGN.md, "Floors"): model 0 < data 1 < training 2 < scripts 3; every import goes to its own
floor or a lower one, nothing below the scripts floor imports a script, the model keeps no ``data_ptr()`` caches, and
``docs/figures/floors.png`` shows the import graph of the current code.

The graph is read by ``utils/import_graph.py`` (``ast``, nothing imported), the script that draws the picture uses the
same reader."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from run_helpers import REPO

sys.path.insert(0, str(REPO / "utils"))
import draw_floors  # noqa: E402
from import_graph import FLOOR_NAMES, SCRIPTS, floor_of, module_name, python_files, read_imports, violations  # noqa: E402

PICTURE = REPO / "docs" / "figures" / "floors.png"


def upward_report(imports) -> str:
    lines = [found.describe() for found in violations(imports)]
    print("\n".join(lines))
    return "imports going up a floor:\n" + "\n".join(lines)


def test_every_import_goes_to_its_own_floor_or_a_lower_one():
    imports = read_imports()
    pairs = {(floor_of(found.source), floor_of(found.target)) for found in imports}
    assert {(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)} <= pairs, f"the reader missed imports between floors: {pairs}"
    assert not violations(imports), upward_report(imports)


def test_nothing_below_the_scripts_floor_imports_a_script():
    offending = [found.describe() for found in read_imports()
                 if floor_of(found.target) == SCRIPTS and floor_of(found.source) != SCRIPTS]
    print("\n".join(offending))
    assert not offending, "scripts imported from below the scripts floor:\n" + "\n".join(offending)


TINY_TREE = {  # an upward import of each kind the reader must see, beside imports that are fine
    "modeling_kgsf/__init__.py": "from .sub.inner import thing\n",
    "modeling_kgsf/sub/__init__.py": "",
    "modeling_kgsf/sub/inner.py": "def load():\n    from datasets_scripts import rows  # inside a function\n    return rows\n\n\n"
                                  "thing = 1\nfrom .. import dynamic\n",
    "modeling_kgsf/dynamic.py": "import importlib\n\nimportlib.import_module(f'.{\"sub\"}', __package__)\n",
    "datasets_scripts/__init__.py": "",
    "datasets_scripts/rows.py": "from modeling_kgsf.sub import inner\nimport examples.helper\n",
    "training_kgsf/__init__.py": "",
    "training_kgsf/loop.py": "import importlib\n\n\ndef run():\n    return importlib.import_module('kgsf_cli.main')\n",
    "kgsf_cli/__init__.py": "",
    "kgsf_cli/main.py": "from training_kgsf import loop\nimport datasets_scripts.rows\n",
    "examples/run.py": "import helper\nfrom modeling_kgsf import thing\n",
    "examples/helper.py": "import torch\n",
}


@pytest.fixture
def tiny_tree(tmp_path: Path) -> Path:
    for name, text in TINY_TREE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_checker_reports_upward_imports_at_their_line(tiny_tree):
    imports = read_imports(tiny_tree)
    assert [found.describe() for found in violations(imports)] == [
        "modeling_kgsf/sub/inner.py:2 imports datasets_scripts.rows (floor model -> floor data)",
        "datasets_scripts/rows.py:2 imports examples.helper (floor data -> floor scripts)",
        "training_kgsf/loop.py:5 imports kgsf_cli.main (floor training -> floor scripts)",
    ]
    edges = {(found.source, found.target) for found in imports}
    assert {("modeling_kgsf", "modeling_kgsf.sub.inner"),  # relative
            ("modeling_kgsf.sub.inner", "modeling_kgsf.dynamic"),  # relative, two levels
            ("modeling_kgsf.dynamic", "modeling_kgsf"),  # import_module(f".{...}", __package__): the package
            ("kgsf_cli.main", "training_kgsf.loop"), ("kgsf_cli.main", "datasets_scripts.rows"),
            ("examples.run", "examples.helper"),  # a sibling script
            ("examples.run", "modeling_kgsf")} <= edges
    assert not any(found.target.startswith("torch") for found in imports)

    result = subprocess.run([sys.executable, str(REPO / "utils" / "import_graph.py"), "--root", str(tiny_tree)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [found.describe() for found in violations(imports)]
    assert subprocess.run([sys.executable, str(REPO / "utils" / "import_graph.py")], capture_output=True,
                          timeout=60).returncode == 0


def test_a_relative_import_above_the_top_package_is_named_at_its_line(tiny_tree):
    (tiny_tree / "modeling_kgsf" / "broken.py").write_text("x = 1\nfrom ... import nothing\n")
    with pytest.raises(ValueError, match=r"modeling_kgsf/broken.py:2: relative import beyond"):
        read_imports(tiny_tree)


def test_no_data_ptr_in_the_model_package():
    found = [f"{path.relative_to(REPO)}:{number}" for path in sorted((REPO / "modeling_kgsf").rglob("*.py"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "data_ptr(" in line]
    assert not found, f"caches keyed on data_ptr() (docs/DESIGN.md, issue #23): {found}"


def test_the_picture_shows_the_current_import_graph():
    drawn = draw_floors.read_description(PICTURE)
    assert drawn is not None, f"{PICTURE.relative_to(REPO)} holds no graph; run `python utils/draw_floors.py`"
    current = json.loads(draw_floors.describe(*draw_floors.graph()))
    assert drawn == current, (f"{PICTURE.relative_to(REPO)} does not match the code (boxes or imports changed); "
                              "run `python utils/draw_floors.py`")
    assert {floor_of(box) for box in current["boxes"]} == set(range(len(FLOOR_NAMES)))


def test_the_drawn_graph_is_read_back_and_a_change_is_seen(tmp_path, tiny_tree):
    pytest.importorskip("matplotlib")
    boxes, edges = draw_floors.graph(tiny_tree)
    output = tmp_path / "floors.png"
    draw_floors.draw(boxes, edges, output)
    drawn = draw_floors.read_description(output)
    assert drawn == json.loads(draw_floors.describe(boxes, edges))
    assert ["modeling_kgsf.sub.inner", "datasets_scripts.rows"] in drawn["edges"]
    (tiny_tree / "modeling_kgsf" / "sub" / "inner.py").write_text("thing = 1\n")
    assert json.loads(draw_floors.describe(*draw_floors.graph(tiny_tree))) != drawn


DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "configuration" / "README.md"]
REFERENCE = re.compile(r"\b(?:modeling_kgsf|datasets_scripts|training_kgsf|kgsf_cli)(?:[./][A-Za-z_]\w*)*")


def defined_names(path: Path) -> set[str]:
    """Top-level functions, classes and assignments of a module, and a package's ``__all__`` (its public names)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {name.id for name in ast.walk(target) if isinstance(name, ast.Name)}
                if isinstance(target, ast.Name) and target.id == "__all__":
                    names |= set(ast.literal_eval(node.value))
    return names


def stale_references(text: str, root: Path = REPO) -> list[str]:
    """Dotted or slashed names of the packages in ``text`` (``training_kgsf.stages.pretrain_mim``,
    ``modeling_kgsf/metrics/``) whose module, folder or name (defined in that module, not imported) is not there."""
    modules = {module_name(path): root / path for path in python_files(root)}
    stale = []
    for match in REFERENCE.finditer(text):
        parts = [part for part in re.split(r"[./]", match.group(0)) if part]
        if parts[-1] == "py":
            parts.pop()
        known = [cut for cut in range(1, len(parts) + 1)
                 if ".".join(parts[:cut]) in modules or (root / Path(*parts[:cut])).is_dir()]
        cut = max(known, default=0)
        rest, module = parts[cut:], ".".join(parts[:cut])
        if not cut or (rest and (module not in modules or rest[0] not in defined_names(modules[module]))):
            stale.append(match.group(0))
    return stale


def test_the_docs_name_modules_and_names_that_exist():
    found = {f"{doc.relative_to(REPO)}:{number}: {reference}" for doc in DOCS
             for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
             for reference in stale_references(line)}
    assert not found, "the docs name modules or names that are not (or no longer) there:\n" + "\n".join(sorted(found))
    old = "`modeling_kgsf.training.stages`, `modeling_kgsf/cli.py`, `datasets_scripts.collator.KGSFDataCollator`"
    current = "`training_kgsf.stages.pretrain_mim`, `modeling_kgsf/metrics/`, `modeling_kgsf.KGSFTokenizer`"
    assert stale_references(f"{old}, {current}") == [
        "modeling_kgsf.training.stages", "modeling_kgsf/cli.py", "datasets_scripts.collator.KGSFDataCollator"]


def test_design_opens_with_the_picture():
    lines = [line for line in (REPO / "docs" / "DESIGN.md").read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines[0].startswith("# ") and lines[1] == "![floors](figures/floors.png)", lines[:2]
