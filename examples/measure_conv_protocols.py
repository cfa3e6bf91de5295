"""Measure the conversation metrics of KGSF and of the Transformer baseline in the four cells of
{paper, default} decoding x {reference, ours} counting (training_kgsf/evaluation.py).

The same model, the same test turns, four ways: the paper's decoding (``PAPER_DECODING``: plain
greedy, items only through the copy distribution) or the model's default one (item slots,
repetition controls); counted as RUCAIBox/KGSF counts (at most 20 steps, a batch of 32 stops once
every row has emitted ``__end__``, the tokens after ``__end__`` kept, unique n-grams per reply) or
as we count (each reply cut at its ``__end__``, at most 30 tokens). BLEU is unsmoothed sentence
BLEU in every cell. Writes ``docs/results/conv_protocols.json``.

    python examples/measure_conv_protocols.py --kgsf runs/full/conversation/best \\
        --transformer runs/tables/conv/transformer/best [--data_dir DIR] [--cache_dir DIR] [--max_examples N]

The Transformer baseline is KGSF's conversation stage with ``use_kg_attention=false,use_copy=false``
(``examples/run_tables.py conv``, variant ``transformer``); pass its ``best/`` folder.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout without `pip install -e .`

import torch  # noqa: E402
from accelerate.utils import set_seed  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from training_kgsf.building import ModelArguments, build_model  # noqa: E402
from training_kgsf.data import DataArguments, KGSFData  # noqa: E402
from training_kgsf.trainer import make_accelerator  # noqa: E402
from training_kgsf.evaluation import REFERENCE_BATCH_SIZE, conversation_dataloader, evaluate_conversation, generation_settings, item_entities_of_tokens  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "conv_protocols.json"
MODELS = ("kgsf", "transformer")
#: JSON cell name -> evaluation argument
DECODING_CELLS = {"paper_decoding": "paper", "default_decoding": "default"}
COUNTING_CELLS = {"reference_counting": "reference", "our_counting": "ours"}


def stage_record(folder: Path) -> dict:
    """Epochs and best step of the stage that wrote ``folder`` (its ``summary.json`` beside it); None when absent."""
    try:
        summary = json.loads((folder.parent / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"epochs": None, "best_step": None}
    return {"epochs": summary.get("epochs"), "best_step": summary.get("best_step")}


def machine() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    return f"{platform.node()} {platform.machine()}, {device}"


def measure_model(folder: Path, data: KGSFData, accelerator, split: str, max_examples: int, seed: int, position: int) -> dict:
    """The four cells of one model folder: ``{decoding cell: {counting cell: metrics}}`` plus the record."""
    model = accelerator.prepare(build_model(data, ModelArguments(init_from=str(folder))))
    model.eval()
    unwrapped = accelerator.unwrap_model(model)
    rows = data.split(split, "conv", max_examples)
    loader = conversation_dataloader(rows, data.collator("conv"), REFERENCE_BATCH_SIZE, accelerator)
    item_entities = item_entities_of_tokens(data.tokenizer, data.resources.item_token_vocab_mask,
                                            data.resources.entities.movie_id_to_entity)
    record = {"folder": str(folder), **stage_record(folder), "turns": len(rows)}
    for decoding_cell, decoding in DECODING_CELLS.items():
        for counting_cell, counting in COUNTING_CELLS.items():
            set_seed(seed)
            bar = tqdm(loader, desc=f"{folder.name} {decoding_cell} {counting_cell}", position=position, leave=False,
                       disable=not accelerator.is_main_process)
            results = evaluate_conversation(model, bar, accelerator, data.tokenizer, decoding=decoding, counting=counting,
                                            item_entities=item_entities)
            metrics = results.pop("reference_protocol") if counting == "reference" else results
            metrics = {key: value for key, value in metrics.items() if key not in ("generated_replies", "human")}
            metrics["n"] = results["generated_replies"]
            metrics["perplexity"] = results["perplexity"]
            metrics["generate_kwargs"] = generation_settings(unwrapped, decoding, counting=counting)
            record.setdefault(decoding_cell, {})[counting_cell] = metrics
    return record


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--kgsf", default=None, help="KGSF conversation folder (a conversation stage's best/)")
    parser.add_argument("--transformer", default=None, help="Transformer baseline folder (use_kg_attention=false,use_copy=false)")
    parser.add_argument("--data_dir", default=None, help="the shared data folder (default: as datasets_scripts.paths resolves it)")
    parser.add_argument("--cache_dir", default=None, help="cache folder (default ~/.cache/kgsf)")
    parser.add_argument("--dataset_dir", default=None, help="a dataset in the generic CRS format instead of ReDial")
    parser.add_argument("--train_source", default=None,
                        help="ReDial training conversations (default: the package's); only the split evaluated is used")
    parser.add_argument("--split", default="test", help="split evaluated (default test)")
    parser.add_argument("--max_examples", type=int, default=-1, help="only the split's first N turns (-1: all; for a quick run)")
    parser.add_argument("--seed", type=int, default=42, help="seed set before each cell")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"JSON file to write (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    folders = {name: Path(getattr(args, name)) for name in MODELS if getattr(args, name)}
    if not folders:
        parser.error("give --kgsf FOLDER and/or --transformer FOLDER")
    for name, folder in folders.items():
        if not (folder / "config.json").exists():
            parser.error(f"--{name} {folder}: no config.json (pass a model folder, e.g. <stage>/best)")
    start = time.time()
    accelerator = make_accelerator()
    torch.use_deterministic_algorithms(True, warn_only=True)  # the same metrics on every run (as evaluate_kgsf.py)
    with accelerator.main_process_first():
        data = KGSFData(DataArguments(data_dir=args.data_dir, cache_dir=args.cache_dir, dataset_dir=args.dataset_dir,
                                      train_source=args.train_source),
                        str(next(iter(folders.values()))))
    result = {
        "bleu_smoothing": "none",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "command": "python examples/measure_conv_protocols.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "dataset": data.dataset_name,
        "split": args.split,
        "max_examples": args.max_examples,
        "batch_size": REFERENCE_BATCH_SIZE,
        "num_processes": accelerator.num_processes,
        "cells": {"decoding": DECODING_CELLS, "counting": COUNTING_CELLS},
        "models": {},
    }
    for position, (name, folder) in enumerate(tqdm(list(folders.items()), desc="models", disable=not accelerator.is_main_process)):
        result["models"][name] = measure_model(folder, data, accelerator, args.split, args.max_examples, args.seed, position + 1)
    result["seconds"] = round(time.time() - start, 1)
    if accelerator.is_main_process:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        keys = ("distinct-4_per_sentence", "bleu-4", "item_ratio", "loop_rate", "mean_reply_length")
        print(f"{'model / decoding / counting':48}" + "".join(f"{key:>26}" for key in keys))
        for name, record in result["models"].items():
            for decoding_cell in DECODING_CELLS:
                for counting_cell in COUNTING_CELLS:
                    metrics = record[decoding_cell][counting_cell]
                    cells = "".join(f"{'-' if metrics.get(key) is None else round(metrics[key], 4):>26}" for key in keys)
                    print(f"{name + ' / ' + decoding_cell + ' / ' + counting_cell:48}" + cells)
        print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
