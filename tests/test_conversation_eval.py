"""The conversation evaluation (training_kgsf/evaluation.py) on a fixed toy input: a stub
model whose replies are given, so every figure can be worked out by hand. Our protocol (replies
stopped at __end__), the reference code's (tokens after __end__ kept, unique n-grams per reply),
the human ceiling, recommendation-in-reply, decoding arguments and the selection score."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from accelerate import Accelerator
from transformers import GenerationConfig

from training_kgsf import evaluate_folder, stages
from training_kgsf.evaluation import TARGETS_KEY, WithTargetItems, decode_reply, evaluate_conversation, generation_settings, paper_decoding, parse_weights, selection_score

VOCAB = ["__pad__", "__start__", "__end__", "__unk__", "i", "like", "it", "@10", "@11", "you", "hi"]
PAD, BOS, EOS = 0, 1, 2
I, LIKE, IT, M10, M11, YOU, HI = 4, 5, 6, 7, 8, 9, 10
ITEM_ENTITIES = {"@10": 100, "@11": 101}

# what the stub decodes for each turn when it does not stop at __end__ (the reference protocol)
RAW = [
    [BOS, I, LIKE, IT, I, LIKE, IT, EOS, YOU],     # stopped: i like it i like it      raw: ... + you
    [BOS, HI, M10, EOS, M10, M11, EOS, HI, HI],    # stopped: hi @10                   raw: hi @10 @10 @11 hi hi
    [BOS, M11, EOS, I, LIKE, EOS, EOS, EOS, EOS],  # stopped: @11                      raw: @11 i like
]
LABELS = [[YOU, LIKE, M10, EOS], [I, LIKE, M11, EOS], [HI, EOS, -100, -100]]  # human replies
TARGETS = [[100], [101], [101]]  # the turns' target items (entity ids)


class StubTokenizer:
    pad_token_id, bos_token_id, eos_token_id = PAD, BOS, EOS

    def convert_ids_to_tokens(self, ids):
        return VOCAB[ids] if isinstance(ids, int) else [VOCAB[i] for i in ids]


class StubModel(torch.nn.Module):
    """Uniform next-token distribution (perplexity = vocabulary size); ``generate`` returns RAW rows,
    cut after the first __end__ and padded, as ``generate`` does, unless ``eos_token_id=None``."""

    def __init__(self):
        super().__init__()
        self.generation_config = GenerationConfig(eos_token_id=EOS, pad_token_id=PAD)
        self.calls = []

    def forward(self, input_ids=None, labels=None, **kwargs):
        return SimpleNamespace(lm_logits=torch.zeros(labels.shape[0], labels.shape[1], len(VOCAB)))

    def generate(self, input_ids=None, attention_mask=None, **kwargs):
        self.calls.append(kwargs)
        rows = [RAW[int(i)] for i in input_ids[:, 0]]
        if "eos_token_id" in kwargs and kwargs["eos_token_id"] is None:
            return torch.tensor(rows)
        cut = [row[: row.index(EOS) + 1] if EOS in row else row for row in rows]
        width = max(len(row) for row in cut)
        return torch.tensor([row + [PAD] * (width - len(row)) for row in cut])


def toy_batches(sizes=(3,)):
    """Conversation batches; a row's input_ids[0] says which RAW reply the stub gives it."""
    batches, start = [], 0
    for size in sizes:
        rows = range(start, start + size)
        width = max(len(LABELS[i]) for i in rows)
        batches.append({
            "input_ids": torch.tensor([[i, HI] for i in rows]),
            "attention_mask": torch.ones(size, 2, dtype=torch.long),
            "labels": torch.tensor([LABELS[i] + [-100] * (width - len(LABELS[i])) for i in rows]),
            TARGETS_KEY: torch.tensor([TARGETS[i] for i in rows]),
        })
        start += size
    return batches


def run(protocol="ours", decoding="default", sizes=(3,), **kwargs):
    model = StubModel()
    results = evaluate_conversation(model, toy_batches(sizes), Accelerator(cpu=True), StubTokenizer(), decoding=decoding,
                                    protocol=protocol, item_entities=ITEM_ENTITIES, human=True, **kwargs)
    return results, model.calls


def test_decode_reply_stops_at_end_or_keeps_everything():
    tokenizer = StubTokenizer()
    assert decode_reply(tokenizer, RAW[1]) == ["hi", "@10"]
    assert decode_reply(tokenizer, RAW[1], stop_at_end=False) == ["hi", "@10", "@10", "@11", "hi", "hi"]
    assert decode_reply(tokenizer, [BOS, 3, EOS, PAD], stop_at_end=False) == ["__unk__"]  # unk kept, as the reference's _UNK_


def test_our_protocol_by_hand():
    results, calls = run()
    assert calls == [{"max_new_tokens": 30}]  # the model's own generation_config: nothing else forced
    assert results["perplexity"] == pytest.approx(len(VOCAB))  # uniform logits
    assert results["generated_replies"] == 3
    # replies: [i like it i like it], [hi @10], [@11]: 9 tokens, 6 distinct; bigrams: 5 + 1 + 0, distinct {i like, like it, it i, hi @10}
    assert results["distinct-1"] == pytest.approx(6 / 9) and results["distinct-1_per_sentence"] == pytest.approx(6 / 3)
    assert results["distinct-2"] == pytest.approx(4 / 6) and results["distinct-2_per_sentence"] == pytest.approx(4 / 3)
    assert results["item_ratio"] == pytest.approx(2 / 3) and results["items_per_reply"] == pytest.approx(2 / 3)
    # item replies: "hi @10" (target @11: miss), "@11" (target @11: hit)
    assert results["item_replies"] == 2
    assert results["rec_in_reply"] == pytest.approx(1 / 2) and results["rec_in_reply_any"] == pytest.approx(1 / 2)
    assert results["loop_rate"] == pytest.approx(1 / 3)  # "i like it" twice
    assert results["mean_reply_length"] == pytest.approx(9 / 3)
    assert "bleu-1" in results and "reference_protocol" not in results
    human = results["human"]  # [you like @10], [i like @11], [hi]
    assert human["distinct-1"] == pytest.approx(6 / 7) and human["distinct-1_per_sentence"] == pytest.approx(2.0)
    assert human["item_ratio"] == pytest.approx(2 / 3)
    assert human["rec_in_reply"] == pytest.approx(1.0)  # each human mention is its turn's target
    assert human["loop_rate"] == 0.0 and "bleu-1" not in human


def test_reference_protocol_by_hand():
    results, calls = run(protocol="reference", decoding=None)  # the protocol's own decoding: the paper's
    assert calls[0]["max_new_tokens"] == 20 and calls[0]["eos_token_id"] is None  # 20 steps, not stopped at __end__
    assert [type(c).__name__ for c in calls[0]["stopping_criteria"]] == ["EndInEveryRow"]  # the batch stop
    assert calls[0]["num_beams"] == 1 and calls[0]["do_sample"] is False and calls[0]["repetition_penalty"] == 1.0
    assert calls[0]["no_repeat_ngram_size"] == 0
    reference = results["reference_protocol"]
    # raw replies: [i like it i like it you], [hi @10 @10 @11 hi hi], [@11 i like]
    # unigrams: {i, like, it, you, hi, @10, @11} = 7 over 3 replies
    assert reference["distinct-1_per_sentence"] == pytest.approx(7 / 3)
    # bigrams: {i like, like it, it i, it you} + {hi @10, @10 @10, @10 @11, @11 hi, hi hi} + {@11 i} (i like seen) = 10 of 13
    assert reference["distinct-2_per_sentence"] == pytest.approx(10 / 3)
    assert reference["distinct-2"] == pytest.approx(10 / 13)
    # trigrams: 4 distinct in the first (i like it twice), 4 in the second, 1 in the third
    assert reference["distinct-3_per_sentence"] == pytest.approx(9 / 3)
    assert reference["items_per_reply"] == pytest.approx(4 / 3)  # @10 @10 @11 and @11
    assert reference["rec_in_reply"] == pytest.approx(1 / 2)  # the second reply starts with @10, the third with @11
    assert reference["rec_in_reply_any"] == pytest.approx(1.0)  # the second reply's @11 counts now
    assert reference["loop_rate"] == pytest.approx(1 / 3)
    # the main figures are the same replies cut at __end__: as in our protocol
    ours, _ = run()
    for key in ("distinct-2", "distinct-4_per_sentence", "item_ratio", "rec_in_reply", "loop_rate"):
        assert results[key] == pytest.approx(ours[key]), key


def test_generation_is_cut_to_the_first_batches():
    results, calls = run(sizes=(2, 1), max_generation_batches=1)
    assert len(calls) == 1 and results["generated_replies"] == 2
    assert results["human"]["item_ratio"] == 1.0  # the first two human replies both name an item
    assert results["perplexity"] == pytest.approx(len(VOCAB))  # perplexity still over every batch


def test_without_targets_no_recommendation_in_reply():
    batches = toy_batches()
    del batches[0][TARGETS_KEY]
    results = evaluate_conversation(StubModel(), batches, Accelerator(cpu=True), StubTokenizer(), item_entities=ITEM_ENTITIES)
    assert "rec_in_reply" not in results and results["item_ratio"] == pytest.approx(2 / 3)


def test_with_target_items_collator():
    collate = WithTargetItems(lambda rows: {"n": len(rows)})
    batch = collate([{"target_items": [5, 6]}, {"target_items": []}])
    assert batch[TARGETS_KEY].tolist() == [[5, 6], [-1, -1]]
    assert collate([{"target_items": []}])[TARGETS_KEY].tolist() == [[-1]]


def test_paper_decoding_and_settings():
    assert paper_decoding() == {"item_slots": False, "no_repeat_ngram_size": 0, "repetition_penalty": 1.0, "num_beams": 1,
                                "do_sample": False}
    model = StubModel()
    assert generation_settings(model) == {"max_new_tokens": 30}
    assert generation_settings(model, max_new_tokens=12) == {"max_new_tokens": 12}
    paper = generation_settings(model, "paper", "reference")
    assert "item_slots" not in paper  # the stub has no item slots: nothing to turn off
    model.generation_config.item_slots = True
    assert generation_settings(model, "paper")["item_slots"] is False
    with pytest.raises(ValueError, match="protocol"):
        generation_settings(model, protocol="paper")
    with pytest.raises(ValueError, match="decoding"):
        generation_settings(model, decoding="beam")


def test_selection_score():
    weights = parse_weights(stages.DEFAULT_SELECTION_WEIGHTS)
    assert weights == {"nll_per_token": -1.0, "distinct-4_per_sentence": 0.1, "item_ratio": 1.0, "loop_rate": -1.0}
    metrics = {"nll_per_token": math.log(20.0), "distinct-4_per_sentence": 5.0, "item_ratio": 0.25, "loop_rate": 0.5,
               "perplexity": 20.0}
    assert selection_score(metrics, weights) == pytest.approx(-math.log(20.0) + 0.5 + 0.25 - 0.5)
    assert selection_score({"rec_in_reply": None}, {"rec_in_reply": 2.0}) == 0.0
    with pytest.raises(KeyError, match="bleu-9"):
        selection_score(metrics, {"bleu-9": 1.0})
    with pytest.raises(ValueError, match="metric=weight"):
        parse_weights("item_ratio")


def test_conversation_stage_refuses_bad_selection(tmp_path):
    with pytest.raises(ValueError, match="--selection must be one of"):
        stages.train_conversation(["--output_dir", str(tmp_path), "--selection", "bleu"])
    with pytest.raises(ValueError, match="--generation_batches > 0"):
        stages.train_conversation(["--output_dir", str(tmp_path), "--selection", "generation", "--generation_batches", "0"])


def test_real_model_under_both_decodings_and_protocols():
    """The tiny KGSF model's generate() takes the decoding's arguments; the reference protocol's raw
    replies run on after __end__ (never shorter than the stopped ones, at most 20 tokens)."""
    from kgsf_tiny import tiny_batch, tiny_model

    model = tiny_model().eval()
    batch = tiny_batch(batch_size=3)
    batch[TARGETS_KEY] = torch.tensor([[0], [1], [-1]])
    tokenizer = SimpleNamespace(pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                convert_ids_to_tokens=lambda i: f"w{i}" if isinstance(i, int) else [f"w{j}" for j in i])
    for decoding in ("default", "paper"):
        results = evaluate_conversation(model, [batch], Accelerator(cpu=True), tokenizer, decoding=decoding, protocol="reference",
                                        human=True, item_entities={f"w{i}": i - 40 for i in range(40, 52)})
        assert results["generated_replies"] == 3
        assert results["mean_reply_length"] <= results["reference_protocol"]["mean_reply_length"] <= 20
        assert {"rec_in_reply", "loop_rate", "distinct-4_per_sentence"} <= set(results["reference_protocol"])


def test_generate_kwargs_option():
    """--generate_kwargs is a JSON object; sampling through it is reproducible under the same seed and
    differs from greedy decoding on the tiny model."""
    assert evaluate_folder.parse_generate_kwargs(None) == {} and evaluate_folder.parse_generate_kwargs("") == {}
    assert evaluate_folder.parse_generate_kwargs('{"do_sample": true, "top_p": 0.9}') == {"do_sample": True, "top_p": 0.9}
    with pytest.raises(ValueError, match="JSON object"):
        evaluate_folder.parse_generate_kwargs("do_sample=true")
    with pytest.raises(ValueError, match="JSON object"):
        evaluate_folder.parse_generate_kwargs("[1, 2]")
    from accelerate.utils import set_seed
    from kgsf_tiny import tiny_batch, tiny_model

    model = tiny_model().eval()
    batch = tiny_batch(batch_size=4)
    inputs = {key: batch[key] for key in ("input_ids", "attention_mask")}
    sampled = []
    for _ in range(2):
        set_seed(7)
        sampled.append(model.generate(**inputs, max_new_tokens=8, do_sample=True, top_p=0.9, temperature=2.0).tolist())
    assert sampled[0] == sampled[1]
    greedy = model.generate(**inputs, max_new_tokens=8).tolist()
    assert greedy != sampled[0]
