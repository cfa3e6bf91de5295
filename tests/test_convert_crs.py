"""The converters (docs/CRS_FORMAT.md, section 2): each shipped layout, built in code, converts with its
documented command and passes the check; every bad input stops with one line, ``error: FILE, line N, turn K: ...``."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fake_crs import (
    CRSLAB_CONVERSATIONS, ENTITY2ID, ITEMS, UNICRS_DIALOGUES, UNICRS_REDIAL_CONVERSATION, conversation, crslab_turn, dbr, make_crs_dataset,
    make_crslab_folder, make_unicrs_folder, unicrs_turn, write_jsonl,
)
from datasets_scripts import convert_crs, crs_format
from datasets_scripts.convert_crs import ItemMap, PlaceholderWriter, corpus_common_words, write_placeholders
from datasets_scripts.crs_format import CRSFormatError, Item, load_crs_dataset

REPO = Path(__file__).resolve().parents[1]


def jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def convert(capsys, *argv) -> tuple[int, str, str]:
    """``python -m datasets_scripts.convert_crs ARGV`` in this process: (exit code, stdout, stderr)."""
    code = convert_crs.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def load(folder: Path, tmp_path: Path):
    return load_crs_dataset(folder, cache_dir=tmp_path / "cache")


# ------------------------------------------------------------------------------------------------
# UniCRS's layout
# ------------------------------------------------------------------------------------------------
def test_unicrs_layout_converts_with_one_command_and_passes_the_check(tmp_path):
    source = make_unicrs_folder(tmp_path / "inspired")
    out = tmp_path / "my_dataset"
    result = subprocess.run([sys.executable, "-m", "datasets_scripts.convert_crs", "unicrs", str(source), str(out), "--word-graph", "none"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "self-loops dropped: 5" in result.stdout and "links not in the KG (dropped): 1" in result.stdout

    # URIs mapped to item ids (the entity id), the URI kept as the item's entity, named as the dialogues name it
    assert jsonl(out / "items.jsonl")[:2] == [{"id": "0", "name": "Knives Out", "entity": dbr("Knives_Out")},
                                              {"id": "1", "name": "Inception", "entity": dbr("Inception")}]
    triples = jsonl(out / "kg.jsonl")
    assert len(triples) == 8 and {t["relation"] for t in triples} == {"<http://dbpedia.org/ontology/director>", "<http://dbpedia.org/ontology/genre>"}
    first, second = jsonl(out / "train.jsonl")
    assert first["turns"][0] == {"role": "seeker", "text": "Hi! I loved @1 , any mystery film ?", "items": ["1"], "entities": [dbr("Mystery_film")]}
    # a linked movie that is no item stays an entity; a link outside entity2id is dropped
    assert first["turns"][2]["items"] == [] and first["turns"][2]["entities"] == [dbr("Titanic_(1997_film)"), dbr("Daniel_Craig")]
    assert first["turns"][3]["text"] == "No , but @2 is a crime film you may like ."  # "heat": any case when no exact match (doubted)
    assert second["turns"][1]["role"] == "recommender"  # "Recommender" and "RECOMMENDER" alike
    assert second["turns"][1]["text"] == "Up is lovely ." and second["turns"][1]["items"] == ["3"]  # "Up": a common word starting a sentence
    report = json.loads((out / "conversion_report.json").read_text())["placeholders"]
    assert (report["linked item mentions"], report["written"], report["doubted"], report["not written"]) == (6, 5, 1, 1)
    assert report["reasons"]["a common word used as a word"]["examples"][0]["text"] == "Up is lovely ."
    assert report["reasons"]["written in another case than the name"]["examples"][0]["name"] == "heat"
    summary = [line for line in result.stderr.splitlines() if line.startswith("placeholders: ")]
    assert summary == [f"placeholders: 5 of 6 linked item mentions written (1 doubted: written in another case than the name); 1 not written: "
                       f"1 a common word used as a word (report: {out / 'conversion_report.json'})"]

    result = subprocess.run([sys.executable, "-m", "datasets_scripts.crs_format", str(out), "--cache-dir", str(tmp_path / "cache")],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    statistics = json.loads(result.stdout)
    assert statistics["graph"]["items"] == 4 and statistics["graph"]["nodes"] == len(ENTITY2ID) and statistics["graph"]["triples"] == 8
    assert statistics["train"]["samples"] == 3 and statistics["train"]["unknown_movie_ids"] == 0
    assert statistics["train"]["mentions"]["movie_id"] == 3  # placeholders read back as items

    resources, splits, _ = load(out, tmp_path)
    assert resources.item_graph.relation_names == ["self_loop", "director", "genre"]  # the relation names kept
    rows = {(row["conversation_id"], row["turn_index"]): row for row in splits["train"]}
    assert rows[("train-1", 1)]["target_items"] == [0] and rows[("train-1", 1)]["response_tokens"][1] == "@0"
    titanic, craig = (resources.entities.uri_to_entity[dbr(name)] for name in ("Titanic_(1997_film)", "Daniel_Craig"))
    assert {titanic, craig} <= set(rows[("train-1", 3)]["context_entities"])


def test_unicrs_redial_conversations(tmp_path, capsys):
    record = UNICRS_REDIAL_CONVERSATION
    source = make_unicrs_folder(tmp_path / "redial", dialogues={"train": [record], "valid": [record], "test": [record]})
    code, _, err = convert(capsys, "unicrs", source, tmp_path / "out", "--word-graph", "none")
    assert code == 0, err
    (converted,) = jsonl(tmp_path / "out" / "train.jsonl")
    assert converted["conversation_id"] == "20051"
    # the respondent recommends; "@111" is Knives Out in movieMentions, whose item is entity id 0
    assert [turn["role"] for turn in converted["turns"]] == ["seeker", "seeker", "recommender"]
    assert converted["turns"][0]["text"] == "I liked @1 !" and converted["turns"][2]["text"] == "Then @0 , by Rian Johnson ."
    assert jsonl(tmp_path / "out" / "items.jsonl")[0]["name"] == "Knives Out (2019)"
    _, splits, statistics = load(tmp_path / "out", tmp_path)
    assert splits["train"][0]["target_items"] == [0] and splits["train"][0]["context_items"] == [1]
    assert statistics["train"]["unknown_movie_ids"] == 0


def test_unicrs_without_item_ids_takes_the_linked_movies(tmp_path, capsys):
    source = make_unicrs_folder(tmp_path / "inspired", item_ids=None)
    code, _, err = convert(capsys, "unicrs", source, tmp_path / "out", "--word-graph", "none", "--no-placeholders")
    assert code == 0, err
    titanic = str(ENTITY2ID[dbr("Titanic_(1997_film)")])
    assert [item["id"] for item in jsonl(tmp_path / "out" / "items.jsonl")] == ["0", "1", "2", "3", titanic]
    turns = jsonl(tmp_path / "out" / "train.jsonl")[0]["turns"]
    assert turns[0]["text"] == UNICRS_DIALOGUES["train"][0][0]["text"]  # --no-placeholders keeps the text
    assert turns[2]["items"] == [titanic]
    load(tmp_path / "out", tmp_path)


# ------------------------------------------------------------------------------------------------
# CRSLab's layout
# ------------------------------------------------------------------------------------------------
def test_crslab_layout_converts_and_passes_the_check(tmp_path, capsys):
    source = make_crslab_folder(tmp_path / "redial")
    code, out, err = convert(capsys, "crslab", source, tmp_path / "my_dataset", "--word-graph", "none")
    assert code == 0, err
    assert "self-loops dropped: 5" in out
    (converted,) = jsonl(tmp_path / "my_dataset" / "train.jsonl")
    assert converted == {"conversation_id": "1", "turns": [
        {"role": "seeker", "text": "I loved @1 . Any crime film ?", "items": ["1"], "entities": [dbr("Crime_film")]},
        {"role": "recommender", "text": "@2 is great .", "items": ["2"], "entities": [dbr("Michael_Mann")]}]}
    resources, splits, statistics = load(tmp_path / "my_dataset", tmp_path)
    assert resources.item_graph.relation_names == ["self_loop", "relation_16", "relation_4"]  # unnamed ids, self-loop 185 dropped
    assert [row["target_items"] for row in splits["test"]] == [[0]]
    assert statistics["validation"]["samples"] == 1


def test_crslab_triples_file_and_messages_key(tmp_path, capsys):
    conversations = {split: [{"conv_id": c["conv_id"], "messages": c["dialog"]} for c in records] for split, records in CRSLAB_CONVERSATIONS.items()}
    source = make_crslab_folder(tmp_path / "tg", conversations)
    (source / "dbpedia_subkg.json").unlink()
    (source / "dbpedia_subkg.txt").write_text(f"{dbr('Heat_(1995_film)')}\tdirector\t{dbr('Michael_Mann')}\n"
                                              f"{dbr('Knives_Out')}\tgenre\tMystery\n{dbr('Up_(2009_film)')}\tSELF_LOOP_X\t{dbr('Up_(2009_film)')}\n")
    code, out, err = convert(capsys, "crslab", source, tmp_path / "out", "--word-graph", "none")
    assert code == 0, err
    assert "self-loops dropped: 1" in out
    resources, _, _ = load(tmp_path / "out", tmp_path)
    assert resources.item_graph.relation_names == ["self_loop", "director", "genre"]
    assert "Mystery" in resources.entities.uri_to_entity  # a triple end outside entity2id is a node too


# ------------------------------------------------------------------------------------------------
# Turn lists
# ------------------------------------------------------------------------------------------------
def test_turn_list_reads_bare_lists_of_turns(tmp_path, capsys):
    write_jsonl(tmp_path / "train_data_dbpedia.jsonl", UNICRS_DIALOGUES["train"])
    items = tmp_path / "items.jsonl"
    write_jsonl(items, [{"id": str(ENTITY2ID[dbr(name)]), "name": name.split("_(")[0].replace("_", " "), "entity": dbr(name)}
                        for name in ("Knives_Out", "Inception", "Heat_(1995_film)", "Up_(2009_film)", "Titanic_(1997_film)")])
    for dialog_key in ("dialog", ""):
        code, _, err = convert(capsys, "turn-list", tmp_path / "train_data_dbpedia.jsonl", tmp_path / "train.jsonl",
                               "--dialog-key", dialog_key, "--items", items, "--names-key", "movie_name", "--placeholders")
        assert code == 0, err
        first, second = jsonl(tmp_path / "train.jsonl")
        assert "conversation_id" not in first  # the loader names it train-1
        assert first["turns"][1] == {"role": "recommender", "text": "Try @0 by Rian Johnson .", "items": ["0"], "entities": [dbr("Rian_Johnson")]}
        assert second["turns"][1]["text"] == "Up is lovely ."  # a common word starting a sentence: no placeholder
        report = json.loads((tmp_path / "train.report.json").read_text())["placeholders"]
        assert report["reasons"]["a common word used as a word"]["examples"][0]["where"] == f"{tmp_path / 'train_data_dbpedia.jsonl'}, line 2, turn 2"
        assert "placeholders: 4 of 5 linked item mentions written" in err


def test_item_map_and_placeholders():
    items = ItemMap([Item("0", "Knives Out (2019)", dbr("Knives_Out")), Item("3", "Up (2009)", dbr("Up_(2009_film)")), Item("b7", None, "b7")])
    assert [items.item_id(value) for value in ("0", dbr("Up_(2009_film)"), "knives out", "Knives Out (2019)", "b7", "Inception")] == ["0", "3", "0", "0", "b7", None]
    assert write_placeholders("what's up? I loved Up !", [("3", ["Up"])]) == ("what's up? I loved @3 !", 1)  # exact case first
    assert write_placeholders("it goes upward", [("3", ["up"])]) == ("it goes upward", 0)  # whole words only
    assert write_placeholders("Knives Out or knives", [("0", items.names["0"])]) == ("@0 or knives", 1)  # longest name first
    assert write_placeholders("i loved knives out", [("0", items.names["0"])]) == ("i loved @0", 1)  # another case: written, doubted


TELL = [("7", ["Tell (2007)", "Tell"])]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Tell me about it!", "Tell me about it!"),  # a common word starting a sentence
        ("I loved Tell (2007)", "I loved @7"),  # the title with its year
        ("I loved Tell 2007 a lot", "I loved @7 2007 a lot"),  # before a year
        ("I loved Tell a lot", "I loved @7 a lot"),  # capitalised in mid-sentence
        ("Have you seen \"tell\"?", "Have you seen \"@7\"?"),  # quoted
        ("Have you seen Tell ?", "Have you seen @7 ?"),  # a strong film cue
        ("Tell was great .", "Tell was great ."),  # a judgement says nothing for one common word ("Here is the movie")
        ("you should tell her", "you should tell her"),  # lower case
        ("can you tell me more", "can you tell me more"),
    ],
)
def test_common_word_titles_only_where_the_text_names_the_film(text, expected):
    assert write_placeholders(text, TELL)[0] == expected


def test_placeholder_rules():
    writer = PlaceholderWriter(["Train to Busan", "The Silence of the Lambs"], common_words={"split"})
    cases = [
        ("Train", "I watched Train to Busan", "part of a longer title"),
        ("Silence", "Are you a fan of Silence of the Lambs?", "part of a longer title"),
        ("Keanu", "I love Keanu Reeves", "part of a longer name (a capitalised word or a number next to it)"),
        ("Prime", "Do you have Amazon Prime ?", "part of a longer name (a capitalised word or a number next to it)"),
        ("Frozen", "My kids loved Frozen 2", "part of a longer name (a capitalised word or a number next to it)"),
        ("Avenger", "I am a fan of the Avenger movies", 'names a series ("movies", "films", ... after it)'),
        ("Friday", "It's Friday! How are you?", "a common word used as a word"),
        ("Friday", "I hope you enjoy your Friday", "a common word used as a word"),  # days: capitals say nothing
        ("Split", "Split the bill", "a common word used as a word"),  # common in this corpus
        ("Inception", "Anything like Inception ?", "written"),
        ("Frozen", "I liked Disney's Frozen a lot", "written"),  # a possessive joins no name
        ("Joker", "I saw The Joker last week", "written"),  # nor an article
        ("Joker", "Watched Joker yesterday", "written"),  # nor a sentence's first word that is a cue
        ("Friday", "Have you seen Friday?", "written"),  # a strong film cue
        ("Split", "I loved Split .", "written"),
    ]
    for name, text, outcome in cases:
        _, (placement,) = writer.write(text, [("9", [name])])
        assert placement.outcome == outcome, (name, text, placement)


def test_corpus_common_words():
    common = corpus_common_words(["tell me more", "Can you tell me?", "I loved Joker", "Joker is great", "was joker good", "More or less ."])
    assert {"tell", "me"} <= common and "joker" not in common  # "joker": once in lower case, once capitalised in mid-sentence
    assert "more" not in common  # written in lower case once only


# ------------------------------------------------------------------------------------------------
# Bad inputs: one line, "error: FILE, line N, turn K: ..." (1-based), exit code 1, nothing written
# ------------------------------------------------------------------------------------------------
def _turn_list_error(tmp_path, capsys, lines: list[str], *options) -> str:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    code, out, err = convert(capsys, "turn-list", source, tmp_path / "out.jsonl", *options)
    assert code == 1 and out == "" and err.count("\n") == 1 and err.startswith("error: "), err
    assert not (tmp_path / "out.jsonl").exists()
    return err.removeprefix("error: ").rstrip("\n").replace(str(source), "IN")


SEEKER = json.dumps({"role": "SEEKER", "text": "hi"})


@pytest.mark.parametrize(
    "lines, options, message",
    [
        ([SEEKER.join("[]"), f'[{SEEKER}, {{"text": "hello"}}]'], (), 'IN, line 2, turn 2: the turn has no "role" (one of ['),
        ([f'[{SEEKER}, {{"role": null, "text": "hello"}}]'], (), 'IN, line 1, turn 2: the turn has no "role"'),
        ([f'[{SEEKER}, {{"role": "critic", "text": "hello"}}]'], (), "IN, line 1, turn 2: unknown role 'critic' (known: ["),
        ([f'[{SEEKER}, {{"role": "Critic", "text": "x"}}]'], ("--role-map", '{"Critic": "judge"}'), "IN, line 1, turn 2: unknown role 'judge'"),
        ([f'[{SEEKER}, {{"role": "Recommender", "text": 5}}]'], (), "IN, line 1, turn 2: 'text' must be a string or a list of strings, not int"),
        ([f'[{{"role": "seeker", "utterance": "hi"}}]'], (), "IN, line 1, turn 1: the turn has no 'text' (keys: ['role', 'utterance']; name the text's key with --text-key)"),
        ([f'[{SEEKER}, "hello"]'], (), "IN, line 1, turn 2: a turn is an object"),
        ([f'[{SEEKER}, {{"role": "recommender", "text": "x", "movies": "{dbr("Up")}"}}]'], (), "IN, line 1, turn 2: 'movies' must be a list"),
        ([f'[{{"role": "recommender", "text": "x", "movie_link": ["{dbr("Knives_Out")}"]}}]'], (),
         f"IN, line 1, turn 1: item '{dbr('Knives_Out')}' is not a plain item id (letters, digits and _ only); give --items"),
        ([SEEKER.join("[]"), '{"conv_id": 3, "turns": []}'], (), "IN, line 2: no turn list under 'dialog' (keys: ['conv_id', 'turns']); name it with --dialog-key"),
        ([SEEKER.join("[]"), '"hello"'], (), "IN, line 2: a conversation is a list of turns or an object holding one, not str"),
        ([SEEKER.join("[]"), '[{"role": "SEEKER", "text": "I loved Knives Ou'], (), "IN, line 2 is cut off: its JSON ends before it is complete"),
        ([SEEKER.join("[]"), '[{"role": "SEEKER", "text": "hi"}, {"role": "Recommender", "text": ["a", '], (), "IN, line 2 is cut off"),
        (['[{"role": "SEEKER" "text": "hi"}]'], (), "IN, line 1: malformed JSON (Expecting ',' delimiter at column 20)"),
        (['[{"role": "SEEKER", "text": "a\tb"}]'], (), "IN, line 1: malformed JSON (Invalid control character at column 31)"),
        ([SEEKER.join("[]")], ("--role-map", "{seeker: 1}"), "--role-map is not JSON (Expecting property name enclosed in double quotes at column 2)"),
    ],
)
def test_turn_list_bad_input_is_one_line(tmp_path, capsys, lines, options, message):
    assert _turn_list_error(tmp_path, capsys, lines, *options).startswith(message)


def test_unknown_item_with_items_file(tmp_path, capsys):
    items = tmp_path / "items.jsonl"
    write_jsonl(items, ITEMS)
    error = _turn_list_error(tmp_path, capsys, [f'[{SEEKER}, {{"role": "recommender", "text": "x", "movies": ["{dbr("Up")}"]}}]'], "--items", items)
    assert error == f"IN, line 1, turn 2: item '{dbr('Up')}' is neither an id, an \"entity\" nor a name of an item in {items}"


def test_redial_converter_bad_message(tmp_path, capsys):
    source = tmp_path / "redial.jsonl"
    write_jsonl(source, [{"conversationId": 1, "respondentWorkerId": 2, "messages": [{"senderWorkerId": 1, "text": "hi"}, {"text": "yo"}]}])
    code, _, err = convert(capsys, "redial", source, tmp_path / "out.jsonl")
    assert code == 1 and err == f"error: {source}, line 1, turn 2: the message has no \"senderWorkerId\" (it says who speaks)\n"


@pytest.mark.parametrize(
    "layout, change, message",
    [
        ("unicrs", lambda root: (root / "item_ids.json").write_text("[0, 99]"), "item_ids.json: 1 item ids are not entity ids of entity2id.json, e.g. 99"),
        ("unicrs", lambda root: (root / "dbpedia_subkg.json").write_text('{"0": [[0, 77]]}'), "dbpedia_subkg.json, head '0': tail 77 is not an entity id"),
        ("unicrs", lambda root: (root / "dbpedia_subkg.json").write_text('{"0": [[9, 1]]}'), "dbpedia_subkg.json, head '0': relation 9 is not an id of relation2id.json"),
        ("unicrs", lambda root: (root / "dbpedia_subkg.json").write_text('{"0": [[0, 1]'), "dbpedia_subkg.json is cut off"),
        ("unicrs", lambda root: (root / "entity2id.json").write_text('["a"]'), "entity2id.json: must map entities to integer ids"),
        ("unicrs", lambda root: (root / "test_data_dbpedia.jsonl").unlink(), "no test dialogues (test_data_dbpedia.jsonl)"),
        ("unicrs", lambda root: write_jsonl(root / "valid_data_dbpedia.jsonl", [[unicrs_turn("SEEKER", "hi")], [unicrs_turn("Critic", "meh")]]),
         "valid_data_dbpedia.jsonl, line 2, turn 1: unknown role 'Critic'"),
        ("unicrs", lambda root: write_jsonl(root / "train_data_dbpedia.jsonl", [{**UNICRS_REDIAL_CONVERSATION, "respondentWorkerId": None}]),
         "train_data_dbpedia.jsonl, line 1: a conversation with \"messages\" needs \"respondentWorkerId\""),
        ("crslab", lambda root: (root / "valid_data.json").write_text(json.dumps([{"conv_id": 1, "dialog": [crslab_turn(None, "hi")]}])),
         "valid_data.json, record 1, turn 1: the turn has no \"role\""),
    ],
)
def test_layout_bad_input_is_one_line(tmp_path, capsys, layout, change, message):
    source = (make_unicrs_folder if layout == "unicrs" else make_crslab_folder)(tmp_path / "source")
    change(source)
    code, out, err = convert(capsys, layout, source, tmp_path / "out")
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"error: {source}") and message in err, err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------
# The check: placeholders that are not items, URIs where item ids belong
# ------------------------------------------------------------------------------------------------
def test_check_warns_about_at_tokens_that_are_not_items(tmp_path, capsys):
    train = [conversation("a", ("seeker", "hi"), ("recommender", "Read @b1 .", ["b1"])),
             conversation("b", ("seeker", "hi"), ("recommender", "Read @m8612s or @b9 .", ["b2"]))]
    folder = make_crs_dataset(tmp_path / "books", conversations={"train": train, "validation": train, "test": train})
    code = crs_format.main([str(folder), "--cache-dir", str(tmp_path / "cache")])
    captured = capsys.readouterr()
    assert code == 0
    assert json.loads(captured.out)["train"]["unknown_movie_ids"] == 2
    warnings = captured.err.splitlines()
    assert len(warnings) == 6  # two a split
    assert re.fullmatch(rf"warning: {re.escape(str(folder / 'train.jsonl'))}, line 2, turn 2: '@m8612s' is written like an item placeholder "
                        r"but 'm8612s' is not an item id of items\.jsonl .*", warnings[0])
    assert "'@b9'" in warnings[1]


def test_check_says_a_uri_is_an_items_entity(tmp_path):
    train = [conversation("x", ("seeker", "hi"), ("recommender", "read it", ["Dune"]))]
    folder = make_crs_dataset(tmp_path / "books", conversations={"train": train, "validation": train, "test": train})
    with pytest.raises(CRSFormatError, match=r"train\.jsonl, line 1, turn 2: item 'Dune' is the \"entity\" of item 'b1' in items\.jsonl; "):
        load(folder, tmp_path)


# ------------------------------------------------------------------------------------------------
# The converter report; splits without conversations
# ------------------------------------------------------------------------------------------------
def test_report_counts_the_placeholders_not_written_with_an_example_line(tmp_path, capsys):
    items = tmp_path / "items.jsonl"
    write_jsonl(items, [{"id": "7", "name": "Tell (2007)", "entity": dbr("Tell_(2007_film)")}, {"id": "8", "name": "Heat (1995)"}])
    turn = lambda role, text, *movies: {"role": role, "text": text, "movie_link": [dbr(m) for m in movies], "movie_name": ["Tell"] * len(movies)}
    source = tmp_path / "train_data_dbpedia.jsonl"
    write_jsonl(source, [[turn("SEEKER", "Tell me about it!", "Tell_(2007_film)"), turn("RECOMMENDER", "I loved Tell (2007) , you ?", "Tell_(2007_film)")],
                         [turn("SEEKER", "tell me a crime film"), turn("RECOMMENDER", "Try Heat .", "Tell_(2007_film)")]])
    code, _, err = convert(capsys, "turn-list", source, tmp_path / "train.jsonl", "--items", items, "--names-key", "movie_name", "--placeholders")
    assert code == 0, err
    first, second = jsonl(tmp_path / "train.jsonl")
    assert [turn["text"] for turn in first["turns"]] == ["Tell me about it!", "I loved @7 , you ?"]
    assert first["turns"][0]["items"] == ["7"]  # not written, still the turn's item
    report = json.loads((tmp_path / "train.report.json").read_text())
    placeholders = report["placeholders"]
    assert (placeholders["linked item mentions"], placeholders["written"], placeholders["not written"]) == (3, 1, 2)
    common = placeholders["reasons"]["a common word used as a word"]
    assert common["count"] == 1 and common["examples"] == [{"where": f"{source}, line 1, turn 1", "item": "7", "name": "Tell", "text": "Tell me about it!"}]
    assert placeholders["reasons"]["the text does not write the name"]["examples"][0]["text"] == "Try Heat ."
    summary = [line for line in err.splitlines() if line.startswith("placeholders: ")]
    assert len(summary) == 1 and "1 a common word used as a word" in summary[0] and str(tmp_path / "train.report.json") in summary[0]


def test_a_split_without_conversations_is_warned_about(tmp_path, capsys):
    source = make_unicrs_folder(tmp_path / "inspired", dialogues={**UNICRS_DIALOGUES, "test": []})
    code, _, err = convert(capsys, "unicrs", source, tmp_path / "out", "--word-graph", "none")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: {source / 'test_data_dbpedia.jsonl'}: the test split has 0 conversations; {tmp_path / 'out' / 'test.jsonl'} "
                        "is written empty and the check (python -m datasets_scripts.crs_format) will refuse it: give it at least one conversation"]
    assert json.loads((tmp_path / "out" / "conversion_report.json").read_text())["warnings"] == [warnings[0]]
    code = crs_format.main([str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 1 and err == f"error: {tmp_path / 'out' / 'test.jsonl'}: the test file is empty: no conversation; write one conversation a line, " \
                                '{"turns": [...]} (docs/CRS_FORMAT.md)\n'

    (tmp_path / "empty.jsonl").write_text("\n")
    code, out, err = convert(capsys, "turn-list", tmp_path / "empty.jsonl", tmp_path / "converted.jsonl")
    assert code == 0 and err.startswith(f"warning: {tmp_path / 'empty.jsonl'}: the file has 0 conversations") and err.count("\n") == 1
