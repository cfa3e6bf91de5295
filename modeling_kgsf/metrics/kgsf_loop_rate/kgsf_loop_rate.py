"""Loop rate: how often generated replies repeat themselves (a decoding loop).

A reply *loops* when one of its word n-grams (n = 3 by default: three consecutive tokens)
occurs at least twice in it; occurrences may overlap (``a a a a`` repeats ``a a a``). Only
repeats inside one reply count, not n-grams shared by different replies.

* ``loop_rate``: share of replies that loop (0 when there is no reply).
* ``looping_replies``: their number.

Replies are token lists, or strings split on white space.
"""
import datasets
import evaluate

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str or list of list of str): generated replies.
    n (int, optional): n-gram order, default 3.
Returns:
    dict with ``loop_rate`` and ``looping_replies``.
Example:
    >>> loop = evaluate.load("metrics/kgsf_loop_rate")
    >>> loop.compute(predictions=["i like it i like it", "i like it"])
    {'loop_rate': 0.5, 'looping_replies': 1}
"""


def loops(tokens, n: int = 3) -> bool:
    """True when a word n-gram occurs at least twice in ``tokens``."""
    seen = set()
    for i in range(len(tokens) - n + 1):
        ngram = tuple(tokens[i : i + n])
        if ngram in seen:
            return True
        seen.add(ngram)
    return False


class KgsfLoopRate(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions, n=3):
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        replies = [reply.split() if isinstance(reply, str) else list(reply) for reply in predictions]
        looping = sum(loops(tokens, n) for tokens in replies)
        return {"loop_rate": looping / len(replies) if replies else 0.0, "looping_replies": looping}
