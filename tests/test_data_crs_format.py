"""The generic CRS dataset format: loading, processing, vocabulary extension, converters, errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fake_crs import CONVERSATIONS, ITEMS, TRIPLES, conversation, make_crs_dataset
from datasets_scripts.convert_crs import redial_to_crs, turn_list_to_crs, write_jsonl
from datasets_scripts.crs_format import CRSFormatError, load_crs_dataset, relation_name
from modeling_kgsf.tokenization_kgsf import KGSFTokenizer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def loaded(tmp_path):
    folder = make_crs_dataset(tmp_path / "books")
    return load_crs_dataset(folder, cache_dir=tmp_path / "cache")


def test_nodes_items_and_relations(loaded):
    resources, _, statistics = loaded
    entities = resources.entities
    # items first, in item-list order; an item without "entity" is its own node; triples may use the item id
    assert entities.entity_to_uri[:4] == ["Dune", "Foundation", "b3", "Persuasion"]
    assert entities.item_entity_ids == [0, 1, 2, 3]
    assert entities.movie_id_to_entity == {"b1": 0, "b2": 1, "b3": 2, "b4": 3}
    assert set(entities.entity_to_uri[4:]) == {"Frank Herbert", "science fiction", "Isaac Asimov", "Jane Austen", "romance"}
    graph = resources.item_graph
    assert graph.relation_names == ["self_loop", "author", "genre"]  # ties broken by name
    # self-loop per node + both directions of each triple
    assert graph.edge_index.shape[1] == graph.num_nodes + 2 * len(TRIPLES)
    austen = entities.uri_to_entity["Jane Austen"]
    pairs = set(zip(graph.edge_index[0].tolist(), graph.edge_index[1].tolist(), graph.edge_type.tolist()))
    assert (2, austen, 1) in pairs and (austen, 2, 1) in pairs
    assert statistics["graph"]["items_in_triples"] == 4


def test_rows_follow_the_redial_processing(loaded):
    resources, splits, statistics = loaded
    rows = {(row["conversation_id"], row["turn_index"]): row for row in splits["train"]}
    first = rows[("t1", 1)]
    assert first["target_items"] == [0]  # the "@b1" placeholder and the turn's "items"
    assert first["response_tokens"][3] == "@b1"
    assert first["cold_start"] and first["context_items"] == []
    assert resources.entities.uri_to_entity["science fiction"] in first["context_entities"]  # linked in the text
    second = rows[("t1", 3)]
    assert second["context_items"] == [0]
    assert resources.entities.uri_to_entity["Isaac Asimov"] in second["context_entities"]
    # "user"/"system" are roles too; explicit "entities" (by name) enter the next turn's context
    assert rows[("t2", 1)]["target_items"] == [3]
    # consecutive recommender turns merge: both placeholders are targets
    assert rows[("t3", 1)]["target_items"] == [3, 1]
    assert statistics["train"]["samples"] == 4 and statistics["train"]["rec_samples"] == 5
    assert [row["conversation_id"] for row in splits["test"]] == ["s1", "s2"]


def test_vocabulary_masks_and_word_graph(loaded):
    resources, _, statistics = loaded
    tokenizer = resources.tokenizer
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["__pad__", "__start__", "__end__", "__unk__", "_split_"]
    for item in ITEMS:  # every item placeholder is a token, even unseen in training
        assert tokenizer.convert_tokens_to_ids(f"@{item['id']}") != tokenizer.unk_token_id
    assert resources.item_token_vocab_mask.sum() == len(ITEMS)
    assert resources.kg_word_vocab_mask[tokenizer.convert_tokens_to_ids("desert")]
    assert not resources.kg_word_vocab_mask[tokenizer.convert_tokens_to_ids("the")]
    assert resources.word_graph.num_nodes == len(resources.concept_vocab) + 1
    assert resources.word_graph.edge_index.shape[1] == 8  # 4 pairs, both directions
    assert statistics["vocabulary"]["item_tokens"] == 4


def test_base_tokenizer_keeps_its_ids(tmp_path, loaded):
    base_vocab = {"__pad__": 0, "__start__": 1, "__end__": 2, "__unk__": 3, "zebra": 4, "novel": 5}
    (tmp_path / "base.json").write_text(json.dumps(base_vocab))
    base = KGSFTokenizer(vocab_file=str(tmp_path / "base.json"))
    resources, _, statistics = load_crs_dataset(make_crs_dataset(tmp_path / "books"), cache_dir=tmp_path / "cache", base_tokenizer=base)
    vocab = resources.tokenizer.get_vocab()
    assert vocab["zebra"] == 4 and vocab["novel"] == 5
    assert len(vocab) == loaded[0].tokenizer.vocab_size + 1  # the new words, plus "zebra"
    assert statistics["vocabulary"]["from_base_tokenizer"] == 6


def test_entities_file_is_the_node_list(tmp_path):
    entities = [{"id": name, "name": name} for name in ("Frank Herbert", "science fiction", "Isaac Asimov", "Jane Austen", "romance")]
    entities.append({"id": "Q1", "name": "Ursula K. Le Guin", "aliases": ["Le Guin"]})
    resources, _, _ = load_crs_dataset(make_crs_dataset(tmp_path / "books", entities=entities), cache_dir=tmp_path / "cache")
    le_guin = resources.entities.uri_to_entity["Q1"]
    assert [mention.entity_id for mention in resources.linker.link("I love Le Guin")] == [le_guin]


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(conversations={**CONVERSATIONS, "train": [conversation("x", ("seeker", "hi"), ("", "hello"))]}), "has no \"role\""),
        (dict(conversations={**CONVERSATIONS, "train": [{"conversation_id": "x", "turns": [{"text": "hi"}]}]}), "has no \"role\""),
        (dict(conversations={**CONVERSATIONS, "train": [conversation("x", ("seeker", "hi"), ("critic", "hello"))]}), "unknown role 'critic'"),
        (dict(conversations={**CONVERSATIONS, "train": [conversation("x", ("seeker", "hi"), ("recommender", "read it", ["b9"]))]}), "item id 'b9' is not in items.jsonl"),
        (dict(conversations={**CONVERSATIONS, "train": [conversation("x", ("seeker", "hi", [], ["Tolkien"]), ("recommender", "ok"))]}), "entity 'Tolkien' is not a KG node"),
        (dict(triples=[]), "the KG is empty"),
        (dict(triples=[("Dune", "author")]), "expected head, relation, tail"),
        (dict(entities=[{"id": "Frank Herbert"}]), "triple ends are neither items nor entities"),
        (dict(items=[{"id": "b 1", "name": "x"}]), "may hold only letters, digits and _"),
        (dict(items=[{"id": "b1"}, {"id": "b1"}]), "listed twice"),
        (dict(items=[]), "no items"),
        (dict(manifest={"colour": "blue"}), "unknown keys ['colour']"),
        (dict(manifest={"kg": "missing.tsv"}), "file missing.tsv not found"),
    ],
)
def test_clear_errors(tmp_path, change, message):
    folder = make_crs_dataset(tmp_path / "broken", **change)
    with pytest.raises(CRSFormatError, match=message.replace("(", r"\(").replace("[", r"\[").replace("]", r"\]")) as error:
        load_crs_dataset(folder, cache_dir=tmp_path / "cache")
    assert str(folder) in str(error.value)  # says where


def test_error_names_file_line_and_turn(tmp_path):
    train = [conversation("ok", ("seeker", "hi"), ("recommender", "hello")), conversation("bad", ("seeker", "hi"), ("recommender", "x", ["nope"]))]
    folder = make_crs_dataset(tmp_path / "broken", conversations={**CONVERSATIONS, "train": train})
    with pytest.raises(CRSFormatError, match=r"train\.jsonl, line 2, turn 2: item id 'nope'"):  # 1-based, as line numbers
        load_crs_dataset(folder, cache_dir=tmp_path / "cache")


def test_non_strict_skips_unknown_entities(tmp_path):
    train = [conversation("x", ("seeker", "hi", [], ["Tolkien"]), ("recommender", "read @b1"))]
    folder = make_crs_dataset(tmp_path / "lenient", conversations={**CONVERSATIONS, "train": train}, manifest={"strict": False})
    _, splits, statistics = load_crs_dataset(folder, cache_dir=tmp_path / "cache")
    assert statistics["train"]["unknown_entities_skipped"] == 1 and len(splits["train"]) == 1


def test_relation_names_are_shortened():
    assert relation_name("<http://dbpedia.org/ontology/genre>") == "genre"
    assert relation_name("http://schema.org/author") == "author"
    assert relation_name("written by") == "written by"


def test_redial_converter_roles_and_items():
    from fake_data import make_conversation

    redial = make_conversation(7, [("hi , I like horror", 1), ("you should watch @111", 2), ("thanks !", 1), ("or @222", 2), ("bye", 2)], {})
    converted = redial_to_crs(redial)
    assert converted["conversation_id"] == "7"
    assert [turn["role"] for turn in converted["turns"]] == ["seeker", "recommender", "seeker", "recommender", "recommender"]
    assert converted["turns"][1]["items"] == ["111"]


def test_turn_list_converter():
    record = {"conv_id": 5, "dialog": [
        {"role": "Seeker", "text": ["I", "like", "Dune"], "movies": [], "entity": ["Dune"]},
        {"role": "Recommender", "text": "try @b2", "movies": ["b2"], "entity": []},
    ]}
    converted = turn_list_to_crs(record)
    assert converted == {"conversation_id": "5", "turns": [
        {"role": "seeker", "text": "I like Dune", "items": [], "entities": ["Dune"]},
        {"role": "recommender", "text": "try @b2", "items": ["b2"], "entities": []},
    ]}
    renamed = turn_list_to_crs({"id": 1, "turns": [{"speaker": "A", "utterance": "x"}]}, dialog_key="turns", role_key="speaker",
                               text_key="utterance", id_key="id", role_map={"A": "seeker"})
    assert renamed["turns"][0]["role"] == "seeker"


def test_command_line_converts_and_validates(tmp_path):
    folder = make_crs_dataset(tmp_path / "books")
    turn_list = [{"conv_id": c["conversation_id"], "dialog": [{"role": t["role"].capitalize(), "text": t["text"], "movies": t.get("items") or []}
                                                              for t in c["turns"]]} for c in CONVERSATIONS["train"]]
    write_jsonl(turn_list, tmp_path / "crslab.jsonl")
    result = subprocess.run([sys.executable, "-m", "datasets_scripts.convert_crs", "turn-list", str(tmp_path / "crslab.jsonl"), str(folder / "train.jsonl")],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    result = subprocess.run([sys.executable, "-m", "datasets_scripts.crs_format", str(folder), "--cache-dir", str(tmp_path / "cache")],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["train"]["samples"] == 4
    (folder / "kg.tsv").write_text("")
    result = subprocess.run([sys.executable, "-m", "datasets_scripts.crs_format", str(folder), "--cache-dir", str(tmp_path / "cache")],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1 and "the KG is empty" in result.stderr


def test_dataset_without_word_graph_trains_without_the_word_branch(tmp_path):
    from training_kgsf.building import ModelArguments, build_model
    from training_kgsf.data import DataArguments, KGSFData
    folder = make_crs_dataset(tmp_path / "books", manifest={"word_graph": "none"})
    (tmp_path / "tiny.json").write_text(json.dumps({"d_model": 16, "kg_dim": 8, "ffn_dim": 16, "attention_heads": 2, "num_bases": 2}))
    data = KGSFData(DataArguments(dataset_dir=str(folder), cache_dir=str(tmp_path / "cache")))
    assert data.resources.word_graph.num_nodes == 1 and not data.resources.kg_word_vocab_mask.any()
    model = build_model(data, ModelArguments(model_config=str(tmp_path / "tiny.json")))
    assert model.config.use_conceptnet is False and model.config.use_mim is False
    for task in ("rec", "conv"):
        batch = data.collator(task)([data.split("train", task)[i] for i in range(3)])
        loss = model(**batch).loss
        assert loss.isfinite()
        loss.backward()


# ------------------------------------------------------------------------------------------------
# Empty splits and blank lines: one line naming the file
# ------------------------------------------------------------------------------------------------
def _check(folder: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "datasets_scripts.crs_format", str(folder), "--cache-dir", str(tmp_path / "cache")],
                          cwd=REPO, capture_output=True, text=True)


@pytest.mark.parametrize(
    "split, content, message",
    [
        ("test", "", "the test file is empty: no conversation; write one conversation a line"),
        ("train", "", "the train file is empty: no conversation (the training split also builds the vocabulary)"),
        ("train", "\n  \n\n", "the train file holds only 3 blank lines: no conversation"),
    ],
)
def test_an_empty_split_is_one_line_naming_the_file(tmp_path, split, content, message):
    folder = make_crs_dataset(tmp_path / "books")
    (folder / f"{split}.jsonl").write_text(content)
    with pytest.raises(CRSFormatError) as error:
        load_crs_dataset(folder, cache_dir=tmp_path / "cache")
    assert str(error.value).startswith(f"{folder / f'{split}.jsonl'}: {message}") and "\n" not in str(error.value)
    result = _check(folder, tmp_path)
    assert result.returncode == 1 and result.stdout == "" and result.stderr == f"error: {error.value}\n"


def test_training_data_refuses_an_empty_split_in_one_line(tmp_path):
    from training_kgsf.data import DataArguments, KGSFData
    folder = make_crs_dataset(tmp_path / "books", conversations={**CONVERSATIONS, "validation": []})
    with pytest.raises(ValueError, match=r"validation\.jsonl: the validation file is empty") as error:
        KGSFData(DataArguments(dataset_dir=str(folder), cache_dir=str(tmp_path / "cache")))
    assert "\n" not in str(error.value)
    # a training script prints that one line and exits 1, with no traceback
    result = subprocess.run([sys.executable, "examples/train_recommender.py", "--dataset_dir", str(folder), "--cache_dir",
                             str(tmp_path / "cache"), "--output_dir", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: {error.value}"


def test_a_split_without_examples_is_one_line(tmp_path):
    folder = make_crs_dataset(tmp_path / "books", conversations={**CONVERSATIONS, "test": [conversation("x", ("seeker", "hi"))]})
    result = _check(folder, tmp_path)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {folder / 'test.jsonl'}: no recommender turn with an earlier turn")


def test_blank_lines_are_skipped_and_counted(tmp_path):
    folder = make_crs_dataset(tmp_path / "books")
    lines = [json.dumps(record) for record in CONVERSATIONS["train"]]
    (folder / "train.jsonl").write_text("\n".join([lines[0], "", lines[1], "   ", lines[2], ""]) + "\n")
    _, splits, statistics = load_crs_dataset(folder, cache_dir=tmp_path / "cache")
    assert statistics["train"]["blank_lines_skipped"] == 3 and statistics["test"]["blank_lines_skipped"] == 0
    assert [row["conversation_id"] for row in splits["train"]][:1] == ["t1"] and statistics["train"]["conversations"] == 3
    assert statistics["warnings"] == [f"{folder / 'train.jsonl'}: 3 blank lines skipped (line 2, 4, 6)"]
    result = _check(folder, tmp_path)
    assert result.returncode == 0 and result.stderr == f"warning: {folder / 'train.jsonl'}: 3 blank lines skipped (line 2, 4, 6)\n"
    assert json.loads(result.stdout)["train"]["blank_lines_skipped"] == 3
