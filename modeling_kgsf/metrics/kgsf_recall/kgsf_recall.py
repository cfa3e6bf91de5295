"""Recall@k for conversational recommendation, with the cold-start and the two dedup protocols.

One example = one (recommender turn, target item) pair, as in the KGSF reference code.

* ``recall@k``: share of examples whose target item is among the first ``k`` predictions.
* ``cold_start_recall@k``: the same over examples whose context mentions no item.
* ``dedup_turns_recall@k``: examples whose target was already mentioned in the context are
  dropped; the ranking is not changed (the form of the standardised re-evaluation of KGSF, which
  showed that repeating context items inflates recall).
* ``dedup_filtered_recall@k``: the same examples dropped, and the items mentioned in the context
  also removed from the ranking (more lenient: a context item can no longer take a top-k place).

``predictions`` are ranked item ids, best first. For ``dedup_filtered`` they must be long enough
that ``k`` items remain after the context items are removed (rank the whole item set, or pass at
least ``max(k) + len(context_items)`` items); a ranking that runs short raises an error instead of
silently under-counting.

Load with ``evaluate.load("metrics/kgsf_recall")`` for plain recall, or
``evaluate.load("metrics/kgsf_recall", "protocols")`` to pass ``context_items`` and get all four.
"""
import datasets
import evaluate

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of list of int): ranked item ids per example, best first.
    references (list of int): the target item id per example.
    context_items (list of list of int): items mentioned in each example's context; only with
        ``evaluate.load(path, "protocols")``, which adds ``cold_start_*``, ``dedup_turns_*`` and
        ``dedup_filtered_*``.
    k_values (list of int, optional): cut-offs, default ``[1, 10, 50]``.
    num_items (int, optional): size of the item set; a ranking this long is complete, so
        ``dedup_filtered`` accepts it even when fewer than ``max(k_values)`` items remain.
Returns:
    dict with ``recall@k`` and ``count``; with the "protocols" config also ``cold_start_recall@k``,
    ``cold_start_count``, ``dedup_turns_recall@k``, ``dedup_turns_count``,
    ``dedup_filtered_recall@k`` and ``dedup_filtered_count`` (the two dedup protocols keep the same
    examples). A protocol with no example reports ``None``.
Example:
    >>> recall = evaluate.load("metrics/kgsf_recall")
    >>> recall.compute(predictions=[[3, 1, 2]], references=[1], k_values=[1, 2])
    {'recall@1': 0.0, 'recall@2': 1.0, 'count': 1}
"""


class KgsfRecall(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="Zhou et al., Improving Conversational Recommender Systems via Knowledge Graph based Semantic Fusion, KDD 2020",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int64")),
                    "references": datasets.Value("int64"),
                    **(
                        {"context_items": datasets.Sequence(datasets.Value("int64"))}
                        if self.config_name == "protocols"
                        else {}
                    ),
                }
            ),
        )

    def _compute(self, predictions, references, context_items=None, k_values=(1, 10, 50), num_items=None):
        if self.config_name not in ("default", "protocols"):
            raise ValueError(f"unknown config '{self.config_name}': use 'default' or 'protocols'")
        k_values = sorted(int(k) for k in k_values)
        results = _recall(predictions, references, k_values, prefix="")
        if context_items is None:
            return results
        cold = [i for i, items in enumerate(context_items) if len(items) == 0]
        results.update(
            _recall([predictions[i] for i in cold], [references[i] for i in cold], k_values, prefix="cold_start_")
        )
        kept, filtered_predictions = [], []
        for index, (ranking, target, items) in enumerate(zip(predictions, references, context_items)):
            seen = set(items)
            if target in seen:
                continue
            filtered = [item for item in ranking if item not in seen]
            complete = num_items is not None and len(ranking) >= num_items
            if len(filtered) < k_values[-1] and not complete:
                raise ValueError(
                    f"a ranking of {len(ranking)} items leaves {len(filtered)} after removing {len(seen)} context "
                    f"items, fewer than k={k_values[-1]}: pass longer rankings for the dedup_filtered protocol"
                )
            kept.append(index)
            filtered_predictions.append(filtered)
        targets = [references[i] for i in kept]
        results.update(_recall([predictions[i] for i in kept], targets, k_values, prefix="dedup_turns_"))
        results.update(_recall(filtered_predictions, targets, k_values, prefix="dedup_filtered_"))
        return results


def _recall(predictions, references, k_values, prefix):
    count = len(references)
    results = {}
    for k in k_values:
        hits = sum(1 for ranking, target in zip(predictions, references) if target in ranking[:k])
        results[f"{prefix}recall@{k}"] = hits / count if count else None
    results[f"{prefix}count"] = count
    return results
