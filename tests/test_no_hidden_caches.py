"""No hidden caches (issue #23): node vectors are computed by the caller and passed as ``graph_encodings``,
copy rows as ``copy_rows``; the transformers cache is the only decoding cache; modules keep no derived state."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from kgsf_tiny import random_graphs, tiny_batch, tiny_model
from modeling_kgsf import KGSFForConversationalRecommendation
from modeling_kgsf.generation_kgsf import calibrate_item_slot_bias
from modeling_kgsf.graph_encoders import RelationalGraph
from modeling_kgsf.processing_kgsf import CONTEXT_KEYS

PACKAGE = Path(__file__).resolve().parents[1] / "modeling_kgsf"


def context(batch: dict) -> dict:
    return {key: batch[key] for key in CONTEXT_KEYS}


class GraphEncoderCalls:
    """Counts the forward calls of the two graph encoders."""

    def __init__(self, model):
        self.count = 0
        body = model.kgsf
        self.handles = [module.register_forward_hook(self._hook) for module in (body.item_graph_encoder, body.word_graph_encoder)]

    def _hook(self, *args):
        self.count += 1

    def remove(self):
        for handle in self.handles:
            handle.remove()


def summary(value):
    """What a module attribute holds: its type, with the keys of a dict and the length of a tuple or list."""
    if isinstance(value, dict):
        return "dict", sorted(map(str, value))
    if isinstance(value, (tuple, list)):
        return type(value).__name__, len(value)
    return type(value).__name__


def module_state(model) -> dict:
    """Every module's plain attributes (not parameters, buffers or submodules): name -> :func:`summary`."""
    return {f"{name}.{key}": summary(value) for name, module in model.named_modules() for key, value in vars(module).items()
            if key not in ("_parameters", "_buffers", "_modules") and not key.endswith("_hooks")}


def test_no_data_ptr_or_version_keys_in_the_package():
    offenders = [f"{path.relative_to(PACKAGE)}:{number}" for path in sorted(PACKAGE.rglob("*.py"))
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"data_ptr\(|\._version\b", line)]
    assert not offenders, offenders


def test_calls_leave_no_state_in_modules():
    model = tiny_model().eval()
    batch = tiny_batch()
    before = module_state(model)
    with torch.no_grad():
        model(**batch, task="all")
        model(**context(batch), task="rec")
    model.generate(**context(batch), max_new_tokens=4, num_beams=2)
    model.generate(**context(batch), max_new_tokens=4, num_beams=1, use_cache=False)
    assert module_state(model) == before


@pytest.mark.parametrize("task", ["rec", "conv", "all", "mim"])
@pytest.mark.parametrize("overrides", [{}, {"mim_form": "regression_reference"}, {"use_conceptnet": False}])
def test_forward_with_and_without_graph_encodings(task, overrides):
    if task == "mim" and overrides.get("use_conceptnet") is False:
        pytest.skip("no MIM without the word side")
    model = tiny_model(**overrides).eval()
    batch = tiny_batch()
    with torch.no_grad():
        encodings = model.encode_graphs()
        torch.manual_seed(0)  # the contrastive MIM samples its negatives
        direct = model(**batch, task=task)
        torch.manual_seed(0)
        passed = model(**batch, task=task, graph_encodings=encodings, copy_rows=model.copy_rows())
    for key in ("loss", "rec_logits", "lm_logits", "mim_loss", "user_embedding"):
        if getattr(direct, key) is not None or getattr(passed, key) is not None:
            torch.testing.assert_close(getattr(passed, key), getattr(direct, key), atol=1e-6, rtol=1e-5, msg=key)
    assert encodings.item_vectors.shape == (model.config.n_item, model.config.kg_dim)
    assert (encodings.word_vectors is None) == (overrides.get("use_conceptnet") is False)


def test_generate_reads_the_graphs_once_per_call_not_per_step():
    model = tiny_model().eval()
    inputs = context(tiny_batch())
    counts = {}
    for steps in (2, 6):
        calls = GraphEncoderCalls(model)
        sequences = model.generate(**inputs, max_new_tokens=steps, min_new_tokens=steps, num_beams=2)
        calls.remove()
        counts[steps] = calls.count
    assert counts[2] == counts[6] and counts[2] > 0  # the context encoding and the item slots, before the steps
    encodings = model.encode_graphs()
    calls = GraphEncoderCalls(model)
    passed = model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, num_beams=2, graph_encodings=encodings)
    calls.remove()
    assert calls.count == 0
    assert torch.equal(passed, sequences)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_without_a_cache_gives_the_same_replies(num_beams):
    model = tiny_model().eval()
    inputs = context(tiny_batch())
    cached = model.generate(**inputs, max_new_tokens=6, num_beams=num_beams)
    uncached = model.generate(**inputs, max_new_tokens=6, num_beams=num_beams, use_cache=False)
    rows = model.generate(**inputs, max_new_tokens=6, num_beams=num_beams, copy_rows=model.copy_rows())
    assert torch.equal(cached, uncached) and torch.equal(cached, rows)


def test_frozen_stage_encodings_are_computed_once_and_reused():
    model = tiny_model()
    model.freeze_recommender()
    with torch.no_grad():
        encodings = model.encode_graphs()  # what the conversation stage computes once after freezing
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    torch.manual_seed(0)
    direct = model(**tiny_batch(), task="conv", logits_at_labels_only=True).loss
    torch.manual_seed(0)
    calls = GraphEncoderCalls(model)
    losses = []
    for step in range(3):
        torch.manual_seed(step)
        loss = model(**tiny_batch(seed=step + 1), task="conv", logits_at_labels_only=True, graph_encodings=encodings).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    calls.remove()
    assert calls.count == 0
    assert model.kgsf.shared.weight.grad is not None and model.kgsf.item_graph_encoder.rgcn.bias.grad is None
    torch.testing.assert_close(torch.tensor(losses[0]), direct.detach())  # the same loss as recomputing the frozen side


def test_dbpedia_graph_follows_the_buffers(tmp_path):
    def expected(body):
        return RelationalGraph.build(body.dbpedia_edge_index, body.dbpedia_edge_type, body.config.n_entity, body.config.n_relation)

    def same(graph, other):
        return all(torch.equal(getattr(graph, key), getattr(other, key)) for key in ("rowptr", "source", "relation", "norm", "targets"))

    model = tiny_model()
    assert same(model.kgsf.dbpedia_graph, expected(model.kgsf))
    model.set_graphs(**random_graphs(seed=5))
    assert same(model.kgsf.dbpedia_graph, expected(model.kgsf))
    model.save_pretrained(tmp_path / "model")
    loaded = KGSFForConversationalRecommendation.from_pretrained(tmp_path / "model")
    assert same(loaded.kgsf.dbpedia_graph, expected(model.kgsf))
    other = tiny_model(seed=1)
    other.load_state_dict(model.state_dict())
    assert same(other.kgsf.dbpedia_graph, expected(model.kgsf))
    other.to(torch.float64)
    assert same(other.kgsf.dbpedia_graph, expected(model.kgsf))


def test_calibration_encodes_the_graphs_once():
    model = tiny_model()
    model.set_item_token_ids(torch.arange(40, 52))
    batches = [tiny_batch(seed=seed) for seed in (1, 2, 3)]
    calls = GraphEncoderCalls(model)
    result = calibrate_item_slot_bias(model, batches)
    calls.remove()
    assert calls.count == 2  # one R-GCN and one GCN for the three batches
    assert result["replies"] == 12


def test_pipeline_calls_reuse_its_encodings(tmp_path):
    from demo_helpers import tiny_folder

    from modeling_kgsf import ConversationalRecommender

    crs = ConversationalRecommender.from_pretrained(tiny_folder(tmp_path))
    calls = GraphEncoderCalls(crs.model)
    turns = ["Hi! I loved Paranormal Activity, anything scary with Tom Hanks?"]
    ranked = crs.recommend(turns, k=3)
    reply = crs.respond_with_items(turns, max_new_tokens=4)
    calls.remove()
    assert calls.count == 0 and len(ranked) == 3 and isinstance(reply.text, str)
    with torch.no_grad():
        fresh = crs.model(**crs._batch(crs.context_row(turns)), task="rec").rec_logits[0]
    assert [r.item_index for r in ranked] == [r.item_index for r in crs.recommend(turns, k=3)]
    for recommendation in ranked:  # the scores of the held encodings are those of a forward that computes its own
        assert abs(float(fresh.softmax(-1)[recommendation.item_index]) - recommendation.score) < 1e-5
