"""Converters from common CRS dataset shapes to the generic format (:mod:`datasets_scripts.crs_format`).

* ReDial jsonl (``{"conversationId", "messages": [{"text", "senderWorkerId"}], "respondentWorkerId", ...}``):
  :func:`redial_to_crs`; the ReDial movie table with DBpedia links: :func:`redial_items`.
* Turn-list jsonl/json, one conversation per record with a list of turns that carry their own
  entity and item links (CRSLab's ReDial/TG-ReDial/INSPIRED shape: ``{"conv_id", "dialog": [{"role":
  "Seeker", "text", "movies": [...], "entity": [...]}]}``): :func:`turn_list_to_crs`, with the key
  names as parameters.

Command line (``python -m datasets_scripts.convert_crs --help``)::

    python -m datasets_scripts.convert_crs redial IN.jsonl OUT.jsonl
    python -m datasets_scripts.convert_crs turn-list IN.jsonl OUT.jsonl --dialog-key dialog --items-key movies
    python -m datasets_scripts.convert_crs redial-items OUT/items.jsonl [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from . import kg, paths

_MOVIE_MENTION = re.compile(r"@(\d+)")


def redial_to_crs(conversation: dict) -> dict:
    """One raw ReDial conversation in the generic format: the respondent is the recommender, movie
    mentions stay ``@<movieId>`` placeholders and are listed as the turn's items."""
    recommender = conversation.get("respondentWorkerId")
    if recommender is None or not isinstance(conversation.get("messages"), list):
        raise ValueError("not a ReDial conversation (needs messages and respondentWorkerId)")
    turns = []
    for message in conversation["messages"]:
        text = message.get("text")
        if not isinstance(text, str) or message.get("senderWorkerId") is None:
            continue
        turns.append({
            "role": "recommender" if message["senderWorkerId"] == recommender else "seeker",
            "text": text,
            "items": list(dict.fromkeys(_MOVIE_MENTION.findall(text))),
        })
    return {"conversation_id": str(conversation.get("conversationId", "")), "turns": turns}


def turn_list_to_crs(
    record: dict,
    dialog_key: str = "dialog",
    role_key: str = "role",
    text_key: str = "text",
    items_key: str = "movies",
    entities_key: str = "entity",
    id_key: str = "conv_id",
    role_map: dict[str, str] | None = None,
) -> dict:
    """A turn-list conversation in the generic format. ``role_map`` renames roles (e.g.
    ``{"Seeker": "seeker", "Recommender": "recommender"}``; by default roles are lower-cased).
    Text given as a token list is joined with spaces; items and entities are kept as given
    (ids or names, resolved by the loader against the item list and the KG)."""
    turns = record.get(dialog_key)
    if not isinstance(turns, list):
        raise ValueError(f"no turn list under {dialog_key!r} (keys: {sorted(record)})")
    converted = []
    for turn in turns:
        role = turn.get(role_key)
        text = turn.get(text_key, "")
        converted.append({
            "role": (role_map or {}).get(role, role.lower() if isinstance(role, str) else role),
            "text": " ".join(map(str, text)) if isinstance(text, list) else text,
            "items": [str(item) for item in turn.get(items_key) or []],
            "entities": [str(entity) for entity in turn.get(entities_key) or []],
        })
    return {"conversation_id": str(record.get(id_key, "")), "turns": converted}


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


def _read_records(path: Path) -> list:
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, list) else list(data.values())
    return [record for _, record in paths.iter_jsonl(path)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datasets_scripts.convert_crs", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    redial = commands.add_parser("redial", help="ReDial jsonl -> generic conversations")
    redial.add_argument("input")
    redial.add_argument("output")
    turn_list = commands.add_parser("turn-list", help="turn-list jsonl/json (CRSLab style) -> generic conversations")
    turn_list.add_argument("input")
    turn_list.add_argument("output")
    for key, default in (("dialog", "dialog"), ("role", "role"), ("text", "text"), ("items", "movies"), ("entities", "entity"), ("id", "conv_id")):
        turn_list.add_argument(f"--{key}-key", default=default, help=f"key of the {key} (default {default!r})")
    turn_list.add_argument("--role-map", default=None, help='JSON, e.g. \'{"Seeker": "seeker", "Recommender": "recommender"}\'')
    items = commands.add_parser("redial-items", help="ReDial movies with their DBpedia URIs -> items.jsonl")
    items.add_argument("output")
    items.add_argument("--data-dir", default=None)
    items.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)

    if args.command == "redial-items":
        count = write_jsonl(redial_items(args.data_dir, args.cache_dir), args.output)
    elif args.command == "redial":
        count = write_jsonl((redial_to_crs(record) for record in _read_records(Path(args.input))), args.output)
    else:
        options = dict(dialog_key=args.dialog_key, role_key=args.role_key, text_key=args.text_key, items_key=args.items_key,
                       entities_key=args.entities_key, id_key=args.id_key, role_map=json.loads(args.role_map) if args.role_map else None)
        count = write_jsonl((turn_list_to_crs(record, **options) for record in _read_records(Path(args.input))), args.output)
    print(f"wrote {count} records to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
