"""Running the project's commands from tests as a user runs them (a subprocess, offline)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_checked(args, cwd=REPO, timeout: int = 600, **env):
    """Run ``args`` (a list) with the Hub offline; fail the test with the end of its output if it fails."""
    environment = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **env}
    result = subprocess.run([str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, env=environment, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result
