"""Train and evaluate the models of the paper's tables on our data, one after another.

    python examples/run_tables.py rec --output_dir runs/tables            # Table 2 (recommendation)
    python examples/run_tables.py conv --output_dir runs/tables           # Table 3 (conversation)
    python examples/run_tables.py rec --only kgsf kgsf_no_mim             # a subset
    python examples/run_tables.py rec --only redial kbrd --results_dir docs/results   # + docs/results/rec_table.json

Every variant runs as its own subprocess (the stage scripts of examples/, so each number comes
from a command a user can run alone; the commands are printed and stored in ``commands.txt``),
writes ``<variant>/test_metrics.json``, and finished variants are skipped on a re-run, so an
interrupted run continues with ``--resume``-like behaviour. ``summary.md`` collects the table.
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
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable

# recommendation variants: (description, config overrides, MIM pre-training first?); overrides None = a
# baseline of train_baseline.py, or of its own script (SCRIPT_BASELINES)
REC_VARIANTS = {
    "popularity": ("Popularity", None, False),
    "textcnn": ("TextCNN", None, False),
    "redial": ("REDIAL (autoencoder over the mentioned items; no sentiment module)", None, False),
    "kbrd": ("KBRD (DBpedia R-GCN + self-attention over the context entities)", "use_conceptnet=false,use_mim=false", False),
    "kbrd_like": ("KBRD-like (DBpedia R-GCN only: no word graph, no MIM)", "use_conceptnet=false,use_mim=false", False),
    "kgsf": ("KGSF", "", True),
    "kgsf_no_mim": ("KGSF -MIM", "use_mim=false", False),
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


def run(command: list[str], log: Path, commands: Path) -> None:
    printable = " ".join(shlex.quote(part) for part in command)
    print(f"[tables] $ {printable}", flush=True)
    with commands.open("a", encoding="utf-8") as handle:
        handle.write(printable + "\n")
    with log.open("a", encoding="utf-8") as handle:
        subprocess.run(command, check=True, stdout=handle, stderr=subprocess.STDOUT)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", choices=["rec", "conv"])
    parser.add_argument("--output_dir", default="runs/tables")
    parser.add_argument("--only", nargs="*", default=None, help="variants to run (default: all)")
    parser.add_argument("--model_config", default="configuration/kgsf_reference.json")
    parser.add_argument("--mim_epochs", type=int, default=3)
    parser.add_argument("--rec_epochs", type=int, default=20)
    parser.add_argument("--conv_epochs", type=int, default=20)
    parser.add_argument("--conv_time_budget", type=float, default=-1, help="seconds per conversation run (-1: none)")
    parser.add_argument("--eval_steps", type=int, default=50)
    parser.add_argument("--patience", type=int, default=9, help="evaluations without improvement (9 x 50 steps = about 3 epochs)")
    parser.add_argument("--conv_patience", type=int, default=3,
                        help="conversation: epochs without a lower validation perplexity before stopping (it evaluates once per epoch)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--generation_examples", type=int, default=-1)
    parser.add_argument("--results_dir", default=None,
                        help="also merge the finished rows into RESULTS_DIR/<table>_table.json ({\"models\": {name: metrics}}), "
                             "e.g. docs/results")
    # any other flag (e.g. --data_dir D, --cache_dir C) is passed to every script
    args, data_flags = parser.parse_known_args(argv)
    root = Path(args.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    commands, log = root / "commands.txt", root / "log.txt"
    common = ["--seed", str(args.seed), *data_flags]
    variants = REC_VARIANTS if args.table == "rec" else CONV_VARIANTS
    selected = args.only or list(variants)
    for name in selected:
        if name not in variants:
            raise SystemExit(f"unknown {args.table} variant {name!r}: choose from {', '.join(variants)}")

    for name in selected:
        out = root / args.table / name
        if (out / "test_metrics.json").exists():
            print(f"[tables] {args.table}/{name}: done earlier, skipped")
            continue
        started = time.time()
        if args.table == "rec":
            description, overrides, pretrain = variants[name]
            if name in SCRIPT_BASELINES:
                run([PYTHON, str(HERE / SCRIPT_BASELINES[name]), "--stage", "recommender", "--output_dir", str(out),
                     "--num_epochs", str(args.rec_epochs), "--eval_steps", str(args.eval_steps), "--patience", str(args.patience),
                     "--checkpoint_steps", "0", *common], log, commands)
            elif overrides is None:  # a baseline
                run([PYTHON, str(HERE / "train_baseline.py"), "--baseline", name, "--output_dir", str(out),
                     "--num_epochs", str(args.rec_epochs), "--eval_steps", str(args.eval_steps), "--patience", str(args.patience),
                     "--checkpoint_steps", "0", *common], log, commands)
            else:
                model_flags = ["--model_config", args.model_config, "--config_overrides", overrides]
                if pretrain:
                    run([PYTHON, str(HERE / "pretrain_mim.py"), "--output_dir", str(out / "mim"), "--num_epochs", str(args.mim_epochs),
                         "--checkpoint_steps", "0", *model_flags, *common], log, commands)
                    model_flags = ["--init_from", str(out / "mim" / "best")]
                run([PYTHON, str(HERE / "train_recommender.py"), "--output_dir", str(out / "rec"), "--num_epochs", str(args.rec_epochs),
                     "--eval_steps", str(args.eval_steps), "--patience", str(args.patience), "--checkpoint_steps", "0",
                     *model_flags, *common], log, commands)
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
                     "--time_budget", str(args.conv_time_budget), "--checkpoint_steps", "200", *common], log, commands)
                run([PYTHON, str(HERE / "evaluate_kgsf.py"), "--model", str(out / "conv" / "best"), "--output", str(out / "test_metrics.json"),
                     "--generation_examples", str(args.generation_examples), *data_flags], log, commands)
        metrics = json.loads((out / "test_metrics.json").read_text())
        metrics.update(variant=name, description=description, wall_seconds=round(time.time() - started, 1))
        (out / "test_metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    write_summary(root, args.table, variants)
    if args.results_dir:
        write_results_json(root, args.table, variants, Path(args.results_dir))


def write_results_json(root: Path, table: str, variants: dict, results_dir: Path) -> Path:
    """Merge every finished variant's test metrics (its ``recommendation`` or ``conversation``
    section) into ``results_dir/<table>_table.json`` = ``{"models": {name: metrics}}``; rows of
    other variants already in the file are kept."""
    path = results_dir / f"{table}_table.json"
    table_json = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    models = table_json.setdefault("models", {})
    section = "recommendation" if table == "rec" else "conversation"
    for name in variants:
        metrics_file = root / table / name / "test_metrics.json"
        if metrics_file.exists():
            models[name] = json.loads(metrics_file.read_text(encoding="utf-8"))[section]
    results_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table_json, indent=2) + "\n", encoding="utf-8")
    print(f"[tables] {len(models)} rows in {path}")
    return path


def write_summary(root: Path, table: str, variants: dict) -> None:
    rows = []
    for name, (description, *_rest) in variants.items():
        path = root / table / name / "test_metrics.json"
        if not path.exists():
            continue
        metrics = json.loads(path.read_text())
        if table == "rec":
            rec = metrics["recommendation"]
            keys = ["recall@1", "recall@10", "recall@50", "cold_start_recall@1", "cold_start_recall@10", "cold_start_recall@50",
                    "dedup_recall@1", "dedup_recall@10", "dedup_recall@50"]
            rows.append([description] + [f"{rec[key]:.3f}" for key in keys] + [f"{metrics['wall_seconds'] / 60:.0f}"])
        else:
            conv = metrics["conversation"]
            keys = ["distinct-2", "distinct-3", "distinct-4", "distinct-4_per_sentence", "item_ratio", "bleu-1", "bleu-4", "perplexity"]
            rows.append([description] + [f"{conv[key]:.3f}" for key in keys] + [f"{metrics['wall_seconds'] / 60:.0f}"])
    if table == "rec":
        header = ["model", "R@1", "R@10", "R@50", "cold R@1", "cold R@10", "cold R@50", "dedup R@1", "dedup R@10", "dedup R@50", "min"]
    else:
        header = ["model", "Dist-2", "Dist-3", "Dist-4", "Dist-4/sent", "item ratio", "BLEU-1", "BLEU-4", "PPL", "min"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(row) + " |" for row in rows]
    (root / f"summary_{table}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
