"""The data pipeline on the real files in ../shared/data (skipped when they are absent)."""
from __future__ import annotations

import json

import pytest

from datasets_scripts import paths

try:
    DATA_DIR = paths.resolve_data_dir()
    paths.data_file(paths.TEST_FILE, DATA_DIR)
except FileNotFoundError as error:  # pragma: no cover - depends on the machine
    pytest.skip(f"real KGSF data not available: {error}", allow_module_level=True)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    from datasets_scripts.redial import load_redial, load_resources

    cache_dir = tmp_path_factory.mktemp("real_cache")
    resources = load_resources(DATA_DIR, cache_dir)
    dataset, stats = load_redial(DATA_DIR, cache_dir, resources=resources, return_statistics=True, train_source="recovered")
    return resources, dataset, stats


def test_graphs_and_items(real):
    resources, _, _ = real
    assert resources.item_graph.num_nodes == 64362 and resources.item_graph.num_relations == 46
    assert resources.item_graph.edge_index.shape[0] == 2
    assert len(resources.entities.item_entity_ids) == 6924
    assert resources.word_graph.num_nodes == 29309
    assert int(resources.word_graph.edge_index.max()) < 29309 and int(resources.word_graph.edge_index.min()) >= 1
    assert len(resources.tokenizer) == 23929


def test_splits(real):
    _, dataset, stats = real
    assert stats["test"]["conversations"] == 1342 and stats["validation"]["conversations"] == 901
    assert stats["train"]["conversations"] >= 500
    for split in ("test", "validation"):
        assert stats[split]["unknown_movie_ids"] == 0
        assert len(dataset[split]) == stats[split]["samples"] > 0
    row = dataset["test"][0]
    assert len(row["context_tokens"]) <= 256 and len(row["response_tokens"]) <= 30


def test_item_mask_matches_release(real):
    _, _, stats = real
    assert stats["mask_agreement"]["item_token_vocab_mask_vs_mask4movie"]["agreement"] == 1.0
    assert stats["mask_agreement"]["kg_word_vocab_mask_vs_mask4key"]["agreement"] > 0.8


def test_word_tokenize_agrees_with_nltk_on_test_messages():
    from nltk.tokenize import NLTKWordTokenizer

    from modeling_kgsf.tokenization_kgsf import merge_movie_mentions, split_sentences, word_tokenize

    nltk_tokenizer = NLTKWordTokenizer()
    with open(paths.data_file(paths.TEST_FILE, DATA_DIR), encoding="utf-8") as handle:
        texts = [m["text"] for line in handle for m in json.loads(line)["messages"]][:5000]
    agree = sum(
        word_tokenize(text) == merge_movie_mentions([t for s in split_sentences(text) for t in nltk_tokenizer.tokenize(s)])
        for text in texts
    )
    assert agree == len(texts)
