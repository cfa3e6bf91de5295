"""Tiny saved KGSF folders for the tests of what users run on a folder: the CLI, the pipeline, the web demo."""
from __future__ import annotations

import json
from pathlib import Path

from fake_data import make_fake_data_dir

TINY = {"d_model": 16, "kg_dim": 8, "ffn_dim": 16, "attention_heads": 2, "num_bases": 2, "item_graph_encoder": "featureless"}


def tiny_folder(root: Path) -> Path:
    """``root/model``: written by ``make_save_model`` over the fake data directory (weights, processor)."""
    from datasets_scripts import kg
    from training_kgsf.building import ModelArguments, build_model, make_save_model
    from training_kgsf.data import DataArguments, KGSFData
    from training_kgsf.trainer import TrainingArguments

    data_dir = make_fake_data_dir(root / "data")
    (root / "tiny.json").write_text(json.dumps(TINY))
    data = KGSFData(DataArguments(data_dir=str(data_dir), cache_dir=str(root / "cache"), include_recovered=False))
    # the fake graph is far below the reference's relation-frequency cut: keep every relation
    data.resources.item_graph = kg.load_item_graph(data_dir, root / "cache", entities=data.resources.entities, relation_min_count=0)
    model = build_model(data, ModelArguments(model_config=str(root / "tiny.json")))
    out = root / "model"
    make_save_model(data, "conversation", TrainingArguments(output_dir=str(root / "run")))(model, out, {"note": "untrained"})
    return out


def crs_folder(root: Path) -> Path:
    """``root/model``: a tiny folder of a dataset in the generic CRS format (books, ``@b1`` ids)."""
    from fake_crs import make_crs_dataset

    from training_kgsf.building import ModelArguments, build_model, make_save_model
    from training_kgsf.data import DataArguments, KGSFData
    from training_kgsf.trainer import TrainingArguments

    (root / "tiny.json").write_text(json.dumps(TINY))
    data = KGSFData(DataArguments(dataset_dir=str(make_crs_dataset(root / "books")), cache_dir=str(root / "cache")))
    model = build_model(data, ModelArguments(model_config=str(root / "tiny.json")))
    out = root / "model"
    make_save_model(data, "conversation", TrainingArguments(output_dir=str(root / "run")))(model, out, {"note": "untrained"})
    return out
