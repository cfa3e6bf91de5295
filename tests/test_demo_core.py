"""The web demo's plain-Python core (``DemoCore`` / ``DemoSession``), its HTML rendering, the
``kgsf demo`` command's errors and the load benchmark's logic, on tiny saved folders (no browser)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from demo_helpers import crs_folder, tiny_folder

from modeling_kgsf.demo_kgsf import (
    MAX_MESSAGE_CHARS, DemoCore, DemoSession, DemoSettings, chat_messages, inspect_html, path_svg, recommendations_html,
)
from modeling_kgsf.pipeline_kgsf import ConversationError

REPO = Path(__file__).resolve().parents[1]
TITLES = {"Paranormal Activity (2007)", "Toy Story (1995)", "Frozen (2013)", "Obscure Film (2001)", "Inception (2010)"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_folder(tmp_path_factory.mktemp("demo_core"))


@pytest.fixture(scope="module")
def core(folder, tmp_path_factory):
    return DemoCore.from_pretrained(folder, ratings_file=tmp_path_factory.mktemp("ratings") / "ratings.jsonl")


def test_settings_map_to_generate_arguments_and_are_checked():
    assert DemoSettings().generate_kwargs() == {}
    assert DemoSettings.from_dict({"decoding": "greedy"}).generate_kwargs() == {"num_beams": 1, "do_sample": False}
    assert DemoSettings.from_dict({"decoding": "beam", "num_beams": 3}).generate_kwargs() == {"num_beams": 3, "do_sample": False}
    assert DemoSettings.from_dict({"decoding": "sampling"}).generate_kwargs()["do_sample"] is True
    assert DemoSettings.from_dict({"decoding": "paper"}).generate_kwargs()["item_slots"] is False
    clipped = DemoSettings.from_dict({"k": 1000, "proximity_weight": float("nan"), "num_beams": 99, "unknown": 1})
    assert (clipped.k, clipped.num_beams, clipped.proximity_weight) == (20, 8, DemoSettings().proximity_weight)
    with pytest.raises(ValueError, match="decoding must be one of"):
        DemoSettings.from_dict({"decoding": "telepathy"})


def test_send_links_rejections_slots_and_recommendations(core):
    session = DemoSession()
    record = core.send(session, "I loved Paranormal Activity, anything scary with Tom Hanks? I hate Frozen")
    assert [t["role"] for t in session.turns] == ["seeker", "recommender"] and session.turns[1]["text"] == record["reply"]
    links = {link["span"]: link for link in record["inspect"]["links"]}
    assert links["Paranormal Activity"]["node"] == "Paranormal Activity (2007)" and links["Paranormal Activity"]["type"] == "film"
    assert links["Tom Hanks"]["uri"].endswith("Tom_Hanks") and links["Tom Hanks"]["entity_id"] not in core.crs.item_index_of_entity
    assert [r["node"] for r in record["inspect"]["rejected"]] == ["Frozen (2013)"]
    titles = [r["title"] for r in record["recommendations"]]
    assert titles and set(titles) <= TITLES and "Paranormal Activity (2007)" not in titles and "Frozen (2013)" not in titles
    assert [r["rank"] for r in record["recommendations"]] == list(range(1, len(titles) + 1))
    # the item slot: every item token of the reply, at its position, named by the recommendations
    item_positions = [i for i, token in enumerate(record["reply_tokens"]) if token.startswith("@")]
    assert [slot["position"] for slot in record["inspect"]["item_slots"]] == item_positions
    assert {slot["item"] for slot in record["inspect"]["item_slots"]} == {item["title"] for item in record["items"]}
    assert record["inspect"]["decoding"]["name"] == "default" and record["inspect"]["decoding"]["item_slots"] is True
    # negation off: the rejected film may come back, nothing reported as rejected
    off = core.send(DemoSession(), "I hate Frozen", {"negation": False})
    assert off["inspect"]["rejected"] == [] and off["settings"]["negation"] is False


def test_node_types_come_from_the_relations_to_items(core, monkeypatch):
    """The fake graph's relations have no names: name the ones joining Tom Hanks to films "starring"."""
    finder = core.crs.path_finder
    hanks = next(link["entity_id"] for link in core.links("with Tom Hanks")["links"])
    start, end = finder.indptr[hanks], finder.indptr[hanks + 1]
    to_items = {int(t) for t, n in zip(finder.types[start:end], finder.neighbors[start:end]) if int(n) in core.crs.item_index_of_entity}
    assert to_items
    monkeypatch.setattr(finder, "relation_names", ["starring" if i in to_items else None for i in range(len(finder.relation_names))])
    monkeypatch.setattr(core, "_node_types", {})
    assert core.node_type(hanks) == "actor"
    assert core.node_type(core.crs.model.kgsf.item_entity_ids[0].item()) == "film"


def test_sessions_are_isolated_and_bad_input_is_handled(core):
    first, second = DemoSession(), DemoSession()
    core.send(first, "first session likes Paranormal Activity")
    core.send(second, "second session likes Inception")
    core.send(first, "more please")
    assert [t["text"] for t in first.turns if t["role"] == "seeker"] == ["first session likes Paranormal Activity", "more please"]
    assert [t["text"] for t in second.turns if t["role"] == "seeker"] == ["second session likes Inception"]
    for text in ("", "   ", None):
        with pytest.raises(ConversationError, match="empty message"):
            core.send(second, text)
    assert len(second.turns) == 2  # unchanged
    long = core.send(second, "Inception " * 2000)
    assert long["inspect"]["truncated"] and len(second.turns[-2]["text"]) <= MAX_MESSAGE_CHARS
    odd = core.send(second, "<script>alert(1)</script> @123456789 😀 映画 фильм")
    assert odd["inspect"]["unknown_item_ids"] == ["@123456789"] and odd["seeker"].startswith("<script>")


def test_sampling_with_a_seed_is_reproducible(core):
    replies = [core.send(DemoSession(), "anything scary?", {"decoding": "sampling", "seed": 7})["reply"] for _ in range(2)]
    assert replies[0] == replies[1]
    record = core.send(DemoSession(), "anything scary?", {"decoding": "beam", "num_beams": 3})
    assert record["inspect"]["decoding"]["num_beams"] == 3 and record["inspect"]["decoding"]["name"] == "beam"


def test_export_import_and_ratings(core):
    session = DemoSession()
    core.send(session, "I loved Paranormal Activity", {"decoding": "greedy", "k": 3})
    core.send(session, "something else")
    exported = json.loads(json.dumps(core.export(session)))
    assert exported["format"] == "kgsf-demo-conversation" and len(exported["replies"]) == 2
    assert exported["settings"]["decoding"] == "greedy" and len(exported["replies"][0]["recommendations"]) == 3
    restored = core.load(json.dumps(exported))
    assert restored.turns == session.turns and restored.session_id != session.session_id and restored.settings.k == 3
    core.send(restored, "and one more")
    assert len(restored.turns) == 6 and len(session.turns) == 4
    for bad, reason in (("{", "not JSON"), ('{"format": "other"}', "not a conversation"),
                        (json.dumps({**exported, "turns": [{"role": "alien", "text": "x"}]}), "unknown role")):
        with pytest.raises(ValueError, match=reason):
            core.load(bad)

    row = core.rate(session, 1, False, "  the second reply loops  ")
    core.rate(session, 0, True)
    rows = [json.loads(line) for line in core.ratings_file.read_text().splitlines()]
    assert [(r["reply_index"], r["rating"], r["comment"]) for r in rows[-2:]] == [(1, "down", "the second reply loops"), (0, "up", "")]
    assert row["context"] == session.turns[:3] and row["reply"] == session.turns[3]["text"]
    with pytest.raises(ValueError, match="no reply 3"):
        core.rate(session, 2, True)
    with pytest.raises(ValueError, match="no reply to rate"):
        core.rate(DemoSession(), 0, True)


def test_everything_shown_is_escaped(core):
    session = DemoSession()
    core.send(session, "<script>alert(1)</script>")
    messages = chat_messages(session)
    assert messages[0] == {"role": "user", "content": "&lt;script&gt;alert(1)&lt;/script&gt;"}
    assert "<script>" not in inspect_html(session) and "&lt;script&gt;" in inspect_html(session)
    record = {"recommendations": [{"rank": 1, "title": "<img src=x onerror=alert(1)>", "score": 0.5,
                                   "path": {"names": ["<b>A</b>", "B"], "relations": ["<i>r</i>"]}}],
              "explanation": {"words": [{"word": "<u>w</u>", "weight": 1.0}], "entities": []}}
    shown = recommendations_html(record)
    assert "<img" not in shown and "<b>" not in shown and "<i>" not in shown and "<u>" not in shown and "&lt;img" in shown
    assert "no path" in path_svg(None) and path_svg({"names": ["A", "B"], "relations": [None]}).count("<rect") == 2


def test_a_folder_of_another_dataset_uses_its_own_names(tmp_path):
    core = DemoCore.from_pretrained(crs_folder(tmp_path))
    record = core.send(DemoSession(), "I want a novel by Jane Austen like @b3")
    assert {link["node"] for link in record["inspect"]["links"]} >= {"Jane Austen", "Emma (1815)"}
    assert {r["title"] for r in record["recommendations"]} <= {"Dune (1965)", "Foundation (1951)", "Persuasion (1817)"}


def test_cli_demo_errors(tmp_path, capsys):
    from kgsf_cli.main import main

    assert main(["demo", str(tmp_path / "missing")]) == 1
    assert "model folder not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", str(tmp_path), "--port", "0"])
    assert exit_info.value.code == 2


def test_load_benchmark_on_the_tiny_model(folder, tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_demo_load
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    output = tmp_path / "load.json"
    assert bench_demo_load.main([str(folder), "--sessions", "3", "--think", "0", "0.05", "--timeout", "240", "--output", str(output)]) == 0
    result = json.loads(output.read_text())
    assert result["sessions"] == 3 and result["requests"] == 3 * len(result["inputs"]) == 18
    assert result["cross_session_leaks"] == 0 and result["errors"] == 0, result
    assert 0 < result["p50_seconds"] <= result["p95_seconds"] <= result["max_seconds"]
    assert set(result["p95_seconds_by_input"]) == {"normal", "empty", "10k_chars", "html", "unknown_item", "emoji_mixed_scripts"}
    for key in ("model", "machine", "date", "command"):
        assert result[key]
