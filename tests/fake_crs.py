"""A tiny dataset folder in the generic CRS format (docs/CRS_FORMAT.md), built in code.

A small book-recommendation world, unlike ReDial on purpose: item ids are ISBN-like keys, the KG
names entities by plain names, the word graph is its own file.
"""
from __future__ import annotations

import json
from pathlib import Path

ITEMS = [
    {"id": "b1", "name": "Dune (1965)", "entity": "Dune"},
    {"id": "b2", "name": "Foundation (1951)", "entity": "Foundation"},
    {"id": "b3", "name": "Emma (1815)"},  # no entity: the item is its own node "b3"
    {"id": "b4", "name": "Persuasion (1817)", "entity": "Persuasion"},
]
TRIPLES = [
    ("Dune", "author", "Frank Herbert"),
    ("Dune", "genre", "science fiction"),
    ("Foundation", "author", "Isaac Asimov"),
    ("Foundation", "genre", "science fiction"),
    ("b3", "author", "Jane Austen"),  # an item named by its item id
    ("Persuasion", "author", "Jane Austen"),
    ("b3", "genre", "romance"),
    ("Persuasion", "genre", "romance"),
]
WORD_EDGES = [("RelatedTo", "desert", "sand"), ("RelatedTo", "space", "galaxy"), ("Synonym", "novel", "book"), ("RelatedTo", "love", "romance")]


def conversation(conversation_id, *turns):
    return {"conversation_id": conversation_id, "turns": [dict(zip(("role", "text", "items", "entities"), turn)) for turn in turns]}


CONVERSATIONS = {
    "train": [
        conversation("t1", ("seeker", "Hi, I want a science fiction novel about space ."), ("recommender", "Have you read @b1 ? It has a desert planet .", ["b1"]),
                     ("seeker", "I loved it ! Anything by Isaac Asimov ?"), ("recommender", "Then @b2 is great .", ["b2"])),
        conversation("t2", ("user", "I like romance books by Jane Austen ."), ("system", "Try Persuasion , a quiet love story .", ["b4"], ["romance"])),
        conversation("t3", ("seeker", "Something like @b3 please", ["b3"]), ("recommender", "You may enjoy @b4 .", ["b4"]),
                     ("recommender", "Or a galaxy epic like @b2 .")),
    ],
    "validation": [
        conversation("v1", ("seeker", "I want a book about a desert ."), ("recommender", "Read @b1 .", ["b1"])),
    ],
    "test": [
        conversation("s1", ("seeker", "Any novel by Jane Austen ?"), ("recommender", "@b3 is lovely .", ["b3"])),
        conversation("s2", ("seeker", "I liked @b1"), ("recommender", "Then try @b2 !")),
    ],
}


def write_jsonl(path: Path, records) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def make_crs_dataset(root, conversations=None, items=None, triples=None, manifest=None, entities=None) -> Path:
    """Write the dataset folder under ``root``; every part can be replaced to build broken variants."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for split, records in (conversations or CONVERSATIONS).items():
        write_jsonl(root / f"{split}.jsonl", records)
    write_jsonl(root / "items.jsonl", ITEMS if items is None else items)
    (root / "kg.tsv").write_text("".join("\t".join(triple) + "\n" for triple in (TRIPLES if triples is None else triples)), encoding="utf-8")
    (root / "word_graph.tsv").write_text("".join("\t".join(edge) + "\n" for edge in WORD_EDGES), encoding="utf-8")
    (root / "stopwords.txt").write_text("the\na\ni\n", encoding="utf-8")
    base = {"name": "tiny-books", "description": "a tiny book world for tests", "word_graph": "word_graph.tsv", "stopwords": "stopwords.txt"}
    if entities is not None:
        write_jsonl(root / "entities.jsonl", entities)
        base["entities"] = "entities.jsonl"
    (root / "dataset.json").write_text(json.dumps({**base, **(manifest or {})}), encoding="utf-8")
    return root


# ------------------------------------------------------------------------------------------------
# The same kind of world in the layouts other CRS code bases ship (docs/CRS_FORMAT.md, section 2):
# a small movie world over DBpedia URIs, with its own entity ids.
# ------------------------------------------------------------------------------------------------
def dbr(name: str) -> str:
    return f"<http://dbpedia.org/resource/{name}>"


DIRECTOR, GENRE = "<http://dbpedia.org/ontology/director>", "<http://dbpedia.org/ontology/genre>"
ENTITY2ID = {dbr(name): index for index, name in enumerate([
    "Knives_Out", "Inception", "Heat_(1995_film)", "Up_(2009_film)",  # the items: entity ids 0-3
    "Rian_Johnson", "Christopher_Nolan", "Michael_Mann", "Pete_Docter", "Mystery_film", "Science_fiction_film", "Crime_film",
    "Titanic_(1997_film)",  # a movie the dialogues link that is not an item: an entity
    "Daniel_Craig",  # in no triple: only a turn links it
])}
RELATION2ID = {DIRECTOR: 0, GENRE: 1, "self_loop": 2}
UNICRS_ITEM_IDS = [0, 1, 2, 3]
_GRAPH = [("Knives_Out", DIRECTOR, "Rian_Johnson"), ("Knives_Out", GENRE, "Mystery_film"), ("Inception", DIRECTOR, "Christopher_Nolan"),
          ("Inception", GENRE, "Science_fiction_film"), ("Heat_(1995_film)", DIRECTOR, "Michael_Mann"), ("Heat_(1995_film)", GENRE, "Crime_film"),
          ("Up_(2009_film)", DIRECTOR, "Pete_Docter"), ("Titanic_(1997_film)", GENRE, "Science_fiction_film")]


def subkg(relation_id: dict[str, int], self_loop: int) -> dict[str, list[list[int]]]:
    """UniCRS's/CRSLab's ``dbpedia_subkg.json``: {head id: [[relation id, tail id], ...]}, a self-loop first as UniCRS writes it."""
    graph: dict[str, list[list[int]]] = {}
    for head, relation, tail in _GRAPH:
        pairs = graph.setdefault(str(ENTITY2ID[dbr(head)]), [[self_loop, ENTITY2ID[dbr(head)]]])
        pairs.append([relation_id[relation], ENTITY2ID[dbr(tail)]])
    return graph


def unicrs_turn(role, text, movies=(), entities=()):
    """A turn as UniCRS ships INSPIRED: ``movies`` are (URI name, how the text writes it)."""
    return {"role": role, "text": text, "movie": [], "movie_link": [dbr(name) for name, _ in movies], "movie_name": [title for _, title in movies],
            "entity_link": [dbr(name) for name in entities], "entity_name": [name for name in entities]}


UNICRS_DIALOGUES = {
    "train": [
        [unicrs_turn("SEEKER", "Hi! I loved Inception , any mystery film ?", [("Inception", "Inception")], ["Mystery_film"]),
         unicrs_turn("RECOMMENDER", "Try Knives Out by Rian Johnson .", [("Knives_Out", "Knives Out")], ["Rian_Johnson"]),
         unicrs_turn("SEEKER", "Was Titanic like that ? Daniel Craig is great .", [("Titanic_(1997_film)", "Titanic")], ["Daniel_Craig", "Unknown_thing"]),
         unicrs_turn("RECOMMENDER", "No , but heat is a crime film you may like .", [("Heat_(1995_film)", "Heat")], ["Crime_film"])],
        [unicrs_turn("Seeker", "Something animated please ."), unicrs_turn("Recommender", "Up is lovely .", [("Up_(2009_film)", "Up")], ["Pete_Docter"])],
    ],
    "valid": [[unicrs_turn("SEEKER", "A film by Christopher Nolan ?", [], ["Christopher_Nolan"]),
               unicrs_turn("RECOMMENDER", "Inception !", [("Inception", "Inception")])]],
    "test": [[unicrs_turn("SEEKER", "I like crime films ."), unicrs_turn("RECOMMENDER", "Heat , by Michael Mann .", [("Heat_(1995_film)", "Heat")])]],
}


def redial_message(sender, text, movies=(), entities=()):
    """A message as UniCRS ships ReDial: "@<movieId>" in the text, the movies' URIs and titles beside it."""
    return {"senderWorkerId": sender, "text": text, "movie": [dbr(name) for name, _ in movies], "movie_name": [title for _, title in movies],
            "entity": [dbr(name) for name in entities], "entity_name": list(entities)}


UNICRS_REDIAL_CONVERSATION = {
    "conversationId": "20051", "initiatorWorkerId": 7, "respondentWorkerId": 8,
    "movieMentions": {"111": "Knives Out  (2019)", "222": "Inception (2010)"},
    "messages": [redial_message(7, "I liked @222 !", [("Inception", "Inception (2010)")]),
                 redial_message(7, "Any mystery ?", [], ["Mystery_film"]),
                 redial_message(8, "Then @111 , by Rian Johnson .", [("Knives_Out", "Knives Out (2019)")], ["Rian_Johnson"])],
}


def make_unicrs_folder(root, dialogues=None, item_ids=UNICRS_ITEM_IDS, relation2id=None) -> Path:
    """UniCRS's layout: ``{split}_data_dbpedia.jsonl`` (a dialogue a line), entity2id.json, relation2id.json, dbpedia_subkg.json, item_ids.json."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    relation2id = RELATION2ID if relation2id is None else relation2id
    for split, records in (dialogues or UNICRS_DIALOGUES).items():
        write_jsonl(root / f"{split}_data_dbpedia.jsonl", records)
    (root / "entity2id.json").write_text(json.dumps(ENTITY2ID), encoding="utf-8")
    (root / "relation2id.json").write_text(json.dumps(relation2id), encoding="utf-8")
    (root / "dbpedia_subkg.json").write_text(json.dumps(subkg(relation2id, relation2id.get("self_loop", 2))), encoding="utf-8")
    if item_ids is not None:
        (root / "item_ids.json").write_text(json.dumps(item_ids), encoding="utf-8")
    return root


def crslab_turn(role, tokens, movies=(), entities=()):
    return {"utt_id": 0, "role": role, "text": tokens.split(), "movies": [dbr(name) for name in movies],
            "entity": [dbr(name) for name in entities], "word": []}


CRSLAB_CONVERSATIONS = {
    "train": [{"conv_id": 1, "dialog": [crslab_turn("Seeker", "I loved Inception . Any crime film ?", ["Inception"], ["Crime_film"]),
                                        crslab_turn("Recommender", "Heat is great .", ["Heat_(1995_film)"], ["Michael_Mann"])]}],
    "valid": [{"conv_id": 2, "dialog": [crslab_turn("Seeker", "Hello"), crslab_turn("Recommender", "Watch Up .", ["Up_(2009_film)"])]}],
    "test": [{"conv_id": 3, "dialog": [crslab_turn("Seeker", "A mystery ?", [], ["Mystery_film"]),
                                       crslab_turn("Recommender", "Knives Out !", ["Knives_Out"])]}],
}
CRSLAB_SELF_LOOP = 185  # KGSF's and CRSLab's ReDial self-loop relation id; CRSLab's ReDial graph names no relation


def make_crslab_folder(root, conversations=None) -> Path:
    """CRSLab's layout: ``{split}_data.json`` (a list of conversations), entity2id.json, dbpedia_subkg.json, movie_ids.json."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for split, records in (conversations or CRSLAB_CONVERSATIONS).items():
        (root / f"{split}_data.json").write_text(json.dumps(records, indent=2), encoding="utf-8")
    (root / "entity2id.json").write_text(json.dumps(ENTITY2ID), encoding="utf-8")
    (root / "dbpedia_subkg.json").write_text(json.dumps(subkg({DIRECTOR: 16, GENRE: 4}, CRSLAB_SELF_LOOP)), encoding="utf-8")
    (root / "movie_ids.json").write_text(json.dumps(UNICRS_ITEM_IDS), encoding="utf-8")
    return root
