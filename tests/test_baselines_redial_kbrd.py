"""The REDIAL and KBRD baselines (modeling_kgsf/baselines): shapes, the switch, training steps, save/load,
and their commands (train_redial.py, train_kbrd.py, run_tables.py) on the tiny fake data directory."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from fake_data import make_fake_data_dir
from kgsf_tiny import N_ITEM, VOCAB, random_graphs, tiny_batch, tiny_model
from modeling_kgsf import KGSFForConversationalRecommendation
from modeling_kgsf.baselines import (
    KBRD_CONVERSATION_OVERRIDES,
    KBRD_RECOMMENDER_OVERRIDES,
    RedialConfig,
    RedialForConversationalRecommendation,
    token_item_index_from_vocab,
)
from run_helpers import REPO, run_checked
from modeling_kgsf.processing_kgsf import CONTEXT_KEYS

SPLIT = 13
ITEM_TOKENS = list(range(40, 52)) + [52]  # token 40 + i is item i; token 52 is a second token of item 0


def token_item_index() -> torch.Tensor:
    index = torch.full((VOCAB,), -1, dtype=torch.long)
    index[40:52] = torch.arange(N_ITEM)
    index[52] = 0
    return index


def tiny_redial(seed: int = 0, **overrides) -> RedialForConversationalRecommendation:
    torch.manual_seed(seed)
    values = dict(vocab_size=VOCAB, n_item=N_ITEM, embedding_dim=8, utterance_hidden_size=6, conversation_hidden_size=10,
                  decoder_hidden_size=12, recommender_hidden_size=7, split_token_id=SPLIT, max_response_length=6)
    model = RedialForConversationalRecommendation(RedialConfig(**{**values, **overrides}))
    model.set_item_maps(random_graphs(seed)["item_entity_ids"], token_item_index())
    return model


def redial_batch(seed: int = 1) -> dict:
    batch = tiny_batch(seed=seed)
    batch["input_ids"][1, 2] = SPLIT  # row 1: three utterances
    batch["input_ids"][1, 4] = SPLIT
    items = random_graphs(0)["item_entity_ids"]
    batch["context_entity_ids"][0, 0] = items[3]  # row 0 mentions item 3
    batch["context_entity_ids"][2, 1] = items[5]  # row 2 mentions item 5
    return batch


# ---------------------------------------------------------------- REDIAL model
def test_redial_shapes_and_a_normalised_mixture():
    model = tiny_redial().eval()
    batch = redial_batch()
    with torch.no_grad():
        out = model(**batch)
    assert out.rec_logits.shape == (4, N_ITEM)
    assert out.lm_logits.shape == (4, batch["labels"].shape[1], VOCAB) and out.logits is out.lm_logits
    assert out.switch_probabilities.shape == (4, batch["labels"].shape[1])
    assert out.loss is not None and torch.isfinite(out.loss) and torch.allclose(out.loss, out.rec_loss + out.lm_loss)
    probabilities = out.lm_logits.exp()
    assert torch.allclose(probabilities.sum(-1), torch.ones(4, batch["labels"].shape[1]), atol=1e-5)
    assert (probabilities[..., [0, 1]] == 0).all()  # pad and start are never predicted
    # the item tokens carry exactly the switch's share, split over the recommender's items
    item_mass = probabilities[..., ITEM_TOKENS].sum(-1)
    assert torch.allclose(item_mass, out.switch_probabilities, atol=1e-5)
    item_probabilities = out.rec_logits.softmax(-1)  # every item has a token here
    assert torch.allclose(probabilities[..., 45] / out.switch_probabilities, item_probabilities[:, 5:6].expand(-1, 5), atol=1e-5)
    assert torch.allclose(probabilities[..., 40], probabilities[..., 52], atol=1e-7)  # item 0's two tokens share its mass


def test_redial_reads_the_mentioned_items_from_the_context_entities():
    model = tiny_redial()
    batch = redial_batch()
    mentioned = model.mentioned_items(batch["context_entity_ids"], batch["context_entity_mask"])
    items = random_graphs(0)["item_entity_ids"].tolist()
    for row in range(4):
        expected = {items.index(e) for e, m in zip(batch["context_entity_ids"][row].tolist(), batch["context_entity_mask"][row].tolist())
                    if m and e in items}
        assert set(mentioned[row].nonzero().flatten().tolist()) == expected
    assert mentioned[0, 3] == 1 and mentioned[2, 5] == 1
    # rec logits depend on them (the autoencoder), and only on them: the text does not change them
    other_text = dict(batch, input_ids=torch.randint(4, VOCAB, batch["input_ids"].shape))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**batch, task="rec").rec_logits, model(**other_text, task="rec").rec_logits)


def test_redial_handles_empty_contexts_and_no_item_tokens():
    model = tiny_redial().eval()
    batch = redial_batch()
    batch["attention_mask"][3] = 0  # no utterance at all
    batch["context_entity_mask"][3] = False
    with torch.no_grad():
        out = model(**batch)
    assert torch.isfinite(out.lm_logits).all() and torch.isfinite(out.loss)
    plain = tiny_redial()
    plain.set_item_maps(plain.item_entity_ids, torch.full((VOCAB,), -1))
    with torch.no_grad():
        out = plain.eval()(**batch)
    assert torch.allclose(out.lm_logits.exp().sum(-1), torch.ones_like(out.lm_logits[..., 0]), atol=1e-5)


def test_redial_loss_decreases_over_a_few_steps():
    model = tiny_redial(seed=2, dropout=0.0).train()
    batch = redial_batch(seed=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5, losses


def test_redial_freeze_recommender_keeps_the_autoencoder():
    model = tiny_redial().train()
    model.freeze_recommender()
    before = model.recommender_decoder.weight.clone()
    loss = model(**{key: value for key, value in redial_batch().items() if key != "rec_labels"}).loss
    loss.backward()
    assert model.recommender_decoder.weight.grad is None and model.switch.weight.grad is not None
    assert torch.equal(before, model.recommender_decoder.weight)


def test_redial_save_load_round_trip(tmp_path):
    model = tiny_redial(seed=4).eval()
    model.save_pretrained(tmp_path / "redial")
    assert (tmp_path / "redial" / "model.safetensors").exists()
    config = json.loads((tmp_path / "redial" / "config.json").read_text())
    assert config["model_type"] == "kgsf_redial" and config["split_token_id"] == SPLIT
    loaded = RedialForConversationalRecommendation.from_pretrained(tmp_path / "redial").eval()
    assert torch.equal(loaded.token_item_index, model.token_item_index)
    assert torch.equal(loaded.item_entity_ids, model.item_entity_ids)
    batch = redial_batch()
    with torch.no_grad():
        a, b = model(**batch), loaded(**batch)
        assert torch.allclose(a.lm_logits, b.lm_logits) and torch.allclose(a.rec_logits, b.rec_logits)
        inputs = {key: batch[key] for key in CONTEXT_KEYS}
        assert torch.equal(model.generate(**inputs, max_new_tokens=4), loaded.generate(**inputs, max_new_tokens=4))


def test_redial_generate_puts_items_in_the_reply_when_the_switch_is_open():
    model = tiny_redial(seed=5).eval()
    inputs = {key: redial_batch()[key] for key in CONTEXT_KEYS}
    with torch.no_grad():
        model.switch.weight.zero_()
        model.switch.bias.fill_(30.0)  # open: P(item) ~ 1
        generated = model.generate(**inputs, max_new_tokens=5)
        assert generated.shape == (4, 6) and (generated[:, 0] == 1).all()
        assert all(token in ITEM_TOKENS for token in generated[:, 1:].flatten().tolist())
        # the item named is the recommender's best one (greedy)
        best = model(**inputs, task="rec").rec_logits.argmax(-1)
        assert torch.equal(token_item_index()[generated[:, 1]], best)
        model.switch.bias.fill_(-30.0)  # closed: words only
        generated = model.generate(**inputs, max_new_tokens=5, num_beams=2)
        assert not any(token in ITEM_TOKENS for token in generated[:, 1:].flatten().tolist())


def test_token_item_index_from_vocab():
    vocab = {"__pad__": 0, "hi": 1, "@111": 2, "@222": 3, "@999": 4}
    index = token_item_index_from_vocab(vocab, {"111": 7, "222": 9, "999": 30}, {7: 0, 9: 1})
    assert index.tolist() == [-1, -1, 0, 1, -1]


# ---------------------------------------------------------------- KBRD
def tiny_kbrd(seed: int = 0):
    return tiny_model(seed=seed, **KBRD_RECOMMENDER_OVERRIDES, **KBRD_CONVERSATION_OVERRIDES)


def test_kbrd_configuration_and_vocabulary_bias():
    model = tiny_kbrd().eval()
    assert model.kgsf.word_graph_encoder is None and model.kgsf.mim is None and model.copy_head is None
    assert model.kgsf.entity_to_decoder is None and model.user_vocab_bias is not None
    batch = tiny_batch(seed=2)
    with torch.no_grad():
        out = model(**batch)
        assert out.lm_logits.shape == (4, batch["labels"].shape[1], VOCAB) and out.rec_logits.shape == (4, N_ITEM)
        # the bias is the user vector's: the same decoder states, the bias layer zeroed -> logits change by bias(p_u)
        body = model.kgsf(**{key: batch[key] for key in CONTEXT_KEYS}, decoder_input_ids=model.shift_labels_right(batch["labels"]))
        user = model.kgsf.recommender.user_vector(None, body.entity_vector)
        assert torch.allclose(user, body.user_embedding)
        bias = model.user_vocab_bias(user)
        model.user_vocab_bias[2].weight.zero_()
        model.user_vocab_bias[2].bias.zero_()
        without = model(**batch).lm_logits
    keep = torch.ones(VOCAB, dtype=torch.bool)
    keep[[0, 1]] = False
    assert torch.allclose((out.lm_logits - without)[..., keep], bias.unsqueeze(1).expand(-1, out.lm_logits.shape[1], -1)[..., keep], atol=1e-5)
    assert not torch.allclose(bias[0], bias[1])  # different users, different biases


def test_kbrd_conversation_loss_decreases_and_the_recommender_stays_frozen():
    model = tiny_kbrd(seed=1).train()
    model.freeze_recommender()
    batch = {key: value for key, value in tiny_batch(seed=3).items() if key != "rec_labels"}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    frozen = model.kgsf.recommender.item_bias.clone()
    losses = []
    for _ in range(6):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    assert torch.equal(frozen, model.kgsf.recommender.item_bias)
    assert all(p.requires_grad for p in model.user_vocab_bias.parameters())


def test_kbrd_save_load_and_start_from_a_recommender(tmp_path):
    model = tiny_kbrd(seed=2).eval()
    model.save_pretrained(tmp_path / "kbrd")
    loaded = KGSFForConversationalRecommendation.from_pretrained(tmp_path / "kbrd").eval()
    assert loaded.config.user_vocab_bias is True
    batch = tiny_batch(seed=4)
    inputs = {key: batch[key] for key in CONTEXT_KEYS}
    with torch.no_grad():
        assert torch.allclose(model(**batch).lm_logits, loaded(**batch).lm_logits)
        assert torch.equal(model.generate(**inputs, max_new_tokens=4), loaded.generate(**inputs, max_new_tokens=4))
    # stage 3 starts from a recommender saved without the bias layer: the override adds it, initialised
    recommender = tiny_model(seed=3, **KBRD_RECOMMENDER_OVERRIDES)
    assert recommender.user_vocab_bias is None and recommender.config.user_vocab_bias is False
    recommender.save_pretrained(tmp_path / "rec")
    conversation = KGSFForConversationalRecommendation.from_pretrained(tmp_path / "rec", **KBRD_CONVERSATION_OVERRIDES).eval()
    assert conversation.user_vocab_bias is not None
    assert all(torch.isfinite(p).all() for p in conversation.user_vocab_bias.parameters())
    assert torch.equal(conversation.kgsf.recommender.item_bias, recommender.kgsf.recommender.item_bias)
    with torch.no_grad():
        assert torch.isfinite(conversation(**batch).loss)


# ---------------------------------------------------------------- commands
@pytest.mark.parametrize("script", ["train_redial.py", "train_kbrd.py"])
def test_scripts_help(script):
    result = run_checked([sys.executable, f"examples/{script}", "--help"], cwd=REPO)
    assert "--output_dir" in result.stdout and "--stage" in result.stdout


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines")
    data_dir = make_fake_data_dir(root / "data")
    (root / "tiny_model.json").write_text(json.dumps({"d_model": 16, "kg_dim": 8, "ffn_dim": 16, "attention_heads": 2, "num_bases": 2}))
    flags = ["--data_dir", str(data_dir), "--cache_dir", str(root / "cache"), "--include_recovered", "false"]
    return root, flags


def test_train_redial_runs_both_stages(fake_data, tmp_path):
    root, flags = fake_data
    run_checked([sys.executable, "examples/train_redial.py", "--output_dir", str(tmp_path / "redial"), "--batch_size", "2",
                 "--max_steps", "2", "--checkpoint_steps", "0", "--embedding_dim", "8", "--utterance_hidden_size", "4",
                 "--conversation_hidden_size", "6", "--decoder_hidden_size", "6", "--recommender_hidden_size", "5",
                 "--generation_examples", "4", "--eval_batch_size", "2", *flags], cwd=REPO)
    metrics = json.loads((tmp_path / "redial" / "test_metrics.json").read_text())
    assert {"recall@1", "cold_start_recall@10", "dedup_turns_recall@50", "dedup_filtered_recall@50"} <= set(metrics["recommendation"])
    assert {"distinct-4", "item_ratio", "bleu-4", "perplexity"} <= set(metrics["conversation"])
    for stage in ("rec", "conv"):
        assert (tmp_path / "redial" / stage / "best" / "model.safetensors").exists()
    loaded = RedialForConversationalRecommendation.from_pretrained(tmp_path / "redial" / "conv" / "best")
    assert loaded.config.split_token_id >= 0 and (loaded.token_item_index >= 0).sum() == 4  # the fake data's four items


def test_train_kbrd_chains_the_stages(fake_data, tmp_path):
    root, flags = fake_data
    result = run_checked([sys.executable, "examples/train_kbrd.py", "--output_dir", str(tmp_path / "kbrd"),
                          "--model_config", str(root / "tiny_model.json"), "--batch_size", "2", "--max_steps", "2",
                          "--checkpoint_steps", "0", "--eval_args", "--generation_examples 2 --batch_size 2", *flags], cwd=REPO)
    assert "use_kg_attention=false,use_copy=false,user_vocab_bias=true" in result.stdout
    config = json.loads((tmp_path / "kbrd" / "conv" / "best" / "config.json").read_text())
    assert config["user_vocab_bias"] and not config["use_conceptnet"] and not config["use_mim"] and not config["use_copy"]
    metrics = json.loads((tmp_path / "kbrd" / "test_metrics.json").read_text())
    assert "recall@50" in metrics["recommendation"] and "perplexity" in metrics["conversation"]


def test_run_tables_writes_redial_and_kbrd_rows(fake_data, tmp_path):
    root, flags = fake_data
    results = tmp_path / "results"
    common = ["--output_dir", str(tmp_path / "tables"), "--only", "redial", "kbrd", "--model_config", str(root / "tiny_model.json"),
              "--rec_epochs", "1", "--conv_epochs", "1", "--eval_steps", "1", "--results_dir", str(results), *flags]
    run_checked([sys.executable, "examples/run_tables.py", "rec", *common], cwd=REPO)
    (results / "conv_table.json").write_text(json.dumps({"models": {"kgsf": {"perplexity": 1.0}}}))  # kept on merge
    run_checked([sys.executable, "examples/run_tables.py", "conv", *common, "--generation_examples", "2"], cwd=REPO)
    rec = json.loads((results / "rec_table.json").read_text())["models"]
    conv = json.loads((results / "conv_table.json").read_text())["models"]
    assert set(rec) == {"redial", "kbrd"} and "dedup_filtered_recall@10" in rec["redial"] and "cold_start_recall@1" in rec["kbrd"]
    assert set(conv) == {"kgsf", "redial", "kbrd"} and "distinct-2" in conv["redial"] and "bleu-1" in conv["kbrd"]
    commands = (tmp_path / "tables" / "commands.txt").read_text()
    assert "train_redial.py --stage recommender" in commands and "user_vocab_bias=true" in commands
