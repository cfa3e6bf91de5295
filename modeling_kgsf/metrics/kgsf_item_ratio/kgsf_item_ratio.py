"""Item ratio: how often generated replies mention an item (a recommendation), and whether it is the right one.

A reply *mentions an item* when one of its tokens is an item token: by default a ReDial movie
token ``@<movieId>``; pass ``item_tokens`` to restrict to a known item set (tokens not in it are
not counted, e.g. ``@123`` for a movie outside the candidate set).

* ``item_ratio``: share of replies with at least one item token (the paper's "item ratio").
* ``items_per_reply``: item tokens per reply (counting repeats).
* ``distinct_items``: number of distinct items mentioned over all replies.
* ``long_list_rate``: share of replies naming more than ``LONG_LIST`` (3) items (0.7% of the human
  replies of the ReDial test split: ``human_replies.long_list_rate`` in ``docs/results/full.json``;
  a model that chains films one after another shows here).

With ``target_items`` (per reply, the item tokens of the turn's target items: in ReDial the
movies the human recommender mentions in that turn), also:

* ``rec_in_reply``: among the replies that mention an item, the share whose **first** item token
  is one of the turn's target items (replies at turns without target count as misses);
  ``None`` when no reply mentions an item.
* ``rec_in_reply_any``: the same with **any** of the reply's item tokens.
* ``item_replies``: the number of replies that mention an item (the denominator).
"""
import re

import datasets
import evaluate

_ITEM_TOKEN = re.compile(r"^@\d+$")
LONG_LIST = 3

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str or list of list of str): generated replies.
    item_tokens (list of str, optional): the tokens that count as items; default: any ``@<digits>``.
    target_items (list of list of str, optional): per reply, the item tokens of the turn's targets.
Returns:
    dict with ``item_ratio``, ``items_per_reply``, ``distinct_items`` and ``long_list_rate``; with ``target_items`` also
    ``rec_in_reply``, ``rec_in_reply_any`` and ``item_replies``.
Example:
    >>> ratio = evaluate.load("metrics/kgsf_item_ratio")
    >>> ratio.compute(predictions=["try @123 !", "hi there"])
    {'item_ratio': 0.5, 'items_per_reply': 0.5, 'distinct_items': 1, 'long_list_rate': 0.0}
    >>> ratio.compute(predictions=["try @1 or @2", "see @3"], target_items=[["@2"], []])["rec_in_reply_any"]
    0.5
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

    def _compute(self, predictions, item_tokens=None, target_items=None):
        allowed = set(item_tokens) if item_tokens is not None else None

        def is_item(token):
            return token in allowed if allowed is not None else bool(_ITEM_TOKEN.match(token))

        replies = [reply.split() if isinstance(reply, str) else list(reply) for reply in predictions]
        if target_items is not None and len(target_items) != len(replies):
            raise ValueError(f"target_items has {len(target_items)} entries for {len(replies)} replies")
        with_item, mentions, distinct, long_lists = 0, 0, set(), 0
        first_hits, any_hits = 0, 0
        for index, tokens in enumerate(replies):
            items = [token for token in tokens if is_item(token)]
            with_item += bool(items)
            mentions += len(items)
            long_lists += len(items) > LONG_LIST
            distinct.update(items)
            if items and target_items is not None:
                targets = set(target_items[index])
                first_hits += items[0] in targets
                any_hits += any(item in targets for item in items)
        count = len(replies)
        results = {
            "item_ratio": with_item / count if count else 0.0,
            "items_per_reply": mentions / count if count else 0.0,
            "distinct_items": len(distinct),
            "long_list_rate": long_lists / count if count else 0.0,
        }
        if target_items is not None:
            results["rec_in_reply"] = first_hits / with_item if with_item else None
            results["rec_in_reply_any"] = any_hits / with_item if with_item else None
            results["item_replies"] = with_item
        return results
