"""The reference's schedule in one command, timed: MIM -> recommender -> conversation -> test of ``best`` and ``last``.

    python examples/run_gpu_schedule.py configuration/reference_gpu.json --output docs/results/gpu_schedule.json

The preset is a pipeline preset (``examples/run_pipeline.py``: one section of flags per stage, ``data``
and ``model`` shared) with a ``schedule`` section:

* ``deadline_seconds``: the whole command's wall-time goal (0: none). The conversation stage gets
  ``time_budget = deadline - seconds spent so far - evaluation_reserve_seconds`` (or its own
  ``time_budget`` when smaller): it runs its epochs or stops where the time is up, and the output
  says how many epochs it saw (``conversation_epochs``);
* ``evaluation_reserve_seconds``: the time kept for the test evaluations;
* ``protocols``: the test evaluations of each kept model (default ``["ours", "reference"]``).

The conversation stage keeps ``best/`` (validation perplexity) and, with ``save_last``, ``last/``;
both are evaluated on the test split under each protocol. The output JSON:
``{"device", "torch", "total_seconds", "stage_seconds", "conversation_examples_per_second",
"recommender_examples_per_second", "conversation_epochs", "test": {"best"|"last": {protocol: metrics}},
"stages": {stage: summary}, ...}``; examples per second are the stages' training steps only
(``summary.json``'s ``examples_per_second``: evaluations and saves left out).
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout without `pip install -e .`

import torch  # noqa: E402
from run_pipeline import STAGES, as_flags  # noqa: E402  (examples/run_pipeline.py)
from training_kgsf.data import DataArguments, KGSFData  # noqa: E402
from training_kgsf.evaluate_folder import evaluate_model  # noqa: E402
from training_kgsf.stages import hand_over_folder, hand_over_options  # noqa: E402

KEPT = ("best", "last")
SUMMARY_KEYS = ("steps", "epochs", "epochs_seen", "best_step", "best_score", "last_step", "last_score", "train_seconds",
                "overhead_seconds", "examples_seen", "examples_per_second", "learning_rate")


def device_name() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} GPU)"
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def test_record(results: dict) -> dict:
    """The test figures of one evaluation: recommendation, conversation, the reference protocol's
    figures when computed, and the sample replies."""
    return {key: results[key] for key in ("recommendation", "conversation", "reference_protocol", "human_replies", "generation",
                                          "samples") if key in results}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("preset", help="a JSON preset with a 'schedule' section (configuration/reference_gpu.json)")
    parser.add_argument("--output", required=True, help="the timings and test metrics, e.g. docs/results/gpu_schedule.json")
    parser.add_argument("--output_dir", default="runs/gpu_schedule", help="the stages' folders")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--cache_dir", default=None)
    parser.add_argument("--deadline_seconds", type=float, default=None, help="overrides the preset's schedule.deadline_seconds")
    args = parser.parse_args(argv)

    started = time.time()
    preset = json.loads(Path(args.preset).read_text(encoding="utf-8"))
    schedule = preset.get("schedule", {})
    deadline = schedule.get("deadline_seconds", 0) if args.deadline_seconds is None else args.deadline_seconds
    reserve = schedule.get("evaluation_reserve_seconds", 0)
    protocols = schedule.get("protocols", ["ours", "reference"])
    shared = {**preset.get("data", {}), "data_dir": args.data_dir, "cache_dir": args.cache_dir}
    output_dir = Path(args.output_dir)
    stage_seconds, summaries = {}, {}

    # the processed splits and word vectors, built once here (each stage then reads the cache)
    KGSFData(DataArguments(**{key: value for key, value in shared.items() if key in DataArguments.__dataclass_fields__}))
    stage_seconds["data"] = round(time.time() - started, 1)
    previous_best = None
    for name, stage in STAGES:
        if name not in preset:
            continue
        options = {**preset.get("model", {}), **hand_over_options(name), **preset[name], "output_dir": str(output_dir / name)}
        if previous_best is not None:
            options = {key: value for key, value in options.items() if key != "model_config"}
            options["init_from"] = str(previous_best)
        if name == "conversation" and deadline > 0:
            left = deadline - (time.time() - started) - reserve
            if left <= 0:
                sys.exit(f"error: no time left for the conversation stage ({time.time() - started:.0f} s spent, deadline "
                         f"{deadline:.0f} s, {reserve:.0f} s kept for the evaluation)")
            own = options.get("time_budget", -1)
            options["time_budget"] = round(min(left, own) if own and own > 0 else left, 1)
            print(f"[schedule] conversation time budget {options['time_budget']} s", flush=True)
        stage_started = time.time()
        stage(as_flags({**shared, **options}))
        stage_seconds[name] = round(time.time() - stage_started, 1)
        summary = json.loads((output_dir / name / "summary.json").read_text(encoding="utf-8"))
        summaries[name] = {key: summary[key] for key in SUMMARY_KEYS if key in summary}
        previous_best = hand_over_folder(name, output_dir / name)

    conversation_dir = output_dir / "conversation"
    kept = [folder for folder in KEPT if (conversation_dir / folder / "config.json").is_file()] if "conversation" in preset else []
    evaluated = {folder: conversation_dir / folder for folder in kept} or {"best": previous_best}
    test = {}
    evaluation_started = time.time()
    for folder, model in evaluated.items():
        test[folder] = {}
        for protocol in protocols:
            evaluation = {**preset.get("evaluation", {}), "model": str(model), "protocol": protocol,
                          "output": str(output_dir / f"test_{folder}_{protocol}.json")}
            test[folder][protocol] = test_record(evaluate_model(as_flags({**shared, **evaluation})))
    stage_seconds["evaluation"] = round(time.time() - evaluation_started, 1)
    total = round(time.time() - started, 1)

    def rate(stage):
        return summaries.get(stage, {}).get("examples_per_second")

    record = {
        "device": device_name(),
        "torch": torch.__version__,
        "total_seconds": total,
        "stage_seconds": stage_seconds,
        "conversation_examples_per_second": rate("conversation"),
        "recommender_examples_per_second": rate("recommender"),
        "mim_examples_per_second": rate("mim"),
        "conversation_epochs": summaries.get("conversation", {}).get("epochs_seen"),
        "deadline_seconds": deadline,
        "within_deadline": bool(deadline <= 0 or total <= deadline),
        "test": test,
        "stages": summaries,
        "preset": Path(args.preset).stem,
        "preset_settings": preset,
        "command": "python " + " ".join(shlex.quote(a) for a in ["examples/run_gpu_schedule.py", *(sys.argv[1:] if argv is None else argv)]),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"[schedule] done in {total:.0f} s: {stage_seconds}; written to {args.output}")
    return record


if __name__ == "__main__":
    main()
