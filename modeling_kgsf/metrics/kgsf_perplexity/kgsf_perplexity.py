"""Perplexity of reference replies under a model, from the model's token losses.

The metric takes, per reply, the summed negative log-likelihood (natural log) of its tokens
and the number of tokens, and returns ``exp(sum NLL / sum tokens)`` (token-level perplexity over
the whole set, the usual form) together with the mean NLL per token.
"""
import math

import datasets
import evaluate

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of float): summed token NLL (nats) per reply.
    references (list of int): number of scored tokens per reply.
Returns:
    dict with ``perplexity`` and ``nll_per_token``.
Example:
    >>> ppl = evaluate.load("metrics/kgsf_perplexity")
    >>> round(ppl.compute(predictions=[2.0, 4.0], references=[2, 4])["perplexity"], 4)
    2.7183
"""


class KgsfPerplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        tokens = sum(references)
        if tokens == 0:
            raise ValueError("no tokens to score: every reference count is 0")
        nll_per_token = sum(predictions) / tokens
        return {"perplexity": math.exp(nll_per_token), "nll_per_token": nll_per_token}
