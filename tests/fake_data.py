"""A tiny data directory with the layout of ../shared/data/SOURCES.md, built in code."""
from __future__ import annotations

import json
import pickle

R = "<http://dbpedia.org/resource/"
URIS = [
    R + "Paranormal_Activity>",  # 0 movie 111
    R + "Toy_Story>",  # 1 movie 222
    R + "Tom_Hanks>",  # 2
    R + "Horror_film>",  # 3
    R + "Frozen_(2013_film)>",  # 4 movie 444
    R + "Steven_Spielberg_(director)>",  # 5
    "333",  # 6 movie 333, no DBpedia page: keyed by its movieId
    R + "Oren_Peli>",  # 7
]
MOVIES = {"111": (0, "Paranormal Activity (2007)"), "222": (1, "Toy Story (1995)"), "333": (6, "Obscure Film (2001)"), "444": (4, "Frozen (2013)")}
# KGSF relation ids: 1 = starring, 2 = genre, 185 = self-loop (dropped when explicit).
SUBKG = {0: [(2, 3), (7, 0), (185, 0), (5, 7)], 1: [(1, 2), (2, 3)], 4: [(2, 3)]}
VOCAB_WORDS = ["hi", "I", "like", "@111", "@222", "@333", "@444", "horror", "movies", "_split_", ".", "?", "you", "should", "watch", "Tom", "Hanks", "the", "great", "!", "Have", "seen", "Frozen", "scary"]
CONCEPTS = ["horror", "movies", "like", "watch", "scary", "the", "great", "frozen"]
STOPWORDS = ["the", "i", "you"]


def make_message(text, sender, index):
    return {"text": text, "senderWorkerId": sender, "messageId": index, "timeOffset": index}


def make_conversation(conversation_id, texts_and_senders, mentions):
    return {
        "conversationId": conversation_id,
        "messages": [make_message(text, sender, i) for i, (text, sender) in enumerate(texts_and_senders)],
        "movieMentions": mentions,
        "initiatorWorkerId": 1,
        "respondentWorkerId": 2,
        "respondentQuestions": {},
        "initiatorQuestions": {},
    }


CONVERSATIONS = {
    "train": [
        make_conversation("10", [("hi", 1), ("Have you seen @111 ?", 2), ("I like horror movies", 1), ("with Tom Hanks", 1), ("watch @222 !", 2)], {"111": "", "222": ""}),
        make_conversation("11", [("hi", 2), ("I like scary movies", 1), ("watch @999", 2)], {}),
    ],
    "valid": [make_conversation("20", [("I like Paranormal Activity", 1), ("watch @444 .", 2), ("great", 1), ("hi", 2)], {"444": ""})],
    "test": [make_conversation("30", [("hi", 1), ("you should watch @333", 2)], {"333": ""})],
}


def write_jsonl(path, conversations):
    path.write_text("".join(json.dumps(c) + "\n" for c in conversations), encoding="utf-8")


def make_fake_data_dir(root):
    """A data directory with the layout of SOURCES.md and a handful of entities and words."""
    kgsf = root / "RUCAIBox-KGSF"
    (kgsf / "data").mkdir(parents=True)
    pickles = {
        "entity2entityId.pkl": {uri: index for index, uri in enumerate(URIS)},
        "id2entity.pkl": {int(m): (URIS[e] if URIS[e].startswith("<") else None) for m, (e, _) in MOVIES.items()},
        "movie_ids.pkl": [e for e, _ in MOVIES.values()],
        "subkg.pkl": SUBKG,
    }
    for name, value in pickles.items():
        (kgsf / "data" / name).write_bytes(pickle.dumps(value))
    write_jsonl(kgsf / "data" / "valid_data.jsonl", CONVERSATIONS["valid"])
    write_jsonl(kgsf / "data" / "test_data.jsonl", CONVERSATIONS["test"])
    (kgsf / "word2index_redial.json").write_text(json.dumps({w: i + 4 for i, w in enumerate(VOCAB_WORDS)}))
    (kgsf / "key2index_3rd.json").write_text(json.dumps({w: i + 1 for i, w in enumerate(CONCEPTS)}))
    (kgsf / "stopwords.txt").write_text("\n".join(STOPWORDS) + "\n")
    (root / "baazouziwiem-Kepler-aSI-CRS").mkdir()
    write_jsonl(root / "baazouziwiem-Kepler-aSI-CRS" / "train_data.jsonl", CONVERSATIONS["train"])
    (root / "ReDialData-website").mkdir()
    rows = ["movieId,movieName,nbMentions"] + [f"{m},{title},{5}" for m, (_, title) in MOVIES.items()]
    (root / "ReDialData-website" / "movies_with_mentions.csv").write_text("\n".join(rows) + "\n")
    (root / "ShupeiLi-KGSF").mkdir()
    edges = ["RelatedTo\thorror\tscary", "RelatedTo\tscary/n\thorror", "IsA\thorror\tthe", "RelatedTo\tmovies\tunknownword", "Synonym\tgreat\tgreat"]
    (root / "ShupeiLi-KGSF" / "conceptnet_one_hop_edges.txt").write_text("\n".join(edges) + "\n")
    return root
