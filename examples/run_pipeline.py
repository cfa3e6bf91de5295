"""The whole of Algorithm 1 in one command: MIM pre-training -> recommender -> conversation -> test.

    python examples/run_pipeline.py configuration/quick.json --output_dir runs/quick
    accelerate launch examples/run_pipeline.py configuration/full.json --output_dir runs/full

A preset (see ``configuration/``) has one section of flags per stage (``mim``, ``recommender``,
``conversation``, ``evaluation``) plus ``data`` and ``model`` flags shared by all; each stage
starts from the previous stage's ``best/`` folder, the recommender from MIM's ``last/`` (its weights
after the last step, as the reference keeps them: ``training_kgsf.stages.HAND_OVER``). Flags given after the preset override every
stage's ``data`` section (e.g. ``--data_dir``). ``--resume`` resumes each unfinished stage and
skips finished ones. ``--results_file docs/results/quick.json`` also writes the test metrics there
(with the preset and the timings).

Another dataset (generic CRS format, ``docs/CRS_FORMAT.md``), from scratch or from a ReDial model::

    python examples/run_pipeline.py configuration/quick.json --dataset_dir DATASET --output_dir runs/new
    python examples/run_pipeline.py configuration/new_dataset.json --dataset_dir DATASET --init_from runs/quick/conversation/best --output_dir runs/ft
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout without `pip install -e .`

import adapt_model  # noqa: E402  (examples/adapt_model.py)
from accelerate import PartialState  # noqa: E402
from training_kgsf.evaluate_folder import evaluate_model  # noqa: E402
from training_kgsf.stages import hand_over_folder, hand_over_options, pretrain_mim, train_conversation, train_recommender  # noqa: E402

STAGES = (("mim", pretrain_mim), ("recommender", train_recommender), ("conversation", train_conversation))


def as_flags(options: dict) -> list[str]:
    flags = []
    for key, value in options.items():
        if value is None:
            continue
        flags += [f"--{key}", json.dumps(value) if isinstance(value, bool) else str(value)]
    return flags


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("preset", help="a JSON preset from configuration/")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--cache_dir", default=None)
    parser.add_argument("--dataset_dir", default=None,
                        help="train on a dataset folder in the generic CRS format (docs/CRS_FORMAT.md) instead of ReDial")
    parser.add_argument("--init_from", default=None,
                        help="start from this trained model folder instead of the preset's model config; with --dataset_dir "
                             "it is first adapted to the dataset's vocabulary and graphs (examples/adapt_model.py)")
    parser.add_argument("--resume", action="store_true", help="resume unfinished stages, skip finished ones")
    parser.add_argument("--results_file", default=None,
                        help="also write the test metrics (as in OUTPUT_DIR/test_metrics.json) with the preset and the timings "
                             "to this file, e.g. docs/results/quick.json")
    args = parser.parse_args(argv)

    preset = json.loads(Path(args.preset).read_text(encoding="utf-8"))
    shared = {**preset.get("data", {}), "data_dir": args.data_dir, "cache_dir": args.cache_dir, "dataset_dir": args.dataset_dir}
    if args.dataset_dir:  # ReDial-only options
        shared = {key: value for key, value in shared.items() if key not in ("include_recovered", "train_files", "train_source")}
    output_dir = Path(args.output_dir)
    started = time.time()
    previous_best = None
    timings = {}
    if args.init_from:
        previous_best = Path(args.init_from)
        if args.dataset_dir:
            adapted = output_dir / "adapted"
            if not (args.resume and (adapted / "config.json").exists()):
                adapt_model.main(as_flags({"model": args.init_from, "dataset_dir": args.dataset_dir, "output_dir": str(adapted),
                                           "data_dir": args.data_dir, "cache_dir": args.cache_dir}))
            previous_best = adapted
            timings["adapt"] = round(time.time() - started, 1)
    for name, stage in STAGES:
        if name not in preset:
            continue
        stage_dir = output_dir / name
        stage_started = time.time()
        if args.resume and (stage_dir / "summary.json").exists():
            print(f"[pipeline] {name}: finished earlier, skipped")
        else:
            options = {**preset.get("model", {}), **hand_over_options(name), **preset[name], "output_dir": str(stage_dir), "resume": args.resume}
            if previous_best is not None:
                options = {key: value for key, value in options.items() if key != "model_config"}
                options["init_from"] = str(previous_best)
            stage(as_flags({**shared, **options}))
        timings[name] = round(time.time() - stage_started, 1)
        previous_best = hand_over_folder(name, stage_dir)

    evaluation = {**preset.get("evaluation", {}), "model": str(previous_best), "output": str(output_dir / "test_metrics.json")}
    stage_started = time.time()
    results = evaluate_model(as_flags({**shared, **evaluation}))
    timings["evaluation"] = round(time.time() - stage_started, 1)
    timings["total"] = round(time.time() - started, 1)
    (output_dir / "timings.json").write_text(json.dumps(timings, indent=2), encoding="utf-8")
    if args.results_file and PartialState().is_main_process:
        record = {"preset": Path(args.preset).stem, "preset_settings": preset, **results, "timings": timings}
        Path(args.results_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results_file).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"[pipeline] test metrics written to {args.results_file}")
    print(f"[pipeline] done in {timings['total']:.0f} s: {timings}")


if __name__ == "__main__":
    main()
