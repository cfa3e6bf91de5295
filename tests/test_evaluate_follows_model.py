"""examples/evaluate_kgsf.py follows the model: without --dataset_dir, a folder trained on a generic-format
dataset is evaluated on the dataset its model card names, or the script says in one line which flag
to pass, before loading any data; --protocol reference brings the paper's decoding."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training_kgsf.model_card import write_model_card
from training_kgsf.evaluation import recorded_dataset

from training_kgsf.evaluation import protocol_cell
from training_kgsf.data import DataArguments
from training_kgsf.evaluate_folder import follow_recorded_dataset

REPO = Path(__file__).resolve().parents[1]

TINY_MODEL = {"d_model": 16, "kg_dim": 8, "ffn_dim": 16, "attention_heads": 2, "num_bases": 2,
              "item_graph_encoder": "featureless", "mim_form": "contrastive"}


def card_folder(folder: Path, statistics: dict) -> Path:
    folder.mkdir(parents=True)
    write_model_card(folder, "conversation", {}, statistics, {}, {})
    return folder


def test_the_record_of_a_folder(tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    folder = card_folder(tmp_path / "a" / "best", {"dataset": "tiny-books", "dataset_dir": str(books), "samples": {"test": 3}})
    assert recorded_dataset(folder) == {"dataset": "tiny-books", "dataset_dir": str(books), "source": str(folder / "README.md")}
    redial = card_folder(tmp_path / "r" / "best", {"dataset": "ReDial", "samples": {"test": 3}})
    assert recorded_dataset(redial)["dataset"] == "ReDial" and recorded_dataset(redial)["dataset_dir"] is None
    assert recorded_dataset(tmp_path / "nothing") == {}
    # an adaptation report comes first; the stage's data_statistics.json beside best/ is the last resort
    (folder / "adaptation_report.json").write_text(json.dumps({"dataset": "other", "dataset_dir": "/x"}))
    assert recorded_dataset(folder)["dataset"] == "other"
    bare = tmp_path / "s" / "best"
    bare.mkdir(parents=True)
    (bare.parent / "data_statistics.json").write_text(json.dumps({"dataset": "tiny-books", "dataset_dir": str(books)}))
    assert recorded_dataset(bare)["dataset_dir"] == str(books)


def test_follow_the_recorded_dataset(tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    folder = card_folder(tmp_path / "a" / "best", {"dataset": "tiny-books", "dataset_dir": str(books)})
    follow_recorded_dataset(str(folder), args := DataArguments())
    assert args.dataset_dir == str(books)
    follow_recorded_dataset(str(folder), args := DataArguments(dataset_dir="elsewhere"))
    assert args.dataset_dir == "elsewhere"  # the user's flag wins
    redial = card_folder(tmp_path / "r" / "best", {"dataset": "ReDial"})
    follow_recorded_dataset(str(redial), args := DataArguments())
    assert args.dataset_dir is None
    missing = card_folder(tmp_path / "m" / "best", {"dataset": "INSPIRED", "dataset_dir": str(tmp_path / "gone")})
    with pytest.raises(SystemExit, match="trained on INSPIRED, not ReDial: pass --dataset_dir"):
        follow_recorded_dataset(str(missing), DataArguments())


def test_protocol_cells():
    assert protocol_cell("ours") == ("default", "ours")
    assert protocol_cell("reference") == ("paper", "reference")  # the reference's decoding comes with its counting
    assert protocol_cell("reference", decoding="default") == ("default", "reference")  # another cell, asked for
    with pytest.raises(ValueError, match="counting must be one of"):
        protocol_cell("ours", counting="theirs")


def test_missing_dataset_is_one_line_before_loading_data(tmp_path):
    folder = card_folder(tmp_path / "m" / "best", {"dataset": "INSPIRED", "dataset_dir": str(tmp_path / "gone")})
    start = time.time()
    result = subprocess.run([sys.executable, "examples/evaluate_kgsf.py", "--model", str(folder), "--data_dir", str(tmp_path / "no_data")],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pass --dataset_dir" in lines[0] and str(tmp_path / "gone") in lines[0]
    assert time.time() - start < 120


def test_a_generic_dataset_model_is_evaluated_on_its_dataset(tmp_path):
    """End to end: a tiny model saved with its card on the fake generic dataset, evaluated without --dataset_dir."""
    from datasets_scripts.kg_resources import save_kg_resources
    from fake_crs import make_crs_dataset
    from run_helpers import run_checked

    from training_kgsf.building import ModelArguments, build_model
    from training_kgsf.data import DataArguments, KGSFData
    from training_kgsf.model_card import config_summary

    dataset = make_crs_dataset(tmp_path / "books")
    cache = tmp_path / "cache"
    data = KGSFData(DataArguments(dataset_dir=str(dataset), cache_dir=str(cache)))
    config_file = tmp_path / "tiny.json"
    config_file.write_text(json.dumps(TINY_MODEL))
    model = build_model(data, ModelArguments(model_config=str(config_file)), word_embeddings=False)
    folder = tmp_path / "run" / "conversation" / "best"
    model.save_pretrained(folder)
    data.tokenizer.save_pretrained(folder)
    save_kg_resources(data.resources, folder)
    write_model_card(folder, "conversation", {}, data.statistics(), {}, config_summary(model.config))
    out = tmp_path / "metrics.json"
    result = run_checked([sys.executable, "examples/evaluate_kgsf.py", "--model", folder, "--cache_dir", cache, "--data_dir",
                          tmp_path / "no_redial_here", "--batch_size", 2, "--generation_examples", 2, "--output", out], cwd=REPO)
    assert f"evaluating on --dataset_dir {dataset}" in result.stderr
    metrics = json.loads(out.read_text())
    assert metrics["recommendation"]["count"] == len(data.split("test", "rec"))
    assert {"dedup_turns_recall@1", "dedup_filtered_recall@50"} <= set(metrics["recommendation"])
    assert "perplexity" in metrics["conversation"]
