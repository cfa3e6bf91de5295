"""The reference protocol of the conversation evaluation (training_kgsf/evaluation.py) as
RUCAIBox/KGSF decodes and counts: the paper's decoding, at most 20 steps, a batch stopped once every
row has emitted __end__, the tokens after __end__ counted; the four cells {paper, default} decoding x
{reference, ours} counting; and examples/measure_conv_protocols.py end to end on a tiny model."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from accelerate import Accelerator
from transformers import LogitsProcessor, LogitsProcessorList

from modeling_kgsf.generation_kgsf import PAPER_DECODING
from training_kgsf.evaluation import REFERENCE_BATCH_SIZE, EndInEveryRow, evaluate_conversation, generation_settings, protocol_cell

REPO = Path(__file__).resolve().parents[1]
EOS = 2


class Script(LogitsProcessor):
    """Forces row ``r`` of the evaluation to emit ``scripts[r][step]`` (over every other processor),
    also after its __end__; follows the rows across several ``generate`` calls (one per chunk)."""

    def __init__(self, scripts):
        self.scripts, self.offset, self.rows = scripts, 0, 0

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - 1
        if step == 0:  # a new generate call: the next chunk of rows
            self.offset, self.rows = self.offset + self.rows, input_ids.shape[0]
        forced = torch.full_like(scores, float("-inf"))
        for row in range(input_ids.shape[0]):
            forced[row, self.scripts[self.offset + row][step]] = 0.0
        return forced


def filler(start, length=25):
    return [4 + (start + i) % 6 for i in range(length)]  # word ids 4..9 (no item tokens)


# row 0 ends at step 1, row 1 at step 4, row 2 at step 2; each goes on after its __end__
SCRIPTS = [[10, EOS, 11, 12, 13] + filler(0), [20, 21, 22, 23, EOS, 24] + filler(1), [30, 31, EOS, 32, 33] + filler(2)]
TOKENIZER = SimpleNamespace(pad_token_id=0, bos_token_id=1, eos_token_id=EOS,
                            convert_ids_to_tokens=lambda i: f"w{i}" if isinstance(i, int) else [f"w{j}" for j in i])


def scripted(scripts, **kwargs):
    from kgsf_tiny import tiny_batch, tiny_model

    model = tiny_model().eval()
    model.generation_config.num_beams = 1  # one scripted row per example (the default decoding searches 4 beams)
    batch = tiny_batch(batch_size=len(scripts))
    calls = []
    generate = model.generate
    model.generate = lambda **kw: calls.append(kw) or generate(**kw)
    results = evaluate_conversation(model, [batch], Accelerator(cpu=True), TOKENIZER,
                                    generation_kwargs={"logits_processor": LogitsProcessorList([Script(scripts)])}, **kwargs)
    return results, calls


def test_protocol_cells():
    assert protocol_cell() == ("default", "ours")
    assert protocol_cell("reference") == ("paper", "reference")  # the reference's decoding AND counting
    assert protocol_cell("reference", decoding="default") == ("default", "reference")
    assert protocol_cell("ours", counting="reference") == ("default", "reference")
    with pytest.raises(ValueError, match="counting must be one of"):
        protocol_cell(counting="theirs")
    from kgsf_tiny import tiny_model

    model = tiny_model()
    reference = generation_settings(model, protocol="reference")
    assert reference == {**PAPER_DECODING, "max_new_tokens": 20, "eos_token_id": None}
    assert generation_settings(model, "default", counting="reference") == {"max_new_tokens": 20, "eos_token_id": None}
    assert generation_settings(model, "paper", counting="ours") == {**PAPER_DECODING, "max_new_tokens": 30}
    json.dumps(reference)  # recorded with the results


def test_end_in_every_row_stops_the_batch_only_when_all_ended():
    stop = EndInEveryRow(EOS)
    ids = torch.tensor([[1, 5, EOS, 6], [1, 5, 6, 7]])
    assert stop(ids, None).tolist() == [False, False]  # row 0 ended, row 1 not: nobody stops
    ids[1, 3] = EOS
    assert stop(ids, None).tolist() == [True, True]
    assert not hasattr(stop, "eos_token_id")  # generate must not pad the rows that ended first


def test_reference_counting_on_a_fixed_toy_input():
    """The batch runs until its last row ends (step 4): 5 tokens per row, those after __end__ counted."""
    results, calls = scripted(SCRIPTS, protocol="reference")
    assert calls[0]["item_slots"] is False and calls[0]["no_repeat_ngram_size"] == 0 and calls[0]["repetition_penalty"] == 1.0
    assert calls[0]["max_new_tokens"] == 20 and calls[0]["eos_token_id"] is None
    raw = results["reference_protocol"]
    # raw replies: [w10 w11 w12 w13], [w20 w21 w22 w23], [w30 w31 w32 w33]
    assert raw["mean_reply_length"] == pytest.approx(12 / 3)
    assert raw["distinct-1_per_sentence"] == pytest.approx(12 / 3)
    assert raw["distinct-2_per_sentence"] == pytest.approx(9 / 3)  # 3 distinct bigrams per reply
    assert raw["distinct-4_per_sentence"] == pytest.approx(3 / 3)
    assert raw["generation_batch_size"] == REFERENCE_BATCH_SIZE
    # the main figures: the same replies cut at their first __end__: [w10], [w20 w21 w22 w23], [w30 w31]
    assert results["mean_reply_length"] == pytest.approx(7 / 3)
    assert results["distinct-2_per_sentence"] == pytest.approx(4 / 3)


def test_reference_stop_depends_on_the_batch():
    """In batches of 2, row 2 is alone in its batch and stops at its own __end__ (step 2)."""
    results, calls = scripted(SCRIPTS, protocol="reference", generation_batch_size=2)
    assert len(calls) == 2
    # raw: [w10 w11 w12 w13], [w20 w21 w22 w23], [w30 w31]
    assert results["reference_protocol"]["mean_reply_length"] == pytest.approx(10 / 3)
    assert results["reference_protocol"]["generation_batch_size"] == 2


def test_reference_counting_decodes_at_most_20_steps():
    never = [20 + (i % 5) for i in range(25)]  # never ends
    results, _ = scripted([SCRIPTS[0], never, SCRIPTS[2]], protocol="reference")
    # rows 0 and 2: 20 tokens, one of them __end__ (dropped); row 1: 20 tokens
    assert results["reference_protocol"]["mean_reply_length"] == pytest.approx((19 + 20 + 19) / 3)
    assert results["mean_reply_length"] == pytest.approx((1 + 20 + 2) / 3)


def test_our_counting_stops_each_row_at_its_end():
    results, calls = scripted(SCRIPTS, protocol="ours", decoding="paper")
    assert calls[0]["max_new_tokens"] == 30 and "eos_token_id" not in calls[0] and "stopping_criteria" not in calls[0]
    assert "reference_protocol" not in results
    assert results["mean_reply_length"] == pytest.approx(7 / 3)
    assert results["distinct-2_per_sentence"] == pytest.approx(4 / 3)


def test_default_decoding_with_reference_counting():
    """The fourth cell: the model's own generation_config, the reference's length and counting."""
    results, calls = scripted(SCRIPTS, decoding="default", counting="reference")
    assert "item_slots" not in calls[0] and calls[0]["max_new_tokens"] == 20 and calls[0]["eos_token_id"] is None
    assert results["reference_protocol"]["mean_reply_length"] == pytest.approx(12 / 3)


# ------------------------------------------------------------------------------------------------
# examples/measure_conv_protocols.py end to end
# ------------------------------------------------------------------------------------------------
TINY_MODEL = {"d_model": 16, "kg_dim": 8, "ffn_dim": 16, "attention_heads": 2, "num_bases": 2,
              "item_graph_encoder": "featureless", "mim_form": "contrastive"}


def save_tiny_folder(data, folder: Path, config_file: Path, overrides: str | None = None) -> Path:
    from datasets_scripts.kg_resources import save_kg_resources
    from training_kgsf.building import ModelArguments, build_model

    model = build_model(data, ModelArguments(model_config=str(config_file), config_overrides=overrides), word_embeddings=False)
    model.save_pretrained(folder)
    data.tokenizer.save_pretrained(folder)
    save_kg_resources(data.resources, folder)
    (folder.parent / "summary.json").write_text(json.dumps({"epochs": 3, "best_step": 7}))
    return folder


def test_measure_conv_protocols_writes_the_four_cells(tmp_path):
    from fake_data import make_fake_data_dir
    from run_helpers import run_checked

    from training_kgsf.data import DataArguments, KGSFData

    data_dir = make_fake_data_dir(tmp_path / "data")
    cache = tmp_path / "cache"
    data = KGSFData(DataArguments(data_dir=str(data_dir), cache_dir=str(cache), train_source="release"))
    config_file = tmp_path / "tiny.json"
    config_file.write_text(json.dumps(TINY_MODEL))
    kgsf = save_tiny_folder(data, tmp_path / "kgsf" / "best", config_file)
    transformer = save_tiny_folder(data, tmp_path / "transformer" / "best", config_file, "use_kg_attention=false,use_copy=false")
    out = tmp_path / "conv_protocols.json"
    run_checked([sys.executable, "examples/measure_conv_protocols.py", "--kgsf", kgsf, "--transformer", transformer,
                 "--data_dir", data_dir, "--cache_dir", cache, "--train_source", "release", "--split", "validation",
                 "--max_examples", 3, "--out", out], cwd=REPO)
    result = json.loads(out.read_text())
    assert result["bleu_smoothing"] == "none" and result["batch_size"] == REFERENCE_BATCH_SIZE
    assert {"date", "machine", "command"} <= set(result) and "--max_examples 3" in result["command"]
    assert set(result["models"]) == {"kgsf", "transformer"}
    for name, folder in (("kgsf", kgsf), ("transformer", transformer)):
        record = result["models"][name]
        assert record["folder"] == str(folder) and record["epochs"] == 3
        for decoding in ("paper_decoding", "default_decoding"):
            assert set(record[decoding]) == {"reference_counting", "our_counting"}
            for counting, metrics in record[decoding].items():
                assert metrics["n"] == min(3, len(data.split("validation", "conv")))
                for key in ("distinct-2_per_sentence", "distinct-3_per_sentence", "distinct-4_per_sentence", "bleu-1", "bleu-2",
                            "bleu-3", "bleu-4", "item_ratio", "loop_rate", "mean_reply_length"):
                    assert isinstance(metrics[key], float), (name, decoding, counting, key)
                limit = 20 if counting == "reference_counting" else 30
                assert 0 <= metrics["mean_reply_length"] <= limit
            assert record[decoding]["reference_counting"]["generate_kwargs"]["max_new_tokens"] == 20
        assert record["paper_decoding"]["our_counting"]["generate_kwargs"]["item_slots"] is False
    with pytest.raises(AssertionError, match="no config.json"):
        run_checked([sys.executable, "examples/measure_conv_protocols.py", "--kgsf", tmp_path, "--out", out], cwd=REPO)
