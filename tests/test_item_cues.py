"""What the training conversations say about each item (``item_cues.json``): counted from the rows,
saved beside the weights, and used by the ranking for requests about children and rejections of
horror, inside the recommender's own pool only."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from datasets_scripts.kg_resources import count_item_cues
from modeling_kgsf.preferences_kgsf import ITEM_CUES_FILE, GraphProximity, ItemCues, adjust_scores, request_cues
from test_pipeline_cli import folder, kgsf  # noqa: F401  (the tiny model folder fixture, the CLI runner)

KID_FILM, HORROR_FILM, ADULT_FILM, PLAIN_FILM = range(4)


def _conversations():
    """100 conversations: 20 about kids (the kid film in 16 of them), 20 about horror (the horror
    film in 18), the adult film in 40 conversations of which none about kids, the plain film
    everywhere."""
    out = []
    for index in range(100):
        words, items = {"hello", "movie"}, {PLAIN_FILM}
        if index < 20:
            words.add("kids")
            if index < 16:
                items.add(KID_FILM)
        elif index < 40:
            words.add("scary")
            if index < 38:
                items.add(HORROR_FILM)
        if 40 <= index < 80:
            items.add(ADULT_FILM)
        out.append((words, items))
    return out


def test_counts_and_tests():
    cues = ItemCues.count(_conversations(), n_item=5)
    assert cues.conversations == 100 and cues.cue_conversations == {"children": 20, "horror": 20}
    assert cues.item_conversations.tolist() == [16, 18, 40, 100, 0]
    assert cues.item_cue_conversations["children"].tolist() == [16, 0, 0, 20, 0]
    assert cues.goes_with("children").tolist() == [True, False, False, False, False]
    assert cues.goes_with("horror").tolist() == [False, True, False, False, False]
    # never with kids in 40 conversations (8 expected): far below chance; in 18 (3.6 expected): P = .8^18 = .018, not below .01
    assert cues.avoids("children").tolist() == [False, False, True, False, False]
    lift = cues.lift("children")
    assert lift[KID_FILM] > 1 and lift[ADULT_FILM] < 0 and abs(lift[PLAIN_FILM]) < 1e-9 and lift[4] == 0
    assert not cues.goes_with("unknown cue").any() and not cues.avoids("unknown cue").any()


def test_ruled_out_and_bonus():
    cues = ItemCues.count(_conversations(), n_item=5)
    assert cues.ruled_out(set()).sum() == 0 and cues.bonus(set()) is None
    assert cues.ruled_out({"children"}).tolist() == [0, 1, 1, 0, 0]
    assert cues.ruled_out(set(), liked_items=[KID_FILM]).tolist() == [0, 1, 1, 0, 0]  # "something like <a kids' film>"
    assert cues.ruled_out(set(), liked_items=[PLAIN_FILM]).sum() == 0
    assert cues.ruled_out(set(), rejected_words={"horror"}).tolist() == [0, 1, 0, 0, 0]  # "I hate horror"
    bonus = cues.bonus({"children"})
    assert bonus.argmax().item() == KID_FILM and bonus[ADULT_FILM] < 0


def test_round_trip_and_item_count(tmp_path):
    cues = ItemCues.count(_conversations(), n_item=5)
    cues.save(tmp_path)
    again = ItemCues.load(tmp_path, n_item=5)
    assert again.conversations == 100 and np.array_equal(again.item_cue_conversations["horror"], cues.item_cue_conversations["horror"])
    assert json.loads((tmp_path / ITEM_CUES_FILE).read_text())["format"] == "kgsf-item-cues"
    assert ItemCues.load(tmp_path, n_item=6) is None and ItemCues.load(tmp_path / "missing") is None


def test_count_from_rows_joins_a_conversation():
    rows = [
        {"conversation_id": "a", "context_tokens": ["Hi"], "response_tokens": ["My", "Kids", "love", "@1"], "context_items": [], "target_items": [101]},
        {"conversation_id": "a", "context_tokens": ["Hi", "_split_", "ok"], "response_tokens": ["@2"], "context_items": [101], "target_items": [102]},
        {"conversation_id": "b", "context_tokens": ["a", "gory", "one"], "response_tokens": ["@2"], "context_items": [], "target_items": [102, 999]},
    ]
    cues = count_item_cues(rows, {101: 0, 102: 1}, n_item=2)
    assert cues.conversations == 2 and cues.item_conversations.tolist() == [1, 2]
    assert cues.item_cue_conversations["children"].tolist() == [1, 1] and cues.item_cue_conversations["horror"].tolist() == [0, 1]


def test_request_cues():
    class Words:
        @staticmethod
        def tokenize(text):
            return text.replace(",", " ").split()

    assert request_cues([("seeker", "Something for my Son, please")], Words) == {"children"}
    assert request_cues([("recommender", "Do your kids like it?"), ("seeker", "sure")], Words) == set()
    assert request_cues([("seeker", "nothing scary")], Words) == {"horror"}


def test_ranking_uses_them_inside_the_pool_only():
    proximity = GraphProximity.from_graph(torch.tensor([list(range(5)), list(range(5))]), torch.zeros(5, dtype=torch.long), torch.arange(5), 5)
    logits = torch.tensor([2.0, 3.0, 4.0, 1.0, -9.0])  # the adult film first, item 4 far below every other
    ruled_out = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0])
    bonus = torch.tensor([2.0, -1.0, -1.0, 0.0, 30.0])
    ranking = adjust_scores(logits, proximity, [], ruled_out=ruled_out, bonus=bonus, candidates=4)
    assert ranking.argsort(descending=True).tolist() == [KID_FILM, PLAIN_FILM, ADULT_FILM, HORROR_FILM, 4]  # 4 stays out of the pool
    assert torch.equal(adjust_scores(logits, proximity, [], candidates=4), torch.log_softmax(logits, -1))
    # negative_weight 0 turns the exclusions off, not the bonus
    off = adjust_scores(logits, proximity, [], ruled_out=ruled_out, negative_weight=0.0, candidates=4)
    assert off.argmax().item() == ADULT_FILM


@pytest.fixture(scope="module")
def cued(folder, tmp_path_factory):  # noqa: F811
    """The tiny folder with Paranormal Activity the recommender's first choice (+5 nats) and an
    item_cues.json in which it avoids children (named in 70 conversations, none about kids)."""
    from modeling_kgsf import KGSFForConversationalRecommendation

    out = tmp_path_factory.mktemp("cued") / "model"
    shutil.copytree(folder, out)
    model = KGSFForConversationalRecommendation.from_pretrained(out)
    items = model.kgsf.item_entity_ids.tolist()
    paranormal = items.index(0)
    with torch.no_grad():
        model.kgsf.recommender.item_bias.zero_()
        model.kgsf.recommender.item_bias[paranormal] = 5.0
    model.save_pretrained(out)
    everything = set(range(len(items)))
    conversations = [({"kids"}, everything - {paranormal}) if i < 30 else ({"movie"}, everything) for i in range(100)]
    ItemCues.count(conversations, len(items)).save(out)
    return out


def test_folders_get_the_file_and_the_pipeline_uses_it(folder, cued):  # noqa: F811
    from modeling_kgsf import ConversationalRecommender

    assert (folder / ITEM_CUES_FILE).exists()  # written by make_save_model from the train split
    crs = ConversationalRecommender.from_pretrained(cued)
    assert crs.processor.item_cues is not None and crs.processor.item_cues.avoids("children")[crs.item_index_of_entity[0]]
    plain = [r.entity_id for r in crs.recommend(["Something good please"], k=10, explain=False)]
    kids = [r.entity_id for r in crs.recommend(["Something good for my kids please"], k=10, explain=False)]
    assert plain[0] == 0 and kids[-1] == 0 and len(kids) == len(plain)
    off = crs.recommend(["Something good for my kids please"], k=10, explain=False, negative_weight=0.0)
    assert off[0].entity_id == 0  # the exclusion is off; the bonus (-2 nats) does not undo a 5-nat lead
    cli = kgsf("recommend", cued, "Something good for my kids please", "--json", "--no-explain")
    assert json.loads(cli.stdout)["recommendations"][-1]["entity_id"] == 0
    cli = kgsf("recommend", cued, "Something good for my kids please", "--json", "--no-explain", "--no-audience")
    assert json.loads(cli.stdout)["recommendations"][0]["entity_id"] == 0
    (cued / ITEM_CUES_FILE).unlink()  # folders saved before the file existed rank as before
    assert ConversationalRecommender.from_pretrained(cued).processor.item_cues is None
