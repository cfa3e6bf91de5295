"""The graph terms re-order the recommender's own top N (items within 1/100 of its first choice) and
never lift an item it scores near zero, a named person's films excepted; "like <film>" requests keep
the film's genres and audience; the CLI's ranking switches change the ranking."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from modeling_kgsf.preferences_kgsf import GraphProximity, adjust_scores, genre_relation_ids
from test_pipeline_cli import folder, kgsf  # noqa: F401  (the tiny model folder fixture, the CLI runner)

# entities 0..5 are items; 6 = a director, 7 = Animation, 8 = Horror, 9 = Family (genres)
DIRECTOR, ANIMATION, HORROR, FAMILY = 6, 7, 8, 9
FROZEN, MOANA, ANNABELLE, GET_OUT, UNKNOWN, TOY_STORY = range(6)
STARRING, GENRE = 1, 2


def _proximity(**kwargs):
    triples = [(DIRECTOR, STARRING, ANNABELLE), (DIRECTOR, STARRING, GET_OUT),
               (FROZEN, GENRE, ANIMATION), (FROZEN, GENRE, FAMILY), (MOANA, GENRE, ANIMATION), (TOY_STORY, GENRE, FAMILY),
               (ANNABELLE, GENRE, HORROR), (GET_OUT, GENRE, HORROR)]
    source = [h for h, _, t in triples] + [t for h, _, t in triples] + list(range(10))
    target = [t for h, _, t in triples] + [h for h, _, t in triples] + list(range(10))
    types = [r for _, r, _ in triples] * 2 + [0] * 10
    names = ["self_loop", "starring", "<http://dbpedia.org/ontology/genre>"]
    return GraphProximity.from_graph(torch.tensor([source, target]), torch.tensor(types), torch.arange(6), 10,
                                     genre_relations=genre_relation_ids(names), **kwargs)


NAMES = ["self_loop", "<http://dbpedia.org/ontology/starring>", "genre"]
URIS = [f"<http://dbpedia.org/resource/Film_{i}>" for i in range(6)] + [
    "<http://dbpedia.org/resource/Some_Director>", "<http://dbpedia.org/resource/Animation>",
    "<http://dbpedia.org/resource/Horror_film>", "<http://dbpedia.org/resource/Family_film>"]


def test_genre_relations_by_name():
    assert genre_relation_ids(["self_loop", "genre", None, "dct:subject", "<http://purl.org/dc/terms/subject>", "starring"]) == {1, 3, 4}
    proximity = _proximity()
    assert sorted(proximity.genres_of(FROZEN).tolist()) == [ANIMATION, FAMILY] and proximity.genres_of(DIRECTOR).size == 0
    assert proximity.has_genres().tolist() == [True, True, True, True, False, True]
    assert proximity.mismatch([ANIMATION, FAMILY]).tolist() == [0, 0, 1, 1, 0, 0]  # unknown genres: no say
    assert proximity.mismatch([]).sum() == 0


def test_near_zero_items_never_enter_through_proximity():
    proximity = _proximity()
    logits = torch.tensor([5.0, 4.0, 3.0, -2.0, 1.0, -8.0])  # the director's film Get Out: 7 nats below the best
    probabilities = torch.softmax(logits, -1)
    additive = adjust_scores(logits, proximity, [DIRECTOR], candidates=0)  # the former ranking: over all items
    assert additive.argmax().item() == ANNABELLE and additive.topk(2).indices.tolist()[1] == GET_OUT
    pooled = adjust_scores(logits, proximity, [DIRECTOR], candidates=5)
    # re-ordered inside the top 5 that are within 1/100 of the first: Get Out (7 nats below) is not
    assert pooled.topk(5).indices.tolist() == [ANNABELLE, FROZEN, MOANA, UNKNOWN, GET_OUT]
    pooled = adjust_scores(logits, proximity, [DIRECTOR], candidates=3)
    assert pooled.topk(3).indices.tolist() == [ANNABELLE, FROZEN, MOANA]  # ... Get Out is not among the recommender's top 3
    assert pooled.argsort(descending=True).tolist()[3:] == [UNKNOWN, GET_OUT, TOY_STORY]  # the rest in the recommender's order
    assert probabilities[pooled.topk(3).indices].min() >= probabilities.topk(3).values.min()
    # excluded (mentioned) items give their place in the pool to the next ones
    assert pooled.argmax().item() == ANNABELLE
    excluded = adjust_scores(logits, proximity, [DIRECTOR], candidates=3, excluded=[FROZEN])
    assert excluded.topk(3).indices.tolist() == [ANNABELLE, MOANA, UNKNOWN]
    # rejections only re-order the pool too
    rejected = adjust_scores(logits, proximity, [], rejected={DIRECTOR}, candidates=3)
    assert rejected.topk(3).indices.tolist() == [FROZEN, MOANA, ANNABELLE]
    assert torch.equal(adjust_scores(logits, proximity, [DIRECTOR], proximity_weight=0.0), torch.log_softmax(logits, -1))


def test_a_named_persons_films_join_the_pool():
    """"Something with <actor>": the actor's films are what was asked for; a film joined to a liked
    entity by another relation (a genre) is not."""
    logits = torch.tensor([5.0, 4.0, 3.0, -2.0, 1.0, -8.0])
    named = _proximity(relation_names=NAMES)
    assert sorted(named.films_of(DIRECTOR).tolist()) == [ANNABELLE, GET_OUT] and named.films_of(HORROR).size == 0
    assert named.films_of(FROZEN).size == 0 and _proximity().films_of(DIRECTOR).size == 0  # no relation names: no people
    assert adjust_scores(logits, named, [DIRECTOR], candidates=3).topk(3).indices.tolist() == [ANNABELLE, GET_OUT, FROZEN]
    assert adjust_scores(logits, named, [HORROR], candidates=3).topk(3).indices.tolist() == [ANNABELLE, FROZEN, MOANA]
    assert torch.equal(adjust_scores(logits, named, [DIRECTOR], candidates=3, proximity_weight=0.0), torch.log_softmax(logits, -1))
    # the former pool (top N and every item above chance) is still available
    assert adjust_scores(logits, _proximity(), [DIRECTOR], candidates=1, pool_floor=0.5).topk(2).indices.tolist() == [ANNABELLE, FROZEN]


def test_a_family_film_gets_no_adult_genre():
    """"Something like Frozen" (a family film in the graph): the horror films lose the negative weight,
    ahead of the genre mismatch; a film without a family genre does not trigger it."""
    proximity = _proximity(entity_uris=URIS)
    assert proximity.family_genres == {FAMILY} and proximity.adult_genres == {HORROR}
    assert proximity.unsuitable([ANIMATION, FAMILY]).tolist() == [0, 0, 1, 1, 0, 0] and proximity.unsuitable([ANIMATION]).sum() == 0
    logits = torch.tensor([3.0, 1.0, 4.0, 3.5, 2.0, 0.5])
    plain = adjust_scores(logits, _proximity(), [FROZEN], candidates=5, excluded=[FROZEN])
    family = adjust_scores(logits, proximity, [FROZEN], candidates=5, excluded=[FROZEN])
    assert torch.allclose(plain[[ANNABELLE, GET_OUT]] - family[[ANNABELLE, GET_OUT]], torch.tensor([20.0, 20.0]))
    assert torch.equal(plain[[MOANA, TOY_STORY, UNKNOWN]], family[[MOANA, TOY_STORY, UNKNOWN]])
    assert torch.equal(adjust_scores(logits, proximity, [MOANA], candidates=5), adjust_scores(logits, _proximity(), [MOANA], candidates=5))


def test_like_a_film_keeps_its_genres():
    """"Something like Frozen": the horror films the recommender ranks high go below the films
    that share a genre; an item without genres in the graph is not judged."""
    proximity = _proximity()
    logits = torch.tensor([3.0, 1.0, 4.0, 3.5, 2.0, 0.5])  # Annabelle and Get Out above Moana
    ranking = adjust_scores(logits, proximity, [FROZEN], candidates=5, excluded=[FROZEN])
    ranking[FROZEN] = float("-inf")
    order = ranking.topk(5).indices.tolist()
    assert order[:3] == [MOANA, TOY_STORY, UNKNOWN] and set(order[3:]) == {ANNABELLE, GET_OUT}
    # a rejected film's genres are not wished for
    assert torch.equal(adjust_scores(logits, proximity, [FROZEN], rejected={FROZEN}, negative_weight=0.0), torch.log_softmax(logits, -1))


@pytest.fixture(scope="module")
def skewed(folder, tmp_path_factory):  # noqa: F811
    """The tiny folder with Toy Story (joined to Tom Hanks) 5 nats below the other items."""
    from modeling_kgsf import KGSFForConversationalRecommendation

    out = tmp_path_factory.mktemp("skewed") / "model"
    shutil.copytree(folder, out)
    model = KGSFForConversationalRecommendation.from_pretrained(out)
    resources = json.loads((out / "kg_resources.json").read_text())
    toy_story = model.kgsf.item_entity_ids.tolist().index(resources["movies"]["222"][0])
    with torch.no_grad():
        model.kgsf.recommender.item_bias.zero_()
        model.kgsf.recommender.item_bias[toy_story] = -5.0
    model.save_pretrained(out)
    return out


def test_pipeline_keeps_near_zero_items_out(skewed):
    from modeling_kgsf import ConversationalRecommender

    crs = ConversationalRecommender.from_pretrained(skewed)
    turns = ["I like Tom Hanks"]
    plain = crs.recommend(turns, k=4, proximity_weight=0.0, explain=False)
    assert plain[-1].title == "Toy Story (1995)" and plain[-1].score < plain[-2].score / 20
    assert crs.recommend(turns, k=1, candidates=0, explain=False)[0].title == "Toy Story (1995)"  # additive over all items
    assert crs.recommend(turns, k=1, explain=False)[0].title == "Toy Story (1995)"  # 4 items: all within the default pool
    pooled = crs.recommend(turns, k=3, candidates=3, explain=False)
    assert "Toy Story (1995)" not in [r.title for r in pooled]
    assert [r.title for r in pooled] == [r.title for r in plain[:3]]
    reply = crs.respond_with_items(turns, max_new_tokens=3, candidates=3, proximity_weight=0.0)
    assert isinstance(reply.text, str)


def _titles(*args):
    return [r["title"] for r in json.loads(kgsf("recommend", *args, "--json", "--no-explain").stdout)["recommendations"]]


def test_cli_ranking_switches(skewed):
    assert _titles(skewed, "I like Tom Hanks")[0] == "Toy Story (1995)"
    assert _titles(skewed, "I like Tom Hanks", "--proximity-weight", "0")[-1] == "Toy Story (1995)"
    assert "Toy Story (1995)" not in _titles(skewed, "I like Tom Hanks", "--candidates", "2", "-k", "2")
    assert len(_titles(skewed, "I like Tom Hanks", "-k", "1")) == 1
    hate = _titles(skewed, "I hate Tom Hanks")
    assert hate[-1] == "Toy Story (1995)" and _titles(skewed, "I hate Tom Hanks", "--no-negation")[0] == "Toy Story (1995)"
    chat = kgsf("chat", skewed, "-k", "1", "--no-reply", "--proximity-weight", "0", stdin="I like Tom Hanks\n/quit\n").stdout
    assert "1. Toy Story" not in chat and "1. Toy Story" in kgsf("chat", skewed, "-k", "1", "--no-reply", stdin="I like Tom Hanks\n/quit\n").stdout
    bad = kgsf("recommend", skewed, "hi", "--proximity-weight", "-1", check=False)
    assert bad.returncode == 2 and "--proximity-weight" in bad.stderr
