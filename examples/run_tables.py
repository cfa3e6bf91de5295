"""Train and evaluate the models of the paper's tables on our data, one after another.

    python examples/run_tables.py rec --output_dir runs/tables            # Table 2 (recommendation)
    python examples/run_tables.py conv --output_dir runs/tables           # Table 3 (conversation)
    python examples/run_tables.py rec --only kgsf kgsf_no_mim             # a subset
    python examples/run_tables.py rec --only redial kbrd --results_dir docs/results   # + docs/results/rec_table.json

Every variant runs as its own subprocess (the stage scripts of examples/, so each number comes
from a command a user can run alone; the commands are printed and stored in ``commands.txt``),
writes ``<variant>/test_metrics.json``, and finished variants are skipped on a re-run, so an
interrupted run continues with ``--resume``-like behaviour. ``--seeds 1 2 3`` trains each selected
variant once per seed (the rec table then gives mean ± std); ``--jobs N`` runs N of them at a time. ``summary.md`` collects the table.
Recommender runs evaluate on validation every ``--eval_steps`` steps, which gives the curves of
Figure 2 (``examples/plot_curves.py``). With ``--results_dir DIR`` the finished rows are also merged
into ``DIR/rec_table.json`` / ``DIR/conv_table.json`` as ``{"models": {name: metrics}}``.

The paper's other systems: ``redial`` runs ``examples/train_redial.py`` (HRED + autoencoder
recommender + switch; ``--stage recommender`` for Table 2, ``--stage conversation`` from that
recommender for Table 3); ``kbrd`` is KGSF's stages with KBRD's switches (the same commands as
``examples/train_kbrd.py``): the recommender with ``use_conceptnet=false,use_mim=false``, the
conversation model with ``use_kg_attention=false,use_copy=false,user_vocab_bias=true``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable

# recommendation variants: (description, config overrides, MIM pre-training first? True: start from its best/,
# "last": from its last/); overrides None = a
# baseline of train_baseline.py, or of its own script (SCRIPT_BASELINES)
REC_VARIANTS = {
    "popularity": ("Popularity", None, False),
    "textcnn": ("TextCNN", None, False),
    "redial": ("REDIAL (autoencoder over the mentioned items; no sentiment module)", None, False),
    "kbrd": ("KBRD (DBpedia R-GCN + self-attention over the context entities)", "use_conceptnet=false,use_mim=false", False),
    "kbrd_like": ("KBRD-like (DBpedia R-GCN only: no word graph, no MIM)", "use_conceptnet=false,use_mim=false", False),
    "kgsf": ("KGSF", "", True),
    "kgsf_no_mim": ("KGSF -MIM", "use_mim=false", False),
    # the reference keeps the MIM stage's last weights; "kgsf" starts from the best by validation MIM loss
    "kgsf_mim_last": ("KGSF, recommender from the MIM stage's last weights", "", "last"),
    "kgsf_no_db": ("KGSF -DB", "use_dbpedia=false", True),
    "kgsf_embedding": ("KGSF, item-graph encoder over 32-d entity embeddings", "item_graph_encoder=embedding", True),
}
# conversation variants: (description, config overrides for the conversation stage, recommender variant it starts from)
CONV_VARIANTS = {
    "transformer": ("Transformer (no KG: no KG attention, no copy)", "use_kg_attention=false,use_copy=false", "kgsf"),
    "kgsf": ("KGSF", "", "kgsf"),
    "kgsf_no_kg_attention": ("KGSF without KG attention in the decoder", "use_kg_attention=false", "kgsf"),
    "kgsf_no_copy": ("KGSF without copy", "use_copy=false", "kgsf"),
    "kgsf_no_mim": ("KGSF without MIM", "", "kgsf_no_mim"),
    "redial": ("REDIAL (HRED + switch to the recommender's items)", None, "redial"),
    "kbrd": ("KBRD (Transformer + vocabulary bias from the user vector)", "use_kg_attention=false,use_copy=false,user_vocab_bias=true", "kbrd"),
}
SCRIPT_BASELINES = {"redial": "train_redial.py"}  # variants trained by their own script (both tables)


_COMMANDS_LOCK = threading.Lock()


def run(command: list[str], log: Path, commands: Path) -> None:
    printable = " ".join(shlex.quote(part) for part in command)
    print(f"[tables] $ {printable}", flush=True)
    with _COMMANDS_LOCK, commands.open("a", encoding="utf-8") as handle:
        handle.write(printable + "\n")
    with log.open("a", encoding="utf-8") as handle:
        subprocess.run(command, check=True, stdout=handle, stderr=subprocess.STDOUT)


def run_directory(root: Path, table: str, name: str, seed: int, first_seed: int) -> Path:
    """``<root>/<table>/<name>`` for the first seed (what the conversation table starts from),
    ``<root>/<table>/<name>_seed<k>`` for the others."""
    return root / table / (name if seed == first_seed else f"{name}_seed{seed}")


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", choices=["rec", "conv"])
    parser.add_argument("--output_dir", default="runs/tables")
    parser.add_argument("--only", nargs="*", default=None, help="variants to run (default: all)")
    parser.add_argument("--model_config", default="configuration/kgsf_reference.json")
    parser.add_argument("--mim_epochs", type=int, default=3)
    parser.add_argument("--mim_max_steps", type=int, default=-1, help="bound on MIM pre-training steps (-1: none)")
    parser.add_argument("--rec_epochs", type=int, default=20)
    parser.add_argument("--rec_time_budget", type=float, default=-1, help="seconds per recommender run (-1: none)")
    parser.add_argument("--conv_epochs", type=int, default=20)
    parser.add_argument("--conv_time_budget", type=float, default=-1, help="seconds per conversation run (-1: none)")
    parser.add_argument("--eval_steps", type=int, default=50)
    parser.add_argument("--patience", type=int, default=9, help="evaluations without improvement (9 x 50 steps = about 3 epochs)")
    parser.add_argument("--conv_patience", type=int, default=3,
                        help="conversation: epochs without a lower validation perplexity before stopping (it evaluates once per epoch)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="rec: train every selected variant once per seed; the table gives mean, std and each seed "
                             "(default: --seed alone)")
    parser.add_argument("--jobs", type=int, default=1, help="variant runs at a time (on a GPU several small runs share it well)")
    parser.add_argument("--generation_examples", type=int, default=-1)
    parser.add_argument("--train_flags", default="",
                        help="flags for the training scripts only (MIM, recommender, conversation), not for the evaluation, "
                             "e.g. '--batch_size 256 --lr_scale_with_batch sqrt' for the recommender table on a CPU")
    parser.add_argument("--results_name", default=None,
                        help="file name under --results_dir (default <table>_table.json), e.g. a CPU run beside the GPU table")
    parser.add_argument("--results_dir", default=None,
                        help="also merge the finished rows into RESULTS_DIR/<table>_table.json ({\"models\": {name: metrics}}), "
                             "e.g. docs/results")
    # any other flag (e.g. --data_dir D, --cache_dir C) is passed to every script
    return parser.parse_known_args(argv)


def main(argv=None):
    args, data_flags = parse_arguments(argv)
    root = Path(args.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    variants = REC_VARIANTS if args.table == "rec" else CONV_VARIANTS
    selected = args.only or list(variants)
    for name in selected:
        if name not in variants:
            raise SystemExit(f"unknown {args.table} variant {name!r}: choose from {', '.join(variants)}")
    seeds = args.seeds or [args.seed]
    if args.table == "conv" and len(seeds) > 1:
        raise SystemExit("--seeds is for the rec table (the conversation table starts from the first seed's recommenders)")
    jobs = [(name, seed) for name in selected for seed in seeds]
    failures = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_variant, args, data_flags, root, variants, name, seed, seeds[0]): (name, seed) for name, seed in jobs}
        for future in as_completed(futures):
            try:
                future.result()
            except subprocess.CalledProcessError as error:  # the other runs go on; the table says which failed
                name, seed = futures[future]
                failures.append(f"{name} (seed {seed})")
                print(f"[tables] {args.table}/{name} seed {seed} failed: {error}; log in "
                      f"{run_directory(root, args.table, name, seed, seeds[0]) / 'log.txt'}", flush=True)
    write_summary(root, args.table, variants)
    if args.results_dir:
        write_results_json(root, args.table, variants, Path(args.results_dir), args.results_name,
                           command=shlex.join(["python", "examples/run_tables.py", *(argv if argv is not None else sys.argv[1:])]))
    if failures:
        raise SystemExit(f"failed: {', '.join(failures)}")


def run_variant(args, data_flags: list[str], root: Path, variants: dict, name: str, seed: int, first_seed: int) -> None:
    """Train and evaluate one variant with one seed into its run directory (skipped when done earlier)."""
    out = run_directory(root, args.table, name, seed, first_seed)
    if (out / "test_metrics.json").exists():
        print(f"[tables] {args.table}/{out.name}: done earlier, skipped")
        return
    out.mkdir(parents=True, exist_ok=True)
    commands, log = root / "commands.txt", out / "log.txt"
    common = ["--seed", str(seed), *data_flags]
    training = shlex.split(args.train_flags)
    started = time.time()
    if args.table == "rec":
        description, overrides, pretrain = variants[name]
        rec_schedule = ["--num_epochs", str(args.rec_epochs), "--eval_steps", str(args.eval_steps), "--patience", str(args.patience),
                        "--time_budget", str(args.rec_time_budget), "--checkpoint_steps", "0"]
        if name in SCRIPT_BASELINES:
            run([PYTHON, str(HERE / SCRIPT_BASELINES[name]), "--stage", "recommender", "--output_dir", str(out), *rec_schedule, *common],
                log, commands)
        elif overrides is None:  # a baseline
            run([PYTHON, str(HERE / "train_baseline.py"), "--baseline", name, "--output_dir", str(out), *rec_schedule, *common], log, commands)
        else:
            model_flags = ["--model_config", args.model_config, "--config_overrides", overrides]
            if pretrain:
                last = ["--save_last", "true"] if pretrain == "last" else []
                run([PYTHON, str(HERE / "pretrain_mim.py"), "--output_dir", str(out / "mim"), "--num_epochs", str(args.mim_epochs),
                     "--max_steps", str(args.mim_max_steps), "--checkpoint_steps", "0", *last, *model_flags, *training, *common], log, commands)
                model_flags = ["--init_from", str(out / "mim" / ("last" if pretrain == "last" else "best"))]
            run([PYTHON, str(HERE / "train_recommender.py"), "--output_dir", str(out / "rec"), *rec_schedule, *model_flags, *training, *common],
                log, commands)
            run([PYTHON, str(HERE / "evaluate_kgsf.py"), "--model", str(out / "rec" / "best"), "--skip_conversation", "true",
                 "--output", str(out / "test_metrics.json"), *data_flags], log, commands)
    else:
        description, overrides, rec_variant = variants[name]
        rec_best = root / "rec" / rec_variant / "rec" / "best"
        if not rec_best.exists():
            raise SystemExit(f"conversation variant {name} starts from {rec_best}: run `run_tables.py rec --only {rec_variant}` first")
        if name in SCRIPT_BASELINES:  # trains and evaluates in one command
            run([PYTHON, str(HERE / SCRIPT_BASELINES[name]), "--stage", "conversation", "--init_from", str(rec_best),
                 "--output_dir", str(out), "--num_epochs", str(args.conv_epochs), "--patience", str(args.conv_patience),
                 "--time_budget", str(args.conv_time_budget), "--checkpoint_steps", "200",
                 "--generation_examples", str(args.generation_examples), *common], log, commands)
        else:
            run([PYTHON, str(HERE / "train_conversation.py"), "--output_dir", str(out / "conv"), "--init_from", str(rec_best),
                 "--config_overrides", overrides, "--num_epochs", str(args.conv_epochs), "--patience", str(args.conv_patience),
                 "--time_budget", str(args.conv_time_budget), "--checkpoint_steps", "200", *training, *common], log, commands)
            run([PYTHON, str(HERE / "evaluate_kgsf.py"), "--model", str(out / "conv" / "best"), "--output", str(out / "test_metrics.json"),
                 "--generation_examples", str(args.generation_examples), *data_flags], log, commands)
    metrics = json.loads((out / "test_metrics.json").read_text())
    statistics = out / "rec" / "data_statistics.json"
    if statistics.exists():
        metrics["train_conversations"] = json.loads(statistics.read_text())["conversations"]["train"]
    metrics.update(variant=name, seed=seed, description=description, wall_seconds=round(time.time() - started, 1))
    (out / "test_metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")


def seed_runs(root: Path, table: str, name: str) -> list[dict]:
    """The finished runs of a variant, one per seed (its first-seed folder and ``<name>_seed<k>`` folders)."""
    folders = [root / table / name, *sorted((root / table).glob(f"{name}_seed*"))]
    return [json.loads((folder / "test_metrics.json").read_text()) for folder in folders if (folder / "test_metrics.json").exists()]


def aggregate_seeds(runs: list[dict], section: str) -> dict:
    """``{metric: {"mean", "std", "seeds": [values], "seed_ids": [...]}}`` over the runs of one variant
    (std: sample standard deviation, None for one run)."""
    numbers = [name for name, value in runs[0][section].items() if isinstance(value, (int, float)) and not isinstance(value, bool)]
    row = {}
    for metric in numbers:
        values = [run[section][metric] for run in runs]
        row[metric] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
                       "seeds": values, "seed_ids": [run.get("seed") for run in runs]}
    return row


def write_results_json(root: Path, table: str, variants: dict, results_dir: Path, name: str | None = None,
                       command: str | None = None) -> Path:
    """Merge every finished variant into ``results_dir/<name>`` (default ``<table>_table.json``) =
    ``{"models": {name: metrics}}``; rows of other variants already in the file are kept. Rec rows
    give each metric as ``{"mean", "std", "seeds"}`` over the variant's seeds, and the file the
    number of training conversations; conversation rows give the metrics of the run. ``command``
    (the run's, with the date and machine) is recorded as the file's last writer."""
    path = results_dir / (name or f"{table}_table.json")
    table_json = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if command:
        table_json["last_written_by"] = {"command": command, "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                         "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}"}
    models = table_json.setdefault("models", {})
    section = "recommendation" if table == "rec" else "conversation"
    for name in variants:
        runs = seed_runs(root, table, name)
        if not runs:
            continue
        models[name] = aggregate_seeds(runs, section) if table == "rec" else runs[0][section]
        counts = {run["train_conversations"] for run in runs if "train_conversations" in run}
        if counts:
            table_json["train_conversations"] = max(counts)
    results_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table_json, indent=2) + "\n", encoding="utf-8")
    print(f"[tables] {len(models)} rows in {path}")
    return path


def write_summary(root: Path, table: str, variants: dict) -> None:
    rows = []
    for name, (description, *_rest) in variants.items():
        runs = seed_runs(root, table, name)
        if not runs:
            continue
        minutes = f"{sum(run['wall_seconds'] for run in runs) / len(runs) / 60:.0f}"
        if table == "rec":
            aggregated = aggregate_seeds(runs, "recommendation")
            keys = ["recall@1", "recall@10", "recall@50", "cold_start_recall@1", "cold_start_recall@10", "cold_start_recall@50",
                    "dedup_turns_recall@1", "dedup_turns_recall@10", "dedup_turns_recall@50",
                    "dedup_filtered_recall@1", "dedup_filtered_recall@10", "dedup_filtered_recall@50"]
            # runs evaluated before the dedup protocols were named hold dedup_filtered as "dedup_recall@k"
            values = [aggregated.get(key) or aggregated.get(key.replace("dedup_filtered_", "dedup_")) for key in keys]
            cells = ["-" if value is None else f"{value['mean']:.3f}" + (f" ± {value['std']:.3f}" if value["std"] is not None else "")
                     for value in values]
            rows.append([description, str(len(runs))] + cells + [minutes])
        else:
            conv = runs[0]["conversation"]
            keys = ["distinct-2", "distinct-3", "distinct-4", "distinct-4_per_sentence", "item_ratio", "bleu-1", "bleu-4", "perplexity"]
            rows.append([description] + [f"{conv[key]:.3f}" for key in keys] + [minutes])
    if table == "rec":
        header = ["model", "seeds", "R@1", "R@10", "R@50", "cold R@1", "cold R@10", "cold R@50", "dedup_turns R@1",
                  "dedup_turns R@10", "dedup_turns R@50", "dedup_filtered R@1", "dedup_filtered R@10", "dedup_filtered R@50", "min"]
    else:
        header = ["model", "Dist-2", "Dist-3", "Dist-4", "Dist-4/sent", "item ratio", "BLEU-1", "BLEU-4", "PPL", "min"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(row) + " |" for row in rows]
    (root / f"summary_{table}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
