"""adapt_model: moving a trained KGSF model to another dataset's tokens, entities, items, relations and concepts.

Tiny models built in code (tests/kgsf_tiny.py); every parameter is randomised first so that a row
copied to the wrong place, or a zero left behind, shows.
"""
import json

import pytest
import torch
from torch import nn

from kgsf_tiny import N_CONCEPT, N_ENTITY, N_ITEM, VOCAB, random_graphs, tiny_model, vocab_masks
from modeling_kgsf import KGSFForConversationalRecommendation
from modeling_kgsf.adaptation import (
    AdaptationReport,
    IndexSpaces,
    adapt_model,
    entity_name_from_key,
    index_spaces_from_folder,
    match_index_spaces,
)

SPECIAL = ["__pad__", "__start__", "__end__", "__unk__"]
RELATIONS = ["self_loop", None, "director", "starring", "genre"]  # N_RELATION = 5


def uri(i: int) -> str:
    return f"<http://dbpedia.org/resource/Entity_{i}>"


def old_tokens() -> list[str]:
    tokens = SPECIAL + [f"tok{i}" for i in range(4, VOCAB)]
    tokens[10], tokens[11], tokens[12] = "hello", "Movie", "movie"
    return tokens


def trained_model(seed: int = 0, **overrides) -> KGSFForConversationalRecommendation:
    """A tiny model with every parameter random (item biases, padding rows, copy rows included)."""
    model = tiny_model(seed=seed, **overrides)
    g = torch.Generator().manual_seed(100 + seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=g))
    return model.eval()


def spaces_of(model) -> IndexSpaces:
    return IndexSpaces(
        tokens=old_tokens(),
        entities=[uri(i) for i in range(N_ENTITY)],
        item_entity_ids=model.kgsf.item_entity_ids.tolist(),
        relations=list(RELATIONS),
        concepts=[None] + [f"c{i}" for i in range(1, N_CONCEPT)],
    )


def same_graphs_and_masks(model) -> dict:
    body = model.kgsf
    return dict(dbpedia_edge_index=body.dbpedia_edge_index, dbpedia_edge_type=body.dbpedia_edge_type,
                conceptnet_edge_index=body.conceptnet_edge_index, kg_word_vocab_mask=body.kg_word_vocab_mask,
                item_token_vocab_mask=body.item_token_vocab_mask)


def graphs_for(n_entity: int, edges, concept_edges, vocab: int) -> dict:
    """B's graphs: a self loop (relation 0) on every entity plus ``edges`` [(source, target, relation)]."""
    loops = torch.arange(n_entity)
    columns = [torch.tensor(column) for column in zip(*edges)] if edges else [torch.tensor([], dtype=torch.long)] * 3
    source, target, relation = columns
    masks = torch.zeros(vocab, dtype=torch.bool), torch.zeros(vocab, dtype=torch.bool)
    masks[0][4: vocab // 2] = True
    masks[1][vocab // 2:] = True
    return dict(
        dbpedia_edge_index=torch.stack([torch.cat([loops, source]), torch.cat([loops, target])]),
        dbpedia_edge_type=torch.cat([torch.zeros(n_entity, dtype=torch.long), relation]),
        conceptnet_edge_index=torch.tensor(concept_edges, dtype=torch.long).T if concept_edges else torch.zeros(2, 0, dtype=torch.long),
        kg_word_vocab_mask=masks[0], item_token_vocab_mask=masks[1],
    )


def batch_for(config, batch_size: int = 3, seed: int = 0) -> dict:
    """A DESIGN.md batch with ids inside ``config``'s spaces."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(4, config.vocab_size, (batch_size, 4), generator=g)
    labels[:, -1] = 2
    return dict(
        input_ids=torch.randint(4, config.vocab_size, (batch_size, 6), generator=g),
        attention_mask=torch.ones(batch_size, 6, dtype=torch.long),
        context_entity_ids=torch.randint(0, config.n_entity, (batch_size, 2), generator=g),
        context_entity_mask=torch.ones(batch_size, 2, dtype=torch.bool),
        context_word_ids=torch.randint(1, config.n_concept, (batch_size, 2), generator=g),
        context_word_mask=torch.ones(batch_size, 2, dtype=torch.bool),
        rec_labels=torch.randint(0, config.n_item, (batch_size,), generator=g),
        labels=labels,
    )


def state(model) -> dict:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


# --------------------------------------------------------------------------- identity
@pytest.mark.parametrize("overrides", [
    {},
    {"item_graph_encoder": "embedding", "mim_form": "regression"},
    {"use_copy": False, "use_conceptnet": False, "use_kg_attention": False},
])
def test_identical_spaces_give_an_identical_model(overrides):
    model = trained_model(**overrides)
    spaces = spaces_of(model)
    adapted, report = adapt_model(model, spaces, spaces, **same_graphs_and_masks(model))
    assert type(adapted) is KGSFForConversationalRecommendation and adapted is not model
    before, after = state(model), state(adapted)
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name
    assert adapted.config.to_dict() == model.config.to_dict()
    for space in ("tokens", "entities", "items", "relations", "concepts"):
        part = getattr(report, space)
        assert part.copied == part.total == part.old_total and part.new == 0, space
    batch = batch_for(model.config)
    with torch.no_grad():
        for task in ("rec", "conv"):
            expected, got = model(**batch, task=task), adapted(**batch, task=task)
            for key in ("rec_logits", "lm_logits", "loss"):
                if getattr(expected, key) is not None:
                    assert torch.equal(getattr(expected, key), getattr(got, key)), (task, key)


# --------------------------------------------------------------------------- entities, items, concepts
def entity_case(model, **extra):
    """B: a permuted subset of A's entities, two new ones, one matched by name only; see the asserts."""
    old = spaces_of(model)
    new_entities = [uri(5), uri(3), "<http://dbpedia.org/resource/Brand_New>", "<http://example.org/wiki/Entity_7_(film)>",
                    "<http://dbpedia.org/resource/Lonely>"] + [uri(i) for i in reversed(range(10, 20))]
    # entity 2 is new with neighbours 0 (A's 5, an edge into 2, given twice) and 1 (A's 3, an edge out of 2);
    # entity 4 is new with only entity 2 (new) as neighbour
    edges = [(0, 2, 2), (0, 2, 2), (2, 1, 3), (2, 4, 1)]
    a_items = old.item_entity_ids
    a_item_in_b = [b for b, key in enumerate(new_entities) if key in {uri(e) for e in a_items}]
    a_plain_in_b = [b for b, key in enumerate(new_entities) if key.startswith("<http://dbpedia") and key not in {uri(e) for e in a_items}
                    and key not in ("<http://dbpedia.org/resource/Brand_New>", "<http://dbpedia.org/resource/Lonely>")]
    new_items = [a_item_in_b[0], 2, a_plain_in_b[0]] + a_item_in_b[1:]
    new = IndexSpaces(tokens=old.tokens, entities=new_entities, item_entity_ids=new_items, relations=list(RELATIONS),
                      concepts=[None, "c5", "brand", "c3", "lonely"])
    graphs = graphs_for(len(new_entities), edges, [(1, 2), (2, 3), (4, 4)], len(new.tokens))
    adapted, report = adapt_model(model, old, new, **graphs, **extra)
    return old, new, adapted, report


def a_index(key: str) -> int:
    return int(key.split("Entity_")[1].rstrip(">"))


@pytest.mark.parametrize("encoder", ["featureless", "embedding"])
def test_entity_rows_are_copied_by_key_and_name_and_new_ones_get_the_neighbour_mean(encoder):
    model = trained_model(item_graph_encoder=encoder, mim_form="regression")
    old, new, adapted, report = entity_case(model)
    sources = {0: 5, 1: 3, 3: 7, **{5 + k: 19 - k for k in range(10)}}  # B id -> A id
    encoder_a, encoder_b = model.kgsf.item_graph_encoder, adapted.kgsf.item_graph_encoder
    if encoder == "featureless":
        tables = [(encoder_a.rgcn.root, encoder_b.rgcn.root), (encoder_a.rgcn.weight.transpose(0, 1), encoder_b.rgcn.weight.transpose(0, 1))]
        assert tuple(encoder_b.rgcn.weight.shape) == (3, 15, 8)
    else:
        tables = [(encoder_a.entity_embedding.weight, encoder_b.entity_embedding.weight)]
        assert torch.equal(encoder_a.rgcn.root, encoder_b.rgcn.root)  # (e, k): no entity dimension
    tables.append((model.kgsf.mim.output.weight, adapted.kgsf.mim.output.weight))
    tables.append((model.kgsf.mim.output.bias, adapted.kgsf.mim.output.bias))
    for table_a, table_b in tables:  # (N, ...) entity-first views
        assert table_b.shape[0] == 15
        for b, a in sources.items():
            assert torch.equal(table_b[b], table_a[a])
        assert torch.allclose(table_b[2], (table_a[5] + table_a[3]) / 2, atol=1e-6)  # duplicate edge counted once
        copied_mean = table_a[list(sources.values())].double().mean(0).float()
        assert torch.allclose(table_b[4], copied_mean, atol=1e-6)
    assert adapted.config.n_entity == 15 and adapted.config.n_dbpedia_edges == 15 + 4
    assert (report.entities.total, report.entities.copied, report.entities.new, report.entities.matched_by_fallback) == (15, 13, 2, 1)
    assert report.entities.init == {"neighbour_mean": 1, "global_mean": 1}


def test_items_follow_entities():
    model = trained_model()
    old, new, adapted, report = entity_case(model)
    bias_a, bias_b = model.kgsf.recommender.item_bias, adapted.kgsf.recommender.item_bias
    item_of_entity = {e: i for i, e in enumerate(old.item_entity_ids)}
    assert adapted.kgsf.item_entity_ids.tolist() == new.item_entity_ids
    for item_b, entity_b in enumerate(new.item_entity_ids):
        key = new.entities[entity_b]
        if item_b in (1, 2):  # a new entity, and an A entity that is not an item in A
            assert torch.allclose(bias_b[item_b], bias_a.mean(), atol=1e-6)
        else:
            assert torch.equal(bias_b[item_b], bias_a[item_of_entity[a_index(key)]])
    assert (report.items.total, report.items.copied, report.items.new, report.items.old_total) == (len(new.item_entity_ids), len(new.item_entity_ids) - 2, 2, N_ITEM)


def test_concepts_by_word_with_the_word_graph_neighbour_mean():
    model = trained_model()
    _, _, adapted, report = entity_case(model)
    table_a, table_b = model.kgsf.word_graph_encoder.concept_embedding.weight, adapted.kgsf.word_graph_encoder.concept_embedding.weight
    assert table_b.shape == (5, 8)
    assert torch.equal(table_b[0], table_a[0])  # padding concept
    assert torch.equal(table_b[1], table_a[5]) and torch.equal(table_b[3], table_a[3])
    assert torch.allclose(table_b[2], (table_a[5] + table_a[3]) / 2, atol=1e-6)
    assert torch.allclose(table_b[4], table_a[1:].mean(0), atol=1e-6)  # only a self loop: mean of A (padding left out)
    assert report.concepts.init == {"neighbour_mean": 1, "mean_of_A": 1}


def test_entity_names_match_only_when_unique():
    old = IndexSpaces(tokens=SPECIAL, entities=["<http://x.org/A_(film)>", "<http://x.org/A_(novel)>", "<http://x.org/Big%20Fish>", "42"],
                      item_entity_ids=[0], relations=[], concepts=[None])
    new = IndexSpaces(tokens=SPECIAL, entities=["<http://y.org/a>", "<http://y.org/big_FISH>", "42", "<http://x.org/A_(novel)>"],
                      item_entity_ids=[0], relations=[], concepts=[None])
    match = match_index_spaces(old, new)
    assert match.sources["entities"].tolist() == [-1, 2, 3, 1]  # "a" is ambiguous (two A's); "Big Fish" by name
    assert match.by_fallback["entities"].tolist() == [False, True, False, False]
    explicit = IndexSpaces(tokens=SPECIAL, entities=["q1", "q2"], item_entity_ids=[0], relations=[], concepts=[None],
                           entity_names=["Big  fish", None])
    assert match_index_spaces(old, explicit).sources["entities"].tolist() == [2, -1]


def test_entity_name_from_key():
    assert entity_name_from_key("<http://dbpedia.org/resource/The_Thin_Red_Line_(1998_film)>") == "The Thin Red Line"
    assert entity_name_from_key("<http://dbpedia.org/resource/Am%C3%A9lie>") == "Amélie"
    assert entity_name_from_key("http://dbpedia.org/resource/(500)_Days_of_Summer") == "(500) Days of Summer"
    assert entity_name_from_key("75962") is None and entity_name_from_key(None) is None


# --------------------------------------------------------------------------- relations
def test_relations_by_name_and_unnamed_never_match():
    model = trained_model()
    old = spaces_of(model)
    new_relations = ["self_loop", "genre", None, "writer", "director"]
    new = IndexSpaces(tokens=old.tokens, entities=old.entities, item_entity_ids=old.item_entity_ids,
                      relations=new_relations, concepts=old.concepts)
    graphs = random_graphs(0)
    masks = vocab_masks()
    adapted, report = adapt_model(model, old, new, dbpedia_edge_index=graphs["dbpedia_edge_index"],
                                  dbpedia_edge_type=graphs["dbpedia_edge_type"], conceptnet_edge_index=graphs["conceptnet_edge_index"], **masks)
    comp_a, comp_b = model.kgsf.item_graph_encoder.rgcn.comp, adapted.kgsf.item_graph_encoder.rgcn.comp
    assert torch.equal(comp_b[0], comp_a[0]) and torch.equal(comp_b[1], comp_a[4]) and torch.equal(comp_b[4], comp_a[2])
    for unmatched in (2, 3):  # unnamed in both spaces / a new name
        assert torch.allclose(comp_b[unmatched], comp_a.mean(0), atol=1e-6)
    assert (report.relations.copied, report.relations.new) == (3, 2)
    # everything else is untouched (same entities): the R-GCN weight, root and item biases
    assert torch.equal(adapted.kgsf.item_graph_encoder.rgcn.weight, model.kgsf.item_graph_encoder.rgcn.weight)
    assert torch.equal(adapted.kgsf.recommender.item_bias, model.kgsf.recommender.item_bias)


def test_repeated_relation_names_match_occurrence_by_occurrence():
    old = IndexSpaces(tokens=SPECIAL, entities=["e"], item_entity_ids=[0], relations=["writer", None, "writer"], concepts=[None])
    new = IndexSpaces(tokens=SPECIAL, entities=["e"], item_entity_ids=[0], relations=["writer", "writer", "writer", None], concepts=[None])
    assert match_index_spaces(old, new).sources["relations"].tolist() == [0, 2, 0, -1]


# --------------------------------------------------------------------------- tokens
def token_case(model, new_word_vectors=None, seed=0):
    old = spaces_of(model)
    new_tokens = SPECIAL + ["HELLO", "MOVIE", "Movie", "brandnew1", "brandnew2"] + list(reversed(old.tokens[13:]))
    new = IndexSpaces(tokens=new_tokens, entities=old.entities, item_entity_ids=old.item_entity_ids, relations=list(RELATIONS),
                      concepts=old.concepts)
    graphs = random_graphs(0)
    graphs.pop("item_entity_ids")
    masks = graphs_for(1, [], [], len(new_tokens))
    adapted, report = adapt_model(model, old, new, **graphs, kg_word_vocab_mask=masks["kg_word_vocab_mask"],
                                  item_token_vocab_mask=masks["item_token_vocab_mask"], new_word_vectors=new_word_vectors, seed=seed)
    return old, new, adapted, report


def test_tokens_are_copied_by_string_with_a_lower_case_fallback():
    model = trained_model()
    old, new, adapted, report = token_case(model)
    emb_a, emb_b = model.kgsf.shared.weight, adapted.kgsf.shared.weight
    out_a, out_b = model.copy_head.vocab_projection, adapted.copy_head.vocab_projection
    expected = {0: 0, 1: 1, 2: 2, 3: 3, 4: 10, 5: 12, 6: 11}  # HELLO -> hello; MOVIE -> movie (the lower-case one); Movie exact
    expected.update({9 + k: old.tokens.index(token) for k, token in enumerate(new.tokens[9:])})
    for b, a in expected.items():
        assert torch.equal(emb_b[b], emb_a[a]) and torch.equal(out_b.weight[b], out_a.weight[a]) and torch.equal(out_b.bias[b], out_a.bias[a]), b
    # new tokens: embedding = mean of A's rows (pad left out) + small noise; copy rows = mean of A's copy-mask rows
    mean, std = emb_a[1:].mean(0), emb_a[1:].std(0, unbiased=False)
    for b in (7, 8):
        assert ((emb_b[b] - mean).abs() <= 0.1 * std * 6 + 1e-6).all() and not torch.allclose(emb_b[b], mean)
        copy_rows = model.kgsf.kg_word_vocab_mask | model.kgsf.item_token_vocab_mask
        assert torch.allclose(out_b.weight[b], out_a.weight[copy_rows].mean(0), atol=1e-6)
        assert torch.allclose(out_b.bias[b], out_a.bias[copy_rows].mean(), atol=1e-6)
    assert not torch.equal(emb_b[7], emb_b[8])
    assert (report.tokens.total, report.tokens.copied, report.tokens.new, report.tokens.matched_by_fallback) == (len(new.tokens), len(new.tokens) - 2, 2, 2)
    assert report.tokens.init == {"mean_of_A_plus_noise": 2}
    assert adapted.kgsf.kg_word_vocab_mask.shape == (len(new.tokens),)
    # the noise is reproducible from the seed
    again = token_case(model, seed=0)[2].kgsf.shared.weight
    other = token_case(model, seed=1)[2].kgsf.shared.weight
    assert torch.equal(again, emb_b) and not torch.equal(other[7], emb_b[7])


def test_least_squares_token_map_recovers_an_exact_linear_relation():
    model = trained_model()
    g = torch.Generator().manual_seed(7)
    dim = 4
    vector = {}  # one word vector per token string (B's word2vec); A's embedding = [v, 1] @ S
    for token in old_tokens()[4:] + ["HELLO", "MOVIE", "Movie", "brandnew1", "brandnew2"]:
        vector[token] = torch.randn(dim, generator=g)
    vector["brandnew2"] = torch.zeros(dim)  # no word vector: falls back to mean + noise
    S = torch.randn(dim + 1, model.config.d_model, generator=g)

    def affine(v):
        return torch.cat([v, torch.ones(1)]) @ S

    embedding = model.kgsf.shared.weight.detach().clone()
    for i, token in enumerate(old_tokens()[4:], start=4):
        embedding[i] = affine(vector[token])
    model.load_word_embeddings(embedding)
    tokens = token_case(model)[1].tokens
    vectors = torch.stack([vector.get(token, torch.zeros(dim)) for token in tokens])
    _, new, adapted, report = token_case(model, new_word_vectors=vectors)
    emb_b = adapted.kgsf.shared.weight
    assert torch.allclose(emb_b[7], affine(vector["brandnew1"]), atol=1e-4)
    assert report.tokens.init == {"least_squares_map": 1, "mean_of_A_plus_noise": 1}
    assert report.details["token_map_relative_residual"] < 1e-6
    assert report.details["token_map_pairs"] == len(tokens) - 4 - 2 - 2  # exact matches only (not HELLO, MOVIE)
    # too few pairs for the map (dimension 200 > matched tokens): everything falls back
    wide = torch.randn(len(tokens), 200, generator=g)
    _, _, _, fallback = token_case(model, new_word_vectors=wide)
    assert fallback.tokens.init == {"mean_of_A_plus_noise": 2} and "token_map_skipped" in fallback.details


# --------------------------------------------------------------------------- saving, forward, report
def test_adapted_model_round_trips_and_runs(tmp_path):
    model = trained_model()
    _, _, adapted, report = entity_case(model)
    adapted.save_pretrained(tmp_path / "adapted")
    loaded = KGSFForConversationalRecommendation.from_pretrained(tmp_path / "adapted").eval()
    assert {**loaded.config.to_dict(), "_name_or_path": ""} == {**adapted.config.to_dict(), "_name_or_path": ""}
    before, after = state(adapted), state(loaded)
    assert before.keys() == after.keys()
    for name in before:
        assert before[name].dtype == after[name].dtype and torch.equal(before[name], after[name]), name
    batch = batch_for(adapted.config)
    with torch.no_grad():
        rec, conv = loaded(**batch, task="rec"), loaded(**batch, task="conv")
        # weights are bit-identical; outputs only up to float rounding (a tensor read from safetensors may sit at an
        # unaligned address, which changes the summation order of some CPU kernels)
        torch.testing.assert_close(rec.rec_logits, adapted(**batch, task="rec").rec_logits)
    assert rec.rec_logits.shape == (3, adapted.config.n_item) and torch.isfinite(rec.loss)
    assert conv.lm_logits.shape == (3, 4, adapted.config.vocab_size) and torch.isfinite(conv.loss)
    generated = loaded.generate(**{k: batch[k] for k in ("input_ids", "attention_mask", "context_entity_ids", "context_entity_mask",
                                                          "context_word_ids", "context_word_mask")}, max_new_tokens=3)
    assert generated.shape[0] == 3
    # the adapted model trains (gradients reach the new rows)
    adapted.train()
    adapted(**batch, task="all").loss.backward()
    assert adapted.kgsf.item_graph_encoder.rgcn.root.grad is not None
    data = report.to_dict()
    json.dumps(data)
    assert set(data) == {"tokens", "entities", "items", "relations", "concepts", "details"}
    assert isinstance(report, AdaptationReport) and "entities" in str(report)


def test_the_original_model_is_not_modified():
    model = trained_model()
    before = state(model)
    entity_case(model)
    assert all(torch.equal(before[name], tensor) for name, tensor in state(model).items())


# --------------------------------------------------------------------------- refusals
def test_unknown_index_sized_parameter_is_refused():
    model = trained_model()
    model.kgsf.recommender.item_temperature = nn.Parameter(torch.ones(N_ITEM))
    with pytest.raises(ValueError, match=r"kgsf\.recommender\.item_temperature.*n_item"):
        entity_case(model)
    model = trained_model()
    model.copy_head.register_buffer("token_prior", torch.zeros(3, VOCAB))
    with pytest.raises(ValueError, match=r"copy_head\.token_prior.*dim 1 = 60 = vocab_size"):
        entity_case(model)


def test_parameter_outside_the_architecture_is_refused():
    model = trained_model()
    model.kgsf.extra = nn.Parameter(torch.ones(7))
    with pytest.raises(ValueError, match=r"kgsf\.extra"):
        entity_case(model)


def test_spaces_that_do_not_describe_the_model_are_refused():
    model = trained_model()
    old = spaces_of(model)
    short = IndexSpaces(**{**old.__dict__, "tokens": old.tokens[:-1]})
    with pytest.raises(ValueError, match="vocab_size"):
        adapt_model(model, short, old, **same_graphs_and_masks(model))
    wrong_items = IndexSpaces(**{**old.__dict__, "item_entity_ids": list(reversed(old.item_entity_ids))})
    with pytest.raises(ValueError, match="item_entity_ids"):
        adapt_model(model, wrong_items, old, **same_graphs_and_masks(model))
    with pytest.raises(ValueError, match="new_word_vectors"):
        adapt_model(model, old, old, **same_graphs_and_masks(model), new_word_vectors=torch.zeros(3, 4))


# --------------------------------------------------------------------------- folders
def test_index_spaces_from_folder(tmp_path):
    tokens = old_tokens()
    (tmp_path / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(tokens)}))
    entity_uris = ["<http://dbpedia.org/resource/The_Thin_Red_Line_(1998_film)>", "<http://dbpedia.org/resource/Tom_Hanks>", "75962"]
    kg = {"format": "kgsf-kg-resources", "version": 1, "entity_uris": entity_uris, "item_entity_ids": [0, 2],
          "relation_names": ["self_loop", None, "director"], "concept_vocab": {"wax": 1, "jeff": 3}}
    (tmp_path / "kg_resources.json").write_text(json.dumps(kg))
    (tmp_path / "config.json").write_text(json.dumps({"n_concept": 5}))
    spaces = index_spaces_from_folder(tmp_path)
    assert spaces.tokens == tokens and spaces.entities == entity_uris and spaces.item_entity_ids == [0, 2]
    assert spaces.relations == ["self_loop", None, "director"]
    assert spaces.concepts == [None, "wax", None, "jeff", None]
    assert spaces.entity_names == ["The Thin Red Line", "Tom Hanks", None]
    kg["entity_names"] = ["Thin Red Line", None, "Some Movie"]
    (tmp_path / "kg_resources.json").write_text(json.dumps(kg))
    assert index_spaces_from_folder(tmp_path).entity_names == ["Thin Red Line", None, "Some Movie"]
    # as datasets_scripts.kg_resources writes them: names per entity id, and item titles for unnamed items
    kg["entity_names"] = {"1": ["Tom Hanks", "T. Hanks"]}
    kg["movies"] = {"9": [2, "Obscure Film  (2001)", 1], "10": [None, "Unlinked (1999)", 0]}
    (tmp_path / "kg_resources.json").write_text(json.dumps(kg))
    assert index_spaces_from_folder(tmp_path).entity_names == ["The Thin Red Line", "Tom Hanks", "Obscure Film"]
    (tmp_path / "kg_resources.json").unlink()
    with pytest.raises(FileNotFoundError, match="kg_resources"):
        index_spaces_from_folder(tmp_path)
