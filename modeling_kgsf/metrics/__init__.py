"""The project's ``evaluate`` modules, shipped with the package.

Each is a folder ``<name>/<name>.py`` (an ``evaluate.Metric``), loaded by path, so it works from
an installed copy without the Hub::

    from modeling_kgsf.metrics import load_metric, metric_path
    recall = load_metric("kgsf_recall", "protocols")            # or evaluate.load(metric_path("kgsf_recall"), "protocols")

* ``kgsf_recall``: Recall@k (all / cold start / dedup_turns / dedup_filtered protocols)
* ``kgsf_distinct``: Distinct-n, ratio and per-reply forms
* ``kgsf_item_ratio``: share of replies naming an item, items per reply, recommendation-in-reply
* ``kgsf_loop_rate``: share of replies that repeat a word 3-gram
* ``kgsf_bleu``: BLEU-1..4, unsmoothed as the reference (config ``smoothed`` adds ``bleu-n_smoothed``)
* ``kgsf_perplexity``: perplexity from per-example negative log-likelihood sums
"""
from __future__ import annotations

from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = tuple(sorted(p.name for p in METRICS_DIR.iterdir() if p.is_dir() and (p / f"{p.name}.py").exists()))


def metric_path(name: str) -> str:
    """The folder of a shipped metric, for ``evaluate.load``."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; the package ships {', '.join(METRIC_NAMES)}")
    return str(METRICS_DIR / name)


def load_metric(name: str, config_name: str | None = None):
    """``evaluate.load`` of a shipped metric by name (``kgsf_recall``, ``kgsf_bleu``, ...)."""
    import evaluate

    return evaluate.load(metric_path(name), config_name)
