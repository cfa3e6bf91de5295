"""Tests for datasets_scripts/recover_unicrs.py.

Most tests build a tiny data folder in tmp_path (a few UniCRS samples and tiny maps); the last
ones run on the real files in ../shared/data and are skipped when that folder is absent.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from datasets_scripts import recover_unicrs as R

REAL_DATA_DIR = Path(os.environ.get("KGSF_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))

URI = {name: f"<http://dbpedia.org/resource/{name}>" for name in ["Alpha", "Beta", "Gamma", "Person", "Zeta"]}

# Dialogue 1: the recommender speaks first (context starts with ""), three recommender turns.
D1_T1 = "Hi, what do you like?"
D1_T2 = "I like Alpha (2001) and Delta Force"
D1_T3_MASKED = "Try <movie> or <movie> !"
D1_T3 = "Try Beta Movie (2002) or Gamma Ray (2003) !"
D1_T4 = "Thanks, I saw Omega (2005)"
# Dialogue 2: the seeker speaks first; its last resp is filled from rec.
D2_T0 = "Hello there, I want a movie like Gamma Ray (2003) please"


def _samples():
    return [
        {"context": [""], "resp": D1_T1, "rec": [], "entity": []},
        {"context": ["", D1_T1, D1_T2], "resp": D1_T3_MASKED, "rec": [1, 2], "entity": [0]},
        {"context": ["", D1_T1, D1_T2, D1_T3, D1_T4], "resp": "Then <movie>", "rec": [0], "entity": [0, 1, 2, 3]},
        {"context": [D2_T0], "resp": "Sure: <movie>", "rec": [1], "entity": [2]},
    ]


def _write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _conversation(cid, texts, mentions):
    """A raw ReDial conversation alternating seeker (1) and recommender (2)."""
    return {
        "movieMentions": mentions,
        "respondentQuestions": {},
        "messages": [
            {"timeOffset": i, "text": t, "senderWorkerId": 1 + i % 2, "messageId": i} for i, t in enumerate(texts)
        ],
        "conversationId": cid,
        "respondentWorkerId": 2,
        "initiatorWorkerId": 1,
        "initiatorQuestions": {},
    }


@pytest.fixture
def tiny(tmp_path):
    """A data folder with the layout of ../shared/data, plus a converted-pickles folder."""
    data = tmp_path / "data"
    _write_jsonl(data / R.UNICRS_VALID_SAMPLES, _samples())
    entity2id = {URI["Alpha"]: 0, URI["Beta"]: 1, URI["Gamma"]: 2, URI["Person"]: 3}
    (data / R.UNICRS_ENTITY2ID).parent.mkdir(parents=True)
    (data / R.UNICRS_ENTITY2ID).write_text(json.dumps(entity2id), encoding="utf-8")
    csv_path = data / R.REDIAL_MOVIES_CSV
    csv_path.parent.mkdir(parents=True)
    csv_path.write_text(
        "movieId,movieName,nbMentions\n"
        "111,Alpha  (2001),3\n"
        "222,Beta Movie (2002),2\n"
        "333,Gamma Ray (2003),2\n"
        "444,Delta Force,1\n"
        "555,Omega (2005),1\n"
        "666,Solo,1\n",
        encoding="utf-8",
    )
    converted = tmp_path / "converted"
    converted.mkdir()
    id2entity = {"111": URI["Alpha"], "222": URI["Beta"], "333": URI["Gamma"], "444": None, "555": URI["Zeta"], "666": None}
    (converted / "id2entity.json").write_text(json.dumps(id2entity), encoding="utf-8")
    entity2entity = {uri: i for i, uri in enumerate(URI.values())}
    (converted / "entity2entityId.json").write_text(json.dumps(entity2entity), encoding="utf-8")
    # excluded splits: "other" shares D2's long first turn, "greetings" only a short greeting
    other = _conversation("9", ["Hello there,  I want a movie like @333 please", "ok"], {"333": "Gamma Ray (2003)"})
    _write_jsonl(data / "other.jsonl", [other])
    _write_jsonl(data / "greetings.jsonl", [_conversation("8", ["hey", D1_T1], {})])
    for relative in R.DEFAULT_EXCLUDE_FILES.values():  # the default excluded splits: no overlap
        _write_jsonl(data / relative, [_conversation("7", ["hey", D1_T1], {})])
    return data, converted


def _messages(conversation):
    return [(m["senderWorkerId"] == conversation["respondentWorkerId"], m["text"]) for m in conversation["messages"]]


# ------------------------------------------------------------------------------------------
def test_group_dialogues_starts_where_context_restarts():
    groups = R.group_dialogues(_samples())
    assert [len(g) for g in groups] == [3, 1]
    # a context that does not extend the previous one by exactly two turns starts a dialogue
    changed = [{"context": ["", D1_T1, "another seeker turn", "a", "b"], "resp": "x", "rec": []}]
    assert [len(g) for g in R.group_dialogues(_samples()[:2] + changed)] == [2, 1]
    longer = [{"context": ["", D1_T1, D1_T2, "a", "b", "c"], "resp": "x", "rec": []}]
    assert [len(g) for g in R.group_dialogues(_samples()[:2] + longer)] == [2, 1]


def test_align_placeholders_handles_literals_inside_titles():
    assert R.align_placeholders(D1_T3_MASKED, D1_T3) == ["Beta Movie (2002)", "Gamma Ray (2003)"]
    assert R.align_placeholders("no movie", "no movie") == []
    assert R.align_placeholders("Try <movie>", "Do Alpha") is None
    # " and " also occurs inside the first title: the split whose titles are known wins
    known = {"Fast and Furious (2009)", "Up (2009)"}
    titles = R.align_placeholders("<movie> and <movie>", "Fast and Furious (2009) and Up (2009)", known.__contains__)
    assert titles == ["Fast and Furious (2009)", "Up (2009)"]


def test_recovered_turns_speakers_and_mentions(tiny):
    data, converted = tiny
    conversations, stats = R.recover_conversations(data, converted, exclude_files={})
    assert stats["samples_read"] == 4 and stats["dialogues_found"] == 2
    assert [c["conversationId"] for c in conversations] == ["unicrs-0", "unicrs-1"]
    first, second = conversations
    # the "" placeholder is dropped: dialogue 1 opens with the recommender
    assert _messages(first) == [
        (True, D1_T1),
        (False, "I like @111 and @444"),  # dated csv title, undated title known from nothing but 2 words
        (True, "Try @222 or @333 !"),  # placeholders filled from the titled copy in the next context
        (False, "Thanks, I saw @555"),
        (True, "Then @111"),  # last resp: filled from rec
    ]
    assert first["movieMentions"] == {
        "111": "Alpha  (2001)",
        "444": "Delta Force",
        "222": "Beta Movie (2002)",
        "333": "Gamma Ray (2003)",
        "555": "Omega (2005)",
    }
    assert _messages(second) == [(False, "Hello there, I want a movie like @333 please"), (True, "Sure: @222")]
    assert set(first) == {
        "movieMentions", "respondentQuestions", "messages", "conversationId",
        "respondentWorkerId", "initiatorWorkerId", "initiatorQuestions",
    }
    assert set(first["messages"][0]) == {"timeOffset", "text", "senderWorkerId", "messageId"}
    assert first["initiatorWorkerId"] != second["initiatorWorkerId"]
    assert stats["resp_placeholders"] == 4 and stats["resp_placeholders_mapped"] == 4
    assert stats["context_titles_mapped"] == 4
    assert stats["conversations_kept"] == 2


def test_last_resp_without_mappable_rec_is_dropped(tiny):
    data, converted = tiny
    samples = _samples()
    samples[3]["rec"] = []  # one placeholder, no rec id: cannot be filled
    _write_jsonl(data / R.UNICRS_VALID_SAMPLES, samples)
    conversations, stats = R.recover_conversations(data, converted, exclude_files={})
    assert _messages(conversations[1]) == [(False, "Hello there, I want a movie like @333 please")]
    assert stats["last_resp_dropped_unfillable"] == 1
    assert stats["resp_placeholders_unmapped"] == 1


def test_find_titles_prefers_dated_and_longest(tiny):
    data, converted = tiny
    maps = R.load_movie_maps(data, converted)
    text = "I saw The Gamma Ray (2003) and Solo and Delta Force"
    spans = R.find_titles(text, {}, maps)
    # "Solo" is one word and not known for the dialogue: left alone
    assert R._replace_spans(text, spans) == "I saw The @333 and Solo and @444"
    assert R._replace_spans(text, R.find_titles(text, {"Solo": "666"}, maps)) == "I saw The @333 and @666 and @444"


def test_overlap_rule_drops_only_real_overlap(tiny):
    data, converted = tiny
    conversations, stats = R.recover_conversations(
        data, converted, exclude_files={"other": "other.jsonl", "greetings": data / "greetings.jsonl"}
    )
    # dialogue 2 shares a 56-character turn with "other" (compared with @333 written as its title)
    assert [c["conversationId"] for c in conversations] == ["unicrs-0"]
    assert stats["dropped_overlap_other"] == 1
    assert stats.get("dropped_overlap_greetings", 0) == 0  # one short shared greeting is not overlap
    assert stats["dropped_overlap_total"] == 1 and stats["conversations_kept"] == 1


def test_normalise_utterance():
    assert R.normalise_utterance("  Hello   THERE &amp; you ") == "hello there & you"


def test_missing_file_errors_name_file_and_place(tiny, tmp_path):
    data, converted = tiny
    with pytest.raises(FileNotFoundError, match=r"valid_data_processed\.jsonl.*looked for it at"):
        R.recover_conversations(tmp_path / "nowhere", converted)
    (data / R.UNICRS_ENTITY2ID).unlink()
    with pytest.raises(FileNotFoundError, match=r"entity2id\.json.*" + str(data).replace("\\", "\\\\")):
        R.recover_conversations(data, converted, exclude_files={})
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        R.recover_conversations(data, converted, exclude_files=["missing.jsonl"])


def test_malformed_json_line_names_file_and_line(tiny):
    data, converted = tiny
    path = data / R.UNICRS_VALID_SAMPLES
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1][:-3]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"valid_data_processed\.jsonl, line 2: malformed JSON"):
        R.recover_conversations(data, converted, exclude_files={})


def test_cli_writes_jsonl_outside_repo_and_refuses_repo(tiny, tmp_path, capsys):
    data, converted = tiny
    out = tmp_path / "cache" / "unicrs.jsonl"
    R.main(["--data-dir", str(data), "--converted-dir", str(converted), "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["conversationId"] for r in rows] == ["unicrs-0", "unicrs-1"]
    assert '"conversations_kept": 2' in capsys.readouterr().out
    inside = Path(R.__file__).resolve().parents[1] / "recovered.jsonl"
    with pytest.raises(SystemExit):
        R.main(["--data-dir", str(data), "--converted-dir", str(converted), "--out", str(inside)])
    assert not inside.exists()


# ------------------------------------------------------------------------------------------
# Real files
# ------------------------------------------------------------------------------------------
needs_real_data = pytest.mark.skipif(
    not (REAL_DATA_DIR / R.UNICRS_VALID_SAMPLES).is_file(),
    reason=f"real data folder not found at {REAL_DATA_DIR} (set KGSF_DATA_DIR to ../shared/data)",
)


@pytest.fixture(scope="module")
def real_converted(tmp_path_factory):
    from datasets_scripts.convert_pickles import convert_kgsf_pickles

    out = tmp_path_factory.mktemp("converted")
    convert_kgsf_pickles(REAL_DATA_DIR / R.KGSF_PICKLE_DIR, out)
    return out


@needs_real_data
def test_real_recovery_counts(real_converted):
    conversations, stats = R.recover_conversations(REAL_DATA_DIR, real_converted)
    assert stats["samples_read"] == 6253
    assert stats["dialogues_found"] == 1000
    assert 700 <= stats["conversations_kept"] <= 950
    assert stats["dropped_overlap_validation"] >= 50  # CRSLab's and KGSF's valid cuts share dialogues
    assert stats["dropped_overlap_test"] <= 20
    assert stats["resp_placeholder_mapping_rate"] > 0.97
    assert len({c["conversationId"] for c in conversations}) == len(conversations)
    maps = R.load_movie_maps(REAL_DATA_DIR, real_converted)
    for conversation in conversations:
        for message in conversation["messages"]:
            assert R.PLACEHOLDER not in message["text"]
            for movie_id in R.MOVIE_TOKEN.findall(message["text"]):
                if movie_id in maps.movie_titles:
                    assert movie_id in conversation["movieMentions"]


@needs_real_data
def test_real_test_split_accuracy(real_converted):
    result = R.evaluate_on_test_split(REAL_DATA_DIR, real_converted)
    assert result["recovered_dialogues"] == result["real_conversations"] == 1342
    assert result["dialogues_exact"] >= 0.95 * 1342
    assert result["dialogues_mostly"] >= 0.99 * 1342
    assert result["mention_recall"] > 0.99 and result["mention_precision"] > 0.99
