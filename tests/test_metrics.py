"""The evaluate modules shipped in modeling_kgsf/metrics, checked against values worked out by hand."""
import math

import evaluate
import pytest

from modeling_kgsf.metrics import metric_path


def load(name, config_name=None):
    return evaluate.load(metric_path(name), config_name)


def test_recall_all_cold_and_dedup():
    recall = load("kgsf_recall", "protocols")
    predictions = [[5, 1, 2, 3], [1, 2, 3, 4], [4, 3, 2, 1]]
    references = [1, 4, 4]
    context_items = [[5], [], [4]]
    result = recall.compute(
        predictions=predictions, references=references, context_items=context_items, k_values=[1, 2]
    )
    # all: example 0 hits at rank 2, example 1 misses both cut-offs, example 2 hits at rank 1
    assert result["recall@1"] == pytest.approx(1 / 3)
    assert result["recall@2"] == pytest.approx(2 / 3)
    assert result["count"] == 3
    # cold start: only example 1 (empty context), which misses
    assert result["cold_start_count"] == 1 and result["cold_start_recall@2"] == 0.0
    # dedup_turns: example 2's target is in its context and is dropped; the rankings are kept, so
    # example 0's target stays at rank 2 (behind context item 5)
    assert result["dedup_turns_count"] == 2
    assert result["dedup_turns_recall@1"] == 0.0 and result["dedup_turns_recall@2"] == pytest.approx(1 / 2)
    # dedup_filtered: the same examples, and example 0 loses item 5 from the ranking, so its
    # target moves to rank 1
    assert result["dedup_filtered_count"] == 2
    assert result["dedup_filtered_recall@1"] == pytest.approx(1 / 2)


def test_recall_without_context_items_and_incremental_batches():
    recall = load("kgsf_recall")
    recall.add_batch(predictions=[[3, 1, 2]], references=[1])
    recall.add_batch(predictions=[[1, 3, 2]], references=[1])
    result = recall.compute(k_values=[1, 2])
    assert result == {"recall@1": 0.5, "recall@2": 1.0, "count": 2}


def test_recall_dedup_refuses_short_rankings():
    recall = load("kgsf_recall", "protocols")
    with pytest.raises(ValueError, match="fewer than k=2"):
        recall.compute(predictions=[[7, 8]], references=[9], context_items=[[7]], k_values=[1, 2])


def test_distinct_both_forms():
    distinct = load("kgsf_distinct")
    result = distinct.compute(predictions=["a b a b", "a b c"], n_values=[1, 2])
    # unigrams: {a, b, c} of 7; bigrams: {ab, ba, bc} of 5 (3 + 2)
    assert result["distinct-1"] == pytest.approx(3 / 7)
    assert result["distinct-2"] == pytest.approx(3 / 5)
    assert result["distinct-1_per_sentence"] == pytest.approx(3 / 2)
    assert result["distinct-2_per_sentence"] == pytest.approx(3 / 2)


def test_item_ratio():
    ratio = load("kgsf_item_ratio")
    replies = [["have", "you", "seen", "@123", "or", "@123"], ["hello"], ["try", "@77"], ["@email"]]
    result = ratio.compute(predictions=replies)
    assert result["item_ratio"] == pytest.approx(2 / 4)
    assert result["items_per_reply"] == pytest.approx(3 / 4)
    assert result["distinct_items"] == 2
    assert result["long_list_rate"] == 0.0
    restricted = ratio.compute(predictions=replies, item_tokens=["@123"])
    assert restricted["item_ratio"] == pytest.approx(1 / 4)
    chained = ratio.compute(predictions=[["@1", "@2", "@3", "@4"], ["@1", "@2", "@3"], ["hi"]])
    assert chained["long_list_rate"] == pytest.approx(1 / 3)  # more than 3 items


def test_bleu_identical_and_disjoint():
    bleu = load("kgsf_bleu")
    same = bleu.compute(predictions=["i like this movie a lot"], references=["i like this movie a lot"])
    assert same["bleu-1"] == pytest.approx(1.0) and same["bleu-4"] == pytest.approx(1.0)
    assert same["corpus_bleu-4"] == pytest.approx(1.0)
    different = bleu.compute(predictions=["x y z w"], references=["a b c d"])
    assert different["bleu-1"] == pytest.approx(0.0)
    partial = bleu.compute(predictions=["a b x y"], references=["a b c d"])
    assert partial["bleu-1"] == pytest.approx(0.5)



BLEU_PAIRS = [  # (reply, human reply)
    ("i like this movie a lot", "i like this movie"),
    ("have you seen it", "have you seen the matrix"),  # no 4-gram match: unsmoothed ~0, smoothed .078
    ("a b x y", "a b c d"),
    ("hi", "hello there"),
]


def test_bleu_is_nltk_unsmoothed_sentence_bleu():
    """The default ``bleu-n`` is the reference code's ``sentence_bleu([ref], hyp, weights)`` with no
    smoothing; the smoothed form comes only with the "smoothed" config, under its own keys."""
    import warnings

    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    replies, humans = [p.split() for p, _ in BLEU_PAIRS], [r.split() for _, r in BLEU_PAIRS]
    result = load("kgsf_bleu").compute(predictions=replies, references=humans)
    assert not any(key.endswith("_smoothed") for key in result)
    weights = {1: (1, 0, 0, 0), 2: (0, 1, 0, 0), 3: (0, 0, 1, 0), 4: (0, 0, 0, 1)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n, w in weights.items():
            expected = sum(sentence_bleu([h], r, weights=w) for r, h in zip(replies, humans)) / len(replies)
            assert result[f"bleu-{n}"] == pytest.approx(expected, abs=1e-12), n
    one = load("kgsf_bleu").compute(predictions=["a b x y"], references=["a b c d"])  # worked by hand
    assert one["bleu-1"] == pytest.approx(2 / 4) and one["bleu-2"] == pytest.approx(1 / 3)
    assert one["bleu-3"] < 1e-300 and one["bleu-4"] < 1e-300  # no 3-gram matches: zero, not smoothed
    smoothed = load("kgsf_bleu", "smoothed").compute(predictions=["a b x y"], references=["a b c d"])
    assert smoothed["bleu-3"] == one["bleu-3"]  # the default keys stay unsmoothed
    assert smoothed["bleu-3_smoothed"] == pytest.approx(0.1 / 2)  # method 1: epsilon 0.1 over 2 trigrams
    pair = load("kgsf_bleu", "smoothed").compute(predictions=["have you seen it"], references=["have you seen the matrix"])
    assert pair["bleu-4"] < 1e-300 and pair["bleu-4_smoothed"] > 0.05  # where the two forms differ
    assert pair["bleu-4_smoothed"] == pytest.approx(
        sentence_bleu([["have", "you", "seen", "the", "matrix"]], ["have", "you", "seen", "it"], weights=(0, 0, 0, 1),
                      smoothing_function=SmoothingFunction().method1))

def test_perplexity():
    ppl = load("kgsf_perplexity")
    result = ppl.compute(predictions=[3.0, 1.0], references=[2, 2])
    assert result["nll_per_token"] == pytest.approx(1.0)
    assert result["perplexity"] == pytest.approx(math.e)
    with pytest.raises(ValueError, match="no tokens"):
        ppl.compute(predictions=[0.0], references=[0])


def test_recall_dedup_accepts_complete_short_rankings():
    recall = load("kgsf_recall", "protocols")
    result = recall.compute(predictions=[[7, 8, 9]], references=[9], context_items=[[7]], k_values=[1, 50], num_items=3)
    assert result["dedup_filtered_recall@50"] == 1.0 and result["dedup_filtered_recall@1"] == 0.0
    assert result["dedup_turns_recall@1"] == 0.0 and result["dedup_turns_recall@50"] == 1.0


def test_loop_rate():
    loop = load("kgsf_loop_rate")
    replies = [
        ["i", "like", "it", "i", "like", "it"],  # "i like it" twice: loops
        ["a", "a", "a", "a"],  # "a a a" at positions 0 and 1 (overlapping): loops
        ["a", "b", "c", "a", "b", "d"],  # only the bigram "a b" repeats: no 3-gram loop
        ["hi"],  # too short for a 3-gram
    ]
    result = loop.compute(predictions=replies)
    assert result == {"loop_rate": 2 / 4, "looping_replies": 2}
    assert loop.compute(predictions=replies, n=2)["looping_replies"] == 3  # "a b" now counts
    assert loop.compute(predictions=["i like it i like it", "fine"])["loop_rate"] == 0.5  # strings are split on spaces


def test_item_ratio_recommendation_in_reply():
    ratio = load("kgsf_item_ratio")
    replies = [
        ["try", "@1", "or", "@2"],  # first item @1 misses, @2 hits: a miss for 'first', a hit for 'any'
        ["see", "@3"],  # hits
        ["hello"],  # no item: not in the denominator
        ["@4", "@4"],  # its turn has no target: a miss
    ]
    targets = [["@2"], ["@3", "@9"], ["@5"], []]
    result = ratio.compute(predictions=replies, target_items=targets)
    assert result["item_ratio"] == pytest.approx(3 / 4)
    assert result["items_per_reply"] == pytest.approx(5 / 4)
    assert result["distinct_items"] == 4
    assert result["item_replies"] == 3
    assert result["rec_in_reply"] == pytest.approx(1 / 3)
    assert result["rec_in_reply_any"] == pytest.approx(2 / 3)
    none = ratio.compute(predictions=[["hello"]], target_items=[["@1"]])
    assert none["rec_in_reply"] is None and none["item_replies"] == 0
    assert "rec_in_reply" not in ratio.compute(predictions=replies)  # only with target_items
    with pytest.raises(ValueError, match="target_items has 1 entries for 4 replies"):
        ratio.compute(predictions=replies, target_items=[["@1"]])
