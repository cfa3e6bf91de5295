"""Write a model folder's processor files from the data: ``kg_resources.json`` (linking and explanation
data), ``entity_linker.json`` (the built linker index) and ``processor_config.json``.

The processor itself (:class:`modeling_kgsf.processing_kgsf.KGSFProcessor`) lives in the model
package so that a folder is self-contained: the pipeline loads it from the folder and never reads
``../shared/data``. This module is the data side: it builds the processor from the loaded data
(:func:`redial.load_resources` or :func:`crs_format.load_crs_dataset` resources) and saves it.
Every training stage calls :func:`save_kg_resources` next to the weights.

* :func:`save_kg_resources(resources, folder)` writes the files; :func:`load_kg_resources(folder)`
  returns the folder's :class:`KGSFProcessor`.
* :func:`count_item_cues(rows, ...)` counts, over the training rows, what the conversations say
  about each item (``item_cues.json``, :class:`modeling_kgsf.preferences_kgsf.ItemCues`).
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

from modeling_kgsf.preferences_kgsf import ItemCues
from modeling_kgsf.processing_kgsf import KG_RESOURCES_FILE, KGSFProcessor

from .redial import load_redial, load_resources


def save_kg_resources(resources, folder: str | os.PathLike, item_cues: ItemCues | None = None) -> Path:
    """Write the processor files of ``resources`` into ``folder`` (created if needed), with
    ``item_cues.json`` when ``item_cues`` is given; returns the path of ``kg_resources.json``. The
    tokenizer is the caller's to save (a fine-tuned model's vocabulary may extend the data's)."""
    processor = resources.processor
    processor.item_cues = item_cues
    processor.save_pretrained(folder, save_tokenizer=False)
    return Path(folder) / KG_RESOURCES_FILE


def count_item_cues(rows, item_index_of_entity: dict[int, int], n_item: int) -> ItemCues:
    """:meth:`ItemCues.count` over processed rows (a split or a list of dicts with
    ``conversation_id``, ``context_tokens``, ``response_tokens``, ``context_items``,
    ``target_items``): a conversation's words are every token of its rows, its items every context
    and target item. Give it the train split only: the counts go into the ranking."""
    columns = ["conversation_id", "context_tokens", "response_tokens", "context_items", "target_items"]
    if hasattr(rows, "select_columns"):  # a datasets split: read it by columns (fast), not row by row
        table = rows.select_columns(columns).to_dict()
    else:
        table = {column: [row[column] for row in rows] for column in columns}
    words: dict[str, set[str]] = {}
    items: dict[str, set[int]] = {}
    for key, context, response, context_items, target_items in zip(*(table[column] for column in columns)):
        words.setdefault(key, set()).update(token.lower() for token in (*context, *response))
        items.setdefault(key, set()).update(item_index_of_entity[e] for e in (*context_items, *target_items) if e in item_index_of_entity)
    return ItemCues.count(((words[key], items[key]) for key in words), n_item)


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
    parser.add_argument("--item-cues", default=None, metavar="TRAIN_SOURCE",
                        help="also write item_cues.json, counted over the ReDial train split of this train source "
                             "(the one the model was trained on: reconstructed, ordered, recovered or release)")
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not (Path(folder) / "config.json").is_file():
            parser.error(f"{folder} is not a model folder (no config.json)")
    resources = load_resources(args.data_dir, args.cache_dir)
    item_cues = None
    if args.item_cues:
        train = load_redial(args.data_dir, args.cache_dir, resources=resources, train_source=args.item_cues)["train"]
        item_cues = count_item_cues(train, resources.item_index_of_entity, len(resources.entities.item_entity_ids))
    status = 0
    for folder in args.folders:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        problems = ([f"model_type is {config.get('model_type')!r}, not 'kgsf'"] if config.get("model_type") != "kgsf" else [])
        problems += check_matches_model(resources, config)
        if problems:
            print(f"{folder}: not written, the data does not match the model ({'; '.join(problems)})", file=sys.stderr)
            status = 1
            continue
        print(f"wrote {save_kg_resources(resources, folder, item_cues)}" + (" and item_cues.json" if item_cues else ""))
    return status


if __name__ == "__main__":
    sys.exit(main())
