"""CI runs the README's test command, installing the locked versions."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands(text):
    return [re.sub(r"\s-q\b", "", line).strip() for line in text.splitlines() if "pip install" in line and "pytest" in line]


def test_ci_runs_the_readme_test_command_with_the_lock():
    readme = _commands((ROOT / "README.md").read_text())
    ci = _commands((ROOT / ".ci" / "run").read_text())
    assert readme and ci == readme[:1]
    assert "-c constraints.txt" in ci[0]


def test_the_lock_pins_every_package_exactly():
    lines = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^\s=]+", line) for line in lines), lines
    names = {line.split("==")[0].lower().replace("_", "-") for line in lines}
    assert {"torch", "transformers", "datasets", "accelerate", "torch-geometric", "pytest"} <= names
