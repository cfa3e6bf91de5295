"""Recall@k for conversational recommendation, with the cold-start and dedup protocols.

One example = one (recommender turn, target item) pair, as in the KGSF reference code.

* ``recall@k``: share of examples whose target item is among the first ``k`` predictions.
* ``cold_start_recall@k``: the same over examples whose context mentions no item.
* ``dedup_recall@k``: items already mentioned in the context are removed from the ranking, and
  examples whose target was already mentioned are dropped (the protocol of the KGSF
  reproduction study, which showed that repeating context items inflates recall).

``predictions`` are ranked item ids, best first. For the dedup protocol they must be long
enough that ``k`` items remain after the context items are removed (rank the whole item set,
or pass at least ``max(k) + len(context_items)`` items); a ranking that runs short raises an error
instead of silently under-counting.

Load with ``evaluate.load("metrics/kgsf_recall")`` for plain recall, or
``evaluate.load("metrics/kgsf_recall", "protocols")`` to pass ``context_items`` and get all three.
"""
import datasets
import evaluate

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of list of int): ranked item ids per example, best first.
    references (list of int): the target item id per example.
    context_items (list of list of int): items mentioned in each example's context; only with
        ``evaluate.load(path, "protocols")``, which adds ``cold_start_*`` and ``dedup_*``.
    k_values (list of int, optional): cut-offs, default ``[1, 10, 50]``.
    num_items (int, optional): size of the item set; a ranking this long is complete, so the dedup
        protocol accepts it even when fewer than ``max(k_values)`` items remain.
Returns:
    dict with ``recall@k`` and ``count``; with the "protocols" config also ``cold_start_recall@k``,
    ``cold_start_count``, ``dedup_recall@k`` and ``dedup_count``. A protocol with no example
    reports ``None``.
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
        dedup_predictions, dedup_references = [], []
        for ranking, target, items in zip(predictions, references, context_items):
            seen = set(items)
            if target in seen:
                continue
            filtered = [item for item in ranking if item not in seen]
            complete = num_items is not None and len(ranking) >= num_items
            if len(filtered) < k_values[-1] and not complete:
                raise ValueError(
                    f"a ranking of {len(ranking)} items leaves {len(filtered)} after removing {len(seen)} context "
                    f"items, fewer than k={k_values[-1]}: pass longer rankings for the dedup protocol"
                )
            dedup_predictions.append(filtered)
            dedup_references.append(target)
        results.update(_recall(dedup_predictions, dedup_references, k_values, prefix="dedup_"))
        return results


def _recall(predictions, references, k_values, prefix):
    count = len(references)
    results = {}
    for k in k_values:
        hits = sum(1 for ranking, target in zip(predictions, references) if target in ranking[:k])
        results[f"{prefix}recall@{k}"] = hits / count if count else None
    results[f"{prefix}count"] = count
    return results
