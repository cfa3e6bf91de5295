"""Write a model folder's processor files from the data: ``kg_resources.json`` (linking and explanation
data), ``entity_linker.json`` (the built linker index) and ``processor_config.json``.

The processor itself (:class:`modeling_kgsf.processing_kgsf.KGSFProcessor`) lives in the model
package so that a folder is self-contained: the pipeline loads it from the folder and never reads
``../shared/data``. This module is the data side: it builds the processor from the loaded data
(:func:`redial.load_resources` or :func:`crs_format.load_crs_dataset` resources) and saves it.
Every training stage calls :func:`save_kg_resources` next to the weights.

* :func:`save_kg_resources(resources, folder)` writes the files; :func:`load_kg_resources(folder)`
  returns the folder's :class:`KGSFProcessor`.
* Folders saved before these files existed get them with::

      python -m datasets_scripts.kg_resources --data-dir ../shared/data FOLDER [FOLDER ...]

  which checks that the data matches the model (entity, item and relation counts) before writing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from modeling_kgsf.processing_kgsf import KG_RESOURCES_FILE, KGSFProcessor

from .redial import load_resources


def save_kg_resources(resources, folder: str | os.PathLike) -> Path:
    """Write the processor files of ``resources`` into ``folder`` (created if needed); returns the
    path of ``kg_resources.json``. The tokenizer is the caller's to save (a fine-tuned model's
    vocabulary may extend the data's)."""
    resources.processor.save_pretrained(folder, save_tokenizer=False)
    return Path(folder) / KG_RESOURCES_FILE


def load_kg_resources(folder: str | os.PathLike, tokenizer=None) -> KGSFProcessor:
    """The folder's processor; ``FileNotFoundError`` says how to add ``kg_resources.json``."""
    return KGSFProcessor.from_pretrained(folder, tokenizer=tokenizer)


def check_matches_model(resources, config: dict) -> list[str]:
    """Mismatches between the data's sizes and a model config (empty when they agree)."""
    expected = {
        "n_entity": resources.entities.num_entities,
        "n_item": len(resources.entities.item_entity_ids),
        "n_relation": resources.item_graph.num_relations,
    }
    return [f"{key}: model {config.get(key)} vs data {value}" for key, value in expected.items() if config.get(key) != value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datasets_scripts.kg_resources",
        description=f"Write {KG_RESOURCES_FILE} (linking and explanation data) into existing KGSF model folders.",
    )
    parser.add_argument("folders", nargs="+", help="save_pretrained folders (e.g. runs/quick/conversation/best)")
    parser.add_argument("--data-dir", default=None, help="ReDial + KG files (default: $KGSF_DATA_DIR, then ../shared/data)")
    parser.add_argument("--cache-dir", default=None, help="converted-pickle cache (default: $KGSF_CACHE_DIR, then ~/.cache/kgsf)")
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not (Path(folder) / "config.json").is_file():
            parser.error(f"{folder} is not a model folder (no config.json)")
    resources = load_resources(args.data_dir, args.cache_dir)
    status = 0
    for folder in args.folders:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        problems = ([f"model_type is {config.get('model_type')!r}, not 'kgsf'"] if config.get("model_type") != "kgsf" else [])
        problems += check_matches_model(resources, config)
        if problems:
            print(f"{folder}: not written, the data does not match the model ({'; '.join(problems)})", file=sys.stderr)
            status = 1
            continue
        print(f"wrote {save_kg_resources(resources, folder)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
