"""BLEU-1..4 for generated replies, computed with NLTK (no download needed).

* ``bleu-n``: sentence-level BLEU with all weight on n-grams of order n, **unsmoothed**, averaged
  over replies: the KGSF reference code's form (``sentence_bleu([reference], reply,
  weights=...)``, also CRSLab's). A reply with no matching n-gram of order n scores 0 (NLTK gives
  the smallest positive float, about 2e-308).
* ``corpus_bleu-4``: cumulative corpus BLEU-4 (uniform weights 1/4), unsmoothed, the usual MT form.

The config ``"smoothed"`` (``evaluate.load(path, "smoothed")``) adds ``bleu-n_smoothed`` and
``corpus_bleu-4_smoothed``: the same with NLTK's smoothing method 1 (epsilon 0.1 added to zero
n-gram counts), so that short replies do not score a hard zero. It is not the reference's figure:
method 1 can rank BLEU-4 above BLEU-3.

Replies and references are token lists, or strings split on white space. One reference per
reply, or a list of references.
"""
import warnings

import datasets
import evaluate
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str or list of list of str): generated replies.
    references (list of str or list of list of str): the ground-truth replies, one per prediction.
Returns:
    dict with ``bleu-1`` .. ``bleu-4`` (sentence average, single order, unsmoothed) and
    ``corpus_bleu-4``; with the "smoothed" config also ``bleu-n_smoothed`` and ``corpus_bleu-4_smoothed``.
Example:
    >>> bleu = evaluate.load("metrics/kgsf_bleu")
    >>> bleu.compute(predictions=["a b c d"], references=["a b c d"])["bleu-4"]
    1.0
"""

CONFIGS = ("default", "smoothed")
_WEIGHTS = {1: (1.0, 0, 0, 0), 2: (0, 1.0, 0, 0), 3: (0, 0, 1.0, 0), 4: (0, 0, 0, 1.0)}


def _tokens(text):
    return text.split() if isinstance(text, str) else list(text)


def _bleu(reference_lists, hypotheses, smoothing, suffix: str) -> dict:
    results = {}
    with warnings.catch_warnings():  # NLTK warns on every reply with a zero n-gram count when unsmoothed
        warnings.simplefilter("ignore", UserWarning)
        for n, weights in _WEIGHTS.items():
            scores = [sentence_bleu(refs, hyp, weights=weights, smoothing_function=smoothing)
                      for refs, hyp in zip(reference_lists, hypotheses)]
            results[f"bleu-{n}{suffix}"] = sum(scores) / len(scores) if scores else 0.0
        results[f"corpus_bleu-4{suffix}"] = (
            corpus_bleu(reference_lists, hypotheses, smoothing_function=smoothing) if hypotheses else 0.0)
    return results


class KgsfBleu(evaluate.Metric):
    def _info(self):
        if self.config_name not in CONFIGS:
            raise ValueError(f"unknown config '{self.config_name}': use one of {CONFIGS}")
        return evaluate.MetricInfo(
            description=__doc__,
            citation="Papineni et al., BLEU: a Method for Automatic Evaluation of Machine Translation, ACL 2002",
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Sequence(datasets.Value("string")),
                        "references": datasets.Sequence(datasets.Value("string")),
                    }
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions, references):
        hypotheses = [_tokens(prediction) for prediction in predictions]
        reference_lists = [[_tokens(reference)] for reference in references]
        results = _bleu(reference_lists, hypotheses, None, "")
        if self.config_name == "smoothed":
            results.update(_bleu(reference_lists, hypotheses, SmoothingFunction().method1, "_smoothed"))
        return results
