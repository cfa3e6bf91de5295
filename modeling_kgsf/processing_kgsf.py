"""``KGSFProcessor``: a conversation in, the model's inputs out.

One object holds what turns text into KGSF inputs: the tokenizer, the entity linker, the concept
lookup (word -> ConceptNet concept id, stopwords removed) and the entity table (entity ids, items,
ReDial movies and titles, names). The dataset pipeline (``datasets_scripts.redial``,
``datasets_scripts.crs_format``) builds its training rows with the functions of this module, and
:class:`~modeling_kgsf.pipeline_kgsf.ConversationalRecommender` uses the processor saved in the
model folder, so a chat message is processed exactly as a training turn was:

* messages tokenised with :class:`KGSFTokenizer` (``@<movieId>`` one token), entities linked with
  :class:`EntityLinker`; consecutive messages of one speaker merged into one turn;
* context = the last ``MAX_CONTEXT_TURNS`` turns joined by ``_split_``, its last
  ``MAX_CONTEXT_TOKENS`` tokens; entities / items / concept words in first-mention order.

A model folder holds the processor as plain JSON (no pickles)::

    processor_config.json   sizes and format version
    kg_resources.json       entity URIs, items, ReDial movies, concept vocabulary, stopwords,
                            relation names, entity names (also read by ``adaptation``)
    entity_linker.json      the linker's built name index (loading it skips a 3 s rebuild)
    vocab.json, tokenizer_config.json, ...   the tokenizer

``KGSFProcessor.from_pretrained(folder)`` loads it in well under a second. Folders written before
``entity_linker.json`` existed still load (the index is rebuilt from ``kg_resources.json``).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .linking_kgsf import EntityLinker
from .preferences_kgsf import ITEM_CUES_FILE, ItemCues
from .tokenization_kgsf import TURN_SEPARATOR, KGSFTokenizer

MAX_CONTEXT_TURNS = 5
MAX_CONTEXT_TOKENS = 256
MAX_RESPONSE_TOKENS = 30
IGNORE_INDEX = -100  # label of a position (reply token, target item) the losses skip
NO_TARGET = -1  # ``target_item`` of rows kept without a target

# The batch schema (docs/DESIGN.md, "Batches"): what KGSFDataCollator emits and the model's forward reads.
CONTEXT_KEYS = ("input_ids", "attention_mask", "context_entity_ids", "context_entity_mask", "context_word_ids", "context_word_mask")
REC_KEYS = CONTEXT_KEYS + ("rec_labels",)  # mode="rec"
CONV_KEYS = CONTEXT_KEYS + ("labels",)  # mode="conv" (also has rec_labels)

PROCESSOR_CONFIG_FILE = "processor_config.json"
KG_RESOURCES_FILE = "kg_resources.json"
LINKER_FILE = "entity_linker.json"
KG_RESOURCES_FORMAT, KG_RESOURCES_VERSION = "kgsf-kg-resources", 1
ADD_RESOURCES_COMMAND = "python -m datasets_scripts.kg_resources --data-dir ../shared/data {folder}"
_MOVIE_ID_TOKEN = re.compile(r"^@(\d+)$")  # a ReDial "@<movieId>" (counted when the release cannot map it)


# ------------------------------------------------------------------------------------------------
# The entity table and the concept lookup
# ------------------------------------------------------------------------------------------------
@dataclass
class DBpediaEntities:
    """The item graph's entity id space and the movies (items) in it."""

    uri_to_entity: dict[str, int]  # key: DBpedia URI ("<http://dbpedia.org/resource/X>") or, for unlinked movies, the movieId
    entity_to_uri: list[str]  # entity id -> URI (or movieId string)
    item_entity_ids: list[int]  # sorted movie entity ids; item index = position
    movie_id_to_entity: dict[str, int]  # ReDial movieId (str) -> entity id
    movie_id_to_title: dict[str, str]  # ReDial movieId (str) -> "Title (year)"
    movie_id_to_mentions: dict[str, int] = field(default_factory=dict)  # nbMentions in ReDial
    # Extra names for linking, entity id -> names (the generic CRS format's entity names/aliases;
    # DBpedia URIs are named from the URI itself, see linking_kgsf.name_from_uri).
    entity_names: dict[int, list[str]] = field(default_factory=dict)

    @property
    def num_entities(self) -> int:
        return len(self.entity_to_uri)

    @property
    def item_index_of_entity(self) -> dict[int, int]:
        """Entity id -> item index (position in ``item_entity_ids``)."""
        return {entity: index for index, entity in enumerate(self.item_entity_ids)}


class ConceptLookup:
    """``concept_id`` for classes holding ``concept_vocab`` and ``stopwords``."""

    concept_vocab: dict[str, int]
    stopwords: set[str]

    def concept_id(self, token: str) -> int | None:
        """Concept id of a word token (lower-cased), None for non-concepts and stopwords."""
        word = token.lower()
        if word in self.stopwords:
            return None
        return self.concept_vocab.get(word)


def build_linker(entities: DBpediaEntities, stopwords: set[str], concept_vocab: dict[str, int], case_free_entities: set[int]) -> EntityLinker:
    """The linker of the processing: concept words and stopwords need capitals, except ``case_free_entities`` (genres)."""
    return EntityLinker.from_kg(entities, stopwords=stopwords, common_words=set(concept_vocab), case_free_entities=case_free_entities)


# ------------------------------------------------------------------------------------------------
# Rows: turns -> the context columns of docs/DESIGN.md
# ------------------------------------------------------------------------------------------------
def new_statistics() -> dict:
    return {
        "conversations": 0,
        "conversations_without_samples": 0,
        "messages": 0,
        "turns": 0,
        "samples": 0,
        "samples_with_target": 0,
        "rec_samples": 0,  # one per (turn, target item), as the reference trains
        "cold_start_rec_samples": 0,
        "messages_with_linked_entity": 0,
        "mentions": {"movie_id": 0, "title": 0, "entity": 0},
        "unknown_movie_ids": 0,  # "@<id>" tokens the release cannot map to an entity
        "movie_ids_not_items": 0,  # "@<id>" mapped to an entity that is not an item
        "skipped_messages": 0,  # messages without text or sender
    }


def unique_in_order(values) -> list:
    seen, ordered = set(), []
    for value in values:
        if value not in seen:
            seen.add(value)
            ordered.append(value)
    return ordered


def append_turn(turns: list[dict], sender, tokens: list[str], entities: list[int], movies: list[int]) -> None:
    """Add a message to merged turns: appended to the last turn when the same sender speaks again."""
    if turns and turns[-1]["sender"] == sender:
        turns[-1]["tokens"] += tokens
        turns[-1]["entities"] += entities
        turns[-1]["movies"] += movies
    else:
        turns.append({"sender": sender, "tokens": tokens, "entities": entities, "movies": movies})


def merged_turns(conversation: dict, resources, stats: dict | None = None) -> list[dict]:
    """Tokenised, linked messages (``{"sender", "tokens", "entities", "movies"}``) with consecutive
    messages of one speaker merged. ``conversation["messages"]`` holds ``{"text", "senderWorkerId"}``
    dicts; ``resources`` (a :class:`KGSFProcessor` or the dataset's resources) needs ``entities``,
    ``tokenizer`` and ``linker``."""
    stats = stats if stats is not None else new_statistics()
    items = set(resources.entities.item_entity_ids)
    turns: list[dict] = []
    for message in conversation["messages"]:
        text, sender = message.get("text"), message.get("senderWorkerId")
        if not isinstance(text, str) or sender is None:
            stats["skipped_messages"] += 1
            continue
        stats["messages"] += 1
        tokens = resources.tokenizer.tokenize(text)
        mentions = resources.linker.link(tokens)
        for token in tokens:
            movie = _MOVIE_ID_TOKEN.match(token)
            if movie and resources.linker.movie_entity(movie.group(1)) is None:
                stats["unknown_movie_ids"] += 1
        movies = []
        for mention in mentions:
            stats["mentions"][mention.kind] += 1
            if mention.kind == "movie_id":
                if mention.entity_id in items:
                    movies.append(mention.entity_id)
                else:
                    stats["movie_ids_not_items"] += 1
        stats["messages_with_linked_entity"] += bool(mentions)
        append_turn(turns, sender, tokens, [mention.entity_id for mention in mentions], movies)
    return turns


def context_columns(history: list[list[str]], seen_entities: list[int], resources, items: set[int] | None = None) -> dict:
    """The context columns of a row (DESIGN.md) from the earlier turns' tokens and linked entities:
    last ``MAX_CONTEXT_TURNS`` turns joined by ``_split_``, last ``MAX_CONTEXT_TOKENS`` tokens;
    entities / items / concept words in first-mention order. ``resources`` needs ``concept_id``
    and ``entities``."""
    items = items if items is not None else set(resources.entities.item_entity_ids)
    context_tokens: list[str] = []
    for previous in history[-MAX_CONTEXT_TURNS:]:
        if context_tokens:
            context_tokens.append(TURN_SEPARATOR)
        context_tokens.extend(previous)
    context_tokens = context_tokens[-MAX_CONTEXT_TOKENS:]
    context_entities = unique_in_order(seen_entities)
    context_items = [entity for entity in context_entities if entity in items]
    context_words = unique_in_order(concept for concept in (resources.concept_id(token) for token in context_tokens) if concept is not None)
    return {
        "context_tokens": context_tokens,
        "context_entities": context_entities,
        "context_items": context_items,
        "context_words": context_words,
        "cold_start": not context_items,
    }


def context_row(messages: list[tuple[str, str]], resources, recommender: str = "recommender") -> dict:
    """A row for the recommender turn that follows ``messages`` (``(sender, text)`` pairs), processed
    as a dataset turn is: all given turns are the context. No targets."""
    conversation = {"messages": [{"text": text, "senderWorkerId": sender} for sender, text in messages], "respondentWorkerId": recommender}
    turns = merged_turns(conversation, resources)
    context = context_columns([turn["tokens"] for turn in turns], [e for turn in turns for e in turn["entities"]], resources)
    return {"conversation_id": "", "turn_index": len(turns), "response_tokens": [], "target_items": [], **context}


# ------------------------------------------------------------------------------------------------
# Batches: rows -> padded tensors (docs/DESIGN.md, "Batches")
# ------------------------------------------------------------------------------------------------
def _pad(sequences: list[list[int]], pad_value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, max(1, longest)) long tensor and bool mask (True = real position)."""
    width = max(1, max((len(sequence) for sequence in sequences), default=0))
    values = torch.full((len(sequences), width), pad_value, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.bool)
    for row, sequence in enumerate(sequences):
        if sequence:
            values[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
            mask[row, : len(sequence)] = True
    return values, mask


class KGSFDataCollator:
    """Collate processed rows into the batch dict of DESIGN.md.

    ``mode="rec"`` expects rows with a ``target_item`` column (one per (turn, target item), see
    ``datasets_scripts.collator.expand_for_recommendation``) and emits ``rec_labels``;
    ``mode="conv"`` also emits ``labels`` (response ids + ``__end__``, pad -100).
    """

    def __init__(self, tokenizer, item_index_of_entity: dict[int, int], mode: str = "rec"):
        if mode not in ("rec", "conv"):
            raise ValueError(f"mode must be 'rec' or 'conv', got {mode!r}")
        self.tokenizer = tokenizer
        self.item_index_of_entity = item_index_of_entity
        self.mode = mode

    def _rec_label(self, row: dict) -> int:
        target = row.get("target_item", NO_TARGET)
        return self.item_index_of_entity.get(target, IGNORE_INDEX) if target is not None and target >= 0 else IGNORE_INDEX

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        tokenizer = self.tokenizer
        input_ids, attention_mask = _pad([tokenizer.convert_tokens_to_ids(row["context_tokens"]) for row in rows], tokenizer.pad_token_id)
        entity_ids, entity_mask = _pad([row["context_entities"] for row in rows], 0)
        word_ids, word_mask = _pad([row["context_words"] for row in rows], 0)
        item_indices, _ = _pad(
            [[self.item_index_of_entity[e] for e in row["context_items"] if e in self.item_index_of_entity] for row in rows], -1
        )
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask.long(),
            "context_entity_ids": entity_ids,
            "context_entity_mask": entity_mask,
            "context_word_ids": word_ids,
            "context_word_mask": word_mask,
            "rec_labels": torch.tensor([self._rec_label(row) for row in rows], dtype=torch.long),
            "context_item_indices": item_indices,
        }
        if self.mode == "conv":
            responses = [tokenizer.convert_tokens_to_ids(row["response_tokens"]) + [tokenizer.eos_token_id] for row in rows]
            batch["labels"], _ = _pad(responses, IGNORE_INDEX)
        return batch


# ------------------------------------------------------------------------------------------------
# The processor
# ------------------------------------------------------------------------------------------------
class KGSFProcessor(ConceptLookup):
    """Tokenizer + entity linker + concept lookup + entity table, saved beside the model.

    Args:
        tokenizer: the model's :class:`KGSFTokenizer`.
        entities: the entity table (:class:`DBpediaEntities`).
        concept_vocab: lower-case word -> ConceptNet concept id.
        stopwords: words that are never concepts.
        case_free_entities: entities the linker also matches in lower case (genres: "horror").
        relation_names: item-graph relation id -> name (a DBpedia property) or None.
        kgsf_relation_ids: item-graph relation id -> the KGSF release's relation id (bookkeeping).
        linker: a built :class:`EntityLinker` (built from the above when None).
        item_cues: what the training conversations say about each item (:class:`ItemCues`, saved as
            ``item_cues.json``; None for folders saved before it existed).
    """

    def __init__(self, tokenizer, entities: DBpediaEntities, concept_vocab: dict[str, int], stopwords: set[str],
                 case_free_entities: set[int] = frozenset(), relation_names: list | None = None,
                 kgsf_relation_ids: list | None = None, linker: EntityLinker | None = None, item_cues: ItemCues | None = None):
        self.tokenizer = tokenizer
        self.entities = entities
        self.concept_vocab = dict(concept_vocab)
        self.stopwords = set(stopwords)
        self.case_free_entities = set(case_free_entities)
        self.relation_names = list(relation_names or [])
        self.kgsf_relation_ids = list(kgsf_relation_ids or [])
        self.linker = linker if linker is not None else build_linker(entities, self.stopwords, self.concept_vocab, self.case_free_entities)
        self.item_index_of_entity = entities.item_index_of_entity
        self.item_cues = item_cues

    def __repr__(self) -> str:
        return (f"KGSFProcessor(vocab={len(self.tokenizer)}, entities={self.entities.num_entities}, "
                f"items={len(self.entities.item_entity_ids)}, concepts={len(self.concept_vocab)}, "
                f"linker_names={len(self.linker.names)})")

    # ------------------------------------------------------------------ processing
    def context_row(self, messages: list[tuple[str, str]], recommender: str = "recommender") -> dict:
        """The processed row for the recommender turn after ``messages`` (``(sender, text)`` pairs)."""
        return context_row(messages, self, recommender=recommender)

    def collator(self, mode: str = "rec") -> KGSFDataCollator:
        return KGSFDataCollator(self.tokenizer, self.item_index_of_entity, mode=mode)

    def __call__(self, messages: list[tuple[str, str]], recommender: str = "recommender") -> dict[str, torch.Tensor]:
        """A batch of one (the model's context inputs) for the turn after ``messages``."""
        return self.collator("rec")([self.context_row(messages, recommender=recommender)])

    # ------------------------------------------------------------------ saving
    def kg_resources_dict(self) -> dict:
        """The content of ``kg_resources.json``."""
        entities = self.entities
        movie_ids = sorted(set(entities.movie_id_to_title) | set(entities.movie_id_to_entity), key=lambda m: (len(m), m))
        return {
            "format": KG_RESOURCES_FORMAT,
            "version": KG_RESOURCES_VERSION,
            "n_entity": entities.num_entities,
            "n_relation": len(self.relation_names),
            "entity_uris": entities.entity_to_uri,
            "item_entity_ids": list(entities.item_entity_ids),
            # movieId -> [entity id or null, title or null, nbMentions]
            "movies": {
                m: [entities.movie_id_to_entity.get(m), entities.movie_id_to_title.get(m), entities.movie_id_to_mentions.get(m, 0)]
                for m in movie_ids
            },
            "concept_vocab": self.concept_vocab,
            "stopwords": sorted(self.stopwords),
            "case_free_entities": sorted(self.case_free_entities),
            "relation_names": self.relation_names,
            "kgsf_relation_ids": self.kgsf_relation_ids,
            # entity id (as a string) -> names, for entities named other than by a DBpedia URI
            "entity_names": {str(entity): names for entity, names in sorted(entities.entity_names.items())},
        }

    def save_pretrained(self, save_directory: str | os.PathLike, save_tokenizer: bool = True) -> list[Path]:
        """Write the tokenizer (unless ``save_tokenizer=False``), ``kg_resources.json``,
        ``entity_linker.json``, ``processor_config.json`` and, when set, ``item_cues.json``."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        if save_tokenizer:
            self.tokenizer.save_pretrained(folder)
        config = {"processor_class": type(self).__name__, "format_version": 1, "n_entity": self.entities.num_entities,
                  "n_item": len(self.entities.item_entity_ids), "n_relation": len(self.relation_names),
                  "vocab_size": len(self.tokenizer), "max_context_turns": MAX_CONTEXT_TURNS,
                  "max_context_tokens": MAX_CONTEXT_TOKENS, "max_response_tokens": MAX_RESPONSE_TOKENS}
        written = []
        for name, content in ((KG_RESOURCES_FILE, self.kg_resources_dict()), (LINKER_FILE, self.linker.to_dict()),
                              (PROCESSOR_CONFIG_FILE, config)):
            path = folder / name
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(content, ensure_ascii=False, separators=(",", ":") if name != PROCESSOR_CONFIG_FILE else None,
                                      indent=2 if name == PROCESSOR_CONFIG_FILE else None), encoding="utf-8")
            tmp.replace(path)
            written.append(path)
        if self.item_cues is not None:
            written.append(self.item_cues.save(folder))
        return written

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, tokenizer=None) -> "KGSFProcessor":
        """Load from a model folder. ``FileNotFoundError`` (naming the file and how to add it) when
        ``kg_resources.json`` is missing; ``ValueError`` when a file is not what it should be."""
        folder = Path(folder)
        path = folder / KG_RESOURCES_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"{folder} has no {KG_RESOURCES_FILE} (the entity names, movie titles and concept vocabulary that linking "
                f"and explanations need; folders saved before it existed lack it). Add it with:\n  {ADD_RESOURCES_COMMAND.format(folder=folder)}"
            )
        data = _read_json(path)
        if data.get("format") != KG_RESOURCES_FORMAT or data.get("version") != KG_RESOURCES_VERSION:
            raise ValueError(f"{path}: not a {KG_RESOURCES_FORMAT} file of version {KG_RESOURCES_VERSION} "
                             f"(format={data.get('format')!r}, version={data.get('version')!r})")
        uris, movies = data["entity_uris"], data["movies"]
        entities = DBpediaEntities(
            uri_to_entity={uri: entity for entity, uri in enumerate(uris)},
            entity_to_uri=uris,
            item_entity_ids=list(data["item_entity_ids"]),
            movie_id_to_entity={m: e for m, (e, _, _) in movies.items() if e is not None},
            movie_id_to_title={m: t for m, (_, t, _) in movies.items() if t is not None},
            movie_id_to_mentions={m: n for m, (_, _, n) in movies.items()},
            entity_names={int(entity): list(names) for entity, names in data.get("entity_names", {}).items()},
        )
        linker = None
        if (folder / LINKER_FILE).exists():
            try:
                linker = EntityLinker.from_dict(_read_json(folder / LINKER_FILE))
            except (ValueError, KeyError, TypeError):
                linker = None  # an index of another version: rebuilt below from kg_resources.json
        if tokenizer is None:
            tokenizer = KGSFTokenizer.from_pretrained(folder)
        return cls(tokenizer, entities, data["concept_vocab"], set(data["stopwords"]), set(data["case_free_entities"]),
                   data["relation_names"], data.get("kgsf_relation_ids"), linker=linker,
                   item_cues=ItemCues.load(folder, n_item=len(entities.item_entity_ids)))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
                         "the file is damaged: save the model folder again or re-download it") from None
