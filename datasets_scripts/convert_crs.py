"""Converters from common CRS dataset layouts to the generic format (:mod:`datasets_scripts.crs_format`).

* ReDial jsonl (``{"conversationId", "messages": [{"text", "senderWorkerId"}], "respondentWorkerId", ...}``):
  :func:`redial_to_crs`; the ReDial movie table with DBpedia links: :func:`redial_items`.
* Turn lists, one conversation per record: a bare JSON list of turns (UniCRS's INSPIRED files) or an
  object holding one (CRSLab's ``{"conv_id", "dialog": [{"role": "Seeker", "text", "movies": [...],
  "entity": [...]}]}``): :func:`turn_list_to_crs`, with the key names as parameters; item links
  given as URIs or names are mapped to item ids through an ``items.jsonl`` (:class:`ItemMap`).
* Whole dataset folders in UniCRS's and CRSLab's layouts (dialogues, ``entity2id.json``, the
  DBpedia sub-graph, item ids): :mod:`datasets_scripts.convert_unicrs`.

Every converter checks what it writes as the check does (``python -m datasets_scripts.crs_format``)
and stops at the first problem with a :class:`~datasets_scripts.crs_format.CRSFormatError` whose
message is one line, ``FILE, line N, turn K: ...`` (1-based). Command line
(``python -m datasets_scripts.convert_crs --help``)::

    python -m datasets_scripts.convert_crs redial IN.jsonl OUT.jsonl
    python -m datasets_scripts.convert_crs turn-list IN.jsonl OUT.jsonl [--dialog-key dialog] [--items my_dataset/items.jsonl]
    python -m datasets_scripts.convert_crs unicrs UNICRS_DIR OUT_DIR
    python -m datasets_scripts.convert_crs crslab CRSLAB_DIR OUT_DIR
    python -m datasets_scripts.convert_crs redial-items OUT/items.jsonl [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from modeling_kgsf.linking_kgsf import name_from_uri, title_variants

from . import kg
from .crs_format import (
    DEFAULT_RECOMMENDER_ROLES, DEFAULT_SEEKER_ROLES, ITEM_ID_PATTERN, CRSFormatError, Item, checked_role, checked_text, location,
    read_items, read_json_records,
)

_MOVIE_MENTION = re.compile(r"@(\d+)")
ROLES = frozenset({*DEFAULT_RECOMMENDER_ROLES, *DEFAULT_SEEKER_ROLES})
ROLE_MAP_FIX = "map it to one of them with --role-map, e.g. '{\"Critic\": \"recommender\"}'"


def redial_to_crs(conversation: dict, where: str = "ReDial conversation") -> dict:
    """One raw ReDial conversation in the generic format: the respondent is the recommender, movie
    mentions stay ``@<movieId>`` placeholders and are listed as the turn's items."""
    if not isinstance(conversation, dict) or conversation.get("respondentWorkerId") is None or not isinstance(conversation.get("messages"), list):
        raise CRSFormatError(f"{where}: not a ReDial conversation (needs \"messages\" and \"respondentWorkerId\")")
    turns = []
    for position, message in enumerate(conversation["messages"], start=1):
        turn_where = f"{where}, turn {position}"
        if not isinstance(message, dict) or message.get("senderWorkerId") is None:
            raise CRSFormatError(f"{turn_where}: the message has no \"senderWorkerId\" (it says who speaks)")
        text = checked_text(message.get("text"), turn_where)
        turns.append({
            "role": "recommender" if message["senderWorkerId"] == conversation["respondentWorkerId"] else "seeker",
            "text": text,
            "items": list(dict.fromkeys(_MOVIE_MENTION.findall(text))),
        })
    return {"conversation_id": str(conversation.get("conversationId", "")), "turns": turns}


# ------------------------------------------------------------------------------------------------
# Items named by URI or by name
# ------------------------------------------------------------------------------------------------
def _name_key(name: str) -> str:
    return " ".join(name.lower().split())


class ItemMap:
    """Item ids by id, by ``entity`` (e.g. a DBpedia URI) and by name: what a converter needs when a
    dataset names its items by URI or by title (the generic format's ``items`` hold ids)."""

    def __init__(self, items: list[Item], source: str = "items.jsonl"):
        self.source = source
        self.by_key = {item.id: item.id for item in items} | {item.node: item.id for item in items}
        self.names: dict[str, list[str]] = {}
        by_name: dict[str, set[str]] = {}
        for item in items:
            uri_name = name_from_uri(item.node)
            names = [*(title_variants(item.name) if item.name else []), *([uri_name[0]] if uri_name else [])]
            self.names[item.id] = list(dict.fromkeys(names))
            for name in names:
                by_name.setdefault(_name_key(name), set()).add(item.id)
        self.by_name = {name: next(iter(ids)) for name, ids in by_name.items() if len(ids) == 1}  # ambiguous names map to nothing

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> ItemMap:
        return cls(read_items(Path(path)), str(path))

    def item_id(self, value: str) -> str | None:
        return self.by_key.get(value) or self.by_name.get(_name_key(value))


def write_placeholders(text: str, mentions: list[tuple[str, list[str]]]) -> tuple[str, int]:
    """``text`` with, for each ``(item id, names)``, the first occurrence of one of the names (whole
    words; exact case first, then any case; longest name first) replaced by ``@<item id>``.
    Returns the text and how many placeholders were written."""
    written = 0
    for item_id, names in mentions:
        candidates = sorted({name.strip() for name in names if name and name.strip()}, key=len, reverse=True)
        for flags in (0, re.IGNORECASE):
            match = next(filter(None, (re.search(rf"(?<![\w@]){re.escape(name)}(?!\w)", text, flags) for name in candidates)), None)
            if match:
                text = f"{text[:match.start()]}@{item_id}{text[match.end():]}"
                written += 1
                break
    return text, written


# ------------------------------------------------------------------------------------------------
# Turn lists
# ------------------------------------------------------------------------------------------------
def _keys(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Key names given as one name, a comma-separated list or a sequence (the first present in a turn is used)."""
    return tuple(key for key in (value.split(",") if isinstance(value, str) else value) if key)


@dataclass
class TurnConverter:
    """Turns of the common turn-list shapes -> generic turns, checked as the check checks them.

    ``items``: an :class:`ItemMap` to map item links (URIs, names) to item ids; without it the links
    must already be item ids. ``nodes``: the KG's node keys (UniCRS/CRSLab layouts): a link that is no
    item but a node becomes an entity, one that is neither is dropped (as UniCRS and CRSLab drop it)
    and counted. ``placeholders``: write ``@<item id>`` where the text names a linked item."""

    role_key: str = "role"
    text_key: str = "text"
    items_key: tuple[str, ...] | str = ("movies", "movie_link")
    entities_key: tuple[str, ...] | str = ("entity", "entity_link")
    names_key: str | None = None  # a list aligned with the item links: how the text writes each item
    role_map: dict[str, str] | None = None
    items: ItemMap | None = None
    nodes: set[str] | None = None
    placeholders: bool = False
    stats: Counter = field(default_factory=Counter)

    def __post_init__(self):
        self.items_key, self.entities_key = _keys(self.items_key), _keys(self.entities_key)

    def role(self, role, where: str) -> str:
        if self.role_map and isinstance(role, str) and role in self.role_map:
            role = self.role_map[role]
        return checked_role(role, where, ROLES, ROLE_MAP_FIX)

    def _links(self, turn: dict, keys: tuple[str, ...], where: str) -> list[str]:
        key = next((key for key in keys if key in turn), None)
        values = turn.get(key) if key else None
        if values is None:
            return []
        if not isinstance(values, list) or not all(isinstance(value, (str, int)) for value in values):
            raise CRSFormatError(f"{where}: {key!r} must be a list of ids, URIs or names")
        return [str(value) for value in values]

    def _item(self, value: str, where: str) -> str | None:
        if self.items is None:
            if not ITEM_ID_PATTERN.match(value):
                raise CRSFormatError(f"{where}: item {value!r} is not a plain item id (letters, digits and _ only); give --items "
                                     "my_dataset/items.jsonl to map URIs and names to item ids (docs/CRS_FORMAT.md)")
            return value
        item_id = self.items.item_id(value)
        if item_id is None and self.nodes is None:
            raise CRSFormatError(f"{where}: item {value!r} is neither an id, an \"entity\" nor a name of an item in {self.items.source}")
        return item_id

    def turn(self, turn, where: str, role=None) -> dict:
        """One generic turn (``role`` overrides the turn's own, for layouts that derive it)."""
        if not isinstance(turn, dict):
            raise CRSFormatError(f"{where}: a turn is an object ({{\"{self.role_key}\": ..., \"{self.text_key}\": ...}}), not {type(turn).__name__}")
        role = self.role(turn.get(self.role_key) if role is None else role, where)
        if self.text_key not in turn:
            raise CRSFormatError(f"{where}: the turn has no {self.text_key!r} (keys: {sorted(turn)}; name the text's key with --text-key)")
        text = checked_text(turn[self.text_key], where, self.text_key)
        links = self._links(turn, self.items_key, where)
        names = turn.get(self.names_key) if self.names_key else None
        names = names if isinstance(names, list) and len(names) == len(links) else [None] * len(links)
        items, entities, mentions = [], [], []
        for link, name in zip(links, names):
            item_id = self._item(link, where)
            if item_id is not None:
                items.append(item_id)
                mentions.append((item_id, [*([str(name)] if name else []), *(self.items.names.get(item_id, []) if self.items else [])]))
            elif link in self.nodes:
                entities.append(link)  # a linked movie that is not an item: still a KG node
                self.stats["item links that are no item (kept as entities)"] += 1
            else:
                self.stats["links not in the KG (dropped)"] += 1
        for link in self._links(turn, self.entities_key, where):
            if self.nodes is None or link in self.nodes:
                entities.append(link)
            else:
                self.stats["links not in the KG (dropped)"] += 1
        if self.placeholders and mentions:
            text, written = write_placeholders(text, mentions)
            self.stats["placeholders written"] += written
            self.stats["linked items whose name the text does not write"] += len(mentions) - written
        self.stats["turns"] += 1
        return {"role": role, "text": text, "items": list(dict.fromkeys(items)), "entities": list(dict.fromkeys(entities))}


def dialog_of(record, dialog_keys: tuple[str, ...], where: str) -> list:
    """The turn list of a record: the record itself when it is a list, else its first key of ``dialog_keys`` that holds a list."""
    if isinstance(record, list):
        return record
    if not isinstance(record, dict):
        raise CRSFormatError(f"{where}: a conversation is a list of turns or an object holding one, not {type(record).__name__}")
    for key in dialog_keys:
        if isinstance(record.get(key), list):
            return record[key]
    wanted = " or ".join(repr(key) for key in dialog_keys) or "(none given)"
    raise CRSFormatError(f"{where}: no turn list under {wanted} (keys: {sorted(record)}); name it with --dialog-key, "
                         "or write each line as a bare list of turns")


def turn_list_to_crs(
    record: dict | list,
    dialog_key: str = "dialog",
    role_key: str = "role",
    text_key: str = "text",
    items_key: str | tuple[str, ...] = ("movies", "movie_link"),
    entities_key: str | tuple[str, ...] = ("entity", "entity_link"),
    id_key: str = "conv_id",
    role_map: dict[str, str] | None = None,
    where: str = "conversation",
    converter: TurnConverter | None = None,
) -> dict:
    """A turn-list conversation in the generic format: ``record`` is a bare list of turns or an object
    with the list under ``dialog_key``. ``role_map`` renames roles (``{"Seeker": "seeker"}``; roles
    are then lower-cased and must be seeker or recommender roles). Text given as a token list is
    joined with spaces. ``converter`` (a :class:`TurnConverter`) overrides the key arguments, e.g. to
    map item URIs through an :class:`ItemMap`. ``where`` names the record in error messages. Without
    an id (bare lists) the conversation gets none: the loader names it ``<file>-<line>``."""
    converter = converter or TurnConverter(role_key, text_key, items_key, entities_key, role_map=role_map)
    turns = dialog_of(record, _keys(dialog_key), where)
    converted = [converter.turn(turn, f"{where}, turn {position}") for position, turn in enumerate(turns, start=1)]
    if isinstance(record, dict) and record.get(id_key) is not None:
        return {"conversation_id": str(record[id_key]), "turns": converted}
    return {"turns": converted}  # the loader names it <file>-<line>


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------
def redial_items(data_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> list[dict]:
    """ReDial's 6,924 movies as items: ``{"id": movieId, "name": "Title (year)", "entity": DBpedia URI or None}``."""
    entities = kg.load_dbpedia(data_dir, cache_dir)
    items = []
    for movie_id, title in entities.movie_id_to_title.items():
        entity = entities.movie_id_to_entity.get(movie_id)
        uri = entities.entity_to_uri[entity] if entity is not None else None
        items.append({"id": movie_id, "name": title, "entity": uri if uri and uri.startswith("<http") else None})
    return items


def write_jsonl(records, path: str | os.PathLike) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def convert_file(path: str | os.PathLike, convert) -> list[dict]:
    """``convert(record, where)`` for every record of a .jsonl/.json file; all converted before anything is written."""
    return [convert(record, location(path, number)) for number, record in read_json_records(path)]


def print_counts(stats: Counter) -> None:
    for name, count in stats.items():
        if count and name != "turns":
            print(f"  {name}: {count}")


def _role_map(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    try:
        role_map = json.loads(text)
    except json.JSONDecodeError as error:
        raise CRSFormatError(f"--role-map is not JSON ({error.msg.removesuffix(' at')} at column {error.colno}); "
                             "write it as '{\"Seeker\": \"seeker\", \"Recommender\": \"recommender\"}'") from None
    if not isinstance(role_map, dict) or not all(isinstance(value, str) for value in role_map.values()):
        raise CRSFormatError("--role-map must be a JSON object from the dataset's roles to seeker/recommender roles")
    return role_map


def main(argv: list[str] | None = None) -> int:
    from . import convert_unicrs

    parser = argparse.ArgumentParser(prog="python -m datasets_scripts.convert_crs", description=__doc__.split("\n\n")[0],
                                     epilog="Errors are one line, \"error: FILE, line N, turn K: ...\" (1-based), with exit code 1.")
    commands = parser.add_subparsers(dest="command", required=True)
    redial = commands.add_parser("redial", help="ReDial jsonl -> generic conversations")
    redial.add_argument("input")
    redial.add_argument("output")
    turn_list = commands.add_parser("turn-list", help="turn lists (bare lists of turns, or CRSLab-style objects) -> generic conversations")
    turn_list.add_argument("input", help=".jsonl (a conversation a line) or .json (a list of conversations)")
    turn_list.add_argument("output")
    for key, default, what in (("dialog", "dialog", "turn list (ignored for lines that are bare lists)"), ("role", "role", "role"),
                               ("text", "text", "text"), ("items", "movies,movie_link", "item links"),
                               ("entities", "entity,entity_link", "entity links"), ("id", "conv_id", "conversation id")):
        turn_list.add_argument(f"--{key}-key", default=default, help=f"key of the {what} (default {default!r}; several: first present)")
    turn_list.add_argument("--names-key", default=None, help="key of a list aligned with the item links: how the text writes each item")
    turn_list.add_argument("--role-map", default=None, help='JSON, e.g. \'{"Seeker": "seeker", "Recommender": "recommender"}\'')
    turn_list.add_argument("--items", default=None, help="items.jsonl: map item links given as URIs or names to item ids")
    turn_list.add_argument("--placeholders", action="store_true", help="write @<item id> where the text names a linked item (needs --items or --names-key)")
    convert_unicrs.add_commands(commands)
    items = commands.add_parser("redial-items", help="ReDial movies with their DBpedia URIs -> items.jsonl")
    items.add_argument("output")
    items.add_argument("--data-dir", default=None)
    items.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)

    try:
        if args.command == "redial-items":
            count = write_jsonl(redial_items(args.data_dir, args.cache_dir), args.output)
        elif args.command == "redial":
            count = write_jsonl(convert_file(args.input, redial_to_crs), args.output)
        elif args.command == "turn-list":
            if args.placeholders and not (args.items or args.names_key):
                raise CRSFormatError("--placeholders needs --items or --names-key (the item names to look for in the text)")
            converter = TurnConverter(args.role_key, args.text_key, args.items_key, args.entities_key, args.names_key,
                                      _role_map(args.role_map), ItemMap.from_file(args.items) if args.items else None,
                                      placeholders=args.placeholders)
            conversations = convert_file(args.input, lambda record, where: turn_list_to_crs(
                record, args.dialog_key, id_key=args.id_key, where=where, converter=converter))
            count = write_jsonl(conversations, args.output)
            print_counts(converter.stats)
        else:
            return convert_unicrs.run_command(args)
    except CRSFormatError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(f"wrote {count} records to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
