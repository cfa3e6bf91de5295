"""Chat linking rules, negation and the graph-proximity term, on fixtures built in code."""
from __future__ import annotations

import json
from types import SimpleNamespace

import torch

from modeling_kgsf.linking_kgsf import EntityLinker, Mention
from modeling_kgsf.preferences_kgsf import GraphProximity, adjust_scores, negated_mentions, rejected_entities, without_rejected

R = "<http://dbpedia.org/resource/{}>"
URIS = ["Die_Hard", "The_Terminator", "Get_Out", "It_(2017_film)", "Cats_(2019_film)", "Harry_Potter_(film_series)",
        "Robert_De_Niro", "Horror_film", "Quentin_Tarantino", "Pulp_Fiction", "Reservoir_Dogs", "Jackie_Brown", "The_Notebook"]
E = {name: index for index, name in enumerate(URIS)}
ITEMS = [E[n] for n in ("Die_Hard", "The_Terminator", "Get_Out", "It_(2017_film)", "Cats_(2019_film)", "Harry_Potter_(film_series)",
                        "Pulp_Fiction", "Reservoir_Dogs", "Jackie_Brown", "The_Notebook")]
TITLES = {"1": "Die Hard (1988)", "2": "The Terminator (1984)", "3": "Get Out (2017)", "4": "It (2017)", "5": "Cats (2019)",
          "6": "Harry Potter (2001)", "7": "Pulp Fiction (1994)", "8": "Reservoir Dogs (1992)", "9": "Jackie Brown (1997)",
          "10": "The Notebook (2004)"}
MOVIE_ENTITY = {m: ITEMS[int(m) - 1] for m in TITLES}
STOPWORDS = {"get", "out", "it", "the", "a", "i", "and", "like", "liked", "to", "of", "something", "by", "with", "no", "not", "want"}
COMMON = {"die", "hard", "terminator", "cats", "harry", "potter", "notebook", "dogs", "brown", "horror", "movies", "love", "hate",
          "seen", "watch", "pulp", "fiction", "reservoir", "jackie", "robert", "action", "here", "good", "was", "boring"}


def make_linker(**options) -> EntityLinker:
    entities = SimpleNamespace(item_entity_ids=ITEMS, entity_to_uri=[R.format(u) for u in URIS], movie_id_to_entity=MOVIE_ENTITY,
                               movie_id_to_title=TITLES, movie_id_to_mentions={}, entity_names={})
    return EntityLinker.from_kg(entities, STOPWORDS, COMMON, case_free_entities={E["Horror_film"]}, **options)


def linked(linker, text):
    return [(m.surface, URIS[m.entity_id]) for m in linker.link(text)]


def test_lowercase_titles_need_a_film_context():
    linker = make_linker()
    assert linked(linker, "i like action movies like die hard and terminator") == [("die hard", "Die_Hard"), ("terminator", "The_Terminator")]
    assert linked(linker, "it was a die hard fan") == []  # no cue: ordinary words stay words
    assert linked(linker, "i like cats") == []  # one word needs a strong cue
    assert linked(linker, "have you seen cats") == [("cats", "Cats_(2019_film)")]
    assert linked(linker, 'my favorite is "the notebook"') == [("the notebook", "The_Notebook")]
    assert linked(linker, "die hard 1988 was good") == [("die hard", "Die_Hard")]
    assert linked(EntityLinker.from_dict(make_linker().to_dict(), chat_rules=False), "movies like die hard") == []


def test_titles_made_of_stopwords_need_capitals_and_context():
    linker = make_linker()
    assert linked(linker, "I liked Get Out and It") == [("Get Out", "Get_Out"), ("It", "It_(2017_film)")]
    assert linked(linker, "I want to get out of here") == []
    assert linked(linker, "I liked get out") == []  # lower case: not enough
    assert linked(make_linker(chat_rules=False), "I liked Get Out") == []


def test_fuzzy_matching_with_threshold():
    linker = make_linker()
    assert linked(linker, "Harry Poter please") == [("Harry Poter", "Harry_Potter_(film_series)")]
    assert linker.link("Harry Poter")[0].score < 1.0
    assert linked(linker, "I love Robert Deniro") == [("Robert Deniro", "Robert_De_Niro")]  # spaces ignored
    assert linked(linker, "Quentin Tarantnio") == [("Quentin Tarantnio", "Quentin_Tarantino")]  # transposition
    assert linked(linker, "a horroe movie") == [("horroe", "Horror_film")]
    assert linked(make_linker(fuzzy_min_similarity=0.95), "Harry Poter") == []
    assert linked(make_linker(fuzzy=False), "Harry Poter") == []
    assert linked(linker, "Hary Poter") == []  # two edits: below the one-edit rule


def test_index_round_trip_keeps_rules():
    linker = make_linker()
    restored = EntityLinker.from_dict(json.loads(json.dumps(linker.to_dict())))
    for text in ("I liked Get Out and It", "movies like die hard and terminator", "Harry Poter", "I love Robert Deniro"):
        assert restored.link(text) == linker.link(text)


def _mentions(linker, text):
    tokens = text.replace(",", " ,").replace(".", " .").split()
    return tokens, linker.link(tokens)


def test_negation_rule():
    linker = make_linker()
    for text, rejected in [
        ("I hate horror movies . I want something funny", {"Horror_film"}),
        ("I love horror movies", set()),
        ("no horror please", {"Horror_film"}),
        ("I do n't like horror", {"Horror_film"}),
        ("not horror , I like Pulp Fiction", {"Horror_film"}),
        ("I have n't seen Pulp Fiction", set()),
        ("Pulp Fiction was boring", {"Pulp_Fiction"}),
        ("I hate horror but love Pulp Fiction", {"Horror_film"}),
    ]:
        tokens, mentions = _mentions(linker, text)
        negated, _ = negated_mentions(tokens, mentions)
        assert {URIS[m.entity_id] for m in negated} == rejected, text


def test_rejecting_a_suggestion_by_reference():
    linker = make_linker()
    turns = [(True, *_mentions(linker, "I like horror")), (False, *_mentions(linker, "Have you seen Pulp Fiction ?")),
             (True, *_mentions(linker, "seen it , did n't like it"))]
    assert rejected_entities(turns) == {E["Pulp_Fiction"]}
    turns.append((True, *_mentions(linker, "actually I love Pulp Fiction")))
    assert rejected_entities(turns) == set()  # the latest statement wins


def _graph():
    pairs = [(E["Quentin_Tarantino"], E[n]) for n in ("Pulp_Fiction", "Reservoir_Dogs", "Jackie_Brown")] + [(E["Horror_film"], E["It_(2017_film)"])]
    source = [a for a, b in pairs] + [b for a, b in pairs] + list(range(len(URIS)))
    target = [b for a, b in pairs] + [a for a, b in pairs] + list(range(len(URIS)))
    return GraphProximity.from_graph(torch.tensor([source, target]), torch.zeros(len(source), dtype=torch.long), torch.tensor(ITEMS), len(URIS))


def test_graph_proximity_term():
    proximity = _graph()
    index = {entity: i for i, entity in enumerate(ITEMS)}
    assert sorted(proximity.items_of(E["Quentin_Tarantino"]).tolist()) == sorted(index[E[n]] for n in ("Pulp_Fiction", "Reservoir_Dogs", "Jackie_Brown"))
    logits = torch.linspace(3, 0, len(ITEMS))  # Die Hard first, Tarantino's films last
    plain = adjust_scores(logits, proximity, [E["Quentin_Tarantino"]], proximity_weight=0.0)
    assert plain.argsort(descending=True).tolist() == logits.argsort(descending=True).tolist()
    boosted = adjust_scores(logits, proximity, [E["Quentin_Tarantino"]], proximity_weight=8.0)
    assert set(boosted.topk(3).indices.tolist()) == {index[E[n]] for n in ("Pulp_Fiction", "Reservoir_Dogs", "Jackie_Brown")}
    items_only = adjust_scores(logits, proximity, [E["Pulp_Fiction"]], proximity_weight=8.0)  # items are the model's job
    assert torch.allclose(items_only, plain)
    pushed = adjust_scores(logits, proximity, [], rejected={E["Horror_film"]}, negative_weight=20.0)
    assert pushed.argmin().item() == index[E["It_(2017_film)"]]


def test_without_rejected_row():
    row = {"context_entities": [1, 7, 9], "context_items": [1, 9], "context_words": [5, 6]}
    assert without_rejected(row, {7, 9}, {6}) == {"context_entities": [1], "context_items": [1], "context_words": [5]}
    assert row["context_entities"] == [1, 7, 9]


def test_mention_default_score_is_exact():
    assert Mention((0, 1), 3, "x", "entity").score == 1.0


def test_rejected_concept_words_without_an_entity():
    """"no romance please": "romance" links to no entity but is a word-graph concept; the same rules
    reject it, cue words are never rejected themselves, and entity rejections keep their words."""
    from modeling_kgsf.preferences_kgsf import rejected_in_turns

    class Tokenizer:
        def tokenize(self, text):
            return text.split()

    concepts = {"romance": 1, "war": 2, "horror": 3, "movies": 4, "hate": 5, "love": 6, "funny": 7}
    concept_id = concepts.get
    linker = make_linker()
    rejected, words = rejected_in_turns([("seeker", "I hate romance and war movies . I want something funny")], Tokenizer(), linker,
                                        concept_id=concept_id)
    assert rejected == set() and {"romance", "war"} <= words
    assert "hate" not in words and "funny" not in words  # a cue, and a word after the clause ends
    rejected, words = rejected_in_turns([("seeker", "I love romance movies")], Tokenizer(), linker, concept_id=concept_id)
    assert rejected == set() and words == set()
    rejected, words = rejected_in_turns([("seeker", "no horror please")], Tokenizer(), linker, concept_id=concept_id)
    assert rejected == {E["Horror_film"]} and words == {"horror"}
    # without a concept lookup only entity mentions count, as before
    assert rejected_in_turns([("seeker", "I hate romance movies")], Tokenizer(), linker) == (set(), set())
    # a rejection by reference still needs a turn that names no entity (words do not block it)
    assert rejected_in_turns([("recommender", "Have you seen Pulp Fiction ?"), ("seeker", "seen it , did n't like the romance")],
                             Tokenizer(), linker, concept_id=concept_id)[0] == {E["Pulp_Fiction"]}


def test_film_contexts_year_judgement_and_filler():
    linker = make_linker()
    assert linked(linker, "i liked get out (2017) a lot") == [("get out ( 2017 )", "Get_Out")]  # a title with its year
    assert linked(linker, "how about die hard") == [("die hard", "Die_Hard")]
    assert linked(linker, "a documentary about die hard fans") == []  # "about" alone is no cue
    assert linked(linker, "Cats was boring") == [("Cats", "Cats_(2019_film)")]  # sentence start + a judgement after it
    assert linked(linker, "the cats was boring") == []  # ... only for a capitalised title
    assert linked(linker, "It was great") == []  # never for a title made of stopwords
    assert linked(linker, "i recommend you cats") == [("cats", "Cats_(2019_film)")]  # one filler after a strong cue
    assert linked(linker, "i like a cats") == []  # not after a weak cue
    assert linked(linker, "cats are cute") == [] and linked(linker, "Cats are cute") == []
    plain = make_linker(chat_rules=False)
    assert linked(plain, "i liked get out (2017) a lot") == [] and linked(plain, "how about die hard") == []
