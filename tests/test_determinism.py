"""The same command with the same seed gives the same result: the whole pipeline (data processing,
word vectors, the three stages, evaluation) run twice on the fake data, each time from an empty
cache and under another PYTHONHASHSEED (Python's string hashing: set order, gensim's seeding), must
write identical metrics and bit-identical weights."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from fake_data import make_fake_data_dir
from run_helpers import run_checked

TINY_MODEL = {"d_model": 16, "kg_dim": 8, "ffn_dim": 16, "attention_heads": 2, "num_bases": 2,
              "item_graph_encoder": "featureless", "mim_form": "contrastive"}


def pipeline(root: Path, data_dir: Path, name: str, hash_seed: str) -> Path:
    out = root / name
    run_checked([sys.executable, "examples/run_pipeline.py", root / "preset.json", "--output_dir", out, "--data_dir", data_dir,
                 "--cache_dir", root / f"cache_{name}"], PYTHONHASHSEED=hash_seed)
    return out


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("determinism")
    data_dir = make_fake_data_dir(root / "data")
    (root / "tiny.json").write_text(json.dumps(TINY_MODEL))
    stage = {"batch_size": 2, "num_epochs": 3, "max_steps": 4, "checkpoint_steps": 0, "eval_steps": 2, "patience": 0, "log_steps": 1}
    preset = {"data": {"include_recovered": False}, "model": {"model_config": str(root / "tiny.json")},
              "mim": stage, "recommender": stage, "conversation": {**stage, "generation_batches": 1},
              "evaluation": {"generation_examples": 4, "batch_size": 2}}
    (root / "preset.json").write_text(json.dumps(preset))
    return pipeline(root, data_dir, "first", "1"), pipeline(root, data_dir, "second", "2")


def test_same_seed_same_metrics(two_runs):
    first, second = two_runs
    assert (first / "test_metrics.json").read_text().replace("first", "X") == (second / "test_metrics.json").read_text().replace("second", "X")
    for stage in ("mim", "recommender", "conversation"):
        logs = [[{k: v for k, v in json.loads(line).items()} for line in (run / stage / "metrics.jsonl").read_text().splitlines()]
                for run in (first, second)]
        assert logs[0] == logs[1], stage
        train_logs = [[{k: v for k, v in json.loads(line).items() if k != "examples_per_second"}
                       for line in (run / stage / "train_log.jsonl").read_text().splitlines()] for run in (first, second)]
        assert train_logs[0] == train_logs[1], stage


def test_same_seed_same_weights(two_runs):
    first, second = two_runs
    a, b = (load_file(str(run / "conversation" / "best" / "model.safetensors")) for run in (first, second))
    assert a.keys() == b.keys()
    different = [name for name in a if not (a[name] == b[name]).all()]
    assert not different, different[:5]
