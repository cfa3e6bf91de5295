"""Data pipeline on a tiny fake data directory built in code (no real data needed)."""
from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from datasets_scripts import kg, paths
from datasets_scripts.collator import expand_for_recommendation
from datasets_scripts.convert_pickles import UnsafePickleError, convert_kgsf_pickles, restricted_loads
from modeling_kgsf.linking_kgsf import EntityLinker, name_from_uri
from modeling_kgsf.processing_kgsf import KGSFDataCollator
from datasets_scripts.redial import load_redial, load_resources, read_conversations
from datasets_scripts.word2vec import train_word2vec
from modeling_kgsf.tokenization_kgsf import KGSFTokenizer, word_tokenize

from fake_data import CONCEPTS, CONVERSATIONS, R, STOPWORDS, URIS, VOCAB_WORDS, make_conversation, make_fake_data_dir, write_jsonl


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    data_dir = make_fake_data_dir(tmp_path_factory.mktemp("data"))
    cache_dir = tmp_path_factory.mktemp("cache")
    resources = load_resources(data_dir, cache_dir)
    dataset, stats = load_redial(data_dir, cache_dir, include_recovered=False, resources=resources, return_statistics=True)
    return {"data_dir": data_dir, "cache_dir": cache_dir, "resources": resources, "dataset": dataset, "stats": stats}


# --- paths -----------------------------------------------------------------------------------
def test_missing_file_error_names_file_and_location(tmp_path):
    with pytest.raises(FileNotFoundError, match="key2index_3rd.json.*" + str(tmp_path)):
        paths.data_file(paths.CONCEPT2INDEX_FILE, tmp_path)


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path))
    assert paths.resolve_data_dir() == tmp_path.resolve()
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="KGSF_DATA_DIR"):
        paths.resolve_data_dir()


def test_cache_dir_inside_repository_refused():
    root = paths.repository_root()
    with pytest.raises(ValueError, match="inside the repository"):
        paths.resolve_cache_dir(root / "cache")


# --- restricted unpickler -----------------------------------------------------------------------
class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_os_system(tmp_path):
    payload = pickle.dumps(_Exploit())
    with pytest.raises(UnsafePickleError, match="system"):
        restricted_loads(payload)
    (tmp_path / "pickles").mkdir()
    for name in ("entity2entityId.pkl", "id2entity.pkl", "movie_ids.pkl"):
        (tmp_path / "pickles" / name).write_bytes(pickle.dumps({}))
    (tmp_path / "pickles" / "subkg.pkl").write_bytes(payload)
    with pytest.raises(UnsafePickleError):
        convert_kgsf_pickles(tmp_path / "pickles", tmp_path / "out")


def test_restricted_unpickler_accepts_plain_containers():
    from collections import defaultdict

    value = defaultdict(list, {1: [(2, 3)]})
    assert restricted_loads(pickle.dumps(value)) == value


# --- graphs ---------------------------------------------------------------------------------------
def test_item_graph_filtering(fake):
    graph = kg.load_item_graph(fake["data_dir"], fake["cache_dir"], relation_min_count=0)
    edges = list(zip(graph.edge_index[0].tolist(), graph.edge_index[1].tolist(), graph.edge_type.tolist()))
    assert len(edges) == len(set(edges)), "no duplicate edges"
    assert graph.num_nodes == len(URIS)
    assert graph.kgsf_relation_ids == [185, 2, 5, 1]  # reference order: self-loop first, then as met
    self_loop = graph.kgsf_relation_ids.index(185)
    assert sum(t == self_loop for _, _, t in edges) == len(URIS)
    genre = graph.kgsf_relation_ids.index(2)
    assert (0, 3, genre) in edges and (3, 0, genre) in edges  # both directions
    assert (0, 7, graph.kgsf_relation_ids.index(5)) in edges
    assert not any(h == t and r != self_loop for h, t, r in edges)  # (0, relation 7, 0) self-pointing triple dropped
    # With the reference's threshold only the self-loop relation (2 hops x 8 nodes = 16 <= 1000) ... is dropped too.
    assert kg.load_item_graph(fake["data_dir"], fake["cache_dir"]).num_relations == 0


def test_word_graph(fake):
    graph = fake["resources"].word_graph
    concepts = {w: i + 1 for i, w in enumerate(CONCEPTS)}
    pairs = set(zip(graph.edge_index[0].tolist(), graph.edge_index[1].tolist()))
    assert pairs == {(concepts["horror"], concepts["scary"]), (concepts["scary"], concepts["horror"])}
    assert graph.num_nodes == len(CONCEPTS) + 1
    assert graph.statistics["edges_touching_stopwords"] == 1


# --- entity linker ---------------------------------------------------------------------------------
def test_name_from_uri():
    assert name_from_uri(R + "Up_(2009_film)>") == ("Up", True)
    assert name_from_uri(R + "Tom_Hanks>") == ("Tom Hanks", False)
    assert name_from_uri(R + "Am%C3%A9lie>") == ("Amélie", False)
    assert name_from_uri("<http://www.imdb.com/x>") is None


def test_linker(fake):
    linker = fake["resources"].linker
    mentions = linker.link("I like paranormal activity (2007) and Tom Hanks and @222 and steven spielberg")
    assert [(m.entity_id, m.kind) for m in mentions] == [(0, "title"), (2, "entity"), (1, "movie_id"), (5, "entity")]
    assert mentions[0].surface == "paranormal activity ( 2007 )"  # longest match wins
    assert [m.entity_id for m in linker.link("Paranormal Activity")] == [0]
    assert linker.link("@999 unknown") == []
    # "frozen" is an ordinary word: linked only when written capitalised mid-sentence.
    assert linker.link("frozen yogurt") == [] and linker.link("Frozen yogurt") == []
    assert [m.entity_id for m in linker.link("I liked Frozen")] == [4]
    # "horror" (alias of Horror_film) is an ordinary word too, unless its entity is declared case-free (genres).
    assert linker.link(word_tokenize("I like horror")) == []
    entities = kg.load_dbpedia(fake["data_dir"], fake["cache_dir"])
    genre_aware = EntityLinker.from_kg(entities, set(STOPWORDS), set(CONCEPTS), case_free_entities={3})
    assert [m.entity_id for m in genre_aware.link(word_tokenize("I like horror"))] == [3]


# --- tokenizer -------------------------------------------------------------------------------------
def test_tokenizer_round_trip(fake, tmp_path):
    tokenizer = fake["resources"].tokenizer
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2, 3)
    assert len(tokenizer) == len(VOCAB_WORDS) + 4
    text = "Have you seen @111? I like horror movies!"
    assert tokenizer.tokenize(text) == ["Have", "you", "seen", "@111", "?", "I", "like", "horror", "movies", "!"]
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert tokenizer.convert_tokens_to_ids("zebra") == 3
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "vocab.json").exists()
    reloaded = KGSFTokenizer.from_pretrained(tmp_path)
    assert reloaded.get_vocab() == tokenizer.get_vocab() and reloaded.encode(text) == ids


def test_word_tokenize_matches_nltk():
    from nltk.tokenize import NLTKWordTokenizer

    nltk_tokenizer = NLTKWordTokenizer()
    for sentence in ['I don\'t know "Up" (2009)...', "Can't wait, gonna see it: $5 & more -- really?", "She said 'hello' to them"]:
        assert word_tokenize(sentence) == nltk_tokenizer.tokenize(sentence)
    assert word_tokenize("Try @123. It is good.") == ["Try", "@123", ".", "It", "is", "good", "."]


# --- processing ------------------------------------------------------------------------------------
def test_rows(fake):
    train = fake["dataset"]["train"]
    assert set(fake["dataset"]) == {"train", "validation", "test"}
    rows = train.to_list()
    assert [(r["conversation_id"], r["turn_index"]) for r in rows] == [("10", 1), ("10", 3), ("11", 2)]
    first, second, third = rows
    assert first["context_tokens"] == ["hi"] and first["response_tokens"] == ["Have", "you", "seen", "@111", "?"]
    assert first["target_items"] == [0] and first["cold_start"] and first["context_items"] == []
    # seeker's two messages merged into one turn; turns joined by _split_
    assert second["context_tokens"] == ["hi", "_split_", "Have", "you", "seen", "@111", "?", "_split_", "I", "like", "horror", "movies", "with", "Tom", "Hanks"]
    assert second["context_entities"] == [0, 2] and second["context_items"] == [0] and not second["cold_start"]
    assert second["target_items"] == [1]
    concepts = {w: i + 1 for i, w in enumerate(CONCEPTS)}
    assert second["context_words"] == [concepts["like"], concepts["horror"], concepts["movies"]]
    assert third["target_items"] == [] and third["context_tokens"] == ["hi", "_split_", "I", "like", "scary", "movies"]
    stats = fake["stats"]["train"]
    assert stats["unknown_movie_ids"] == 1 and stats["samples"] == 3 and stats["rec_samples"] == 2
    assert fake["dataset"]["test"][0]["target_items"] == [6]  # movie without DBpedia page
    valid = fake["dataset"]["validation"].to_list()
    assert valid[0]["context_items"] == [0] and valid[0]["target_items"] == [4]  # title linked in text


def test_context_and_response_truncation(fake, tmp_path):
    from datasets_scripts.redial import process_conversations
    from modeling_kgsf.processing_kgsf import MAX_CONTEXT_TOKENS, MAX_RESPONSE_TOKENS

    long_turns = [(" ".join(["great"] * 100), 1 + (i % 2)) for i in range(8)]
    rows, _ = process_conversations([make_conversation("x", long_turns, {})], fake["resources"])
    assert len(rows) == 4
    assert all(len(r["context_tokens"]) <= MAX_CONTEXT_TOKENS and len(r["response_tokens"]) == MAX_RESPONSE_TOKENS for r in rows)
    last = rows[-1]["context_tokens"]
    assert last.count("_split_") == 2 and last[-1] == "great"  # last 256 tokens of the last 5 turns


def test_cache_is_reused(fake):
    processed = list((fake["cache_dir"] / "processed").iterdir())
    dataset = load_redial(fake["data_dir"], fake["cache_dir"], include_recovered=False)
    assert list((fake["cache_dir"] / "processed").iterdir()) == processed
    assert dataset["train"].to_list() == fake["dataset"]["train"].to_list()


def test_malformed_line_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(CONVERSATIONS["test"][0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl, line 2: malformed JSON"):
        read_conversations(path)
    path.write_text('{"messages": []}\n')
    with pytest.raises(ValueError, match="line 1.*respondentWorkerId"):
        read_conversations(path)


def test_missing_split_file(fake):
    with pytest.raises(FileNotFoundError, match="nothere.jsonl"):
        load_redial(fake["data_dir"], fake["cache_dir"], train_files=["nothere.jsonl"], include_recovered=False)


def test_vocab_masks(fake):
    resources = fake["resources"]
    vocab = resources.tokenizer.get_vocab()
    on = {t for t, i in vocab.items() if resources.kg_word_vocab_mask[i]}
    assert on == {"like", "horror", "movies", "watch", "great", "scary", "Frozen"}  # "the"/"I"/"you" are stopwords
    items = {t for t, i in vocab.items() if resources.item_token_vocab_mask[i]}
    assert items == {"@111", "@222", "@333", "@444"}


# --- collator / word2vec ---------------------------------------------------------------------------
def test_collator(fake):
    resources = fake["resources"]
    train = fake["dataset"]["train"]
    rec = expand_for_recommendation(train)
    assert len(rec) == 2 and rec["target_item"] == [0, 1]
    assert len(expand_for_recommendation(train, drop_without_target=False)) == 3
    collate = KGSFDataCollator(resources.tokenizer, resources.item_index_of_entity, mode="rec")
    batch = collate(rec.to_list())
    assert batch["input_ids"].shape == (2, 15) and batch["attention_mask"].sum().item() == 1 + 15
    assert batch["rec_labels"].tolist() == [resources.item_index_of_entity[0], resources.item_index_of_entity[1]]
    assert batch["context_entity_mask"].dtype == torch.bool and batch["context_entity_ids"].shape == (2, 2)
    assert batch["context_item_indices"].tolist() == [[-1], [resources.item_index_of_entity[0]]]
    assert "labels" not in batch
    conv = KGSFDataCollator(resources.tokenizer, resources.item_index_of_entity, mode="conv")(train.to_list())
    assert conv["rec_labels"].tolist() == [-100, -100, -100]
    assert conv["labels"].shape == (3, 6) and conv["labels"][0, 5].item() == resources.tokenizer.eos_token_id
    assert conv["labels"][2, 3].item() == -100 and conv["context_word_ids"].shape[1] >= 1


def test_word2vec(fake):
    tokenizer = fake["resources"].tokenizer
    embeddings = train_word2vec(fake["dataset"]["train"], tokenizer, fake["cache_dir"], dim=16, epochs=1)
    assert embeddings.shape == (len(tokenizer), 16) and embeddings.dtype == torch.float32
    assert torch.all(embeddings[0] == 0)
    again = train_word2vec(fake["dataset"]["train"], tokenizer, fake["cache_dir"], dim=16, epochs=1)
    assert torch.equal(embeddings, again)
