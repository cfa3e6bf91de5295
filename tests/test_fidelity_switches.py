"""The fidelity switches of KGSFConfig: ``rgcn_aggregation``, ``mim_form="regression_reference"``,
``rec_loss_reduction``. Each changes the computation as documented, bad values are refused, a
saved model keeps them, and a config without them means today's behaviour."""
import json

import pytest
import torch
from kgsf_tiny import N_ENTITY, tiny_batch, tiny_model
from torch_geometric.nn import RGCNConv

from modeling_kgsf import KGSFConfig, KGSFForConversationalRecommendation
from modeling_kgsf.fusion import ReferenceRegressionMIM, RegressionMIM
from modeling_kgsf.graph_encoders import BasisRGCNConv, RelationalGraph

SWITCHES = {"rgcn_aggregation": "add", "mim_form": "regression_reference", "rec_loss_reduction": "sum"}
TODAY = {"rgcn_aggregation": "mean", "mim_form": "contrastive", "rec_loss_reduction": "mean"}


def mim_inputs(batch):
    return {key: value for key, value in batch.items() if key not in ("labels", "rec_labels")}


# --------------------------------------------------------------------------- config
def test_defaults_are_todays_behaviour():
    config = KGSFConfig()
    assert {key: getattr(config, key) for key in TODAY} == TODAY


@pytest.mark.parametrize("key, value", [("rgcn_aggregation", "sum"), ("rgcn_aggregation", "max"), ("rec_loss_reduction", "avg"),
                                        ("mim_form", "regression_ref")])
def test_invalid_values_are_refused(key, value):
    with pytest.raises(ValueError, match=key):
        KGSFConfig(**{key: value})


def test_invalid_aggregation_in_the_layer():
    with pytest.raises(ValueError, match="aggregation"):
        BasisRGCNConv(4, 3, 2, 2, aggr="max")
    graph = RelationalGraph.build(torch.tensor([[1], [0]]), torch.tensor([0]), 2, 1)
    with pytest.raises(ValueError, match="aggregation"):
        graph.with_aggregation("max")


def test_switches_are_known_override_keys():
    KGSFConfig.check_keys(SWITCHES)  # --config_overrides accepts them


# --------------------------------------------------------------------------- R-GCN aggregation
N, R, B, C = 60, 6, 4, 16


def random_graph(seed=0, edges=400):
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, N, (2, edges), generator=g)
    edge_index[1, edge_index[1] == 5] = 6  # node 5 has no incoming edge
    return edge_index, torch.randint(0, R, (edges,), generator=g)


@pytest.mark.parametrize("featureless", [True, False])
@pytest.mark.parametrize("rows", ["all", "subset"])
def test_add_aggregation_matches_pyg_rgcnconv_add(featureless, rows):
    edge_index, edge_type = random_graph()
    in_channels = N if featureless else 7
    torch.manual_seed(0)
    reference = RGCNConv(in_channels, C, R, num_bases=B, aggr="add")
    with torch.no_grad():
        reference.bias.normal_()
    ours = BasisRGCNConv(in_channels, C, R, B, aggr="add")
    ours.load_state_dict(reference.state_dict())
    x = None if featureless else torch.randn(N, in_channels, requires_grad=True)
    graph = RelationalGraph.build(edge_index, edge_type, N, R)
    targets = torch.arange(N) if rows == "all" else torch.tensor([0, 5, 6, 11, 30, 59])
    expected = reference(x, edge_index, edge_type)[targets]
    actual = ours(x, graph if rows == "all" else graph.restrict_to(targets))
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)

    weight = torch.randn_like(expected)
    inputs_ref = list(reference.parameters()) + ([x] if x is not None else [])
    inputs_ours = list(ours.parameters()) + ([x] if x is not None else [])
    for expected_grad, actual_grad in zip(torch.autograd.grad((expected * weight).sum(), inputs_ref),
                                          torch.autograd.grad((actual * weight).sum(), inputs_ours)):
        torch.testing.assert_close(actual_grad, expected_grad, atol=1e-5, rtol=1e-5)


def test_add_is_mean_times_in_degree_per_relation():
    # node 0: three edges of relation 0 and one of relation 1; node 3: two of relation 1
    edge_index = torch.tensor([[1, 2, 3, 4, 1, 2], [0, 0, 0, 0, 3, 3]])
    edge_type = torch.tensor([0, 0, 0, 1, 1, 1])
    graph = RelationalGraph.build(edge_index, edge_type, 5, 2)
    assert graph.norm[graph.rowptr[0]:graph.rowptr[1]].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0])
    assert graph.with_aggregation("add").norm.tolist() == [1.0] * 6
    assert graph.with_aggregation("mean") is graph

    torch.manual_seed(0)
    mean = BasisRGCNConv(5, 3, 2, 2, aggr="mean")
    add = BasisRGCNConv(5, 3, 2, 2, aggr="add")
    add.load_state_dict(mean.state_dict())
    root = mean(None, graph, use_edges=False)  # x_i W_0 + b, shared by both
    weights = {r: sum(mean.comp[r, b] * mean.weight[b] for b in range(2)) for r in range(2)}  # W_r (5, 3)
    mean_messages, add_messages = mean(None, graph) - root, add(None, graph) - root
    # per relation: the mean of the neighbours' rows of W_r, times the in-degree of that relation
    per_relation = {(0, 0): weights[0][[1, 2, 3]].mean(0), (0, 1): weights[1][[4]].mean(0), (3, 1): weights[1][[1, 2]].mean(0)}
    degree = {(0, 0): 3, (0, 1): 1, (3, 1): 2}
    torch.testing.assert_close(mean_messages[0], per_relation[0, 0] + per_relation[0, 1])
    torch.testing.assert_close(add_messages[0], degree[0, 0] * per_relation[0, 0] + degree[0, 1] * per_relation[0, 1])
    torch.testing.assert_close(add_messages[3], degree[3, 1] * per_relation[3, 1])
    torch.testing.assert_close(add_messages[3], 2 * mean_messages[3])  # a single relation: add = mean x in-degree
    torch.testing.assert_close(add_messages[[1, 2, 4]], torch.zeros(3, 3))  # no incoming edge


@pytest.mark.parametrize("encoder", ["featureless", "embedding"])
def test_model_switch_uses_the_aggregation(encoder):
    add = tiny_model(seed=3, rgcn_aggregation="add", item_graph_encoder=encoder).eval()
    mean = tiny_model(seed=3, item_graph_encoder=encoder).eval()
    assert add.kgsf.item_graph_encoder.rgcn.aggr == "add" and mean.kgsf.item_graph_encoder.rgcn.aggr == "mean"
    kgsf = add.kgsf
    reference = RGCNConv(kgsf.item_graph_encoder.rgcn.in_channels, add.config.kg_dim, add.config.n_relation,
                         num_bases=add.config.num_bases, aggr="add")
    reference.load_state_dict(kgsf.item_graph_encoder.rgcn.state_dict())
    x = None if encoder == "featureless" else kgsf.item_graph_encoder.entity_embedding.weight
    ids = torch.arange(N_ENTITY)
    with torch.no_grad():
        expected = reference(x, kgsf.dbpedia_edge_index, kgsf.dbpedia_edge_type)
        torch.testing.assert_close(kgsf.entity_vectors(ids)[0], expected, atol=1e-5, rtol=1e-5)
    with torch.enable_grad():  # the training path (rows restricted to the batch) too
        torch.testing.assert_close(kgsf.entity_vectors(torch.tensor([3, 0, 3]))[0].detach(), expected[[3, 0, 3]], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(mean.kgsf.entity_vectors(ids)[0], kgsf.entity_vectors(ids)[0])


# --------------------------------------------------------------------------- regression MIM as the reference
def test_reference_regression_value():
    mim = ReferenceRegressionMIM(kg_dim=2, n_entity=10)
    with torch.no_grad():
        mim.norm.weight.zero_()
        mim.norm.bias.zero_()
        mim.entity_bias.fill_(0.25)  # every score is 0.25
    items = torch.tensor([2, 5, 7])
    ids = torch.tensor([[2, 3, 5], [3, 0, 0], [0, 0, 0]])
    mask = torch.tensor([[True, True, True], [True, False, False], [False, False, False]])
    loss = mim(torch.randn(3, 2), torch.randn(10, 2), ids, mask, items)
    row0 = 2 * 0.75**2 + 8 * 0.25**2  # targets: the items 2 and 5 (3 is an entity, not an item)
    row1 = 10 * 0.25**2  # an entity, no item: all-zero target
    row2 = 0.0  # no context entity: masked
    torch.testing.assert_close(loss, torch.tensor((row0 + row1 + row2) / 3))  # sum over entities, mean over rows


def test_reference_regression_scores_against_the_rgcn_vectors():
    model = tiny_model(seed=2, mim_form="regression_reference").eval()
    assert isinstance(model.kgsf.mim, ReferenceRegressionMIM)
    with torch.no_grad():
        model.kgsf.mim.entity_bias.normal_()
    batch = tiny_batch(empty_rows=(3,))
    batch["context_entity_ids"][0, 0] = model.kgsf.item_entity_ids[4]  # row 0 mentions an item
    with torch.no_grad():
        loss = model(**mim_inputs(batch), task="mim").mim_loss
        body = model.kgsf(**{k: batch[k] for k in ("input_ids", "attention_mask", "context_entity_ids", "context_entity_mask",
                                                     "context_word_ids", "context_word_mask")}, compute_rec=False)
        nodes = model.kgsf.item_graph_encoder(model.kgsf._dbpedia_graph())  # (n_entity, k), the R-GCN's own vectors
        mim = model.kgsf.mim
        scores = torch.nn.functional.linear(mim.norm(body.word_vector), nodes, mim.entity_bias)
        target = torch.zeros_like(scores)
        for row in range(scores.shape[0]):
            for slot in batch["context_entity_mask"][row].nonzero().flatten().tolist():
                entity = int(batch["context_entity_ids"][row, slot])
                if entity in model.kgsf.item_entity_ids.tolist():
                    target[row, entity] = 1.0
        assert target[0].sum() >= 1
        has_entities = batch["context_entity_mask"].any(-1).float()
        expected = (((scores - target) ** 2).sum(-1) * has_entities).mean()
    torch.testing.assert_close(loss, expected, atol=1e-4, rtol=1e-5)
    model.train()  # the training path computes the same value
    torch.testing.assert_close(model(**mim_inputs(batch), task="mim").mim_loss.detach(), expected, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("form, reaches_rgcn", [("regression", False), ("regression_reference", True), ("contrastive", True)])
def test_which_mim_gradient_reaches_the_rgcn(form, reaches_rgcn):
    model = tiny_model(mim_form=form)
    out = model(**mim_inputs(tiny_batch()), task="mim")
    assert torch.isfinite(out.mim_loss) and out.mim_loss > 0
    out.mim_loss.backward()
    rgcn = model.kgsf.item_graph_encoder.rgcn
    grads = [p.grad for p in (rgcn.weight, rgcn.comp)]
    if reaches_rgcn:
        assert all(g is not None and g.abs().sum() > 0 for g in grads)
    else:  # today's regression MIM trains the word side only
        assert all(g is None for g in grads)
    assert model.kgsf.word_graph_encoder.concept_embedding.weight.grad.abs().sum() > 0
    if form == "regression_reference":
        assert model.kgsf.mim.entity_bias.grad.abs().sum() > 0 and model.kgsf.mim.norm.weight.grad.abs().sum() > 0


def test_regression_is_unchanged():
    assert isinstance(tiny_model(mim_form="regression").kgsf.mim, RegressionMIM)


def test_reference_regression_in_the_rec_loss():
    model = tiny_model(mim_form="regression_reference")
    out = model(**tiny_batch(conv=False), task="rec")
    torch.testing.assert_close(out.loss, out.rec_loss + model.config.mim_weight * out.mim_loss)


# --------------------------------------------------------------------------- rec loss reduction
def test_sum_reduction_is_mean_times_labelled_rows():
    batch = tiny_batch(batch_size=6, conv=False)
    batch["rec_labels"][[1, 4]] = -100
    mean = tiny_model(seed=4, use_mim=False)(**batch, task="rec")
    total = tiny_model(seed=4, use_mim=False, rec_loss_reduction="sum")(**batch, task="rec")
    torch.testing.assert_close(total.rec_logits, mean.rec_logits)
    torch.testing.assert_close(total.rec_loss, mean.rec_loss * 4)
    torch.testing.assert_close(total.loss, total.rec_loss)


def test_sum_reduction_keeps_the_mim_term_and_handles_no_labels():
    batch = tiny_batch(conv=False)
    model = tiny_model(seed=4, rec_loss_reduction="sum")
    out = model(**batch, task="rec")
    torch.testing.assert_close(out.loss, out.rec_loss + model.config.mim_weight * out.mim_loss)
    batch["rec_labels"][:] = -100
    out = model(**batch, task="rec")
    assert out.rec_loss.item() == 0.0 and out.rec_loss.requires_grad


# --------------------------------------------------------------------------- saving and loading
def outputs(model, batch):
    model.eval()
    with torch.no_grad():
        out = model(**batch, task="rec")
    return out.rec_logits, out.rec_loss, out.mim_loss


def test_save_load_keeps_every_switch(tmp_path):
    model = tiny_model(seed=6, **SWITCHES)
    with torch.no_grad():
        model.kgsf.mim.entity_bias.normal_()
    batch = tiny_batch(conv=False)
    before = outputs(model, batch)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert {key: saved[key] for key in SWITCHES} == SWITCHES
    loaded = KGSFForConversationalRecommendation.from_pretrained(tmp_path)
    assert {key: getattr(loaded.config, key) for key in SWITCHES} == SWITCHES
    assert loaded.kgsf.item_graph_encoder.rgcn.aggr == "add" and isinstance(loaded.kgsf.mim, ReferenceRegressionMIM)
    for a, b in zip(before, outputs(loaded, batch)):
        torch.testing.assert_close(a, b)


def test_config_without_the_keys_means_today(tmp_path):
    model = tiny_model(seed=7)
    batch = tiny_batch(conv=False)
    before = outputs(model, batch)
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    config = json.loads(config_file.read_text())
    for key in ("rgcn_aggregation", "rec_loss_reduction"):
        del config[key]  # a folder saved before the switches existed
    config_file.write_text(json.dumps(config))
    loaded = KGSFForConversationalRecommendation.from_pretrained(tmp_path)
    assert {key: getattr(loaded.config, key) for key in TODAY} == TODAY
    assert loaded.kgsf.item_graph_encoder.rgcn.aggr == "mean"
    for a, b in zip(before, outputs(loaded, batch)):
        torch.testing.assert_close(a, b)


def test_switching_mim_form_on_load_initialises_the_new_bias(tmp_path):
    tiny_model(seed=8).save_pretrained(tmp_path)  # contrastive MIM
    loaded = KGSFForConversationalRecommendation.from_pretrained(tmp_path, mim_form="regression_reference")
    assert isinstance(loaded.kgsf.mim, ReferenceRegressionMIM)
    assert torch.equal(loaded.kgsf.mim.entity_bias, torch.zeros(N_ENTITY))  # missing key: zero, not uninitialised memory
