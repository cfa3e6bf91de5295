"""Test helpers for the transformers entry points: a tiny model folder as the training stages write
it, the same folder laid out as a Hub cache, and a fresh interpreter where this repository is not
importable."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from fake_data import make_fake_data_dir

REPO = Path(__file__).resolve().parents[1]
TINY = {"d_model": 16, "kg_dim": 8, "ffn_dim": 16, "attention_heads": 2, "num_bases": 2, "item_graph_encoder": "featureless"}


def save_tiny_folder(root: Path, config_overrides: str | None = None) -> Path:
    """An untrained tiny KGSF folder written by the stages' ``make_save_model`` over the fake data
    directory (weights and code, tokenizer, processor files, model card): ``root/model``."""
    from datasets_scripts import kg
    from training_kgsf.building import ModelArguments, build_model, make_save_model
    from training_kgsf.data import DataArguments, KGSFData
    from training_kgsf.trainer import TrainingArguments

    data_dir = make_fake_data_dir(root / "data")
    (root / "tiny.json").write_text(json.dumps(TINY))
    data = KGSFData(DataArguments(data_dir=str(data_dir), cache_dir=str(root / "cache"), include_recovered=False))
    # the fake graph is far below the reference's relation-frequency cut: keep every relation
    data.resources.item_graph = kg.load_item_graph(data_dir, root / "cache", entities=data.resources.entities, relation_min_count=0)
    model = build_model(data, ModelArguments(model_config=str(root / "tiny.json"), config_overrides=config_overrides))
    folder = root / "model"
    make_save_model(data, "conversation", TrainingArguments(output_dir=str(root / "run")))(model, folder, {"note": "untrained"})
    return folder


def lay_out_as_hub_cache(folder: Path, cache: Path, repo_id: str) -> Path:
    """Copy ``folder`` into ``cache`` as ``huggingface_hub`` downloads a repository: content-addressed
    ``blobs/``, ``snapshots/<commit>/`` of relative symlinks to them, ``refs/main`` holding the commit.
    Returns the snapshot folder."""
    root = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = root / "snapshots" / commit
    for path in (root / "refs", root / "blobs", snapshot):
        path.mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    for file in sorted(Path(folder).iterdir()):
        data = file.read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    return snapshot


# First lines of every fresh interpreter: the editable install's finder and the repository's paths go,
# and the packages must then fail to import.
PRELUDE = textwrap.dedent(
    f"""
    import os, sys
    sys.meta_path[:] = [finder for finder in sys.meta_path if not getattr(finder, "__module__", "").startswith("__editable__")]
    sys.path[:] = [path for path in sys.path if "__editable__" not in path and os.path.abspath(path or ".") != {str(REPO)!r}]
    for name in ("modeling_kgsf", "datasets_scripts"):
        try:
            __import__(name)
        except ModuleNotFoundError:
            continue
        raise SystemExit(name + " must not be importable in this process")
    """
)


def run_without_package(code: str, cwd: Path, timeout: int = 300, **env) -> subprocess.CompletedProcess:
    """Run ``code`` after :data:`PRELUDE` in a fresh interpreter in ``cwd`` (not the repository),
    without ``PYTHONPATH``, with ``env`` added and remote code cached under ``cwd``."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment.update(HF_MODULES_CACHE=str(Path(cwd) / "hf_modules"), **{key: str(value) for key, value in env.items()})
    script = Path(cwd) / "fresh_process.py"
    script.write_text(PRELUDE + textwrap.dedent(code), encoding="utf-8")
    return subprocess.run([sys.executable, str(script)], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


def rounded(value, digits: int = 5):
    """``value`` (JSON-like) with every float rounded, to compare outputs of two processes."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(item, digits) for item in value]
    return value
