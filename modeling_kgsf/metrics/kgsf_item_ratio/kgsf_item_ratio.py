"""Item ratio: how often generated replies mention an item (a recommendation).

A reply *mentions an item* when one of its tokens is an item token: by default a ReDial movie
token ``@<movieId>``; pass ``item_tokens`` to restrict to a known item set (tokens not in it are
not counted, e.g. ``@123`` for a movie outside the candidate set).

* ``item_ratio``: share of replies with at least one item token (the paper's "item ratio").
* ``items_per_reply``: item tokens per reply (counting repeats).
* ``distinct_items``: number of distinct items mentioned over all replies.
"""
import re

import datasets
import evaluate

_ITEM_TOKEN = re.compile(r"^@\d+$")

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str or list of list of str): generated replies.
    item_tokens (list of str, optional): the tokens that count as items; default: any ``@<digits>``.
Returns:
    dict with ``item_ratio``, ``items_per_reply`` and ``distinct_items``.
Example:
    >>> ratio = evaluate.load("metrics/kgsf_item_ratio")
    >>> ratio.compute(predictions=["try @123 !", "hi there"])
    {'item_ratio': 0.5, 'items_per_reply': 0.5, 'distinct_items': 1}
"""


class KgsfItemRatio(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="Zhou et al., KDD 2020",
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions, item_tokens=None):
        allowed = set(item_tokens) if item_tokens is not None else None

        def is_item(token):
            return token in allowed if allowed is not None else bool(_ITEM_TOKEN.match(token))

        replies = [reply.split() if isinstance(reply, str) else list(reply) for reply in predictions]
        with_item, mentions, distinct = 0, 0, set()
        for tokens in replies:
            items = [token for token in tokens if is_item(token)]
            with_item += bool(items)
            mentions += len(items)
            distinct.update(items)
        count = len(replies)
        return {
            "item_ratio": with_item / count if count else 0.0,
            "items_per_reply": mentions / count if count else 0.0,
            "distinct_items": len(distinct),
        }
