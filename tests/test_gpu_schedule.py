"""examples/run_gpu_schedule.py, the command prepared for one GPU run, on a tiny schedule over the fake data
directory: the JSON it writes has every key, and its numbers are those of the stages' own logs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fake_data import make_fake_data_dir
from run_helpers import run_checked

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = {"d_model": 16, "kg_dim": 8, "ffn_dim": 16, "attention_heads": 2, "num_bases": 2,
              "item_graph_encoder": "featureless", "mim_form": "contrastive"}
STAGE = {"batch_size": 2, "checkpoint_steps": 0, "lr_scale_with_batch": "sqrt", "log_steps": 1}


def preset(root: Path, **schedule) -> dict:
    """configuration/reference_gpu.json's shape, sized for the fake data."""
    reference = json.loads((REPO / "configuration" / "reference_gpu.json").read_text())
    return {
        "schedule": {**reference["schedule"], "deadline_seconds": 0, **schedule},
        "data": {"include_recovered": False},
        "model": {"model_config": str(root / "tiny_model.json")},
        "mim": {**STAGE, "num_epochs": 1},
        "recommender": {**STAGE, "num_epochs": 3, "patience": 1},
        "conversation": {**{k: v for k, v in reference["conversation"].items() if k not in ("batch_size", "num_workers")},
                         **STAGE, "num_epochs": 2, "bf16": False},
        "evaluation": {"generation_examples": 4, "batch_size": 2, "show_samples": 1},
    }


@pytest.fixture(scope="module")
def schedule_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_schedule")
    data_dir = make_fake_data_dir(root / "data")
    (root / "tiny_model.json").write_text(json.dumps(TINY_MODEL))
    (root / "preset.json").write_text(json.dumps(preset(root)))
    common = ["--data_dir", str(data_dir), "--cache_dir", str(root / "cache")]
    run_checked([sys.executable, "examples/run_gpu_schedule.py", root / "preset.json", "--output", root / "gpu_schedule.json",
                 "--output_dir", root / "out", *common])
    return {"root": root, "out": root / "out", "record": json.loads((root / "gpu_schedule.json").read_text()), "common": common}


def test_the_record_has_every_key(schedule_run):
    record = schedule_run["record"]
    assert {"device", "torch", "total_seconds", "stage_seconds", "conversation_examples_per_second",
            "recommender_examples_per_second", "conversation_epochs", "test"} <= set(record)
    assert set(record["stage_seconds"]) == {"data", "mim", "recommender", "conversation", "evaluation"}
    assert set(record["test"]) == {"best", "last"}
    for kept in ("best", "last"):
        assert set(record["test"][kept]) == {"ours", "reference"}
        ours, reference = record["test"][kept]["ours"], record["test"][kept]["reference"]
        assert {"recall@1", "recall@50"} <= set(ours["recommendation"]) and ours["conversation"]["perplexity"] > 1
        assert "reference_protocol" in reference and "reference_protocol" not in ours
    assert record["test"]["best"]["ours"]["samples"][0]["generated"] is not None


def test_the_numbers_are_the_stage_logs(schedule_run):
    record, out = schedule_run["record"], schedule_run["out"]
    assert record["total_seconds"] >= sum(record["stage_seconds"].values()) - 0.5 > 0
    for stage in ("mim", "recommender", "conversation"):
        summary = json.loads((out / stage / "summary.json").read_text())
        assert record["stages"][stage]["examples_seen"] == summary["examples_seen"] > 0
        assert 0 < summary["train_seconds"] <= record["stage_seconds"][stage]
        assert summary["examples_per_second"] > 0 and summary["learning_rate"] == pytest.approx(1e-3 * (2 / 32) ** 0.5)
        lines = [json.loads(line) for line in (out / stage / "train_log.jsonl").read_text().splitlines()]
        assert lines[-1]["examples"] == summary["examples_seen"] and lines[-1]["step"] == summary["steps"]
    conversation = json.loads((out / "conversation" / "summary.json").read_text())
    rows = json.loads((out / "conversation" / "data_statistics.json").read_text())["samples"]["train"]
    assert conversation["examples_seen"] == 2 * rows  # 2 epochs of every training row
    assert record["conversation_epochs"] == conversation["epochs_seen"] == 2.0
    assert record["conversation_examples_per_second"] == conversation["examples_per_second"]
    assert record["recommender_examples_per_second"] == json.loads((out / "recommender" / "summary.json").read_text())["examples_per_second"]
    # best/ and last/: the last step's weights, evaluated (2 epochs -> 2 evaluations)
    assert conversation["last_step"] == conversation["steps"] and (out / "conversation" / "last" / "config.json").is_file()
    evaluations = (out / "conversation" / "metrics.jsonl").read_text().splitlines()
    assert len(evaluations) == 2 and json.loads(evaluations[-1])["step"] == conversation["last_step"]


def test_the_conversation_stage_gets_what_is_left_of_the_deadline(schedule_run, tmp_path):
    root = schedule_run["root"]
    late = preset(root, deadline_seconds=0.001, evaluation_reserve_seconds=0)
    (tmp_path / "late.json").write_text(json.dumps(late))
    result = subprocess.run([sys.executable, "examples/run_gpu_schedule.py", str(tmp_path / "late.json"), "--output",
                             str(tmp_path / "late_out.json"), "--output_dir", str(tmp_path / "out"), *schedule_run["common"]],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0 and "no time left for the conversation stage" in result.stderr
    assert not (tmp_path / "late_out.json").exists()
