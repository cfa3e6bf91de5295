"""The example scripts end to end, run as a user runs them, on the tiny fake data directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_data import make_fake_data_dir
from run_helpers import run_checked

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = {"d_model": 16, "kg_dim": 8, "ffn_dim": 16, "attention_heads": 2, "num_bases": 2,
              "item_graph_encoder": "featureless", "mim_form": "contrastive"}


def run(*args, cwd=REPO):
    return run_checked(args, cwd=cwd)


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    data_dir = make_fake_data_dir(root / "data")
    (root / "tiny_model.json").write_text(json.dumps(TINY_MODEL))
    stage = {"batch_size": 2, "num_epochs": 5, "max_steps": 3, "checkpoint_steps": 2, "eval_steps": 2, "patience": 0}
    preset = {
        "data": {"include_recovered": False},
        "model": {"model_config": str(root / "tiny_model.json")},
        "mim": stage,
        "recommender": {**stage, "config_overrides": "mim_weight=0.5"},
        "conversation": {**stage, "generation_batches": 1},
        "evaluation": {"generation_examples": 4, "batch_size": 2},
    }
    (root / "preset.json").write_text(json.dumps(preset))
    out = root / "out"
    args = [str(root / "preset.json"), "--output_dir", str(out), "--data_dir", str(data_dir), "--cache_dir", str(root / "cache")]
    result = run(sys.executable, "examples/run_pipeline.py", *args)
    return {"root": root, "out": out, "data_dir": data_dir, "args": args, "stdout": result.stdout}


def test_pipeline_writes_every_stage_and_test_metrics(pipeline_run):
    out = pipeline_run["out"]
    for stage in ("mim", "recommender", "conversation"):
        best = out / stage / "best"
        for name in ("model.safetensors", "config.json", "vocab.json", "README.md", "modeling_kgsf.py", "tokenization_kgsf.py", "item_cues.json"):
            assert (best / name).exists(), f"{stage}/best lacks {name}"
        summary = json.loads((out / stage / "summary.json").read_text())
        assert summary["steps"] == 3
        assert (out / stage / "metrics.jsonl").read_text().count("\n") >= 2
    # the recommender starts from MIM's last weights (training_kgsf.stages.HAND_OVER), kept beside best/
    assert json.loads((out / "mim" / "summary.json").read_text())["last_step"] == 3 and (out / "mim" / "last" / "config.json").exists()
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert set(metrics["recommendation"]) >= {"recall@1", "recall@10", "recall@50", "cold_start_recall@1",
                                              "dedup_turns_recall@50", "dedup_filtered_recall@50"}
    assert metrics["conversation"]["generated_replies"] == 1  # the fake test split has one recommender turn
    assert {"distinct-4", "distinct-4_per_sentence", "item_ratio", "bleu-4", "perplexity"} <= set(metrics["conversation"])
    assert "--- sample dialogue ---" in pipeline_run["stdout"]
    card = (out / "conversation" / "best" / "README.md").read_text()
    assert "library_name: transformers" in card and "## Evaluation protocol" in card


def test_stage_flags_reach_the_saved_config(pipeline_run):
    config = json.loads((pipeline_run["out"] / "conversation" / "best" / "config.json").read_text())
    assert config["mim_weight"] == 0.5 and config["d_model"] == 16
    assert config["auto_map"]["AutoModelForSeq2SeqLM"] == "modeling_kgsf.KGSFForConversationalRecommendation"


def test_saved_folder_loads_without_the_package(pipeline_run, tmp_path):
    folder = pipeline_run["out"] / "conversation" / "best"
    code = f"""
import importlib.abc
import sys

class BlockProject(importlib.abc.MetaPathFinder):  # as if the package were not installed
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("modeling_kgsf", "datasets_scripts"):
            raise ImportError(f"{{name}} is blocked in this test")

sys.meta_path.insert(0, BlockProject())
try:
    import modeling_kgsf
    raise SystemExit("modeling_kgsf must not be importable here")
except ImportError:
    pass
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
model = AutoModelForSeq2SeqLM.from_pretrained({str(folder)!r}, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained({str(folder)!r}, trust_remote_code=True)
ids = tokenizer("I like horror movies", return_tensors="pt")
out = model.generate(**ids, max_new_tokens=5)
print(type(model).__name__, out.shape[0])
"""
    result = run(sys.executable, "-c", code, cwd=tmp_path)
    assert "KGSFForConversationalRecommendation 1" in result.stdout


def test_resume_skips_finished_stages(pipeline_run):
    result = run(sys.executable, "examples/run_pipeline.py", *pipeline_run["args"], "--resume")
    assert result.stdout.count("finished earlier, skipped") == 3


def test_accelerate_launch_runs_a_stage(pipeline_run, tmp_path):
    root = pipeline_run["root"]
    run(sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "examples/train_recommender.py", "--output_dir", str(tmp_path / "rec"), "--data_dir", str(pipeline_run["data_dir"]),
        "--cache_dir", str(root / "cache"), "--include_recovered", "false", "--batch_size", "2", "--max_steps", "2",
        "--init_from", str(pipeline_run["out"] / "mim" / "best"))
    assert json.loads((tmp_path / "rec" / "summary.json").read_text())["steps"] == 2


def test_baselines_run(pipeline_run, tmp_path):
    root = pipeline_run["root"]
    common = ["--data_dir", str(pipeline_run["data_dir"]), "--cache_dir", str(root / "cache"), "--include_recovered", "false",
              "--batch_size", "2", "--max_steps", "2"]
    for baseline in ("popularity", "textcnn"):
        run(sys.executable, "examples/train_baseline.py", "--baseline", baseline, "--output_dir", str(tmp_path / baseline),
            "--embedding_dim", "8", "--num_filters", "4", *common)
        metrics = json.loads((tmp_path / baseline / "test_metrics.json").read_text())
        assert metrics["recommendation"]["count"] >= 1
    best = tmp_path / "textcnn" / "best"  # TextCNN weights as safetensors, with the sizes to rebuild it
    assert (best / "model.safetensors").exists() and not list(best.glob("*.pt"))
    assert json.loads((best / "textcnn_config.json").read_text())["num_filters"] == 4


def test_run_tables_writes_a_summary(pipeline_run, tmp_path):
    root = pipeline_run["root"]
    tiny = root / "tiny_model.json"
    result = run(sys.executable, "examples/run_tables.py", "rec", "--output_dir", str(tmp_path), "--only", "popularity", "kgsf_no_mim", "kgsf_mim_last",
                 "--model_config", str(tiny), "--rec_epochs", "1", "--eval_steps", "1", "--train_flags", "--batch_size 3",
                 "--data_dir", str(pipeline_run["data_dir"]), "--cache_dir", str(root / "cache"), "--include_recovered", "false")
    summary = (tmp_path / "summary_rec.md").read_text()
    assert "| Popularity |" in summary and "| KGSF -MIM |" in summary
    commands = (tmp_path / "commands.txt").read_text().splitlines()
    assert any("train_recommender.py" in line and "use_mim=false" in line and "--batch_size 3" in line for line in commands)
    assert not any("evaluate_kgsf.py" in line and "--batch_size 3" in line for line in commands)  # training flags only
    # the reference's MIM weights: the stage's last step, kept with --save_last, start the recommender
    assert any("pretrain_mim.py" in line and "--save_last true" in line for line in commands)
    assert any("train_recommender.py" in line and "kgsf_mim_last/mim/last" in line for line in commands)
    assert (tmp_path / "rec" / "kgsf_mim_last" / "test_metrics.json").exists()
    assert "skipped" not in result.stdout
    again = run(sys.executable, "examples/run_tables.py", "rec", "--output_dir", str(tmp_path), "--only", "popularity",
                "--data_dir", str(pipeline_run["data_dir"]), "--cache_dir", str(root / "cache"), "--include_recovered", "false")
    assert "done earlier, skipped" in again.stdout


def test_new_dataset_from_scratch_and_from_a_redial_model(pipeline_run, tmp_path):
    """Both paths of docs/CRS_FORMAT.md on a tiny generic dataset with its own KG and word graph."""
    from fake_crs import make_crs_dataset

    dataset = make_crs_dataset(tmp_path / "books")
    root = pipeline_run["root"]
    common = ["--dataset_dir", str(dataset), "--cache_dir", str(root / "cache")]
    run(sys.executable, "examples/run_pipeline.py", str(root / "preset.json"), "--output_dir", str(tmp_path / "scratch"), *common)
    scratch = json.loads((tmp_path / "scratch" / "conversation" / "best" / "config.json").read_text())
    assert scratch["n_item"] == 4 and scratch["n_relation"] == 3
    metrics = json.loads((tmp_path / "scratch" / "test_metrics.json").read_text())
    assert metrics["recommendation"]["count"] == 2 and "perplexity" in metrics["conversation"]

    redial_model = pipeline_run["out"] / "conversation" / "best"
    # a ReDial model cannot silently be trained on other data...
    failed = subprocess.run([sys.executable, "examples/train_recommender.py", "--output_dir", str(tmp_path / "wrong"),
                             "--init_from", str(redial_model), "--max_steps", "1", *common], cwd=REPO, capture_output=True, text=True)
    assert failed.returncode != 0 and "examples/adapt_model.py" in failed.stderr
    # ...it is adapted first, then fine-tuned through every stage
    run(sys.executable, "examples/run_pipeline.py", str(root / "preset.json"), "--output_dir", str(tmp_path / "ft"),
        "--init_from", str(redial_model), *common)
    report = json.loads((tmp_path / "ft" / "adapted" / "adaptation_report.json").read_text())
    assert report["dataset"] == "tiny-books"
    old_vocab = json.loads((redial_model / "vocab.json").read_text())
    new_vocab = json.loads((tmp_path / "ft" / "conversation" / "best" / "vocab.json").read_text())
    assert all(new_vocab[token] == index for token, index in old_vocab.items())  # old ids kept, new words appended
    assert "desert" not in old_vocab and "desert" in new_vocab and "@b1" in new_vocab
    card = (tmp_path / "ft" / "conversation" / "best" / "README.md").read_text()
    assert "tiny-books" in card and "a tiny book world for tests" in card
    assert json.loads((tmp_path / "ft" / "test_metrics.json").read_text())["recommendation"]["count"] == 2
