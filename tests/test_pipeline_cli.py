"""The pipeline and the ``kgsf`` CLI, driven as a user would: a tiny model folder saved by the
stages' own ``make_save_model`` over the fake data directory, then subprocesses with stdin."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from demo_helpers import TINY, tiny_folder

REPO = Path(__file__).resolve().parents[1]


def kgsf_command() -> list[str]:
    """The installed console script (``pip install -e .``), else the module it runs."""
    script = Path(sys.executable).parent / "kgsf"
    return [str(script)] if script.exists() else [sys.executable, "-m", "kgsf_cli"]


def kgsf(*args, stdin: str | None = None, check: bool = True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run([*kgsf_command(), *map(str, args)], input=stdin, capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    if check:
        assert result.returncode == 0, f"kgsf {args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny KGSF folder written by ``training_kgsf.building.make_save_model`` (weights, vocab, kg_resources.json)."""
    return tiny_folder(tmp_path_factory.mktemp("pipeline_cli"))


def test_folder_holds_kg_resources(folder):
    resources = json.loads((folder / "kg_resources.json").read_text())
    assert resources["format"] == "kgsf-kg-resources"
    assert resources["movies"]["111"] == [0, "Paranormal Activity (2007)", 5]
    assert len(resources["relation_names"]) == resources["n_relation"] > 0
    assert "horror" in resources["concept_vocab"] and "the" in resources["stopwords"]


def test_api_recommend_and_respond(folder):
    from modeling_kgsf import ConversationalRecommender

    crs = ConversationalRecommender.from_pretrained(folder)
    row = crs.context_row(["I like paranormal activity (2007) and Tom Hanks", "What about @222 ?", "scary horror movies"])
    assert row["context_entities"][:3] == [0, 2, 1]  # title (lower case, with year), actor, @movieId
    assert row["context_items"] == [0, 1]
    turns = [{"role": "user", "text": "I like Paranormal Activity with Tom Hanks"}, {"role": "assistant", "text": "Have you seen @222 ?"}]
    recommendations = crs.recommend(turns, k=10)
    assert {r.entity_id for r in recommendations}.isdisjoint({0, 1})  # mentioned items left out by default
    assert len(recommendations) == 2 and [r.rank for r in recommendations] == [1, 2]
    assert all(0 < r.score < 1 and r.title and r.explanation for r in recommendations)
    kept = crs.recommend(turns, k=10, exclude_mentioned=False)
    assert len(kept) == 4 and abs(sum(r.score for r in kept) - 1) < 1e-5  # softmax over all items
    explanation = recommendations[0].explanation
    assert {e.name for e in explanation.entities} == {"Paranormal Activity (2007)", "Tom Hanks", "Toy Story (1995)"}
    assert explanation.entities[0].weight >= explanation.entities[-1].weight
    reply = crs.respond(turns, max_new_tokens=5)
    assert isinstance(reply, str)


def test_respond_with_items_names_the_top_recommendations_with_explanations(folder):
    """With item slots the reply's items are recommend()'s ranking, in order, each with its explanation;
    the text shows them as titles. The decoder is pushed towards items so that the reply names some."""
    import torch

    from modeling_kgsf import ConversationalRecommender
    from modeling_kgsf.generation_kgsf import PAPER_DECODING

    crs = ConversationalRecommender.from_pretrained(folder)
    assert crs.model.kgsf.item_tokens_known()  # make_save_model's folder: the map is in the weights or rebuilt at load
    turns = ["I like Paranormal Activity with Tom Hanks", "Have you seen @222 ?", "yes, scary ones"]
    with torch.no_grad():
        crs.model.copy_head.vocab_projection.bias.add_(crs.model.kgsf.item_token_vocab_mask.float() * 50.0)
    reply = crs.respond_with_items(turns, max_new_tokens=6)
    ranked = crs.recommend(turns, k=10)
    assert [item.entity_id for item in reply.items] == [r.entity_id for r in ranked][: len(reply.items)] and reply.items
    assert all(item.explanation is not None and item.title in reply.text for item in reply.items)
    assert reply.text == crs.respond(turns, max_new_tokens=6) and "@" not in reply.text
    assert crs.respond_tokens(turns, max_new_tokens=6) == reply.tokens
    paper = crs.respond_with_items(turns, max_new_tokens=6, **PAPER_DECODING)  # copy only: the item tokens' own argmax
    assert all(item.rank >= 1 and item.explanation is not None for item in paper.items)
    assert len({item.entity_id for item in reply.items}) == len(reply.items)


def test_path_finder_prefers_specific_relations_and_avoids_hubs():
    """A tiny graph: film A and film B share a distributor (a hub with many films) and a director; B is
    also one hop from A through an unnamed relation. The explanation takes the director."""
    import torch

    from modeling_kgsf.pipeline_kgsf import _PathFinder

    names = ["self_loop", "distributor", "director", None, "starring"]
    A, B, HUB, DIRECTOR, ACTOR, C = 0, 1, 2, 3, 4, 5
    films = list(range(6, 30))
    triples = [(A, 1, HUB), (B, 1, HUB), (A, 2, DIRECTOR), (B, 2, DIRECTOR), (A, 3, C), (C, 3, B), (ACTOR, 4, B)]
    triples += [(film, 1, HUB) for film in films]
    source = [h for h, _, t in triples] + [t for h, _, t in triples] + list(range(30))
    target = [t for h, _, t in triples] + [h for h, _, t in triples] + list(range(30))
    types = [r for _, r, _ in triples] * 2 + [0] * 30
    finder = _PathFinder(torch.tensor([source, target]), torch.tensor(types), names, 30)
    nodes, relations = finder.paths([A], [B], max_hops=2)[B]
    assert nodes == [A, DIRECTOR, B] and [names[r] for r in relations] == ["director", "director"]
    # a direct specific relation beats any two-hop path; earlier sources win ties
    assert finder.paths([A, ACTOR], [B], max_hops=2)[B] == ([ACTOR, B], [4])
    # without the director, the unnamed detour through the low-degree node C beats the hub
    no_director = [i for i, (s, t) in enumerate(zip(source, target)) if DIRECTOR not in (s, t)]
    finder = _PathFinder(torch.tensor([source, target])[:, no_director], torch.tensor(types)[no_director], names, 30)
    assert finder.paths([A], [B], max_hops=2)[B][0] == [A, C, B]
    assert finder.paths([A], [B], max_hops=1) == {} and finder.paths([B], [B], max_hops=2)[B] == ([B], [])
    assert finder.paths([A], [films[0]], max_hops=2)[films[0]][0] == [A, HUB, films[0]]  # the hub when nothing else joins them
    assert finder.paths([A], [films[0]], max_hops=3)[films[0]][0] == [A, HUB, films[0]]


def test_paths_use_the_graph_and_relation_names(folder, tmp_path):
    from modeling_kgsf.pipeline_kgsf import ConversationalRecommender

    named = tmp_path / "named"
    named.mkdir()
    for item in folder.iterdir():
        (named / item.name).symlink_to(item)
    resources = json.loads((folder / "kg_resources.json").read_text())
    resources["relation_names"] = [f"rel{index}" for index in range(resources["n_relation"])]
    (named / "kg_resources.json").unlink()
    (named / "kg_resources.json").write_text(json.dumps(resources))
    crs = ConversationalRecommender.from_pretrained(named)
    # Tom Hanks (2) -> Toy Story (1): a triple of the fake graph; Frozen (4) shares a genre (3) with Toy Story
    paths = crs.path_finder.paths([2], [1, 4, 6], max_hops=3)
    assert paths[1][0] == [2, 1] and paths[4][0] == [2, 1, 3, 4] and 6 not in paths
    recommendations = crs.recommend(["Tom Hanks"], k=4, max_hops=3)
    by_entity = {r.entity_id: r.explanation.path for r in recommendations}
    assert by_entity[1].names == ["Tom Hanks", "Toy Story (1995)"] and by_entity[1].relations[0].startswith("rel")
    assert by_entity[6] is None  # the unlinked movie has no edge
    assert crs.recommend(["Tom Hanks"], k=4, max_hops=1)[0].explanation is not None


def test_cli_recommend_json(folder):
    result = kgsf("recommend", folder, "I like Paranormal Activity with Tom Hanks", "Have you seen @222 ?", "yes, scary ones", "--json", "--reply")
    output = json.loads(result.stdout)
    recommendations = output["recommendations"]
    assert [r["rank"] for r in recommendations] == [1, 2] and output["excluded_mentioned"] is True
    first = recommendations[0]
    assert {"title", "movie_id", "entity_id", "score", "logit", "explanation"} <= set(first)
    assert first["title"] in {"Frozen (2013)", "Obscure Film (2001)"} and first["movie_id"] in {"444", "333"}
    assert first["explanation"]["entities"] and first["explanation"]["words"]
    assert "path" in first["explanation"]
    assert {e["name"] for e in output["context"]["entities"]} >= {"Paranormal Activity (2007)", "Tom Hanks", "Toy Story (1995)"}
    assert isinstance(output["reply"], str) and "@" not in output["reply"]  # @movieId rendered as titles
    assert isinstance(output["reply_items"], list)
    assert all(item["explanation"] is not None and item["title"] in output["reply"] for item in output["reply_items"])
    paper = json.loads(kgsf("recommend", folder, "I like Paranormal Activity", "--json", "--reply", "--decoding", "paper").stdout)
    assert isinstance(paper["reply"], str)


def test_cli_chat_on_stdin(folder):
    result = kgsf("chat", folder, "-k", "2", "--max-new-tokens", "4", stdin="I like Paranormal Activity\n\nTom Hanks too\n/reset\nhorror\n/quit\n")
    out = result.stdout
    assert out.count("recommendations (") == 3 and out.count("kgsf> ") == 3
    assert "why words:" in out and "entities: Paranormal Activity (2007)" in out
    assert "(empty message" in out and "(new conversation)" in out


def test_cli_errors(folder, tmp_path):
    empty = kgsf("recommend", folder, "", "  ", check=False)
    assert empty.returncode == 1 and "empty conversation" in empty.stderr
    missing = kgsf("recommend", tmp_path / "nowhere", "hi", check=False)
    assert missing.returncode == 1 and "model folder not found" in missing.stderr
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    other = kgsf("recommend", tmp_path / "other", "hi", check=False)
    assert other.returncode == 1 and "is not a KGSF model folder" in other.stderr and "'bert'" in other.stderr
    old = tmp_path / "old"
    old.mkdir()
    for item in folder.iterdir():
        if item.name != "kg_resources.json":
            (old / item.name).symlink_to(item)
    lacking = kgsf("chat", old, stdin="hi\n", check=False)
    assert lacking.returncode == 1 and "python -m datasets_scripts.kg_resources --data-dir" in lacking.stderr
    usage = kgsf("recommend", check=False)
    assert usage.returncode == 2 and "folder" in usage.stderr


def test_kg_resources_command_upgrades_an_old_folder(folder, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    for item in folder.iterdir():
        if item.name != "kg_resources.json":
            (old / item.name).symlink_to(item)
    data_dir = folder.parent / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cache = folder.parent / "cache"
    # the fake data's reference-filtered graph (0 relations) does not match the tiny model: refused
    refused = subprocess.run([sys.executable, "-m", "datasets_scripts.kg_resources", "--data-dir", str(data_dir), "--cache-dir", str(cache), str(old)],
                             capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert refused.returncode == 1 and "does not match" in refused.stderr and not (old / "kg_resources.json").exists()
    config = json.loads((old / "config.json").read_text())
    (old / "config.json").unlink()
    (old / "config.json").write_text(json.dumps({**config, "n_relation": 0}))
    written = subprocess.run([sys.executable, "-m", "datasets_scripts.kg_resources", "--data-dir", str(data_dir), "--cache-dir", str(cache), str(old)],
                             capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert written.returncode == 0, written.stderr
    assert json.loads((old / "kg_resources.json").read_text())["movies"] == json.loads((folder / "kg_resources.json").read_text())["movies"]
    assert "item_cues.json" not in written.stdout
    (old / "item_cues.json").unlink()
    cued = subprocess.run([sys.executable, "-m", "datasets_scripts.kg_resources", "--data-dir", str(data_dir), "--cache-dir", str(cache),
                           "--item-cues", "release", str(old)], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert cued.returncode == 0 and "item_cues.json" in cued.stdout, cued.stderr
    # the same counts as the training stage wrote from the same train split
    assert json.loads((old / "item_cues.json").read_text()) == json.loads((folder / "item_cues.json").read_text())


def test_cli_on_a_model_of_a_generic_dataset(tmp_path):
    """A folder trained on a dataset in the generic CRS format links its own entity names and items."""
    from fake_crs import make_crs_dataset

    from training_kgsf.building import ModelArguments, build_model, make_save_model
    from training_kgsf.data import DataArguments, KGSFData
    from training_kgsf.trainer import TrainingArguments
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    data = KGSFData(DataArguments(dataset_dir=str(make_crs_dataset(tmp_path / "books")), cache_dir=str(tmp_path / "cache")))
    model = build_model(data, ModelArguments(model_config=str(tmp_path / "tiny.json")))
    out = tmp_path / "model"
    make_save_model(data, "conversation", TrainingArguments(output_dir=str(tmp_path / "run")))(model, out, {"note": "untrained"})
    output = json.loads(kgsf("recommend", out, "I want a novel by Jane Austen like @b3", "--json").stdout)
    assert {e["name"] for e in output["context"]["entities"]} >= {"Jane Austen", "Emma (1815)"}
    titles = [r["title"] for r in output["recommendations"]]
    assert titles and set(titles) <= {"Dune (1965)", "Foundation (1951)", "Persuasion (1817)"}  # the mentioned item is excluded
    assert "tiny-books" in (out / "README.md").read_text()


def test_cli_replies_decode_as_the_folder_says():
    """``kgsf recommend --reply`` / ``kgsf chat`` leave the beam width to the folder's generation_config
    unless --num-beams is given (--decoding paper is greedy)."""
    import argparse

    from kgsf_cli.main import _add_common, _reply

    class Recorder:
        def respond_with_items(self, turns, **kwargs):
            return kwargs

    parser = argparse.ArgumentParser()
    _add_common(parser)
    assert "num_beams" not in _reply(Recorder(), ["hi"], parser.parse_args(["folder"]))
    assert _reply(Recorder(), ["hi"], parser.parse_args(["folder", "--num-beams", "8"]))["num_beams"] == 8
    assert _reply(Recorder(), ["hi"], parser.parse_args(["folder", "--decoding", "paper"]))["num_beams"] == 1
    assert _reply(Recorder(), ["hi"], parser.parse_args(["folder", "--no-audience"]))["audience"] is False
