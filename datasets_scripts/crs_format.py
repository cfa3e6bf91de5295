"""A generic conversational-recommendation dataset format, and its loader.

A dataset is a folder (``docs/CRS_FORMAT.md`` is the user's guide)::

    my_dataset/
      dataset.json        manifest: name, split files, item/KG files, options (all optional but "name")
      items.jsonl         one item a line: {"id": "tt0111161", "name": "The Shawshank Redemption (1994)",
                          "entity": "<http://dbpedia.org/resource/The_Shawshank_Redemption>"}
      kg.tsv              item graph triples, "head<TAB>relation<TAB>tail" (or kg.jsonl: {"head", "relation", "tail"})
      entities.jsonl      optional: {"id": ..., "name": ..., "aliases": [...]}; when present, the list of KG nodes
      word_graph.tsv      optional word graph, "word<TAB>word" or "relation<TAB>word<TAB>word" lines
      train.jsonl, validation.jsonl, test.jsonl
                          one conversation a line: {"conversation_id": "c1", "turns": [
                              {"role": "seeker", "text": "I loved @tt0111161", "items": ["tt0111161"], "entities": ["Tim Robbins"]},
                              {"role": "recommender", "text": "Then try @tt0068646", "items": ["tt0068646"]}]}

Processing is ReDial's (:mod:`datasets_scripts.redial`): turns tokenised with :class:`KGSFTokenizer`
(``@<item id>`` is one token, the item's placeholder), consecutive turns of one role merged, one row
per recommender turn with an earlier turn, the same row schema. A turn's items are its ``items``
plus the items whose placeholder it writes; its entities are its items' nodes, its ``entities``
(node ids or names) and, with ``"link_entities": true``, the names the entity linker finds in its text.

* :func:`load_crs_dataset` -> ``(resources, DatasetDict, statistics)``, the resources shaped like
  :func:`redial.load_resources`'s (so training, saving, the pipeline and the CLI work unchanged);
* :func:`validate_dataset` / ``python -m datasets_scripts.crs_format DIR``: check a folder and print
  its statistics. Every problem raises :class:`CRSFormatError` naming the file, the line and the turn
  (:func:`location`: 1-based, ``FILE, line N, turn K``) and the fix; the command prints it as one
  line ``error: ...`` (exit code 1); an empty split file is one. ``@`` tokens that are not item ids
  are warnings, with their file, line and turn (``statistics["warnings"]``, the first
  :data:`MAX_WARNINGS`); blank lines are skipped, counted (``<split>.blank_lines_skipped``) and warned
  about once a file.

Node ids: items first (item index = entity id), then the other nodes (entities file order, else
first appearance in the triples). Relations: ``self_loop`` = 0, then by decreasing triple count.
Vocabulary: the base tokenizer's tokens (when fine-tuning a model, its vocabulary keeps its ids),
the turn separator ``_split_``, the training split's tokens by decreasing count, then every item
placeholder.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict

from modeling_kgsf.tokenization_kgsf import SPECIAL_TOKENS, TURN_SEPARATOR, KGSFTokenizer, word_tokenize

from . import kg, paths
from modeling_kgsf.linking_kgsf import name_from_uri
from modeling_kgsf.processing_kgsf import DBpediaEntities, append_turn, build_linker, new_statistics, unique_in_order

from .redial import ROW_FEATURES, SPLITS, KGSFResources, genre_entities, rows_from_turns, vocab_masks

MANIFEST_FILE = "dataset.json"
FORMAT_VERSION = 1
DEFAULT_RECOMMENDER_ROLES = ("recommender", "system", "assistant", "bot", "agent", "wizard")
DEFAULT_SEEKER_ROLES = ("seeker", "user", "human", "customer", "apprentice")
SELF_LOOP = "self_loop"
ITEM_ID_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")  # what a placeholder "@<id>" can hold as one token
_PLACEHOLDER = re.compile(r"^@([A-Za-z0-9_]+)$")

PathLike = str | os.PathLike | None


class CRSFormatError(ValueError):
    """A dataset folder that does not follow the generic CRS format (the message says where and how to fix it)."""


@dataclass
class CRSManifest:
    """``dataset.json``. Paths are relative to the dataset folder."""

    name: str
    folder: Path
    description: str = ""
    splits: dict[str, str] = field(default_factory=lambda: {split: f"{split}.jsonl" for split in SPLITS})
    items: str = "items.jsonl"
    kg: str = "kg.tsv"
    entities: str | None = None  # optional entities file (authoritative node list when given)
    # "conceptnet": KGSF's ConceptNet, concept map and stopwords from the data directory (English);
    # a file name: your own word graph; "none": no word graph (train with use_conceptnet=false)
    word_graph: str = "conceptnet"
    stopwords: str | None = None  # a word a line; default: KGSF's list with "conceptnet", none otherwise
    link_entities: bool = True  # find entity and item names in the text with the dictionary linker
    recommender_roles: list[str] = field(default_factory=lambda: list(DEFAULT_RECOMMENDER_ROLES))
    seeker_roles: list[str] = field(default_factory=lambda: list(DEFAULT_SEEKER_ROLES))
    relation_min_count: int = 1  # relations with fewer triples are dropped
    min_word_count: int = 1  # training-split words seen fewer times are left out of the vocabulary
    strict: bool = True  # unknown turn entities are errors (False: they are skipped and counted)

    def path(self, name: str) -> Path:
        return self.folder / name


def read_manifest(dataset_dir: str | os.PathLike) -> CRSManifest:
    """Read and check ``dataset.json`` of a dataset folder."""
    folder = Path(dataset_dir)
    if not folder.is_dir():
        raise CRSFormatError(f"dataset folder not found: {folder}")
    path = folder / MANIFEST_FILE
    if not path.exists():
        raise CRSFormatError(f"{folder} has no {MANIFEST_FILE}; write at least {{\"name\": \"my-dataset\"}} (docs/CRS_FORMAT.md)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CRSFormatError(f"{path}: not JSON ({error})") from error
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise CRSFormatError(f"{path}: needs a string \"name\"")
    version = data.pop("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise CRSFormatError(f"{path}: format_version {version} is not supported (this kgsf reads {FORMAT_VERSION})")
    known = set(CRSManifest.__dataclass_fields__) - {"folder"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CRSFormatError(f"{path}: unknown keys {unknown} (known: {sorted(known)})")
    manifest = CRSManifest(folder=folder, **data)
    missing_splits = [split for split in SPLITS if split not in manifest.splits]
    if missing_splits:
        raise CRSFormatError(f"{path}: \"splits\" must name a file for each of {list(SPLITS)} (missing {missing_splits})")
    for name in [*manifest.splits.values(), manifest.items, manifest.kg, *filter(None, [manifest.entities, manifest.stopwords])]:
        if not manifest.path(name).exists():
            raise CRSFormatError(f"{path}: file {name} not found in {folder}")
    if manifest.word_graph not in ("conceptnet", "none") and not manifest.path(manifest.word_graph).exists():
        raise CRSFormatError(f"{path}: word_graph must be \"conceptnet\", \"none\" or a file in {folder}; {manifest.word_graph} not found")
    return manifest


# ------------------------------------------------------------------------------------------------
# Items, entities, triples
# ------------------------------------------------------------------------------------------------
def location(path: PathLike, number: int, turn: int | None = None) -> str:
    """Where a record is, as every error and warning says it: ``FILE, line N[, turn K]`` (1-based;
    for a ``.json`` file holding a list, ``record N``: its N-th element)."""
    unit = "record" if Path(path).suffix == ".json" else "line"
    return f"{path}, {unit} {number}" + (f", turn {turn}" if turn is not None else "")


def _json_error(where: str, text: str, error: json.JSONDecodeError) -> CRSFormatError:
    """A one-line error for a JSON text that does not parse; a text that ends before its JSON is complete is "cut off"."""
    if error.msg.startswith("Unterminated string") or error.pos >= len(text.rstrip()):
        truncated = "the line or the file" if ", line " in where else "the file"
        return CRSFormatError(f"{where} is cut off: its JSON ends before it is complete (was {truncated} truncated?)")
    line = f"line {error.lineno}, " if "\n" in text.strip() else ""
    return CRSFormatError(f"{where}: malformed JSON ({error.msg.removesuffix(' at')} at {line}column {error.colno})")


def read_json(path: PathLike):
    """The JSON value of a whole file; :class:`CRSFormatError` when it does not parse."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise _json_error(str(path), text, error) from None


def read_json_records(path: PathLike, blank_lines: list[int] | None = None) -> list[tuple[int, object]]:
    """(line number, record) of a .jsonl file, or (position, element) of a .json file holding a list
    (1-based); a line that is not JSON raises :class:`CRSFormatError`. Blank lines are skipped (their
    numbers appended to ``blank_lines`` when given)."""
    path = Path(path)
    if path.suffix == ".json":
        data = read_json(path) if path.read_text(encoding="utf-8").strip() else []
        if not isinstance(data, list):
            raise CRSFormatError(f"{path}: a .json file must hold a list (got {type(data).__name__})")
        return list(enumerate(data, start=1))
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                if blank_lines is not None:
                    blank_lines.append(number)
                continue
            try:
                records.append((number, json.loads(text)))
            except json.JSONDecodeError as error:
                raise _json_error(location(path, number), text, error) from None
    return records


@dataclass
class Item:
    id: str
    name: str | None
    node: str  # KG node key: the "entity" field, else the item id


def read_items(path: Path) -> list[Item]:
    items, seen = [], set()
    for line, record in read_json_records(path):
        if not isinstance(record, dict) or "id" not in record:
            raise CRSFormatError(f"{location(path, line)}: an item needs an \"id\" (e.g. {{\"id\": \"tt0111161\", \"name\": \"...\"}})")
        item_id = str(record["id"])
        if not ITEM_ID_PATTERN.match(item_id):
            raise CRSFormatError(f"{location(path, line)}: item id {item_id!r} may hold only letters, digits and _ "
                                 "(it is written \"@<id>\" in the text); map your ids to such keys")
        if item_id in seen:
            raise CRSFormatError(f"{location(path, line)}: item id {item_id!r} is listed twice")
        seen.add(item_id)
        name = record.get("name")
        items.append(Item(item_id, str(name) if name else None, str(record.get("entity") or item_id)))
    if not items:
        raise CRSFormatError(f"{path}: no items (a recommender needs a list of items to rank)")
    nodes = Counter(item.node for item in items)
    shared = [node for node, count in nodes.items() if count > 1]
    if shared:
        raise CRSFormatError(f"{path}: several items are the same KG node, e.g. {shared[0]!r}; each item needs its own node")
    return items


def read_entities(path: Path) -> dict[str, list[str]]:
    """Entity key -> names (the "name" then the "aliases")."""
    entities: dict[str, list[str]] = {}
    for line, record in read_json_records(path):
        if isinstance(record, str):
            record = {"id": record}
        if not isinstance(record, dict) or "id" not in record:
            raise CRSFormatError(f"{location(path, line)}: an entity needs an \"id\"")
        names = ([record["name"]] if record.get("name") else []) + list(record.get("aliases") or [])
        entities[str(record["id"])] = [str(name) for name in names]
    return entities


def read_triples(path: Path) -> list[tuple[str, str, str, int]]:
    """(head, relation, tail, line) from a TSV (``head\\trelation\\ttail``) or a JSON(L) of {head, relation, tail} / [h, r, t]."""
    triples = []
    if path.suffix in (".tsv", ".txt", ".csv"):
        delimiter = "," if path.suffix == ".csv" else "\t"
        with open(path, encoding="utf-8", newline="") as handle:
            for line, fields in enumerate(csv.reader(handle, delimiter=delimiter), start=1):
                if not fields or (len(fields) == 1 and not fields[0].strip()) or fields[0].startswith("#"):
                    continue
                if len(fields) != 3:
                    raise CRSFormatError(f"{path}, line {line}: expected head, relation, tail separated by {'commas' if delimiter == ',' else 'tabs'}, got {len(fields)} fields")
                triples.append((fields[0].strip(), fields[1].strip(), fields[2].strip(), line))
    else:
        for line, record in read_json_records(path):
            if isinstance(record, dict) and {"head", "relation", "tail"} <= set(record):
                head, relation, tail = record["head"], record["relation"], record["tail"]
            elif isinstance(record, list) and len(record) == 3:
                head, relation, tail = record
            else:
                raise CRSFormatError(f"{location(path, line)}: a triple is {{\"head\", \"relation\", \"tail\"}} or [head, relation, tail]")
            triples.append((str(head), str(relation), str(tail), line))
    if not triples:
        raise CRSFormatError(f"{path}: the KG is empty. KGSF's recommender encodes items with an R-GCN over this graph; give at least "
                             "the item-attribute triples you have (e.g. item<TAB>genre<TAB>Comedy)")
    return triples


def relation_name(relation: str) -> str:
    """Short name of a relation: ``<http://dbpedia.org/ontology/genre>`` -> ``genre``; other strings as given."""
    stripped = relation.strip("<>")
    return stripped.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1] if "/" in stripped or "#" in stripped else relation


def _readable_name(key: str) -> str | None:
    """A linkable name for a node key without an explicit name: DBpedia URIs are named by the
    linker itself; an opaque id (digits, "Q42", "m.0abc") gets none; anything else is its own name."""
    if name_from_uri(key) is not None or re.fullmatch(r"[A-Za-z]?[.\d_:-]*\d[.\w:-]*", key) or re.match(r"^\w+:", key):
        return None
    return key


@dataclass
class CRSGraph:
    entities: DBpediaEntities
    item_graph: kg.ItemGraph
    item_ids: list[str]  # item index -> item id
    node_of_name: dict[str, int]  # lower-cased name or key -> node id (for turn "entities")
    statistics: dict


def build_item_graph(manifest: CRSManifest) -> CRSGraph:
    """Nodes, relations and the R-GCN edge list (self-loop per node + both directions of each triple)."""
    items = read_items(manifest.path(manifest.items))
    triples = read_triples(manifest.path(manifest.kg))
    declared = read_entities(manifest.path(manifest.entities)) if manifest.entities else None
    keys, node_of_key, triples = _number_nodes(manifest, items, triples, declared)
    kept, names, ordered, relation_counts = _relation_edges(triples, node_of_key, len(keys), manifest.relation_min_count)

    item_node_ids = list(range(len(items)))
    entity_names = _entity_names(node_of_key, declared, len(items))
    entities = DBpediaEntities(
        uri_to_entity=dict(node_of_key),
        entity_to_uri=list(keys),
        item_entity_ids=item_node_ids,
        movie_id_to_entity={item.id: index for index, item in enumerate(items)},
        movie_id_to_title={item.id: item.name for item in items if item.name},
        entity_names=entity_names,
    )
    node_of_name = _node_of_name(node_of_key, entity_names, items)
    item_graph = kg.ItemGraph(
        edge_index=torch.tensor([[e[0] for e in ordered], [e[1] for e in ordered]], dtype=torch.long),
        edge_type=torch.tensor([e[2] for e in ordered], dtype=torch.long),
        num_nodes=len(keys),
        num_relations=len(kept) + 1,
        kgsf_relation_ids=list(range(len(kept) + 1)),
        relation_names=names,
    )
    statistics = {
        "items": len(items),
        "items_with_name": sum(bool(item.name) for item in items),
        "nodes": len(keys),
        "triples": len(triples),
        "relations_in_file": len(relation_counts),
        "relations_kept": len(kept),
        "edges": len(ordered),
        "items_in_triples": len({node_of_key[end] for h, _, t, _ in triples for end in (h, t)} & set(item_node_ids)),
    }
    return CRSGraph(entities, item_graph, [item.id for item in items], node_of_name, statistics)


def _number_nodes(manifest: CRSManifest, items: list[Item], triples: list,
                  declared: dict[str, list[str]] | None) -> tuple[list[str], dict[str, int], list]:
    """(node keys, key -> node id, triples with item ids replaced by node keys): items first, then the declared
    entities (every triple end must be one) or, without an entities file, the triple ends in order."""
    keys = [item.node for item in items]
    node_of_key = {key: index for index, key in enumerate(keys)}
    # Triples may name an item by its item id as well as by its node key.
    node_of_item_id = {item.id: item.node for item in items if item.id not in node_of_key}
    triples = [(node_of_item_id.get(head, head), relation, node_of_item_id.get(tail, tail), line) for head, relation, tail, line in triples]

    def add_node(key: str) -> None:
        if key not in node_of_key:
            node_of_key[key] = len(keys)
            keys.append(key)

    if declared is not None:
        for key in declared:
            add_node(key)
        unknown = [(line, end) for head, _, tail, line in triples for end in (head, tail) if end not in node_of_key]
        if unknown:
            examples = ", ".join(f"{end!r} (line {line})" for line, end in unknown[:5])
            raise CRSFormatError(f"{manifest.path(manifest.kg)}: {len(unknown)} triple ends are neither items nor entities of "
                                 f"{manifest.entities}, e.g. {examples}. Add them to {manifest.entities} or drop those triples.")
    else:
        for head, _, tail, _ in triples:
            add_node(head)
            add_node(tail)
    return keys, node_of_key, triples


def _relation_edges(triples: list, node_of_key: dict[str, int], num_nodes: int, min_count: int):
    """(kept relations by id - 1, relation names by id, edges ``(head, tail, relation)`` sorted, relation -> count).

    Relation 0 is the self-loop; the others are those seen ``min_count`` times or more, most frequent first;
    names are short (:func:`relation_name`) unless two collide."""
    relation_counts = Counter(relation for head, relation, tail, _ in triples if head != tail and relation != SELF_LOOP)
    kept = [relation for relation, count in sorted(relation_counts.items(), key=lambda rc: (-rc[1], rc[0])) if count >= min_count]
    relation_id = {SELF_LOOP: 0, **{relation: index + 1 for index, relation in enumerate(kept)}}
    edges = {(node, node, 0) for node in range(num_nodes)}
    for head, relation, tail, _ in triples:
        if relation in relation_id and head != tail and relation != SELF_LOOP:
            h, t, r = node_of_key[head], node_of_key[tail], relation_id[relation]
            edges.add((h, t, r))
            edges.add((t, h, r))
    ordered = sorted(edges, key=lambda edge: (edge[2], edge[0], edge[1]))
    names = [SELF_LOOP] + [relation_name(relation) for relation in kept]
    if len(set(names)) != len(names):  # short names collide: keep the full ones
        names = [SELF_LOOP] + kept
    return kept, names, ordered, relation_counts


def _entity_names(node_of_key: dict[str, int], declared: dict[str, list[str]] | None, n_items: int) -> dict[int, list[str]]:
    """Node id -> its linkable names: the declared ones, else a non-item key's readable name."""
    entity_names: dict[int, list[str]] = {}
    for key, node in node_of_key.items():
        given = declared.get(key) if declared else None
        if given:
            entity_names[node] = given
        elif node >= n_items and (name := _readable_name(key)):
            entity_names[node] = [name]
    return entity_names


def _node_of_name(node_of_key: dict[str, int], entity_names: dict[int, list[str]], items: list[Item]) -> dict[str, int]:
    """Lower-cased, space-collapsed key or name -> node id; node keys and names first, then item ids and names."""
    node_of_name = {}
    for key, node in node_of_key.items():
        for name in [key, *entity_names.get(node, [])]:
            node_of_name.setdefault(" ".join(name.lower().split()), node)
    for index, item in enumerate(items):
        for name in filter(None, [item.id, item.name]):
            node_of_name.setdefault(" ".join(name.lower().split()), index)
    return node_of_name


# ------------------------------------------------------------------------------------------------
# Word graph
# ------------------------------------------------------------------------------------------------
def build_word_graph(manifest: CRSManifest, data_dir: PathLike = None) -> tuple[kg.WordGraph, dict[str, int], set[str]]:
    """(word graph, concept vocabulary, stopwords) as the manifest's ``word_graph`` says."""
    stopwords = None
    if manifest.stopwords:
        stopwords = {line.strip() for line in manifest.path(manifest.stopwords).read_text(encoding="utf-8").splitlines() if line.strip()}
    if manifest.word_graph == "conceptnet":
        concept_vocab = kg.load_concept_vocab(data_dir)
        stopwords = stopwords if stopwords is not None else kg.load_stopwords(data_dir)
        return kg.load_word_graph(data_dir, concept_vocab, stopwords), concept_vocab, stopwords
    stopwords = stopwords or set()
    if manifest.word_graph == "none":
        return kg.WordGraph(torch.zeros(2, 0, dtype=torch.long), 1, {"directed_edges": 0}), {}, stopwords
    path = manifest.path(manifest.word_graph)
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = [field_.strip() for field_ in line.rstrip("\n").split("\t")]
            if not any(fields):
                continue
            if len(fields) not in (2, 3):
                raise CRSFormatError(f"{path}, line {line_number}: expected \"word<TAB>word\" or \"relation<TAB>word<TAB>word\"")
            word0, word1 = (fields[-2].lower(), fields[-1].lower())
            if word0 != word1 and word0 not in stopwords and word1 not in stopwords:
                pairs.append((word0, word1))
    concept_vocab = {word: index for index, word in enumerate(sorted({w for pair in pairs for w in pair}), start=1)}
    edge_set = {(concept_vocab[a], concept_vocab[b]) for a, b in pairs} | {(concept_vocab[b], concept_vocab[a]) for a, b in pairs}
    ordered = sorted(edge_set)
    edge_index = torch.tensor([[a for a, _ in ordered], [b for _, b in ordered]], dtype=torch.long).reshape(2, -1)
    graph = kg.WordGraph(edge_index, len(concept_vocab) + 1, {"directed_edges": len(ordered), "concepts": len(concept_vocab)})
    return graph, concept_vocab, stopwords


# ------------------------------------------------------------------------------------------------
# Conversations
# ------------------------------------------------------------------------------------------------
def blank_lines_note(path: PathLike, blank_lines: list[int]) -> str:
    """The warning for the blank lines skipped in a file: how many, and the first of them."""
    first = ", ".join(str(number) for number in blank_lines[:3]) + (", ..." if len(blank_lines) > 3 else "")
    return f"{path}: {len(blank_lines)} blank line{'s' * (len(blank_lines) != 1)} skipped (line {first})"


def read_crs_conversations(path: Path, split: str = "", blank_lines: list[int] | None = None) -> list[dict]:
    """The conversations of a split file; a file without any (empty, or blank lines only) raises
    :class:`CRSFormatError`. Blank lines are skipped, their numbers appended to ``blank_lines``."""
    blank_lines = [] if blank_lines is None else blank_lines
    records = read_json_records(path, blank_lines)
    if not records:
        what = f"holds only {len(blank_lines)} blank line{'s' * (len(blank_lines) != 1)}" if blank_lines else "is empty"
        role = " (the training split also builds the vocabulary)" if split == "train" else ""
        raise CRSFormatError(f"{path}: the {split or 'split'} file {what}: no conversation{role}; write one conversation a line, "
                             "{\"turns\": [...]} (docs/CRS_FORMAT.md)")
    conversations = []
    for line, record in records:
        if not isinstance(record, dict) or not isinstance(record.get("turns"), list):
            raise CRSFormatError(f"{location(path, line)}: a conversation is {{\"conversation_id\": ..., \"turns\": [...]}}")
        record.setdefault("conversation_id", f"{path.stem}-{line}")
        record["_line"] = line
        conversations.append(record)
    return conversations


ROLES_FIX = "set \"recommender_roles\"/\"seeker_roles\" in dataset.json for other names"
MAX_WARNINGS = 20  # warnings kept in the statistics (the count is "unknown_movie_ids")


def checked_role(role, where: str, roles, fix: str = ROLES_FIX) -> str:
    """A turn's role, stripped and lower-cased; :class:`CRSFormatError` when it is missing or not in ``roles``."""
    if not isinstance(role, str) or not role.strip():
        raise CRSFormatError(f"{where}: the turn has no \"role\" (one of {sorted(roles)}; {fix})")
    if role.strip().lower() not in roles:
        raise CRSFormatError(f"{where}: unknown role {role!r} (known: {sorted(roles)}; {fix})")
    return role.strip().lower()


def checked_text(text, where: str, key: str = "text") -> str:
    """A turn's text: a string, or a list of tokens joined with spaces."""
    if isinstance(text, list) and all(isinstance(token, str) for token in text):  # pre-tokenised text
        return " ".join(text)
    if not isinstance(text, str):
        raise CRSFormatError(f"{where}: {key!r} must be a string or a list of strings, not {type(text).__name__}")
    return text


@dataclass
class _TurnReader:
    """Tokenises and links the turns of a conversation (one per file line) into merged turns."""

    manifest: CRSManifest
    graph: CRSGraph
    linker: object | None  # the entity linker, None when the manifest turns linking off
    stats: dict
    warnings: list[str] = field(default_factory=list)  # "@" tokens that are no item (the first MAX_WARNINGS)
    notes: list[str] = field(default_factory=list)  # other warnings (blank lines skipped)

    def __post_init__(self):
        self.recommender_roles = {role.lower() for role in self.manifest.recommender_roles}
        self.roles = self.recommender_roles | {role.lower() for role in self.manifest.seeker_roles}
        self.item_index = {item_id: index for index, item_id in enumerate(self.graph.item_ids)}

    def is_recommender(self, role: str) -> bool:
        return role in self.recommender_roles

    def _entity(self, value, where: str) -> int | None:
        node = self.graph.entities.uri_to_entity.get(str(value))
        if node is None:
            node = self.graph.node_of_name.get(" ".join(str(value).lower().split()))
        if node is None:
            if self.manifest.strict:
                raise CRSFormatError(f"{where}: entity {value!r} is not a KG node, an entity name or an item "
                                     "(add it to the KG/entities file, or set \"strict\": false to skip unknown entities)")
            self.stats["unknown_entities_skipped"] = self.stats.get("unknown_entities_skipped", 0) + 1
        return node

    def _item(self, value, where: str) -> int:
        if str(value) in self.item_index:
            return self.item_index[str(value)]
        node = self.graph.entities.uri_to_entity.get(str(value))
        if node is not None and node < len(self.graph.item_ids):  # an item's "entity" written where its id belongs
            item_id = self.graph.item_ids[node]
            raise CRSFormatError(f"{where}: item {value!r} is the \"entity\" of item {item_id!r} in {self.manifest.items}; "
                                 f"\"items\" holds item ids: write {item_id!r} (the converters map URIs to ids, docs/CRS_FORMAT.md)")
        raise CRSFormatError(f"{where}: item id {value!r} is not in {self.manifest.items}")

    def _warn_placeholder(self, token: str, where: str) -> None:
        self.stats["unknown_movie_ids"] += 1
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(f"{where}: {token!r} is written like an item placeholder but {token[1:]!r} is not an item id of "
                                 f"{self.manifest.items} (write \"@<item id>\" only for items; otherwise drop the \"@\")")

    def turns(self, conversation: dict, path: Path) -> list[dict]:
        merged: list[dict] = []
        for position, turn in enumerate(conversation["turns"], start=1):
            where = location(path, conversation["_line"], position)
            if not isinstance(turn, dict):
                raise CRSFormatError(f"{where}: a turn is {{\"role\": ..., \"text\": ...}}")
            role = checked_role(turn.get("role"), where, self.roles)
            text = checked_text(turn.get("text", ""), where)
            self.stats["messages"] += 1
            tokens = word_tokenize(text)
            items = [self._item(value, where) for value in turn.get("items") or []]
            for token in tokens:
                placeholder = _PLACEHOLDER.match(token)
                if placeholder:
                    if placeholder.group(1) in self.item_index:
                        items.append(self.item_index[placeholder.group(1)])
                        self.stats["mentions"]["movie_id"] += 1
                    else:
                        self._warn_placeholder(token, where)
            entities = [node for node in (self._entity(value, where) for value in turn.get("entities") or []) if node is not None]
            if self.linker is not None:
                mentions = self.linker.link(tokens)
                for mention in mentions:
                    if mention.kind != "movie_id":
                        self.stats["mentions"][mention.kind] += 1
                entities += [mention.entity_id for mention in mentions]
            turn_entities = unique_in_order([*items, *entities])
            self.stats["messages_with_linked_entity"] += bool(turn_entities)
            append_turn(merged, role, tokens, turn_entities, items)
        return merged


def build_vocabulary(token_lists, item_ids: list[str], base_vocab: dict[str, int] | None, min_count: int) -> dict[str, int]:
    """Token -> id: the base vocabulary's ids kept, then new training tokens by decreasing count, then item placeholders."""
    vocab = dict(base_vocab) if base_vocab else {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    vocab.setdefault(TURN_SEPARATOR, len(vocab))  # joins the context turns (redial.context_columns)
    counts = Counter(token for tokens in token_lists for token in tokens)
    for token, count in sorted(counts.items(), key=lambda tc: (-tc[1], tc[0])):
        if count >= min_count and token not in vocab:
            vocab[token] = len(vocab)
    for item_id in item_ids:
        vocab.setdefault(f"@{item_id}", len(vocab))
    return vocab


def _tokenizer(vocab: dict[str, int], cache_dir: PathLike) -> KGSFTokenizer:
    """A :class:`KGSFTokenizer` over ``vocab``, read from ``<cache>/crs/<hash of the vocabulary>/vocab.json``."""
    content = json.dumps(vocab, ensure_ascii=False)
    vocab_file = paths.resolve_cache_dir(cache_dir) / "crs" / hashlib.sha256(content.encode()).hexdigest()[:16] / "vocab.json"
    if not vocab_file.exists():
        vocab_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = vocab_file.with_suffix(".tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.replace(vocab_file)
    return KGSFTokenizer(vocab_file=str(vocab_file))


def load_crs_dataset(
    dataset_dir: str | os.PathLike,
    data_dir: PathLike = None,
    cache_dir: PathLike = None,
    base_tokenizer: KGSFTokenizer | None = None,
) -> tuple[KGSFResources, DatasetDict, dict]:
    """Load a dataset folder in the generic CRS format.

    ``base_tokenizer``: a model's tokenizer whose ids must be kept (fine-tuning); new training words
    are appended to it. ``data_dir`` is read only for ``"word_graph": "conceptnet"``.
    Returns ``(resources, splits, statistics)``; ``resources`` is a :class:`redial.KGSFResources`.
    """
    manifest = read_manifest(dataset_dir)
    graph = build_item_graph(manifest)
    word_graph, concept_vocab, stopwords = build_word_graph(manifest, data_dir)
    linker = build_linker(graph.entities, stopwords, concept_vocab, genre_entities(graph.item_graph, graph.entities))
    statistics = {"name": manifest.name, "description": manifest.description, "folder": str(manifest.folder.resolve()),
                  "format_version": FORMAT_VERSION, "graph": graph.statistics, "word_graph": word_graph.statistics}

    split_turns, split_stats = {}, {}
    for split in SPLITS:
        path = manifest.path(manifest.splits[split])
        stats = new_statistics()
        reader = _TurnReader(manifest, graph, linker if manifest.link_entities else None, stats)
        blank_lines: list[int] = []
        conversations = read_crs_conversations(path, split, blank_lines)
        stats["blank_lines_skipped"] = len(blank_lines)
        if blank_lines:
            reader.notes.append(blank_lines_note(path, blank_lines))
        split_turns[split] = [(conversation["conversation_id"], reader.turns(conversation, path)) for conversation in conversations]
        split_stats[split] = (stats, reader)

    base_vocab = base_tokenizer.vocab if base_tokenizer is not None else None
    vocab = build_vocabulary((turn["tokens"] for _, turns in split_turns["train"] for turn in turns), graph.item_ids, base_vocab, manifest.min_word_count)
    kg_word_vocab_mask, item_token_vocab_mask = vocab_masks(vocab, concept_vocab, stopwords, {f"@{item_id}" for item_id in graph.item_ids})
    resources = KGSFResources(graph.entities, graph.item_graph, word_graph, _tokenizer(vocab, cache_dir), concept_vocab, stopwords,
                              linker, kg_word_vocab_mask, item_token_vocab_mask, mask_agreement={})

    splits = {}
    items = set(graph.entities.item_entity_ids)
    for split in SPLITS:
        stats, reader = split_stats[split]
        rows = []
        for conversation_id, turns in split_turns[split]:
            rows.extend(rows_from_turns(turns, reader.is_recommender, str(conversation_id), resources, stats, items))
        if not rows:  # before Dataset.from_list, which fails on an empty list with a long traceback
            raise CRSFormatError(f"{manifest.path(manifest.splits[split])}: no recommender turn with an earlier turn, so no "
                                 f"example (recommender roles: {sorted(reader.recommender_roles)})")
        splits[split] = Dataset.from_list(rows, features=ROW_FEATURES)
        statistics[split] = stats
    statistics["vocabulary"] = {"size": len(vocab), "from_base_tokenizer": len(base_vocab) if base_vocab else 0,
                                "kg_words": int(kg_word_vocab_mask.sum()), "item_tokens": int(item_token_vocab_mask.sum())}
    notes = [note for split in SPLITS for note in split_stats[split][1].notes]  # blank lines skipped
    warnings = [warning for split in SPLITS for warning in split_stats[split][1].warnings]
    if notes or warnings:  # "@" tokens that are not items (their count per split is "unknown_movie_ids")
        statistics["warnings"] = notes + warnings[:MAX_WARNINGS]
    return resources, DatasetDict(splits), statistics


def validate_dataset(dataset_dir: str | os.PathLike, data_dir: PathLike = None, cache_dir: PathLike = None) -> dict:
    """Load a dataset folder (raising :class:`CRSFormatError` on the first problem) and return its statistics."""
    return load_crs_dataset(dataset_dir, data_dir, cache_dir)[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datasets_scripts.crs_format",
                                     description="Check a dataset folder in the generic CRS format and print its statistics.")
    parser.add_argument("dataset_dir")
    parser.add_argument("--data-dir", default=None, help="KGSF data (only for \"word_graph\": \"conceptnet\")")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    try:
        statistics = validate_dataset(args.dataset_dir, args.data_dir, args.cache_dir)
    except CRSFormatError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    warnings = statistics.pop("warnings", [])
    print(json.dumps(statistics, indent=2))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    unknown = sum(statistics[split]["unknown_movie_ids"] for split in SPLITS)
    if unknown > MAX_WARNINGS:  # the first MAX_WARNINGS are listed
        print(f"warning: {unknown - MAX_WARNINGS} more \"@\" tokens are not item ids (\"unknown_movie_ids\" per split)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
