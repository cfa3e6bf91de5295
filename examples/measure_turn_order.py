"""Measure the turn-order reconstruction of ReDial train (datasets_scripts/turn_order.py).

k-fold cross-validation over the ordered *training* conversations (the release's 500, CFCRS and
lmh85; validation and test never enter): each conversation is split into the two message lists the
zip holds, rebuilt by models fitted on the other folds, and compared with its true order. Also
reported: the baselines (strict alternation, relative-position merge; keyword role rule), the
loader's method (``default_method``) with ``rec_turn_item_sets_exact`` for every method, the check
of lmh85's text against the originals, and the statistics of every train source of
``load_redial``. Writes ``docs/results/turn_order.json``.

    python examples/measure_turn_order.py [--data_dir DIR] [--cache_dir DIR] [--folds 5] [--out FILE]
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path

from datasets_scripts import paths, turn_order
from datasets_scripts.redial import load_redial, load_resources, read_conversations

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "turn_order.json"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=None, help="the shared data folder (default: as datasets_scripts.paths resolves it)")
    parser.add_argument("--cache_dir", default=None, help="cache folder (default ~/.cache/kgsf)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"JSON file to write (default {DEFAULT_OUT})")
    parser.add_argument("--skip_sources", action="store_true", help="do not build load_redial's train sources (their statistics)")
    args = parser.parse_args(argv)
    start = time.time()
    root = paths.resolve_data_dir(args.data_dir)
    cache = paths.resolve_cache_dir(args.cache_dir)
    train = read_conversations(root / paths.TRAIN_FILE)
    validation = read_conversations(root / paths.VALID_FILE)
    test = read_conversations(root / paths.TEST_FILE)
    ordered = turn_order.ordered_examples(root, train, {"validation": validation, "test": test})
    resources = load_resources(root, cache)
    link = turn_order.MessageLinker(resources)
    cross_validation = turn_order.cross_validate(ordered.examples, args.folds, link, args.seed)
    per_source = dict(sorted(Counter(e.source for e in ordered.examples).items()))
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
        "python": sys.version.split()[0],
        "command": "python examples/measure_turn_order.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "folds": args.folds,
        "ordered_examples": len(ordered.examples),
        "ordered_examples_per_source": per_source,
        "ordered_sources": ordered.stats,
        "default_method": f"{turn_order.DEFAULT_METHOD}+learned_role",
        "cross_validation": cross_validation,
        "lmh85_check": turn_order.check_lmh85(root, train + validation),
        "merge_feature_weights": dict(zip(turn_order.merge_feature_names(), [round(float(w), 3) for w in turn_order.MergeModel.fit(ordered.examples).theta])),
    }
    if not args.skip_sources:
        _, statistics = load_redial(root, cache, resources=resources, return_statistics=True)
        result["default_train_source"] = statistics.get("train_source")
        result["train_sources"] = {name: {key: stats[key] for key in ("conversations", "turns", "samples", "samples_with_target", "rec_samples", "cold_start_rec_samples")}
                                   for name, stats in statistics.get("train_sources", {}).items()}
        result["turn_order_sources"] = statistics.get("turn_order")
        result["splits"] = {split: {key: statistics[split][key] for key in ("conversations", "samples", "rec_samples")} for split in ("train", "validation", "test")}
    result["seconds"] = round(time.time() - start, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    keys = ("role_accuracy", "rec_turn_item_sets_exact", "rec_turn_samples_exact", "message_position_accuracy", "turn_boundary_f1")
    print(json.dumps({name: {k: m.get(k) for k in keys} for name, m in cross_validation.items()}, indent=2))
    print(f"default method: {result['default_method']}")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
