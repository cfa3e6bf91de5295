"""Distinct-n: diversity of generated replies, in the two forms found in the KGSF literature.

* ``distinct-n`` (ratio form): number of distinct n-grams over the whole set of replies divided
  by the total number of n-grams. Always in [0, 1]. This is the usual definition (Li et al., 2016).
* ``distinct-n_per_sentence`` (the KGSF reference code's form): number of distinct n-grams over
  the whole set divided by the number of replies. It can exceed 1.

Replies are token lists, or strings split on white space.
"""
import datasets
import evaluate

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str or list of list of str): generated replies.
    n_values (list of int, optional): n-gram orders, default ``[1, 2, 3, 4]``.
Returns:
    dict with ``distinct-n`` and ``distinct-n_per_sentence`` for each n.
Example:
    >>> distinct = evaluate.load("metrics/kgsf_distinct")
    >>> distinct.compute(predictions=["a b a b"], n_values=[2])
    {'distinct-2': 0.6666666666666666, 'distinct-2_per_sentence': 2.0}
"""


class KgsfDistinct(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="Li et al., A Diversity-Promoting Objective Function for Neural Conversation Models, NAACL 2016",
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions, n_values=(1, 2, 3, 4)):
        replies = [reply.split() if isinstance(reply, str) else list(reply) for reply in predictions]
        results = {}
        for n in n_values:
            distinct, total = set(), 0
            for tokens in replies:
                ngrams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
                distinct.update(ngrams)
                total += len(ngrams)
            results[f"distinct-{n}"] = len(distinct) / total if total else 0.0
            results[f"distinct-{n}_per_sentence"] = len(distinct) / len(replies) if replies else 0.0
        return results
