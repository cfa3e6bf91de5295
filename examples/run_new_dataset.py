"""A recorded new-dataset run: convert -> check -> train from scratch -> fine-tune a ReDial model -> evaluate.

    python examples/run_new_dataset.py /path/to/unicrs/inspired --layout unicrs --name inspired \\
        --base runs/quick/conversation/best --work_dir runs/inspired --output docs/results/new_dataset.json

Each step is the command a user runs (docs/CRS_FORMAT.md), run as a subprocess and timed; the
commands are recorded in the output. The two models train with the same preset
(``configuration/new_dataset.json`` by default); both are evaluated on the converted test split
(``evaluate_kgsf.py``: recommendation, perplexity and every test reply with the default decoding,
``--show_samples`` replies written out for reading). Writes ``{"dataset", "models": {"scratch" |
"finetuned": {"recommendation", "conversation", "human_replies", "samples", "folder"}}, "seconds",
"commands", "date", "machine"}``. A step whose output exists is skipped on a re-run (``--resume``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def run(command: list, log: Path) -> float:
    """Run ``command`` from the repository root, its output to ``log``; seconds taken. A failure
    ends the script with the command and the end of its log."""
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        result = subprocess.run([str(part) for part in command], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode:
        tail = log.read_text(encoding="utf-8", errors="replace")[-1500:]
        sys.exit(f"error: {shlex.join(map(str, command))} failed ({result.returncode}); the end of {log}:\n{tail}")
    return round(time.perf_counter() - started, 1)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="the dataset as shipped (a UniCRS or CRSLab folder)")
    parser.add_argument("--layout", choices=("unicrs", "crslab"), default="unicrs")
    parser.add_argument("--name", required=True, help="the dataset's name (dataset.json)")
    parser.add_argument("--base", required=True, help="the ReDial model to fine-tune (a conversation/best folder)")
    parser.add_argument("--work_dir", required=True, help="converted data, runs and logs go here")
    parser.add_argument("--preset", default="configuration/new_dataset.json")
    parser.add_argument("--data_dir", default=None, help="the ReDial data (ConceptNet for the word graph); default as the scripts")
    parser.add_argument("--show_samples", type=int, default=10)
    parser.add_argument("--resume", action="store_true", help="skip the steps whose output exists")
    parser.add_argument("--output", default="docs/results/new_dataset.json")
    args = parser.parse_args(argv)

    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    dataset = work / "dataset"
    data_flags = ["--data_dir", args.data_dir] if args.data_dir else []
    steps = {
        "convert": (dataset / "dataset.json", [PYTHON, "-m", "datasets_scripts.convert_crs", args.layout, args.source, dataset, "--name", args.name]),
        "check": (None, [PYTHON, "-m", "datasets_scripts.crs_format", dataset, *(["--data-dir", args.data_dir] if args.data_dir else [])]),
        "scratch": (work / "scratch" / "conversation" / "best" / "config.json",
                    [PYTHON, "examples/run_pipeline.py", args.preset, "--dataset_dir", dataset, "--output_dir", work / "scratch", *data_flags]),
        "finetuned": (work / "finetuned" / "conversation" / "best" / "config.json",
                      [PYTHON, "examples/run_pipeline.py", args.preset, "--dataset_dir", dataset, "--init_from", args.base,
                       "--output_dir", work / "finetuned", *data_flags]),
    }
    for model in ("scratch", "finetuned"):
        steps[f"evaluate_{model}"] = (work / f"{model}_test.json",
                                      [PYTHON, "examples/evaluate_kgsf.py", "--model", work / model / "conversation" / "best",
                                       "--dataset_dir", dataset, "--show_samples", args.show_samples, "--output", work / f"{model}_test.json",
                                       *data_flags])
    timings = work / "seconds.json"  # kept across --resume, so that the record has every step's time
    seconds = json.loads(timings.read_text()) if args.resume and timings.exists() else {}
    commands = {}
    for name, (done, command) in steps.items():
        commands[name] = shlex.join(map(str, command))
        if args.resume and done is not None and done.exists():
            print(f"[{name}] done before, skipped", flush=True)
            continue
        print(f"[{name}] {commands[name]}", flush=True)
        seconds[name] = run(command, work / f"{name}.log")
        timings.write_text(json.dumps(seconds, indent=1))
        print(f"[{name}] {seconds[name]} s", flush=True)
    models = {}
    for model in ("scratch", "finetuned"):
        metrics = json.loads((work / f"{model}_test.json").read_text(encoding="utf-8"))
        models[model] = {key: metrics.get(key) for key in ("recommendation", "conversation", "human_replies", "generation", "samples")}
        models[model]["folder"] = str(work / model / "conversation" / "best")
    report = work / "dataset" / "conversion_report.json"
    result = {
        "dataset": args.name, "layout": args.layout, "source": str(args.source), "base_model": args.base, "preset": args.preset,
        "conversion_report": json.loads(report.read_text(encoding="utf-8")) if report.exists() else None,
        "models": models, "seconds": seconds, "commands": commands,
        "command": shlex.join(["python", "examples/run_new_dataset.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, no GPU",
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for model, entry in models.items():
        conversation = entry["conversation"] or {}
        print(f"{model}: R@1/10/50 " + " / ".join(f"{entry['recommendation'].get(f'recall@{k}', 0):.3f}" for k in (1, 10, 50))
              + f"; item ratio {conversation.get('item_ratio')}; loop rate {conversation.get('loop_rate')}; PPL {conversation.get('perplexity')}")
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
