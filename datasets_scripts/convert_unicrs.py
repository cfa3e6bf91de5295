"""UniCRS's and CRSLab's dataset folders -> a dataset folder in the generic CRS format.

Both ship dialogues whose turns carry their own links to a DBpedia sub-graph, the graph with its
own entity ids, and the items as entity ids. The converter reads the folder as it is shipped and
writes ``dataset.json``, ``items.jsonl`` (item id = the entity id as a string, ``entity`` = its
URI, ``name`` = how the dialogues name it, else the URI's name), ``entities.jsonl`` (every other
entity), ``kg.jsonl`` (relation names kept, self-loops dropped: the loader adds its own) and the
three splits. Item links in turns become item ids (a linked movie that is not an item stays an
entity; links outside the graph are dropped, as UniCRS and CRSLab drop them), and, unless
``--no-placeholders``, the text's mention of each linked item becomes its ``@<item id>``
placeholder where the text writes it as a title (:class:`~datasets_scripts.convert_crs.PlaceholderWriter`:
exact case, whole words, not part of a longer title or name, not a common word used as a word).
``conversion_report.json`` in the output counts every linked mention not written, by reason, with
example lines; a split without conversations is warned about.

UniCRS (github.com/wxl1999/UniCRS, ``data/<dataset>/``)::

    train_data_dbpedia.jsonl valid_data_dbpedia.jsonl test_data_dbpedia.jsonl
        a dialogue a line: a bare list of turns {"role": "SEEKER"|"RECOMMENDER", "text", "movie_link":
        [URI], "movie_name": [...], "entity_link": [URI]} (INSPIRED), or a ReDial conversation whose
        messages carry "movie": [URI], "movie_name", "entity": [URI] (ReDial; "@<movieId>" in the text)
    entity2id.json      {URI: entity id}
    relation2id.json    {relation: relation id}, with "self_loop"
    dbpedia_subkg.json  {head entity id: [[relation id, tail entity id], ...]}
    item_ids.json       [entity id, ...]; UniCRS's process.py writes it to src/data/<dataset>/
                        (--item-ids); without it the items are the movies the dialogues link

CRSLab (``data/dataset/<dataset>/<tokenizer>/``)::

    train_data.json valid_data.json test_data.json
        lists of {"conv_id", "dialog" (or "messages"): [{"role": "Seeker", "text", "movies" (or "movie"): [entity], "entity": [entity]}]}
    entity2id.json      {entity: entity id}
    dbpedia_subkg.json  {head id: [[relation id, tail id], ...]} (relations unnamed: "relation_<id>"),
                        or dbpedia_subkg.txt / entity_subkg.txt / cn-dbpedia.txt: head<TAB>relation<TAB>tail
    movie_ids.json      [entity id, ...] (or item_ids.json)
"""
from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from modeling_kgsf.linking_kgsf import name_from_uri

from .convert_crs import (
    _MOVIE_MENTION, REPORT_FILE, ItemMap, PlaceholderWriter, TurnConverter, _role_map, corpus_common_words, dialog_of, empty_output_warning,
    print_counts, turn_names, turn_texts, warn, write_jsonl, write_report,
)
from .crs_format import SELF_LOOP, SPLITS, CRSFormatError, Item, location, read_json, read_json_records, read_triples


@dataclass(frozen=True)
class Layout:
    """Where a layout keeps its files and how its turns name their fields (the first name present wins)."""

    name: str
    title: str
    splits: dict[str, tuple[str, ...]]  # generic split -> candidate file names
    item_ids: tuple[str, ...]
    kg: tuple[str, ...]
    dialog_keys: tuple[str, ...]
    items_key: tuple[str, ...]
    entities_key: tuple[str, ...]
    names_key: str | None


UNICRS = Layout(
    "unicrs", "UniCRS",
    {"train": ("train_data_dbpedia.jsonl",), "validation": ("valid_data_dbpedia.jsonl", "dev_data_dbpedia.jsonl"), "test": ("test_data_dbpedia.jsonl",)},
    item_ids=("item_ids.json",), kg=("dbpedia_subkg.json",), dialog_keys=("dialog", "messages"),
    items_key=("movie_link", "movie"), entities_key=("entity_link", "entity"), names_key="movie_name",
)
CRSLAB = Layout(
    "crslab", "CRSLab",
    {"train": ("train_data.json",), "validation": ("valid_data.json",), "test": ("test_data.json",)},
    item_ids=("movie_ids.json", "item_ids.json"), kg=("dbpedia_subkg.json", "dbpedia_subkg.txt", "entity_subkg.txt", "cn-dbpedia.txt"),
    dialog_keys=("dialog", "messages"), items_key=("movies", "movie"), entities_key=("entity",), names_key=None,
)
LAYOUTS = {layout.name: layout for layout in (UNICRS, CRSLAB)}


def _find(folder: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (folder / name).exists():
            return folder / name
    raise CRSFormatError(f"{folder}: no {what} ({' or '.join(names)})")


def read_entity_ids(path: Path) -> dict[int, str]:
    """``entity2id.json`` -> entity id -> entity key."""
    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(value, int) for value in data.values()):
        raise CRSFormatError(f"{path}: must map entities to integer ids, e.g. {{\"<http://dbpedia.org/resource/Inception>\": 12}}")
    keys: dict[int, str] = {}
    for key, entity_id in data.items():
        if entity_id in keys:
            raise CRSFormatError(f"{path}: entity id {entity_id} is given to both {keys[entity_id]!r} and {key!r}")
        keys[entity_id] = key
    return keys


def _relation_names(path: Path) -> dict[int, str] | None:
    """``relation2id.json`` -> relation id -> name, or None without the file (relations are then ``relation_<id>``)."""
    if not path.exists():
        return None
    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(value, int) for value in data.values()):
        raise CRSFormatError(f"{path}: must map relation names to integer ids")
    return {relation_id: name for name, relation_id in data.items()}


def read_subkg(path: Path, keys: dict[int, str], relations: dict[int, str] | None) -> tuple[list[tuple[str, str, str]], int]:
    """The triples (entity keys, relation names) of a DBpedia sub-graph, self-loops dropped, and how many were dropped."""
    if path.suffix != ".json":
        triples = [(head, relation, tail) for head, relation, tail, _ in read_triples(path)]
    else:
        data = read_json(path)
        if not isinstance(data, dict):
            raise CRSFormatError(f"{path}: expected {{head entity id: [[relation id, tail entity id], ...]}}")
        triples = []
        for head, pairs in data.items():
            where = f"{path}, head {head!r}"
            if not str(head).lstrip("-").isdigit() or int(head) not in keys:
                raise CRSFormatError(f"{where}: not an entity id of entity2id.json")
            if not isinstance(pairs, list) or not all(isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int) for v in pair) for pair in pairs):
                raise CRSFormatError(f"{where}: expected a list of [relation id, tail entity id] pairs")
            for relation, tail in pairs:
                if tail not in keys:
                    raise CRSFormatError(f"{where}: tail {tail} is not an entity id of entity2id.json")
                if relations is not None and relation not in relations:
                    raise CRSFormatError(f"{where}: relation {relation} is not an id of relation2id.json")
                triples.append((keys[int(head)], relations[relation] if relations is not None else f"relation_{relation}", keys[tail]))
    kept = [(head, relation, tail) for head, relation, tail in triples if head != tail and relation != SELF_LOOP]
    return kept, len(triples) - len(kept)


def _item_ids(path: Path, keys: dict[int, str]) -> list[int]:
    data = read_json(path)
    if not isinstance(data, list) or not all(isinstance(value, int) for value in data):
        raise CRSFormatError(f"{path}: expected a list of entity ids")
    unknown = [value for value in data if value not in keys]
    if unknown:
        raise CRSFormatError(f"{path}: {len(unknown)} item ids are not entity ids of entity2id.json, e.g. {unknown[0]}")
    return sorted(set(data))


def _redial_turns(record: dict, where: str, stats: Counter) -> list[tuple[dict, str]]:
    """(turn, role) of a ReDial conversation in UniCRS's layout: the respondent recommends; "@<movieId>"
    becomes the movie's title from "movieMentions" (as UniCRS does), which is then its item's name."""
    if record.get("respondentWorkerId") is None:
        raise CRSFormatError(f"{where}: a conversation with \"messages\" needs \"respondentWorkerId\" (who recommends)")
    mentions = record.get("movieMentions")
    titles = {str(movie_id): " ".join(str(title).split()) for movie_id, title in mentions.items()} if isinstance(mentions, dict) else {}
    turns = []
    for position, message in enumerate(record["messages"], start=1):
        if not isinstance(message, dict) or message.get("senderWorkerId") is None:
            raise CRSFormatError(f"{where}, turn {position}: the message has no \"senderWorkerId\" (it says who speaks)")
        if isinstance(message.get("text"), str):
            def title(match: re.Match) -> str:
                stats["@movieIds without a title in movieMentions (left as written)"] += match.group(1) not in titles
                return titles.get(match.group(1), match.group(0))

            message = {**message, "text": " ".join(_MOVIE_MENTION.sub(title, message["text"]).split())}
        turns.append((message, "recommender" if message["senderWorkerId"] == record["respondentWorkerId"] else "seeker"))
    return turns


# (where, conversation id, [(turn, role or None)]) of each conversation, by split
_Conversations = dict[str, list[tuple[str, str, list[tuple[dict, str | None]]]]]


def _read_conversations(layout: Layout, split_records: dict, stats: Counter) -> _Conversations:
    """The turns of every conversation with the role they speak in, before anything is converted."""
    conversations: _Conversations = {}
    for split, (path, records) in split_records.items():
        conversations[split] = []
        for number, record in records:
            where = location(path, number)
            if isinstance(record, dict) and isinstance(record.get("messages"), list) and "initiatorWorkerId" in record:  # ReDial's shape
                turns = _redial_turns(record, where, stats)
            else:
                turns = [(turn, None) for turn in dialog_of(record, layout.dialog_keys, where)]
            identifier = next((record[key] for key in ("conv_id", "conversationId", "dialog_id") if isinstance(record, dict) and key in record), None)
            conversations[split].append((where, str(identifier if identifier is not None else f"{split}-{number}"), turns))
    return conversations


def _linked_movies(layout: Layout, conversations: _Conversations, uri_id: dict[str, int]) -> tuple[set[int], dict[str, Counter]]:
    """The entity ids of the movies the turns link, and URI -> how often the turns name it each way."""
    names: dict[str, Counter] = {}
    linked: set[int] = set()
    for split_conversations in conversations.values():
        for _, _, turns in split_conversations:
            for turn, _ in turns:
                if not isinstance(turn, dict):
                    continue
                links = next((turn[key] for key in layout.items_key if key in turn), None)
                links = links if isinstance(links, list) else []
                linked.update(uri_id[link] for link in links if isinstance(link, str) and link in uri_id)
                titles = turn.get(layout.names_key) if layout.names_key else None
                if isinstance(titles, list) and len(titles) == len(links):
                    for link, title in zip(links, titles):
                        if isinstance(link, str) and isinstance(title, str) and title.strip():
                            names.setdefault(link, Counter())[" ".join(title.split())] += 1
    return linked, names


def _items(layout: Layout, source: Path, ids_file: Path | None, keys: dict[int, str], conversations: _Conversations) -> list[Item]:
    """Items: ``ids_file``'s, else every linked movie; named as the dialogues name them, else by their URI."""
    linked, names = _linked_movies(layout, conversations, {key: entity_id for entity_id, key in keys.items()})
    item_entity_ids = _item_ids(ids_file, keys) if ids_file else sorted(linked)
    if not item_entity_ids:
        raise CRSFormatError(f"{source}: no items: no {' or '.join(layout.item_ids)} (give --item-ids) and no turn links a movie")
    items = []
    for entity_id in item_entity_ids:
        uri = keys[entity_id]
        title = names[uri].most_common(1)[0][0] if uri in names else (name_from_uri(uri) or (None,))[0]
        items.append(Item(str(entity_id), title, uri))
    return items


def _convert_conversations(split_conversations: list, converter: TurnConverter, stats: Counter) -> list[dict]:
    """One split's rows in the generic format; conversations without turns are skipped and counted."""
    rows = []
    for where, identifier, turns in split_conversations:
        if not turns:
            stats["conversations without turns (skipped)"] += 1
            continue
        rows.append({"conversation_id": identifier, "turns": [
            converter.turn(turn, f"{where}, turn {position}", role) for position, (turn, role) in enumerate(turns, start=1)]})
    return rows


def convert_layout(layout: Layout, source: str | Path, output: str | Path, name: str | None = None, item_ids: str | Path | None = None,
                   role_map: dict[str, str] | None = None, placeholders: bool = True, word_graph: str | None = None, log=warn) -> dict:
    """Convert a dataset folder in ``layout`` (:data:`UNICRS` or :data:`CRSLAB`) into ``output``; returns counts.

    Writes :data:`~datasets_scripts.convert_crs.REPORT_FILE` into ``output`` and gives ``log`` (one line
    each, stderr by default) a warning per split without conversations and the placeholders' summary."""
    source, output = Path(source), Path(output)
    if not source.is_dir():
        raise CRSFormatError(f"{source}: not a folder")
    keys = read_entity_ids(_find(source, ("entity2id.json",), "entity ids"))
    triples, self_loops = read_subkg(_find(source, layout.kg, "knowledge graph"), keys, _relation_names(source / "relation2id.json"))
    split_records = {split: (path, read_json_records(path)) for split in SPLITS
                     for path in [_find(source, layout.splits[split], f"{split} dialogues")]}

    stats: Counter = Counter()
    conversations = _read_conversations(layout, split_records, stats)
    uri_id = {key: entity_id for entity_id, key in keys.items()}
    ids_file = Path(item_ids) if item_ids else next((source / name for name in layout.item_ids if (source / name).exists()), None)
    items = _items(layout, source, ids_file, keys, conversations)
    item_keys = {item.node for item in items}

    nodes = set(uri_id) | {end for head, _, tail in triples for end in (head, tail)}
    item_map = ItemMap(items, str(ids_file or "the linked movies"))
    all_turns = [turn for split_conversations in conversations.values() for _, _, turns in split_conversations
                 for turn, _ in turns if isinstance(turn, dict)]
    writer = PlaceholderWriter([*item_map.titles(), *turn_names(all_turns, layout.names_key)], corpus_common_words(turn_texts(all_turns)))
    converter = TurnConverter(items_key=layout.items_key, entities_key=layout.entities_key, names_key=layout.names_key, role_map=role_map,
                              items=item_map, nodes=nodes, placeholders=placeholders, stats=stats, writer=writer)
    split_rows = {split: _convert_conversations(split_conversations, converter, stats)
                  for split, split_conversations in conversations.items()}

    output.mkdir(parents=True, exist_ok=True)
    write_jsonl(({"id": item.id, "name": item.name, "entity": item.node} for item in items), output / "items.jsonl")
    other = [keys[entity_id] for entity_id in sorted(keys) if keys[entity_id] not in item_keys]
    other += sorted(nodes - set(uri_id) - item_keys)
    write_jsonl(({"id": key} for key in other), output / "entities.jsonl")
    write_jsonl(({"head": head, "relation": relation, "tail": tail} for head, relation, tail in triples), output / "kg.jsonl")
    warnings = []
    for split, rows in split_rows.items():
        write_jsonl(rows, output / f"{split}.jsonl")
        if not rows:
            warnings.append(empty_output_warning(split_records[split][0], output / f"{split}.jsonl", f"the {split} split"))
    manifest = {"name": name or f"{layout.name}-{source.resolve().name}", "description": f"converted from the {layout.name} layout of {source.resolve().name}",
                "items": "items.jsonl", "kg": "kg.jsonl", "entities": "entities.jsonl", **({"word_graph": word_graph} if word_graph else {})}
    (output / "dataset.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    counts = {"items": len(items), "entities": len(other), "triples": len(triples), "self-loops dropped": self_loops,
              **{f"{split} conversations": len(rows) for split, rows in split_rows.items()}, **stats}
    write_report(output / REPORT_FILE, counts, converter.report if placeholders else None, warnings)
    for line in warnings:
        log(line)
    if placeholders:
        log(f"{converter.report.summary()} (report: {output / REPORT_FILE})")
    return counts


def add_commands(commands) -> None:
    """The ``unicrs`` and ``crslab`` sub-commands of ``python -m datasets_scripts.convert_crs``."""
    for layout in LAYOUTS.values():
        paragraphs = __doc__.split("\n\n")
        start = next(index for index, paragraph in enumerate(paragraphs) if paragraph.startswith(f"{layout.title} ("))
        parser = commands.add_parser(layout.name, help=f"a dataset folder in {layout.title}'s layout -> a dataset folder",
                                     description="\n\n".join(paragraphs[1:2] + paragraphs[start:start + 2]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Then check it: python -m datasets_scripts.crs_format OUTPUT")
        parser.add_argument("source", help=f"the folder with {', '.join(names[0] for names in layout.splits.values())}, entity2id.json, {layout.kg[0]}")
        parser.add_argument("output", help="the dataset folder to write")
        parser.add_argument("--name", default=None, help="the dataset's name (default: <layout>-<source folder name>)")
        parser.add_argument("--item-ids", default=None, help=f"the item entity ids (default: {' or '.join(layout.item_ids)} in the source folder)")
        parser.add_argument("--role-map", default=None, help='JSON, e.g. \'{"Helper": "recommender"}\' (roles are lower-cased by default)')
        parser.add_argument("--no-placeholders", action="store_true", help="keep the text as it is (no @<item id> for the linked items' names)")
        parser.add_argument("--word-graph", default=None, help='"conceptnet" (default), "none" or a file (written to dataset.json)')


def run_command(args) -> int:
    counts = convert_layout(LAYOUTS[args.command], args.source, args.output, args.name, args.item_ids, _role_map(args.role_map),
                            not args.no_placeholders, args.word_graph)
    print(f"wrote {args.output}:")
    print_counts(Counter(counts))
    print(f"check it: python -m datasets_scripts.crs_format {args.output}")
    return 0
