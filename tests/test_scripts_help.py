"""Every script a user runs answers ``--help`` (argparse formats each help string, so a stray ``%``
in a dataclass field's help breaks every script that parses it)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(str(path.relative_to(REPO)) for folder in ("examples", "benchmarks") for path in (REPO / folder).glob("*.py")
                 if not path.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_help(script):
    result = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
