"""Plots from the training logs: Figure 2 of the paper (validation recall with and without MIM)
and the training curves of each stage.

    python examples/plot_curves.py figure2 --with_mim runs/tables/rec/kgsf/rec --without_mim runs/tables/rec/kgsf_no_mim/rec --out docs/figures/figure2_mim.png
    python examples/plot_curves.py stages runs/quick/mim runs/quick/recommender runs/quick/conversation --out docs/figures/quick_training_curves.png
    python examples/plot_curves.py stages runs/long/conv/kgsf/conv runs/long/conv/transformer/conv --titles KGSF Transformer --out docs/figures/conversation_kgsf_vs_transformer.png

A run folder is a stage's ``--output_dir`` (it holds ``metrics.jsonl`` and ``train_log.jsonl``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_jsonl(path: Path) -> list[dict]:
    """Records by step; a step logged twice (a resumed run redoes steps) keeps its last record."""
    if not path.exists():
        raise FileNotFoundError(f"no log at {path}")
    records = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            records[record["step"]] = record
    return [records[step] for step in sorted(records)]


def figure2(with_mim: Path, without_mim: Path, out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for run, label, style in ((with_mim, "KGSF", "-"), (without_mim, "KGSF w/o MIM", "--")):
        records = read_jsonl(run / "metrics.jsonl")
        steps = [r["step"] for r in records]
        for axis, metric in zip(axes, ("recall@10", "recall@50")):
            axis.plot(steps, [r[metric] for r in records], style, marker="o", markersize=3, label=label)
    for axis, metric in zip(axes, ("Recall@10", "Recall@50")):
        axis.set_xlabel("training iterations (recommender stage)")
        axis.set_ylabel(f"validation {metric}")
        axis.grid(alpha=0.3)
        axis.legend()
    fig.suptitle("Validation recall against training iterations, with and without MIM (cf. the paper's Figure 2)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def stages(runs: list[Path], out: Path, titles: list[str] | None = None) -> None:
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 4), squeeze=False)
    for index, (axis, run) in enumerate(zip(axes[0], runs)):
        train = read_jsonl(run / "train_log.jsonl")
        axis.plot([r["step"] for r in train], [r["loss"] for r in train], label="training loss", alpha=0.8)
        evaluations = read_jsonl(run / "metrics.jsonl")
        twin = axis.twinx()
        twin.plot([r["step"] for r in evaluations], [r["score"] for r in evaluations], "o-", color="tab:red", label="validation score")
        twin.set_ylabel("validation score (higher is better)")
        default_title = evaluations[0].get("stage", run.name) if evaluations else run.name
        axis.set_title(titles[index] if titles and index < len(titles) else default_title)
        axis.set_xlabel("step")
        axis.set_ylabel("training loss")
        axis.grid(alpha=0.3)
        lines = axis.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        axis.legend(lines, [line.get_label() for line in lines], loc="upper right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="plot", required=True)
    fig2 = sub.add_parser("figure2")
    fig2.add_argument("--with_mim", type=Path, required=True)
    fig2.add_argument("--without_mim", type=Path, required=True)
    fig2.add_argument("--out", type=Path, required=True)
    curves = sub.add_parser("stages")
    curves.add_argument("runs", type=Path, nargs="+")
    curves.add_argument("--out", type=Path, required=True)
    curves.add_argument("--titles", nargs="*", default=None, help="one title per run (default: the stage name)")
    args = parser.parse_args(argv)
    if args.plot == "figure2":
        figure2(args.with_mim, args.without_mim, args.out)
    else:
        stages(args.runs, args.out, args.titles)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
