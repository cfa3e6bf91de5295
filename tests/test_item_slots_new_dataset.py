"""Item slots on a dataset other than ReDial (issue 27): a model trained from scratch or adapted and
fine-tuned on a generic-format dataset (docs/CRS_FORMAT.md) names the recommender's items in its replies.

Greedy decoding names an item only where the slot (the summed item probability) beats every word.
A model trained on data whose replies name items less often than ReDial's never gets there; the
conversation stage calibrates ``generation_config.item_slot_bias`` on validation so that the slot
wins in about as many replies as the human ones name items (generation_kgsf).
"""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from fake_crs import conversation, make_crs_dataset
from modeling_kgsf import KGSFForConversationalRecommendation
from modeling_kgsf.generation_kgsf import ItemSlotLogitsProcessor, calibrate_item_slot_bias, generated_item_ratio
from training_kgsf.data import DataArguments, KGSFData
from modeling_kgsf.processing_kgsf import CONTEXT_KEYS
from training_kgsf.stages import train_conversation

TINY_MODEL = {"d_model": 16, "kg_dim": 8, "ffn_dim": 16, "attention_heads": 2, "num_bases": 2,
              "item_graph_encoder": "featureless", "mim_form": "contrastive"}
ASKS = ["I want a good book .", "Any novel for me ?", "Something to read tonight ?", "I need a new book ."]
CHAT = ["Hello , how are you today ?", "I am fine , thank you for asking .", "Nice to meet you , I like to help .",
        "Good evening , what do you like ?"]
ITEMS = ["b1", "b2", "b3", "b4"]
_SPEC = importlib.util.spec_from_file_location("adapt_model", Path(__file__).resolve().parents[1] / "examples" / "adapt_model.py")
adapt_model = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(adapt_model)


def slot_conversations():
    """As INSPIRED: the reply "You may like ___ ." names an item in one turn of five ("it" and "this" in
    the others), so after "like" the slot's mass (1/5) stays below the best word's (2/5)."""
    def talk(prefix, count):
        out = []
        for index in range(count):
            item = ITEMS[index % 4]
            filler = ([f"@{item}"] + ["it", "this", "it", "this"])[index % 5]
            out.append(conversation(f"{prefix}{index}", ("seeker", ASKS[index % 4]),
                                    ("recommender", f"You may like {filler} .", [item] if filler.startswith("@") else [])))
        return out
    return {"train": talk("t", 20), "validation": talk("v", 10), "test": talk("s", 5)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("slots")
    (root / "tiny.json").write_text(json.dumps(TINY_MODEL))
    dataset = make_crs_dataset(root / "books", conversations=slot_conversations())
    other = make_crs_dataset(root / "other")  # tests/fake_crs.py's own books: another vocabulary
    common = ["--cache_dir", str(root / "cache"), "--batch_size", "10", "--max_steps", "60", "--num_epochs", "30", "--learning_rate", "0.01",
              "--checkpoint_steps", "0", "--patience", "0", "--generation_batches", "0", "--seed", "3"]
    train_conversation(["--dataset_dir", str(dataset), "--output_dir", str(root / "scratch"),
                        "--model_config", str(root / "tiny.json"), *common])
    train_conversation(["--dataset_dir", str(other), "--output_dir", str(root / "source"),
                        "--model_config", str(root / "tiny.json"), *common])
    adapt_model.main(["--model", str(root / "source" / "best"), "--dataset_dir", str(dataset), "--output_dir", str(root / "adapted"),
           "--cache_dir", str(root / "cache")])
    train_conversation(["--dataset_dir", str(dataset), "--output_dir", str(root / "finetuned"),
                        "--init_from", str(root / "adapted"), *common])
    return {"root": root, "dataset": dataset}


def replies_and_rankings(folder, dataset, cache_dir, split="validation", **generate_kwargs):
    """Replies (the default settings and ``generate_kwargs``) for the split's turns and, per turn, the items by recommender
    score with the context's items left out."""
    model = KGSFForConversationalRecommendation.from_pretrained(folder).eval()
    data = KGSFData(DataArguments(dataset_dir=str(dataset), cache_dir=str(cache_dir)), str(folder))
    rows = data.split(split, "conv")
    batch = data.collator("conv")([rows[i] for i in range(len(rows))])
    inputs = {key: batch[key] for key in CONTEXT_KEYS}
    with torch.no_grad():
        scores = model(**inputs, task="rec").rec_logits
        replies = model.generate(**inputs, max_new_tokens=12, **generate_kwargs)
    items = model.kgsf.item_entity_ids.tolist()
    rankings = []
    for row, entities, mask in zip(scores, batch["context_entity_ids"], batch["context_entity_mask"]):
        seen = {items.index(e) for e in entities[mask].tolist() if e in items}
        rankings.append([i for i in row.argsort(descending=True).tolist() if i not in seen])
    token_of_item = model.kgsf.item_token_ids.tolist()
    return model, replies, rankings, token_of_item


@pytest.mark.parametrize("path", ["scratch", "finetuned"])
def test_replies_name_the_recommenders_top_unseen_item(runs, path):
    folder = runs["root"] / path / "best"
    # the default decoding (beam search), which the calibration checks by generating
    model, replies, rankings, token_of_item = replies_and_rankings(folder, runs["dataset"], runs["root"] / "cache")
    assert all(token >= 0 for token in token_of_item), token_of_item  # every item of the new dataset has its token
    item_of_token = {token: item for item, token in enumerate(token_of_item)}
    named = [[item_of_token[t] for t in reply.tolist() if t in item_of_token] for reply in replies]
    assert any(named), f"{path}: no reply names an item (item_slot_bias {model.generation_config.item_slot_bias})"
    for items, ranking in zip(named, rankings):
        if items:  # the slot holds the recommender's best item that the context does not mention
            assert items[0] == ranking[0], (items, ranking)
    assert model.generation_config.item_slot_bias > 0  # this tiny model needs the calibration to name items


def test_the_bias_is_the_calibration_of_the_saved_folder(runs):
    """The saved bias is calibrated on validation; without it the model names nothing."""
    folder = runs["root"] / "scratch" / "best"
    model, replies, _, token_of_item = replies_and_rankings(folder, runs["dataset"], runs["root"] / "cache", item_slot_bias=0.0)
    assert not torch.isin(replies, torch.tensor(token_of_item)).any()  # the slot never wins on its own
    data = KGSFData(DataArguments(dataset_dir=str(runs["dataset"]), cache_dir=str(runs["root"] / "cache")), str(folder))
    rows = data.split("validation", "conv")
    batches = [data.collator("conv")([rows[i] for i in range(len(rows))])]
    result = calibrate_item_slot_bias(model, batches)
    assert result["human_item_ratio"] == pytest.approx(0.2) and result["slot_win_ratio_before"] < 0.2 <= result["slot_win_ratio_after"]
    # the saved bias is at least greedy's teacher-forced one, and with it the default decoding names items as often as the humans
    saved = model.generation_config.item_slot_bias
    assert saved >= result["item_slot_bias"] - 1e-6
    assert generated_item_ratio(model, batches, saved) >= 0.2


def test_no_bias_where_no_reply_names_an_item():
    from kgsf_tiny import tiny_batch, tiny_model

    model = tiny_model(seed=3)
    batch = tiny_batch(batch_size=4, seed=21)
    batch["labels"] = torch.tensor([[5, 6, 2], [7, 8, 2], [9, 10, 2], [11, 12, 2]])  # no reply names an item
    result = calibrate_item_slot_bias(model, [batch])
    assert result["item_slot_bias"] == 0.0 and result["human_item_ratio"] == 0.0 and result["replies"] == 4
    batch["labels"][:2, 0] = 40  # half of them name item 0: the slot then wins in at least half
    result = calibrate_item_slot_bias(model, [batch])
    assert result["human_item_ratio"] == 0.5 and result["slot_win_ratio_after"] >= 0.5
    assert (result["item_slot_bias"] == 0.0) == (result["slot_win_ratio_before"] >= 0.5)


def test_the_bias_is_added_to_the_slot_only():
    mask = torch.zeros(10, dtype=torch.bool)
    mask[[5, 6, 7, 8]] = True
    scores = torch.randn(1, 10)
    out = ItemSlotLogitsProcessor(mask, torch.tensor([5, 6, 7, 8]), torch.tensor([[1.0, 4.0, 2.0, 3.0]]), slot_bias=2.5)(
        torch.tensor([[1]]), scores.clone())
    assert torch.allclose(out[0, 6], torch.logsumexp(scores[0, 5:9], -1) + 2.5)
    assert torch.equal(out[0, :5], scores[0, :5]) and torch.equal(out[0, 9:], scores[0, 9:])
    with pytest.raises(ValueError, match="item_slot_bias"):
        ItemSlotLogitsProcessor(mask, slot_bias=float("nan"))
