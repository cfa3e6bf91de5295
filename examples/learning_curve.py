"""KGSF's test recall against the number of training conversations (issue: the whole train split).

    python examples/learning_curve.py --output_dir runs/curve --results_dir docs/results \
        --figure docs/figures/learning_curve.png --points release ordered reconstructed:2500 reconstructed:5000 reconstructed

Each point is ``SOURCE[:N]``: the ``--train_source`` (release = the 500 conversations of the release,
ordered = + the ordered CFCRS/lmh85 ones, reconstructed = + every other train conversation with its
turn order rebuilt) and optionally a random subset of N of its conversations
(``--max_train_conversations``; subsets nest). Every point trains KGSF as ``run_tables.py rec
--only kgsf`` does (MIM pre-training, recommender, test evaluation) in ``<output_dir>/<point>``;
finished points are skipped on a re-run, so a point can also be filled by copying a finished
``run_tables.py`` run there. Points whose conversations all have their original turn order are
drawn apart from those that include reconstructed ones. Writes ``learning_curve.json`` (into
``--results_dir``) and the PNG. Any other flag goes to ``run_tables.py`` (schedule, ``--seed``,
``--data_dir``...).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_tables  # noqa: E402  (the sibling script: one way to train a table's row)

ORDERED_SOURCES = ("release", "recovered", "ordered")  # every conversation keeps its original turn order
METRICS = ("recall@1", "recall@10", "recall@50")


def parse_point(text: str) -> tuple[str, int]:
    source, _, count = text.partition(":")
    return source, int(count) if count else -1


def point_name(source: str, count: int) -> str:
    return f"{source}_{count if count > 0 else 'all'}"


def train_point(point: str, output_dir: Path, passthrough: list[str]) -> None:
    source, count = parse_point(point)
    run_tables.main(["rec", "--output_dir", str(output_dir / point_name(source, count)), "--only", "kgsf",
                     "--train_source", source, "--max_train_conversations", str(count), *passthrough])


def collect(points: list[str], output_dir: Path) -> list[dict]:
    rows = []
    for point in points:
        source, count = parse_point(point)
        metrics_file = output_dir / point_name(source, count) / "rec" / "kgsf" / "test_metrics.json"
        if not metrics_file.exists():
            continue
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        rows.append({"train_source": source, "max_train_conversations": count,
                     "train_conversations": metrics.get("train_conversations"), "ordered_only": source in ORDERED_SOURCES,
                     "seed": metrics.get("seed"), **{key: metrics["recommendation"][key] for key in METRICS}})
    return sorted(rows, key=lambda row: row["train_conversations"] or 0)


def plot(rows: list[dict], figure: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.4))
    for axis, metric in zip(axes, METRICS):
        xs = [row["train_conversations"] for row in rows]
        axis.plot(xs, [row[metric] for row in rows], color="0.6", zorder=1)
        for ordered, marker, label in ((True, "o", "original turn order"), (False, "s", "incl. reconstructed order")):
            chosen = [row for row in rows if row["ordered_only"] == ordered]
            axis.scatter([row["train_conversations"] for row in chosen], [row[metric] for row in chosen], marker=marker,
                         label=label, zorder=2)
        axis.set_xscale("log")
        axis.set_xlabel("training conversations")
        axis.set_title(f"test {metric}")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=120)


def describe_machine() -> str:
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    return f"{platform.node()}: {device}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="runs/curve")
    parser.add_argument("--points", nargs="+", default=["release", "ordered", "reconstructed:2500", "reconstructed:5000", "reconstructed"],
                        help="SOURCE or SOURCE:N (N conversations drawn from that source)")
    parser.add_argument("--parallel_points", type=int, default=1, help="points trained at a time")
    parser.add_argument("--results_dir", default="docs/results")
    parser.add_argument("--figure", default="docs/figures/learning_curve.png")
    parser.add_argument("--machine", default=None, help="where the points were trained (default: this machine), for the JSON")
    args, passthrough = parser.parse_known_args(argv)
    output_dir = Path(args.output_dir)
    with ThreadPoolExecutor(max_workers=max(1, args.parallel_points)) as pool:
        for future in [pool.submit(train_point, point, output_dir, passthrough) for point in args.points]:
            future.result()
    rows = collect(args.points, output_dir)
    results = {"points": rows, "command": " ".join(["python", "examples/learning_curve.py", *(argv if argv is not None else sys.argv[1:])]),
               "date": datetime.date.today().isoformat(), "machine": args.machine or describe_machine()}
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "learning_curve.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    plot(rows, Path(args.figure))
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
