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

from modeling_kgsf.linking_kgsf import FILM_CUES, EntityLinker, name_from_uri, title_variants

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

    def titles(self) -> list[str]:
        """Every name of every item (for :class:`PlaceholderWriter`'s longer titles)."""
        return [name for names in self.names.values() for name in names]


# ------------------------------------------------------------------------------------------------
# Placeholders: "@<item id>" only where the text names the linked item
# ------------------------------------------------------------------------------------------------
# A stopword list: English function words and frequent chat words. A one-word title that is one of
# these (or that the corpus writes in lower case at least as often as capitalised mid-sentence, see
# :func:`corpus_common_words`) is a common word: "Tell me about it!" does not name the film "Tell".
COMMON_WORDS = frozenset("""
a about above after again against all almost also always am an and another any anyone anything are around as at away back
be because been before being below best better between big both but by can come could day did do does doing done down during
each easy else enough even ever every everyone everything far few find first for from fun get give go going gone good got great
had happy has have having he hello her here hers herself hey hi him himself his home how i if in into is it its itself just keep
kids know last let like little look lot love made make many may maybe me mine more most much must my myself need never new next
nice no nor not nothing now of off often oh ok okay old on once one only or other our ours ourselves out over own people please
pretty quite rather really right same say see she should since so some someone something sometimes soon still such sure take
tell than thank thanks that the their theirs them themselves then there these they thing things think this those though through
time to today together tomorrow too true try under until up us very want was way we well were what when where which while who
whole why will with without would yeah yes yesterday yet you your yours yourself
""".split())
# Words English always capitalises (days, months): capitals say nothing; only a film context does ("Have you seen Friday?").
CAPITALISED_WORDS = frozenset("""
monday tuesday wednesday thursday friday saturday sunday january february march april may june july august september
october november december
""".split())
SERIES_WORDS = frozenset("movies films series franchise trilogy sequels saga universe".split())  # "the Avenger movies": a series
_NOT_NAME_PARTS = frozenset({"I", "I'm", "I've", "I'd", "I'll", "The", "A", "An"})  # capitalised words next to a title that join no name
_SENTENCE_END = ".!?:;"
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"
_TOKEN = re.compile(r"'s\b|\w+|[^\w\s]")
_NAME_WORD = re.compile(r"[^\W_]+")
_FOLLOWING_YEAR = re.compile(r"\s*[(\[]?\s*(?:19|20)\d\d\b")
_NEXT_WORD = re.compile(r" ([^\W_][\w'\u2019-]*)")
_PREVIOUS_WORD = re.compile(r"(?:^|\s)([^\W_][\w'\u2019-]*) $")

WRITTEN = "written"
WRITTEN_OTHER_CASE = "written in another case than the name"  # written, but doubted
NOT_IN_TEXT = "the text does not write the name"
COMMON_WORD = "a common word used as a word"
LONGER_TITLE = "part of a longer title"
LONGER_NAME = "part of a longer name (a capitalised word or a number next to it)"
SERIES = "names a series (\"movies\", \"films\", ... after it)"


def corpus_common_words(texts) -> set[str]:
    """Lower-case words a corpus writes in lower case at least twice and at least as often as
    capitalised in mid-sentence ("tell", "more", "home"; not "joker" or "split", written as titles)."""
    lower, capitalised = Counter(), Counter()
    for text in texts:
        if not isinstance(text, str):
            continue
        for match in _NAME_WORD.finditer(text):
            word = match.group(0)
            if word.islower():
                lower[word] += 1
            elif word[:1].isupper() and not _sentence_start(text, match.start()):
                capitalised[word.lower()] += 1
    return {word for word, count in lower.items() if count >= 2 and count >= capitalised[word]}


def _sentence_start(text: str, position: int) -> bool:
    before = text[:position].rstrip().rstrip(_QUOTES + "([").rstrip()
    return not before or before[-1] in _SENTENCE_END


def _title_words(name: str) -> tuple[str, ...]:
    return tuple(word.lower() for word in _NAME_WORD.findall(name))


@dataclass
class Placement:
    """What became of one linked item's mention in a turn: ``outcome`` is :data:`WRITTEN` or the reason it was not."""

    item_id: str
    name: str | None  # the name found in the text (the first candidate when none was)
    outcome: str
    detail: str = ""  # e.g. the longer title the name is part of


class PlaceholderWriter:
    """Writes ``@<item id>`` where a turn's text names its linked item as a title (docs/CRS_FORMAT.md).

    A name (the turn's own name for the link first, then the item's names; longest first) is looked
    for as whole words, with its exact case first, then in any case ("the dark knight" for "The Dark
    Knight": written, but counted as doubted); each occurrence is judged and the first accepted one
    is replaced. An occurrence is refused when it is

    * part of a longer title (``names``: every title of the dataset, also without its article; "Train"
      in "Train to Busan");
    * part of a longer name: a capitalised word right after it or right before it (not "The", "I",
      a possessive, nor a sentence's first word that is a common word), or a number that is no year
      after it ("Keanu Reeves", "Amazon Prime", "Frozen 2");
    * a series: "movies", "films", "series", ... after it ("the Avenger movies");
    * one word, or two written in another case, made only of common words (``common_words``:
      :data:`COMMON_WORDS` plus the corpus's, see :func:`corpus_common_words`; days and months,
      :data:`CAPITALISED_WORDS`), and used as words. Such a name is accepted when it is the whole
      text, between quotes, before a year, or in a film context (a cue before it, "seen Tell", or,
      for several words with their exact case, a judgement after them: :meth:`EntityLinker.film_context`;
      one word needs a strong cue and no judgement counts: "Here is the movie"); a one-word one
      written with its exact case also in mid-sentence ("I loved Tell", not "Tell me about it!"; days
      and months not: "last Friday"). A name of several words written with its exact case ("Get
      Out"), or of three or more in any case ("kung fu hustle"), is a title.
    """

    def __init__(self, names=(), common_words=frozenset()):
        self.common_words = COMMON_WORDS | set(common_words)
        self.by_word: dict[str, set[tuple[str, ...]]] = {}
        for name in names:
            key = _title_words(name)
            for key in (key, key[1:]) if key[:1] in (("the",), ("a",), ("an",)) else (key,):  # also without its article
                if len(key) > 1:
                    for word in key:
                        self.by_word.setdefault(word, set()).add(key)
        self._longer: dict[tuple[str, ...], list[tuple[str, ...]]] = {}

    def longer_titles(self, key: tuple[str, ...]) -> list[tuple[str, ...]]:
        """The titles that hold ``key`` as a run of their words, and are longer."""
        if key not in self._longer:
            found = []
            for other in self.by_word.get(key[0], ()) if key else ():
                if len(other) > len(key) and any(other[i:i + len(key)] == key for i in range(len(other) - len(key) + 1)):
                    found.append(other)
            self._longer[key] = sorted(found, key=len, reverse=True)
        return self._longer[key]

    def judge(self, text: str, start: int, end: int, own: set[tuple[str, ...]], exact: bool = True) -> tuple[str, str]:
        """(:data:`WRITTEN` or the reason not to write, detail) for the name at ``text[start:end]``
        (``exact``: written with the name's case)."""
        name = text[start:end]
        key = _title_words(name)
        for longer in self.longer_titles(key):
            if longer in own:
                continue
            pattern = r"(?<!\w)" + r"\W+".join(map(re.escape, longer)) + r"(?!\w)"
            if any(match.start() <= start and match.end() >= end for match in re.finditer(pattern, text, re.IGNORECASE)):
                return LONGER_TITLE, " ".join(longer)
        after = _NEXT_WORD.match(text, end)
        if after:
            word = after.group(1)
            if word.lower() in SERIES_WORDS:
                return SERIES, f"{name} {word}"
            sequel = word.isdigit() and not _FOLLOWING_YEAR.match(" " + word)
            if sequel or (word[:1].isupper() and word not in _NOT_NAME_PARTS):
                return LONGER_NAME, f"{name} {word}"
        before = _PREVIOUS_WORD.search(text[:start])
        if before:
            word = before.group(1)
            first_word = _sentence_start(text, before.start(1))
            possessive = word.endswith(("'s", "\u2019s", "s'"))
            if word[:1].isupper() and word not in _NOT_NAME_PARTS and not possessive and not (
                    first_word and (word.lower() in self.common_words or word.lower() in FILM_CUES)):
                return LONGER_NAME, f"{word} {name}"
        common = all(word in self.common_words or word in CAPITALISED_WORDS for word in key)
        if common and (len(key) == 1 or (not exact and len(key) == 2)) and not self._film_mention(text, start, end, key, exact):
            return COMMON_WORD, ""
        return WRITTEN if exact else WRITTEN_OTHER_CASE, ""

    @staticmethod
    def _film_mention(text: str, start: int, end: int, key: tuple[str, ...], exact: bool) -> bool:
        """A name made of common words written as a title: the whole text, quoted, before a year, in a
        film context, or (one word, exact case) capitalised in mid-sentence."""
        if not _NAME_WORD.search(text[:start] + text[end:]):
            return True  # the turn is the title alone ("instant family")
        if start > 0 and end < len(text) and text[start - 1] in _QUOTES and text[end] in _QUOTES:
            return True
        if _FOLLOWING_YEAR.match(text, end):
            return True
        if len(key) == 1 and exact:
            if not text[start:start + 1].isupper():
                return False
            if key[0] not in CAPITALISED_WORDS and not _sentence_start(text, start):
                return True
        before, words = _TOKEN.findall(text[:start].lower()), _TOKEN.findall(text[start:end].lower())
        lowered = [*before, *words, *_TOKEN.findall(text[end:].lower())]
        return EntityLinker.film_context(lowered, len(before), len(words), set(), strong=len(key) == 1, after=exact and len(key) > 1)

    def write(self, text: str, mentions: list[tuple[str, list[str]]]) -> tuple[str, list[Placement]]:
        """``text`` with ``@<item id>`` for each ``(item id, names)`` the text names, and one :class:`Placement` per mention."""
        placements = []
        for item_id, names in mentions:
            candidates = sorted({" ".join(name.split()) for name in names if name and name.strip()}, key=len, reverse=True)
            own = {_title_words(name) for name in candidates}
            placement = refused = None
            for exact in (True, False):
                for name in candidates:
                    for match in re.finditer(rf"(?<![\w@]){re.escape(name)}(?!\w)", text, 0 if exact else re.IGNORECASE):
                        if not exact and match.group(0) == name:
                            continue  # judged in the exact pass
                        outcome, detail = self.judge(text, match.start(), match.end(), own, exact)
                        if outcome in (WRITTEN, WRITTEN_OTHER_CASE):
                            text = f"{text[:match.start()]}@{item_id}{text[match.end():]}"
                            placement = Placement(item_id, match.group(0), outcome)
                            break
                        refused = refused or Placement(item_id, match.group(0), outcome, detail)
                    if placement:
                        break
                if placement:
                    break
            placements.append(placement or refused or Placement(item_id, candidates[0] if candidates else None, NOT_IN_TEXT))
        return text, placements


def write_placeholders(text: str, mentions: list[tuple[str, list[str]]], writer: PlaceholderWriter | None = None) -> tuple[str, int]:
    """``text`` with ``@<item id>`` where it names each ``(item id, names)`` (:class:`PlaceholderWriter`'s
    rules, a default writer without other titles); returns the text and how many placeholders were written."""
    text, placements = (writer or PlaceholderWriter()).write(text, mentions)
    return text, sum(placement.outcome in (WRITTEN, WRITTEN_OTHER_CASE) for placement in placements)


MAX_EXAMPLES = 3  # example lines kept per reason in the converter report


@dataclass
class PlaceholderReport:
    """Counts of :class:`Placement` outcomes, with example lines for every mention doubted or not written."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[dict]] = field(default_factory=dict)

    def add(self, placement: Placement, where: str, text: str) -> None:
        self.counts[placement.outcome] += 1
        if placement.outcome != WRITTEN and len(self.examples.setdefault(placement.outcome, [])) < MAX_EXAMPLES:
            self.examples[placement.outcome].append({"where": where, "item": placement.item_id, "name": placement.name,
                                                     **({"detail": placement.detail} if placement.detail else {}), "text": text})

    def to_dict(self) -> dict:
        """``{"linked item mentions", "written", "doubted", "not written", "reasons": {reason: {"count", "examples"}}}``;
        the doubted mentions (:data:`WRITTEN_OTHER_CASE`) are written, the others of ``reasons`` are not."""
        reasons = {reason: {"count": count, "examples": self.examples.get(reason, [])} for reason, count in self.counts.most_common()
                   if reason != WRITTEN}
        doubted = self.counts[WRITTEN_OTHER_CASE]
        return {"linked item mentions": sum(self.counts.values()), "written": self.counts[WRITTEN] + doubted, "doubted": doubted,
                "not written": sum(self.counts.values()) - self.counts[WRITTEN] - doubted, "reasons": reasons}

    def summary(self) -> str:
        """One line: written, doubted, not written and why."""
        data = self.to_dict()
        reasons = ", ".join(f"{entry['count']} {reason}" for reason, entry in data["reasons"].items() if reason != WRITTEN_OTHER_CASE)
        return (f"placeholders: {data['written']} of {data['linked item mentions']} linked item mentions written "
                f"({data['doubted']} doubted: {WRITTEN_OTHER_CASE}); {data['not written']} not written" + (f": {reasons}" if reasons else ""))


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
    and counted. ``placeholders``: write ``@<item id>`` where the text names a linked item as a title
    (``writer``'s rules; by default a :class:`PlaceholderWriter` over the items' names); every linked
    mention's outcome is counted in ``report``."""

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
    writer: PlaceholderWriter | None = None
    report: PlaceholderReport = field(default_factory=PlaceholderReport)

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
            if self.writer is None:
                self.writer = PlaceholderWriter(self.items.titles() if self.items else ())
            original = text
            text, placements = self.writer.write(text, mentions)
            for placement in placements:
                self.report.add(placement, where, original)
                written = placement.outcome in (WRITTEN, WRITTEN_OTHER_CASE)
                self.stats["placeholders written" if written else "linked item mentions not written (see the report)"] += 1
        self.stats["turns"] += 1
        return {"role": role, "text": text, "items": list(dict.fromkeys(items)), "entities": list(dict.fromkeys(entities))}


def _turns_of(records, dialog_keys: tuple[str, ...]):
    """The turn objects of well-formed records (others are left to the conversion's checks)."""
    for _, record in records:
        turns = record if isinstance(record, list) else next((record[key] for key in dialog_keys if isinstance(record, dict)
                                                              and isinstance(record.get(key), list)), [])
        yield from (turn for turn in turns if isinstance(turn, dict))


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


REPORT_FILE = "conversion_report.json"  # written into a converted dataset folder


def warn(line: str) -> None:
    """A converter's warning or summary: one line on stderr."""
    print(line, file=sys.stderr)


def write_report(path: str | os.PathLike, counts: dict, report: PlaceholderReport | None, warnings: list[str]) -> None:
    """The converter report (JSON): the counts, the placeholders' outcomes with example lines, the warnings."""
    data = {"counts": {key: value for key, value in counts.items() if key != "turns"},
            **({"placeholders": report.to_dict()} if report is not None else {}), "warnings": warnings}
    Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def turn_texts(turns, text_key: str = "text"):
    """The texts of turn objects (the corpus :func:`corpus_common_words` reads); turns without one are skipped."""
    for turn in turns:
        text = turn.get(text_key)
        if isinstance(text, list) and all(isinstance(token, str) for token in text):
            text = " ".join(text)
        if isinstance(text, str):
            yield text


def turn_names(turns, names_key: str | None) -> list[str]:
    """How the turns write their linked items (``names_key``), for :class:`PlaceholderWriter`'s longer titles."""
    return [str(name) for turn in turns if names_key and isinstance(turn.get(names_key), list) for name in turn[names_key] if name]


def empty_output_warning(source: str | os.PathLike, output: str | os.PathLike, what: str = "") -> str:
    """The warning for a converted file without conversations (the check refuses an empty split)."""
    return (f"warning: {source}: {what or 'the file'} has 0 conversations; {output} is written empty and the check "
            "(python -m datasets_scripts.crs_format) will refuse it: give it at least one conversation")


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
            items = ItemMap.from_file(args.items) if args.items else None
            records = read_json_records(args.input)
            writer = None
            if args.placeholders:  # the corpus says which words are common; the names say which titles are longer
                turns = list(_turns_of(records, _keys(args.dialog_key)))
                writer = PlaceholderWriter([*(items.titles() if items else []), *turn_names(turns, args.names_key)],
                                           corpus_common_words(turn_texts(turns, args.text_key)))
            converter = TurnConverter(args.role_key, args.text_key, args.items_key, args.entities_key, args.names_key,
                                      _role_map(args.role_map), items, placeholders=args.placeholders, writer=writer)
            conversations = [turn_list_to_crs(record, args.dialog_key, id_key=args.id_key, where=location(args.input, number), converter=converter)
                             for number, record in records]
            count = write_jsonl(conversations, args.output)
            print_counts(converter.stats)
            if args.placeholders:
                report = Path(args.output).with_suffix(".report.json")
                write_report(report, dict(converter.stats), converter.report, [empty_output_warning(args.input, args.output)] if not count else [])
                warn(f"{converter.report.summary()} (report: {report})")
        else:
            return convert_unicrs.run_command(args)
    except CRSFormatError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return 1
    if not count and args.command in ("redial", "turn-list"):
        warn(empty_output_warning(args.input, args.output))
    print(f"wrote {count} records to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
