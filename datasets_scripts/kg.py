"""The two knowledge graphs as torch tensors ready for torch-geometric, and the DBpedia id maps.

* :func:`load_dbpedia` -> :class:`DBpediaEntities`: URI <-> entity id, the item list, ReDial
  movieId -> entity id / title.
* :func:`load_item_graph` -> :class:`ItemGraph`: DBpedia (R-GCN input), filtered as the reference.
* :func:`load_word_graph` -> :class:`WordGraph`: ConceptNet over KGSF's concept vocabulary (GCN).
* :func:`load_concept_vocab` / :func:`load_stopwords`: the concept map and the stopword list.

The release's DBpedia pickles are read through their JSON conversion in the cache
(:func:`datasets_scripts.paths.converted_pickles_dir`); nothing is unpickled here.
"""
from __future__ import annotations

import csv
import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import torch

from modeling_kgsf.processing_kgsf import DBpediaEntities

from . import paths

N_ENTITY = 64362  # KGSF entity ids 0..64361
N_CONCEPT = 29309  # concept ids 1..29308, 0 = padding node
SELF_LOOP_RELATION = 185  # KGSF's relation id for self-loops
RELATION_MIN_COUNT = 1000  # the reference keeps relations seen more than this many times...
REFERENCE_HOPS = 2  # ...in an edge list that its hop loop builds twice
NAMING_MIN_MATCHED_EDGES = 20  # a relation is named only from at least this many UniCRS-matched edges
NAMING_MIN_AGREEMENT = 0.5  # ...whose majority name covers at least this share of them


PathLike = str | os.PathLike | None


@dataclass
class ItemGraph:
    """DBpedia item graph: ``edge_index[0]`` = source, ``edge_index[1]`` = target (PyG convention)."""

    edge_index: torch.Tensor  # (2, E) long
    edge_type: torch.Tensor  # (E,) long, relation ids 0..num_relations-1
    num_nodes: int
    num_relations: int
    kgsf_relation_ids: list[int]  # new relation id -> KGSF's original relation id
    relation_names: list[str | None]  # new relation id -> DBpedia property name (best effort) or None
    relation_name_coverage: dict = field(default_factory=dict)  # statistics of the naming


@dataclass
class WordGraph:
    """ConceptNet word graph over concept ids (0 = padding node, never connected)."""

    edge_index: torch.Tensor  # (2, E) long, both directions
    num_nodes: int
    statistics: dict = field(default_factory=dict)


def _read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def load_dbpedia(data_dir: PathLike = None, cache_dir: PathLike = None) -> DBpediaEntities:
    """Read the entity map, the movie list and the ReDial movie table."""
    converted = paths.converted_pickles_dir(data_dir, cache_dir)
    uri_to_entity = {uri: int(entity) for uri, entity in _read_json(converted / "entity2entityId.json").items()}
    entity_to_uri = [""] * (max(uri_to_entity.values()) + 1)
    for uri, entity in uri_to_entity.items():
        entity_to_uri[entity] = uri
    item_entity_ids = sorted(set(int(entity) for entity in _read_json(converted / "movie_ids.json")))

    # ReDial movieId -> URI (None when the movie has no DBpedia page: then the release keys the
    # entity by the movieId itself, as the reference's `entity2entityId[int(movie)]`).
    movie_id_to_entity = {}
    for movie_id, uri in _read_json(converted / "id2entity.json").items():
        key = uri if uri is not None else movie_id
        if key in uri_to_entity:
            movie_id_to_entity[movie_id] = uri_to_entity[key]

    movie_id_to_title, movie_id_to_mentions = {}, {}
    with open(paths.data_file(paths.MOVIES_CSV_FILE, data_dir), encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            movie_id_to_title[row["movieId"]] = row["movieName"]
            movie_id_to_mentions[row["movieId"]] = int(row["nbMentions"] or 0)
    return DBpediaEntities(uri_to_entity, entity_to_uri, item_entity_ids, movie_id_to_entity, movie_id_to_title, movie_id_to_mentions)


def _reference_relation_set(triples: list[tuple[int, int, int]], num_nodes: int, min_count: int = RELATION_MIN_COUNT) -> list[int]:
    """KGSF relation ids the reference keeps, in the order its edge list first meets them.

    The reference's ``_edge_list(kg, n_entity, hop=2)`` lists, per entity in id order, a self-loop
    then both directions of each triple, and does so twice (hop loop); it keeps relations seen
    more than 1000 times in that list. The counts are reproduced here without building it.
    """
    edges_per_relation = Counter(relation for _, relation, _ in triples)
    counts = {relation: REFERENCE_HOPS * 2 * count for relation, count in edges_per_relation.items()}
    counts[SELF_LOOP_RELATION] = counts.get(SELF_LOOP_RELATION, 0) + REFERENCE_HOPS * num_nodes
    order = [SELF_LOOP_RELATION]  # entity 0's self-loop comes first
    for _, relation, _ in triples:  # triples are sorted by head
        if relation not in order:
            order.append(relation)
    return [relation for relation in order if counts.get(relation, 0) > min_count]


def _name_relations(data_dir: PathLike, entities: DBpediaEntities, edges_by_relation: dict[int, set]) -> tuple[dict[int, str], dict]:
    """Name KGSF relation ids by matching (head URI, tail URI) edges with UniCRS's named KG."""
    try:
        unicrs_kg = _read_json(paths.data_file(paths.UNICRS_KG_FILE, data_dir))
        unicrs_entities = _read_json(paths.data_file(paths.UNICRS_ENTITY2ID_FILE, data_dir))
        unicrs_relations = _read_json(paths.data_file(paths.UNICRS_RELATION2ID_FILE, data_dir))
    except FileNotFoundError as error:
        return {}, {"error": str(error)}
    uri_of = {int(entity): uri for uri, entity in unicrs_entities.items()}
    relation_name_of = {int(relation): name.strip("<>").rsplit("/", 1)[-1] for name, relation in unicrs_relations.items()}
    names_of_pair: dict[tuple[str, str], set[str]] = defaultdict(set)
    for head, relations_and_tails in unicrs_kg.items():
        for relation, tail in relations_and_tails:
            head_uri, tail_uri = uri_of.get(int(head)), uri_of.get(int(tail))
            if head_uri and tail_uri:
                names_of_pair[(head_uri, tail_uri)].add(relation_name_of[int(relation)])

    names, coverage = {}, {}
    for relation, edges in edges_by_relation.items():
        if relation == SELF_LOOP_RELATION:
            names[relation] = "self_loop"
            coverage[relation] = {"edges": len(edges), "matched": len(edges), "agreement": 1.0}
            continue
        votes = Counter()
        matched = 0
        for head, tail in edges:
            pair = (entities.entity_to_uri[head], entities.entity_to_uri[tail])
            found = names_of_pair.get(pair)
            if found:
                matched += 1
                votes.update(found)
        name, count = votes.most_common(1)[0] if votes else (None, 0)
        if matched >= NAMING_MIN_MATCHED_EDGES and count / matched >= NAMING_MIN_AGREEMENT:
            names[relation] = name
            coverage[relation] = {"edges": len(edges), "matched": matched, "agreement": round(count / matched, 3)}
        else:
            coverage[relation] = {"edges": len(edges), "matched": matched, "agreement": round(count / matched, 3) if matched else None}
    return names, coverage


def load_item_graph(
    data_dir: PathLike = None,
    cache_dir: PathLike = None,
    entities: DBpediaEntities | None = None,
    relation_min_count: int = RELATION_MIN_COUNT,
) -> ItemGraph:
    """DBpedia graph with the reference's filtering, as ``edge_index``/``edge_type`` tensors.

    Self-loop per entity, both directions of each triple (triples that are self-loops or use
    relation 185 are dropped, as the reference), only the relations the reference keeps,
    renumbered 0..R-1 in the reference's order. Each edge appears once. One node per entity of
    the entity map (64,362 for the release).
    """
    entities = entities or load_dbpedia(data_dir, cache_dir)
    num_nodes = entities.num_entities
    subkg = _read_json(paths.converted_pickles_dir(data_dir, cache_dir) / "subkg.json")
    # Ordered by head id, each head's triples in stored order: the order the reference walks them.
    triples = sorted(
        ((int(head), int(relation), int(tail)) for head, relations_and_tails in subkg.items() for relation, tail in relations_and_tails),
        key=lambda triple: triple[0],
    )
    # The reference's own filter: drop self-pointing triples and explicit self-loop triples.
    kept_triples = [(h, r, t) for h, r, t in triples if h != t and r != SELF_LOOP_RELATION]
    kept_relations = _reference_relation_set(kept_triples, num_nodes, relation_min_count)
    new_id = {relation: index for index, relation in enumerate(kept_relations)}

    edges_by_relation: dict[int, set] = defaultdict(set)
    edges_by_relation[SELF_LOOP_RELATION] = {(entity, entity) for entity in range(num_nodes)}
    for head, relation, tail in kept_triples:
        if relation in new_id:
            edges_by_relation[relation].add((head, tail))
            edges_by_relation[relation].add((tail, head))

    sources, targets, types = [], [], []
    for relation in kept_relations:
        for head, tail in sorted(edges_by_relation[relation]):
            sources.append(head)
            targets.append(tail)
            types.append(new_id[relation])
    names, coverage = _name_relations(data_dir, entities, edges_by_relation)
    named_edges = sum(len(edges_by_relation[r]) for r in kept_relations if r in names)
    return ItemGraph(
        edge_index=torch.tensor([sources, targets], dtype=torch.long),
        edge_type=torch.tensor(types, dtype=torch.long),
        num_nodes=num_nodes,
        num_relations=len(kept_relations),
        kgsf_relation_ids=kept_relations,
        relation_names=[names.get(relation) for relation in kept_relations],
        relation_name_coverage={
            "named_relations": sum(relation in names for relation in kept_relations),
            "named_edge_share": round(named_edges / max(1, len(sources)), 4),
            "per_relation": {relation: coverage.get(relation) for relation in kept_relations},
        },
    )


def load_concept_vocab(data_dir: PathLike = None) -> dict[str, int]:
    """KGSF's concept map ``key2index_3rd.json``: word -> concept id (1..29308)."""
    return {word: int(index) for word, index in _read_json(paths.data_file(paths.CONCEPT2INDEX_FILE, data_dir)).items()}


def load_stopwords(data_dir: PathLike = None) -> set[str]:
    """KGSF's stopword list (one word a line)."""
    with open(paths.data_file(paths.STOPWORDS_FILE, data_dir), encoding="utf-8") as handle:
        return {line.strip() for line in handle if line.strip()}


def load_word_graph(data_dir: PathLike = None, concept_vocab: dict[str, int] | None = None, stopwords: set[str] | None = None) -> WordGraph:
    """ConceptNet edges mapped onto KGSF concept ids, undirected, stopword nodes removed.

    As the reference's ``concept_edge_list4GCN``: ``Relation\\tword1\\tword2`` lines, each word cut
    at ``/`` and looked up in ``key2index_3rd.json``; an edge is kept when both ends are concepts
    and neither is a stopword; both directions, no duplicates. Self-pairs are dropped (GCNConv adds
    its own self-loops).
    """
    concept_vocab = concept_vocab if concept_vocab is not None else load_concept_vocab(data_dir)
    stopwords = stopwords if stopwords is not None else load_stopwords(data_dir)
    path = paths.data_file(paths.CONCEPTNET_EDGES_FILE, data_dir)
    pairs: set[tuple[int, int]] = set()
    lines = outside_vocab = stopword_edges = malformed = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 3:
                malformed += 1
                continue
            lines += 1
            word0, word1 = fields[1].split("/")[0], fields[2].split("/")[0]
            if word0 not in concept_vocab or word1 not in concept_vocab:
                outside_vocab += 1
                continue
            if word0 in stopwords or word1 in stopwords:
                stopword_edges += 1
                continue
            concept0, concept1 = concept_vocab[word0], concept_vocab[word1]
            if concept0 != concept1:
                pairs.add((concept0, concept1))
                pairs.add((concept1, concept0))
    ordered = sorted(pairs)
    edge_index = torch.tensor([[a for a, _ in ordered], [b for _, b in ordered]], dtype=torch.long).reshape(2, -1)
    connected = set(edge_index[0].tolist())
    return WordGraph(
        edge_index=edge_index,
        num_nodes=max(concept_vocab.values(), default=0) + 1,  # 29,309 for key2index_3rd.json
        statistics={
            "edge_lines": lines,
            "malformed_lines": malformed,
            "edges_outside_concept_vocab": outside_vocab,
            "edges_touching_stopwords": stopword_edges,
            "directed_edges": len(ordered),
            "connected_concepts": len(connected),
        },
    )
