"""Loops and items in generated replies under several decoding settings (choosing the defaults of
``generation_kgsf.KGSF_GENERATION_DEFAULTS``).

    python benchmarks/measure_decoding.py runs/quick/conversation/best [--examples 256] [--split validation]

For a fixed sample of the split's recommender turns (the first ``--examples`` rows, batches of 64)
it generates ``max_new_tokens=30`` replies per setting and reports: ``loop_rate`` (share of replies
with a word 3-gram that occurs twice), ``bigram_loop_rate`` (a word 2-gram twice), ``item_ratio``
(share of replies naming at least one item), ``items_per_reply``, ``repeated_item_rate`` (share
of replies naming one item twice), ``mean_length`` (tokens before ``__end__``), ``empty_rate`` and
``distinct_2`` (distinct word bigrams / all bigrams, over the sample).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_kgsf import KGSFForConversationalRecommendation  # noqa: E402
from modeling_kgsf.generation_kgsf import PAPER_DECODING, repeated_ngram  # noqa: E402
from modeling_kgsf.processing_kgsf import CONTEXT_KEYS, KGSFProcessor  # noqa: E402

SETTINGS = {
    "paper (greedy, copy only)": dict(PAPER_DECODING),
    "paper + item slots": {**PAPER_DECODING, "item_slots": True},
    "slots + no_repeat 3": {**PAPER_DECODING, "item_slots": True, "no_repeat_ngram_size": 3},
    "slots + no_repeat 3 + rep 1.2 (default)": {"item_slots": True, "no_repeat_ngram_size": 3, "repetition_penalty": 1.2},
    "slots + no_repeat 3 + rep 1.5": {"item_slots": True, "no_repeat_ngram_size": 3, "repetition_penalty": 1.5},
    "slots + no_repeat 2 + rep 1.2": {"item_slots": True, "no_repeat_ngram_size": 2, "repetition_penalty": 1.2},
    "slots + rep 1.2 only": {"item_slots": True, "no_repeat_ngram_size": 0, "repetition_penalty": 1.2},
    "no slots + no_repeat 3 + rep 1.2": {"item_slots": False, "no_repeat_ngram_size": 3, "repetition_penalty": 1.2},
    "default, beam 4": {"num_beams": 4},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--settings", nargs="*", default=None, help="names of SETTINGS to run (default: all)")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    from datasets_scripts.redial import load_redial  # the data side (the model package never imports it)

    model = KGSFForConversationalRecommendation.from_pretrained(args.folder).eval()
    processor = KGSFProcessor.from_pretrained(args.folder)
    tokenizer = processor.tokenizer
    splits = load_redial(data_dir=args.data_dir)
    rows = [splits[args.split][i] for i in range(min(args.examples, len(splits[args.split])))]
    collate = processor.collator("rec")
    keys = CONTEXT_KEYS
    item_tokens = model.kgsf.item_token_vocab_mask
    results = {}
    for name, setting in SETTINGS.items():
        if args.settings and name not in args.settings:
            continue
        start, replies = time.perf_counter(), []
        for first in range(0, len(rows), 64):
            batch = collate(rows[first: first + 64])
            with torch.no_grad():
                out = model.generate(**{k: batch[k] for k in keys}, max_new_tokens=30, **setting)
            for sequence in out[:, 1:].tolist():
                replies.append(sequence[: sequence.index(2)] if 2 in sequence else [t for t in sequence if t != 0])
        bigrams = [tuple(r[i: i + 2]) for r in replies for i in range(len(r) - 1)]
        items = [[t for t in r if item_tokens[t]] for r in replies]
        results[name] = {
            "loop_rate": round(sum(map(repeated_ngram, replies)) / len(replies), 3),
            "bigram_loop_rate": round(sum(repeated_ngram(r, 2) for r in replies) / len(replies), 3),
            "item_ratio": round(sum(bool(i) for i in items) / len(replies), 3),
            "items_per_reply": round(sum(map(len, items)) / len(replies), 3),
            "repeated_item_rate": round(sum(len(set(i)) != len(i) for i in items) / len(replies), 3),
            "mean_length": round(sum(map(len, replies)) / len(replies), 2),
            "empty_rate": round(sum(not r for r in replies) / len(replies), 3),
            "distinct_2": round(len(set(bigrams)) / max(1, len(bigrams)), 3),
            "seconds": round(time.perf_counter() - start, 1),
            "example": tokenizer.convert_tokens_to_string(tokenizer.convert_ids_to_tokens(replies[0])),
        }
        print(json.dumps({name: results[name]}), flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps({"folder": args.folder, "split": args.split, "examples": len(rows),
                                                 "settings": SETTINGS, "results": results}, indent=2))


if __name__ == "__main__":
    main()
