"""Does the recommender keep its test recall when the rebuilt turn order changes? (issue #25, item 1)

    OMP_NUM_THREADS=1 python examples/compare_turn_order_recall.py --output_dir runs/turn_order_recall \
        --results_file docs/results/turn_order_recall.json --seeds 42 43

For each ``--methods`` entry (a merge of ``datasets_scripts.turn_order.MERGE_METHODS``; default the
old loader default ``learned_merge`` and the new ``next_message_mbr``) the same recommender is
trained on ``--train_source reconstructed`` with the train split rebuilt by that merge: the quick
preset's model and stage flags (``--preset``), MIM pre-training capped at ``--mim_steps`` and the
recommender at ``--rec_steps`` (evaluated on validation every ``--eval_steps``, the best kept), the
same seeds and caps for every method (``--seeds``: one run per seed and method). Each is then
evaluated on the official test split (recommendation only, ``evaluate_model --skip_conversation``).
Validation and test do not depend on the merge; only the training rows do. A run whose
``record.json`` exists is read back, not trained again (nor a stage whose ``summary.json`` exists).
Writes ``--results_file`` after every run (an interrupted comparison keeps what finished): the
recall per method (mean over its seeds, each seed under ``per_seed``), the training split's sizes,
the steps, the settings, the command and the seconds.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout without `pip install -e .`

from run_pipeline import as_flags  # noqa: E402  (examples/run_pipeline.py)
from training_kgsf.evaluate_folder import evaluate_model  # noqa: E402
from training_kgsf.stages import pretrain_mim, train_recommender  # noqa: E402

DEFAULT_METHODS = ("learned_merge", "next_message_mbr")  # the loader's default before 2026-12-07, and after


def train_and_evaluate(method: str, seed: int, output_dir: Path, preset: dict, args) -> dict:
    """MIM -> recommender -> test recall for one merge and seed (a ``per_seed`` record of the results)."""
    data = {**preset.get("data", {}), "train_source": "reconstructed", "turn_order_method": method,
            "data_dir": args.data_dir, "cache_dir": args.cache_dir}
    model = preset.get("model", {})
    started = time.time()
    seconds = {}
    mim = {**model, **preset["mim"], "seed": seed, "max_steps": args.mim_steps, "output_dir": str(output_dir / "mim")}
    if args.mim_steps != 0 and not (output_dir / "mim" / "summary.json").exists():
        pretrain_mim(as_flags({**data, **mim}))
        seconds["mim"] = round(time.time() - started, 1)
    recommender = {**model, **preset["recommender"], "seed": seed, "max_steps": args.rec_steps, "eval_steps": args.eval_steps,
                   "output_dir": str(output_dir / "recommender")}
    if args.mim_steps != 0:
        recommender = {key: value for key, value in recommender.items() if key != "model_config"}
        recommender["init_from"] = str(output_dir / "mim" / "best")
    stage_started = time.time()
    if (output_dir / "recommender" / "summary.json").exists():  # a stage finished by an interrupted run
        summary = json.loads((output_dir / "recommender" / "summary.json").read_text(encoding="utf-8"))
    else:
        summary = train_recommender(as_flags({**data, **recommender}))
        seconds["recommender"] = round(time.time() - stage_started, 1)
    stage_started = time.time()
    evaluation = {**preset.get("evaluation", {}), "model": str(output_dir / "recommender" / "best"), "split": "test",
                  "skip_conversation": True, "output": str(output_dir / "test_metrics.json")}
    evaluation.pop("generation_examples", None)
    results = evaluate_model(as_flags({**data, **evaluation}))
    seconds["evaluation"] = round(time.time() - stage_started, 1)
    seconds["total"] = round(time.time() - started, 1)
    statistics = json.loads((output_dir / "recommender" / "data_statistics.json").read_text(encoding="utf-8"))
    mim_summary = output_dir / "mim" / "summary.json"
    record = {
        "recommendation": results["recommendation"],
        "train_rows": statistics["samples"]["train"],
        "train_conversations": statistics["conversations"]["train"],
        "train_rec_samples": sum(source["rec_samples"] for source in statistics["train_sources"].values()),
        "reconstructed_rows": statistics["train_sources"]["reconstructed"]["samples"],
        "turn_order_method": statistics.get("turn_order_method"),
        "steps": summary["steps"],
        "best_step": summary["best_step"],
        "epochs_seen": summary["epochs_seen"],
        "validation_best_score": summary["best_score"],
        "mim_steps": json.loads(mim_summary.read_text(encoding="utf-8"))["steps"] if mim_summary.exists() else 0,
        "seconds": seconds,
    }
    (output_dir / "record.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def describe_machine() -> str:
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    return f"{platform.node()}: {device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


def combine(records: dict[int, dict]) -> dict:
    """One method's entry: the recall averaged over its seeds (each seed's under ``per_seed``), the
    training split's sizes and the steps."""
    first = next(iter(records.values()))
    metrics = first["recommendation"]
    mean = {key: (sum(r["recommendation"][key] for r in records.values()) / len(records) if isinstance(value, float) else value)
            for key, value in metrics.items()}
    return {"recommendation": mean, "seeds": sorted(records),
            **{key: first[key] for key in ("train_rows", "train_conversations", "train_rec_samples", "reconstructed_rows",
                                            "turn_order_method", "steps", "epochs_seen", "mim_steps")},
            "per_seed": {str(seed): record for seed, record in sorted(records.items())}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), help="turn-order merges to compare")
    parser.add_argument("--preset", default="configuration/quick.json", help="model and stage flags (its mim and recommender sections)")
    parser.add_argument("--mim_steps", type=int, default=500, help="MIM pre-training steps (0: no MIM stage)")
    parser.add_argument("--rec_steps", type=int, default=2400, help="recommender steps")
    parser.add_argument("--eval_steps", type=int, default=400, help="validation evaluations of the recommender every N steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="one run per seed and method, seeds in the outer loop")
    parser.add_argument("--output_dir", default="runs/turn_order_recall")
    parser.add_argument("--results_file", default="docs/results/turn_order_recall.json")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--cache_dir", default=None)
    args = parser.parse_args(argv)
    preset = json.loads(Path(args.preset).read_text(encoding="utf-8"))
    started = time.time()
    settings = {
        "preset": args.preset, "model": preset.get("model", {}), "train_source": "reconstructed", "seeds": args.seeds,
        "mim": {**preset["mim"], "max_steps": args.mim_steps}, "recommender": {**preset["recommender"], "max_steps": args.rec_steps,
                                                                             "eval_steps": args.eval_steps},
        "evaluation": "official test split, recommendation only (evaluate_model --skip_conversation)",
        "note": "the same seeds, model and step caps for every method; only the turn order of the rebuilt training "
                "conversations differs (validation and test are the same rows)",
    }
    command = " ".join(["python", "examples/compare_turn_order_recall.py", *(argv if argv is not None else sys.argv[1:])])
    runs: dict[str, dict[int, dict]] = {method: {} for method in args.methods}
    for seed in args.seeds:
        for method in args.methods:
            folder = Path(args.output_dir) / method / f"seed_{seed}"
            if (folder / "record.json").exists():
                print(f"[turn order recall] {method}, seed {seed}: finished earlier, read back")
                runs[method][seed] = json.loads((folder / "record.json").read_text(encoding="utf-8"))
            else:
                runs[method][seed] = train_and_evaluate(method, seed, folder, preset, args)
            recall = runs[method][seed]["recommendation"]
            print(f"[turn order recall] {method}, seed {seed}: " + " ".join(f"R@{k} {recall[f'recall@{k}']:.4f}" for k in (1, 10, 50)),
                  flush=True)
            results = {  # written after every run, so that an interrupted comparison keeps what finished
                "methods": {name: combine(records) for name, records in runs.items() if records}, "settings": settings,
                "command": command, "date": datetime.date.today().isoformat(), "machine": describe_machine(),
                "seconds": round(time.time() - started, 1),
                "seconds_note": "this invocation; runs read back from an earlier one keep their own seconds under per_seed",
            }
            Path(args.results_file).parent.mkdir(parents=True, exist_ok=True)
            Path(args.results_file).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"[turn order recall] written to {args.results_file} in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
