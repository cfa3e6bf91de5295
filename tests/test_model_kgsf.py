"""KGSF model on a tiny config with random graphs: shapes, losses, ablations, MIM forms, caches, setters."""
import pytest
import torch

from kgsf_tiny import N_ITEM, VOCAB, tiny_batch, tiny_model
from modeling_kgsf import KGSFForConversationalRecommendation
from modeling_kgsf.processing_kgsf import REC_KEYS



def rec_inputs(batch):
    return {key: batch[key] for key in REC_KEYS}


def test_output_shapes_and_losses():
    model = tiny_model()
    batch = tiny_batch(batch_size=4)
    out = model(**batch, task="all")
    assert out.rec_logits.shape == (4, N_ITEM)
    assert out.lm_logits.shape == (4, 5, VOCAB) and out.logits is out.lm_logits
    assert out.user_embedding.shape == (4, 8)
    assert out.word_attention_weights.shape == (4, 4) and out.entity_attention_weights.shape == (4, 3)
    assert out.encoder_last_hidden_state.shape == (4, 7, 16)
    for loss in (out.loss, out.rec_loss, out.mim_loss, out.lm_loss):
        assert loss.ndim == 0 and torch.isfinite(loss)
    torch.testing.assert_close(out.loss, out.rec_loss + model.config.mim_weight * out.mim_loss + out.lm_loss)
    # attention weights sum to one over the real positions
    torch.testing.assert_close(out.entity_attention_weights.sum(-1), torch.ones(4))
    assert (out.entity_attention_weights[~batch["context_entity_mask"]] == 0).all()


def test_task_inference():
    model = tiny_model()
    batch = tiny_batch()
    rec = model(**rec_inputs(batch))  # the recommender stage's batch
    assert rec.rec_loss is not None and rec.mim_loss is not None and rec.lm_logits is None
    torch.testing.assert_close(rec.loss, rec.rec_loss + 0.025 * rec.mim_loss)
    conv = model(**{k: v for k, v in batch.items() if k != "rec_labels"})  # the conversation stage's batch
    assert conv.lm_loss is not None and conv.rec_logits is None and conv.loss is conv.lm_loss
    mim = model(**{k: v for k, v in batch.items() if k not in ("rec_labels", "labels")}, task="mim")
    assert mim.loss is mim.mim_loss and mim.rec_logits is None
    plain = model(**{k: v for k, v in rec_inputs(batch).items() if k != "rec_labels"})  # evaluation
    assert plain.loss is None and plain.rec_logits.shape == (4, N_ITEM)
    with pytest.raises(ValueError, match="task"):
        model(**batch, task="bogus")


@pytest.mark.parametrize("task", ["rec", "conv", "mim"])
def test_loss_decreases_on_a_fixed_batch(task):
    model = tiny_model(seed=2)
    batch = tiny_batch(seed=3)
    if task == "rec":
        batch = rec_inputs(batch)
    elif task == "mim":
        batch = {k: v for k, v in batch.items() if k not in ("labels", "rec_labels")}
    else:
        batch = {k: v for k, v in batch.items() if k != "rec_labels"}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        loss = model(**batch, task=task).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] * 0.9, losses


def test_copy_branch_gets_gradient():
    model = tiny_model()
    model(**tiny_batch(), task="conv").loss.backward()
    for name, parameter in model.copy_head.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_copy_logits_only_on_masked_tokens():
    model = tiny_model().eval()  # no dropout: the two passes must differ only by the copy logits
    batch = tiny_batch()
    with_copy = model(**batch, task="conv").lm_logits
    model.copy_head = None
    without_copy = model(**batch, task="conv").lm_logits
    changed = (with_copy != without_copy).any(0).any(0)  # (V,)
    mask = model.kgsf.kg_word_vocab_mask | model.kgsf.item_token_vocab_mask
    assert changed[mask].all() and not changed[~mask].any()


def test_pad_and_start_never_predicted():
    logits = tiny_model()(**tiny_batch(), task="conv").lm_logits
    assert (logits[..., 0] == torch.finfo(logits.dtype).min).all() and (logits[..., 1] == torch.finfo(logits.dtype).min).all()


def test_empty_context_rows_are_finite():
    model = tiny_model()
    batch = tiny_batch(empty_rows=(1, 3))
    out = model(**batch, task="all")
    for tensor in (out.rec_logits, out.lm_logits, out.user_embedding, out.loss, out.mim_loss):
        assert torch.isfinite(tensor).all()
    assert (out.user_embedding[1] == 0).all()  # nothing in the context: p_u = 0, scores = item biases
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_cold_start_rows_use_the_gate():
    model = tiny_model()
    batch = tiny_batch()
    batch["context_entity_mask"][0] = False  # words only
    out = model(**rec_inputs(batch))
    assert torch.isfinite(out.rec_logits).all() and out.user_embedding[0].abs().sum() > 0


def test_without_entity_and_word_inputs():
    model = tiny_model()
    batch = tiny_batch()
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("form", ["contrastive", "regression"])
def test_mim_forms(form):
    model = tiny_model(mim_form=form)
    batch = tiny_batch()
    out = model(**{k: v for k, v in batch.items() if k not in ("labels", "rec_labels")}, task="mim")
    assert torch.isfinite(out.mim_loss) and out.mim_loss > 0
    out.mim_loss.backward()
    assert model.kgsf.mim.bilinear.weight.grad.abs().sum() > 0 if form == "contrastive" else model.kgsf.mim.output.weight.grad.abs().sum() > 0
    assert model.kgsf.item_graph_encoder.rgcn.comp.grad is not None or form == "regression"
    assert model.kgsf.word_graph_encoder.concept_embedding.weight.grad.abs().sum() > 0


def test_regression_mim_target_is_multi_hot_of_context_entities():
    model = tiny_model(mim_form="regression")
    mim = model.kgsf.mim
    with torch.no_grad():
        for parameter in mim.parameters():
            parameter.zero_()
    ids = torch.tensor([[0, 5, 0]])
    mask = torch.tensor([[True, True, False]])
    # zero scores: loss = (number of ones) / n_entity; entity 0 is real in slot 0
    torch.testing.assert_close(mim(torch.zeros(1, 8), ids, mask), torch.tensor(2 / model.config.n_entity))


def test_ablation_switches():
    batch = tiny_batch()
    base = tiny_model(seed=5)
    reference = base(**batch, task="all")

    no_mim = tiny_model(seed=5, use_mim=False)(**batch, task="all")
    assert no_mim.mim_loss is None and torch.isfinite(no_mim.loss)

    no_db = tiny_model(seed=5, use_dbpedia=False)
    out = no_db(**batch, task="all")
    assert torch.isfinite(out.loss)
    assert not torch.allclose(out.rec_logits, reference.rec_logits)
    out.loss.backward()
    assert no_db.kgsf.item_graph_encoder.rgcn.weight.grad is None  # no message passing

    no_cn = tiny_model(seed=5, use_conceptnet=False)
    out = no_cn(**batch, task="all")
    assert no_cn.kgsf.word_graph_encoder is None and out.mim_loss is None and out.word_attention_weights is None
    assert torch.isfinite(out.loss)

    no_kg_attention = tiny_model(seed=5, use_kg_attention=False)
    assert not hasattr(no_kg_attention.kgsf.decoder.layers[0], "entity_attn")
    assert torch.isfinite(no_kg_attention(**batch, task="all").loss)

    no_copy = tiny_model(seed=5, use_copy=False)
    assert no_copy.copy_head is None
    assert torch.isfinite(no_copy(**batch, task="all").loss)


def test_embedding_item_graph_encoder():
    model = tiny_model(item_graph_encoder="embedding")
    assert model.kgsf.item_graph_encoder.rgcn.weight.shape == (3, 6, 8)
    out = model(**tiny_batch(), task="all")
    out.loss.backward()
    assert model.kgsf.item_graph_encoder.entity_embedding.weight.grad.abs().sum() > 0


def test_graph_encodings_give_the_same_scores():
    model = tiny_model()
    batch = rec_inputs(tiny_batch())
    model.eval()
    with torch.no_grad():
        direct = model(**batch).rec_logits  # restricted rows
        encodings = model.encode_graphs()  # full node tables, passed explicitly
        passed = model(**batch, graph_encodings=encodings).rec_logits
    torch.testing.assert_close(passed, direct, atol=1e-6, rtol=1e-5)
    with torch.no_grad():  # the model keeps nothing: an in-place parameter change shows at the next call
        model.kgsf.item_graph_encoder.rgcn.bias.add_(1.0)
        changed = model(**batch).rec_logits
    assert not torch.allclose(changed, direct)


def test_freeze_recommender():
    model = tiny_model()
    model.freeze_recommender()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert not any(name.startswith(("kgsf.item_graph_encoder", "kgsf.word_graph_encoder", "kgsf.recommender", "kgsf.mim")) for name in trainable)
    assert "kgsf.shared.weight" in trainable and any(name.startswith("copy_head") for name in trainable)
    model.train()
    out = model(**tiny_batch(), task="conv")
    out.loss.backward()
    assert not model.encode_graphs().entity_vectors.requires_grad  # frozen graphs: node vectors without an autograd graph


def test_setters_validate():
    model = tiny_model()
    good = dict(
        dbpedia_edge_index=model.kgsf.dbpedia_edge_index.clone(), dbpedia_edge_type=model.kgsf.dbpedia_edge_type.clone(),
        conceptnet_edge_index=model.kgsf.conceptnet_edge_index.clone(), item_entity_ids=model.kgsf.item_entity_ids.clone(),
    )
    with pytest.raises(ValueError, match="dbpedia_edge_index: expected shape"):
        model.set_graphs(**{**good, "dbpedia_edge_index": good["dbpedia_edge_index"][:, :-1]})
    with pytest.raises(ValueError, match="n_relation"):
        model.set_graphs(**{**good, "dbpedia_edge_type": good["dbpedia_edge_type"] + 100})
    with pytest.raises(ValueError, match="integer"):
        model.set_graphs(**{**good, "item_entity_ids": good["item_entity_ids"].float()})
    with pytest.raises(ValueError, match="kg_word_vocab_mask"):
        model.set_vocab_masks(torch.zeros(3, dtype=torch.bool), torch.zeros(VOCAB, dtype=torch.bool))
    with pytest.raises(ValueError, match="word embeddings"):
        model.load_word_embeddings(torch.zeros(VOCAB, 3))
    weights = torch.randn(VOCAB, 16)
    model.load_word_embeddings(weights)
    assert torch.equal(model.get_input_embeddings().weight, weights)


def test_public_api_exports():
    import modeling_kgsf

    for name in ("KGSFConfig", "KGSFModel", "KGSFForConversationalRecommendation", "KGSFPreTrainedModel", "KGSFOutput"):
        assert hasattr(modeling_kgsf, name)
    assert issubclass(KGSFForConversationalRecommendation, torch.nn.Module)


def test_mim_task_without_pairs_gives_a_zero_loss():
    model = tiny_model()
    batch = tiny_batch(empty_rows=(0, 1, 2, 3))
    out = model(**{k: v for k, v in batch.items() if k not in ("labels", "rec_labels")}, task="mim")
    assert out.loss.item() == 0.0 and out.loss.requires_grad
    out.loss.backward()
