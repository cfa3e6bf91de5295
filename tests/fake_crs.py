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
