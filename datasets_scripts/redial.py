"""ReDial as processed by KGSF: :func:`load_redial` (the dataset) and :func:`load_resources` (graphs,
item list, tokenizer, concept map, vocabulary masks, entity linker).

Processing follows the reference (``docs/DESIGN.md`` has the row schema):

* messages tokenised with :class:`KGSFTokenizer` (``@<movieId>`` one token), entities linked with
  :class:`EntityLinker`; consecutive messages of one speaker are merged into one turn;
* one row per recommender (``respondentWorkerId``) turn that has at least one earlier turn;
* context = the last 5 turns joined by ``_split_``, its last 256 tokens; response = the turn's
  first 30 tokens (the reference keeps the last 30 of response+``__end__``; DESIGN.md fixes the
  first 30);
* context entities = everything linked in earlier turns, first-mention order; context items =
  those that are movies; target items = the movies the recommender turn mentions as ``@movieId``
  (as the reference's ``detect_movie``); context words = concept ids of the context tokens.

Splits: test = ``RUCAIBox-KGSF/data/test_data.jsonl`` (the official ReDial test), validation =
``RUCAIBox-KGSF/data/valid_data.jsonl``, train = ``baazouziwiem-Kepler-aSI-CRS/train_data.jsonl``
(or ``train_files``, e.g. the full ``train_data.jsonl``) plus, when ``include_recovered`` and the
module exists, the conversations :mod:`datasets_scripts.recover_unicrs` rebuilds.

The processed splits are cached with ``save_to_disk`` under
``<cache>/processed/<hash of inputs and PROCESSING_VERSION>`` together with ``statistics.json``.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict, Features, Sequence, Value, load_from_disk

from modeling_kgsf.tokenization_kgsf import SPECIAL_TOKENS, TURN_SEPARATOR, KGSFTokenizer

from . import kg, paths
from .entity_linker import EntityLinker

PROCESSING_VERSION = "1"
MAX_CONTEXT_TURNS = 5
MAX_CONTEXT_TOKENS = 256
MAX_RESPONSE_TOKENS = 30
SPLITS = ("train", "validation", "test")

ROW_FEATURES = Features(
    {
        "conversation_id": Value("string"),
        "turn_index": Value("int32"),
        "context_tokens": Sequence(Value("string")),
        "response_tokens": Sequence(Value("string")),
        "context_entities": Sequence(Value("int32")),
        "context_items": Sequence(Value("int32")),
        "context_words": Sequence(Value("int32")),
        "target_items": Sequence(Value("int32")),
        "cold_start": Value("bool"),
    }
)
_MOVIE_TOKEN = re.compile(r"^@(\d+)$")
_REQUIRED_KEYS = ("messages", "respondentWorkerId")

PathLike = str | os.PathLike | None


# ------------------------------------------------------------------------------------------------
# Resources
# ------------------------------------------------------------------------------------------------
class ConceptLookup:
    """``concept_id`` for resource classes holding ``concept_vocab`` and ``stopwords``."""

    concept_vocab: dict[str, int]
    stopwords: set[str]

    def concept_id(self, token: str) -> int | None:
        """Concept id of a word token (lower-cased), None for non-concepts and stopwords."""
        word = token.lower()
        if word in self.stopwords:
            return None
        return self.concept_vocab.get(word)


@dataclass
class KGSFResources(ConceptLookup):
    """Everything the processing and the model need besides the rows."""

    entities: kg.DBpediaEntities
    item_graph: kg.ItemGraph
    word_graph: kg.WordGraph
    tokenizer: KGSFTokenizer
    concept_vocab: dict[str, int]  # lower-case word -> concept id (1..29308)
    stopwords: set[str]
    linker: EntityLinker
    kg_word_vocab_mask: torch.Tensor  # (vocab,) bool: the word's lower-case form is a non-stopword concept
    item_token_vocab_mask: torch.Tensor  # (vocab,) bool: the token is "@<movieId>" of an item
    mask_agreement: dict  # comparison with the release's mask4key.npy / mask4movie.npy

    @property
    def item_entity_ids(self) -> torch.Tensor:
        """(n_item,) long: entity id of each item index."""
        return torch.tensor(self.entities.item_entity_ids, dtype=torch.long)

    @property
    def item_index_of_entity(self) -> dict[int, int]:
        return self.entities.item_index_of_entity


def genre_entities(item_graph: kg.ItemGraph, entities: kg.DBpediaEntities) -> set[int]:
    """Objects of the relation named ``genre`` (they may be written in lower case: "horror")."""
    if "genre" not in item_graph.relation_names:
        return set()
    genre_relation = item_graph.relation_names.index("genre")
    tails = item_graph.edge_index[1][item_graph.edge_type == genre_relation].tolist()
    return set(tails) - set(entities.item_entity_ids)


def _compare_masks(ours: torch.Tensor, reference_file: Path | None) -> dict:
    """Agreement of a vocabulary mask with the release's float64 ``.npy`` mask."""
    if reference_file is None or not reference_file.exists():
        return {"available": False}
    reference = torch.from_numpy(np.load(reference_file, allow_pickle=False) > 0.5)
    if reference.shape != ours.shape:
        return {"available": True, "shape_mismatch": [list(reference.shape), list(ours.shape)]}
    both = int((ours & reference).sum())
    return {
        "available": True,
        "ours": int(ours.sum()),
        "reference": int(reference.sum()),
        "both": both,
        "only_ours": int((ours & ~reference).sum()),
        "only_reference": int((~ours & reference).sum()),
        "agreement": round(float((ours == reference).float().mean()), 4),
        "jaccard": round(both / max(1, int((ours | reference).sum())), 4),
    }


def build_linker(entities: kg.DBpediaEntities, stopwords: set[str], concept_vocab: dict[str, int], case_free_entities: set[int]) -> EntityLinker:
    """The linker of the processing: concept words and stopwords need capitals, except ``case_free_entities`` (genres)."""
    return EntityLinker.from_kg(entities, stopwords=stopwords, common_words=set(concept_vocab), case_free_entities=case_free_entities)


def vocab_masks(vocab: dict[str, int], concept_vocab: dict[str, int], stopwords: set[str], item_tokens: set[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(kg_word_vocab_mask, item_token_vocab_mask)``, (vocab,) bool each: the token's lower-case form
    is a non-stopword concept / the token is an item placeholder in ``item_tokens``. Special tokens: False."""
    kg_word_vocab_mask = torch.zeros(len(vocab), dtype=torch.bool)
    item_token_vocab_mask = torch.zeros(len(vocab), dtype=torch.bool)
    for token, index in vocab.items():
        if index < len(SPECIAL_TOKENS):
            continue
        word = token.lower()
        kg_word_vocab_mask[index] = word in concept_vocab and word not in stopwords
        item_token_vocab_mask[index] = token in item_tokens
    return kg_word_vocab_mask, item_token_vocab_mask


def load_resources(data_dir: PathLike = None, cache_dir: PathLike = None) -> KGSFResources:
    """Load graphs, id maps, tokenizer, concept map, stopwords, vocabulary masks and the linker."""
    entities = kg.load_dbpedia(data_dir, cache_dir)
    item_graph = kg.load_item_graph(data_dir, cache_dir, entities=entities)
    concept_vocab = kg.load_concept_vocab(data_dir)
    stopwords = kg.load_stopwords(data_dir)
    word_graph = kg.load_word_graph(data_dir, concept_vocab, stopwords)
    tokenizer = KGSFTokenizer.from_word2index(str(paths.data_file(paths.WORD2INDEX_FILE, data_dir)))
    linker = build_linker(entities, stopwords, concept_vocab, genre_entities(item_graph, entities))

    items = set(entities.item_entity_ids)
    item_tokens = {f"@{movie_id}" for movie_id, entity in entities.movie_id_to_entity.items() if entity in items}
    kg_word_vocab_mask, item_token_vocab_mask = vocab_masks(tokenizer.vocab, concept_vocab, stopwords, item_tokens)

    root = paths.resolve_data_dir(data_dir)
    mask_agreement = {
        "kg_word_vocab_mask_vs_mask4key": _compare_masks(kg_word_vocab_mask, root / paths.MASK4KEY_FILE),
        "item_token_vocab_mask_vs_mask4movie": _compare_masks(item_token_vocab_mask, root / paths.MASK4MOVIE_FILE),
    }
    return KGSFResources(
        entities, item_graph, word_graph, tokenizer, concept_vocab, stopwords, linker,
        kg_word_vocab_mask, item_token_vocab_mask, mask_agreement,
    )


# ------------------------------------------------------------------------------------------------
# Reading and processing conversations
# ------------------------------------------------------------------------------------------------
def read_conversations(path: str | os.PathLike) -> list[dict]:
    """Raw ReDial jsonl; a malformed line raises ``ValueError`` naming the file and line number."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ReDial conversation file not found: {path}")
    conversations = []
    for line_number, conversation in paths.iter_jsonl(path):
        missing = [key for key in _REQUIRED_KEYS if not isinstance(conversation, dict) or key not in conversation]
        if missing:
            raise ValueError(f"{path}, line {line_number}: not a ReDial conversation (missing {', '.join(missing)})")
        conversations.append(conversation)
    return conversations


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


def merged_turns(conversation: dict, resources: KGSFResources, stats: dict | None = None) -> list[dict]:
    """Tokenised, linked messages (``{"sender", "tokens", "entities", "movies"}``) with consecutive
    messages of one speaker merged. ``resources`` needs ``entities``, ``tokenizer`` and ``linker``."""
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
            movie = _MOVIE_TOKEN.match(token)
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
        entities = [mention.entity_id for mention in mentions]
        append_turn(turns, sender, tokens, entities, movies)
    return turns


def append_turn(turns: list[dict], sender, tokens: list[str], entities: list[int], movies: list[int]) -> None:
    """Add a message to merged turns: appended to the last turn when the same sender speaks again."""
    if turns and turns[-1]["sender"] == sender:
        turns[-1]["tokens"] += tokens
        turns[-1]["entities"] += entities
        turns[-1]["movies"] += movies
    else:
        turns.append({"sender": sender, "tokens": tokens, "entities": entities, "movies": movies})


def context_columns(history: list[list[str]], seen_entities: list[int], resources: KGSFResources, items: set[int] | None = None) -> dict:
    """The context columns of a row (DESIGN.md) from the earlier turns' tokens and linked entities:
    last ``MAX_CONTEXT_TURNS`` turns joined by ``_split_``, last ``MAX_CONTEXT_TOKENS`` tokens;
    entities / items / concept words in first-mention order."""
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


def context_row(messages: list[tuple[str, str]], resources: KGSFResources, recommender: str = "recommender") -> dict:
    """A row for the recommender turn that follows ``messages`` (``(sender, text)`` pairs), processed
    as :func:`process_conversation` processes a turn: all given turns are the context. No targets."""
    conversation = {"messages": [{"text": text, "senderWorkerId": sender} for sender, text in messages], "respondentWorkerId": recommender}
    turns = merged_turns(conversation, resources)
    context = context_columns([turn["tokens"] for turn in turns], [e for turn in turns for e in turn["entities"]], resources)
    return {"conversation_id": "", "turn_index": len(turns), "response_tokens": [], "target_items": [], **context}


def rows_from_turns(turns: list[dict], is_recommender, conversation_id: str, resources, stats: dict, items: set[int] | None = None) -> list[dict]:
    """Rows (DESIGN.md schema) for merged turns (``{"sender", "tokens", "entities", "movies"}``): one
    per turn whose sender ``is_recommender(sender)`` and that has an earlier turn; updates ``stats``.
    Shared by ReDial and the generic CRS format (:mod:`datasets_scripts.crs_format`)."""
    items = items if items is not None else set(resources.entities.item_entity_ids)
    stats["conversations"] += 1
    stats["turns"] += len(turns)
    rows, history, seen_entities = [], [], []
    for turn_index, turn in enumerate(turns):
        if is_recommender(turn["sender"]) and history:
            context = context_columns(history, seen_entities, resources, items)
            target_items = unique_in_order(turn["movies"])
            rows.append(
                {
                    "conversation_id": conversation_id,
                    "turn_index": turn_index,
                    "response_tokens": turn["tokens"][:MAX_RESPONSE_TOKENS],
                    "target_items": target_items,
                    **context,
                }
            )
            stats["samples"] += 1
            stats["samples_with_target"] += bool(target_items)
            stats["rec_samples"] += len(target_items)
            stats["cold_start_rec_samples"] += len(target_items) if context["cold_start"] else 0
        history.append(turn["tokens"])
        seen_entities.extend(turn["entities"])
    stats["conversations_without_samples"] += not rows
    return rows


def process_conversation(conversation: dict, resources: KGSFResources, stats: dict) -> list[dict]:
    """Rows (DESIGN.md schema) for one raw ReDial conversation; updates ``stats``."""
    recommender = conversation["respondentWorkerId"]
    turns = merged_turns(conversation, resources, stats)
    return rows_from_turns(turns, lambda sender: sender == recommender, str(conversation.get("conversationId", "")), resources, stats)


def process_conversations(conversations: list[dict], resources: KGSFResources) -> tuple[list[dict], dict]:
    """Rows and statistics for a list of raw conversations."""
    stats = new_statistics()
    rows = []
    for conversation in conversations:
        rows.extend(process_conversation(conversation, resources, stats))
    return rows, stats


# ------------------------------------------------------------------------------------------------
# Splits, recovered conversations, cache
# ------------------------------------------------------------------------------------------------
def _recover_module():
    """``datasets_scripts.recover_unicrs`` if it is present, else None."""
    try:
        from . import recover_unicrs
    except ImportError:
        return None
    return recover_unicrs if hasattr(recover_unicrs, "recover_conversations") else None


def _recovered_conversations(data_dir: Path, cache_dir: PathLike, exclude_files: dict[str, Path]) -> tuple[list[dict], dict]:
    """Training conversations rebuilt from UniCRS samples, without overlap with ``exclude_files``."""
    module = _recover_module()
    if module is None:
        return [], {"available": False}
    parameters = inspect.signature(module.recover_conversations).parameters
    kwargs = {}
    if "converted_dir" in parameters:
        kwargs["converted_dir"] = paths.converted_pickles_dir(data_dir, cache_dir)
    if "exclude_files" in parameters:
        kwargs["exclude_files"] = {name: str(path) for name, path in exclude_files.items()}
    elif "exclude_texts" in parameters:
        kwargs["exclude_texts"] = {
            message["text"] for path in exclude_files.values() for conversation in read_conversations(path) for message in conversation["messages"]
        }
    conversations, stats = module.recover_conversations(data_dir, **kwargs)
    return conversations, {"available": True, **stats}


def _cache_key(files: list[Path], include_recovered: bool) -> str:
    extra = [f"processing={PROCESSING_VERSION}", f"include_recovered={include_recovered}"]
    module = _recover_module() if include_recovered else None
    if module is not None:
        extra.append(hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest())
    for source in ("redial.py", "entity_linker.py", "kg.py"):
        extra.append(hashlib.sha256((Path(__file__).parent / source).read_bytes()).hexdigest())
    return paths.fingerprint_files(files, *extra)


def load_redial(
    data_dir: PathLike = None,
    cache_dir: PathLike = None,
    train_files: list[str | os.PathLike] | None = None,
    validation_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
    include_recovered: bool = True,
    resources: KGSFResources | None = None,
    return_statistics: bool = False,
    overwrite_cache: bool = False,
):
    """The processed ReDial splits as a ``DatasetDict`` (train / validation / test).

    ``train_files``: raw ReDial jsonl files for training (default: the 500 train conversations;
    give the full ``train_data.jsonl`` if you have it). ``include_recovered``: add the training
    conversations recovered from UniCRS samples (when ``recover_unicrs`` is available).
    With ``return_statistics`` the result is ``(dataset_dict, statistics)``; statistics are also
    stored as ``statistics.json`` next to the cached dataset.
    """
    root = paths.resolve_data_dir(data_dir)
    cache_root = paths.resolve_cache_dir(cache_dir)
    split_files = {
        "train": [Path(f) if Path(f).is_absolute() else root / f for f in (train_files or [paths.TRAIN_FILE])],
        "validation": [Path(validation_file) if validation_file else paths.data_file(paths.VALID_FILE, root)],
        "test": [Path(test_file) if test_file else paths.data_file(paths.TEST_FILE, root)],
    }
    for split, files in split_files.items():
        for file in files:
            if not file.exists():
                raise FileNotFoundError(f"{split} file not found: {file} (data directory {root})")
    resource_files = [
        paths.data_file(name, root)
        for name in (paths.WORD2INDEX_FILE, paths.CONCEPT2INDEX_FILE, paths.STOPWORDS_FILE, paths.MOVIES_CSV_FILE)
    ] + [paths.data_file(f"{paths.KGSF_PICKLE_DIR}/{name}", root) for name in ("entity2entityId.pkl", "id2entity.pkl", "movie_ids.pkl", "subkg.pkl")]
    all_files = [file for files in split_files.values() for file in files] + resource_files
    target = cache_root / "processed" / _cache_key(all_files, include_recovered)
    statistics_file = target / "statistics.json"

    if statistics_file.exists() and not overwrite_cache:
        dataset = load_from_disk(str(target / "dataset"))
        statistics = json.loads(statistics_file.read_text(encoding="utf-8"))
    else:
        resources = resources or load_resources(root, cache_root)
        conversations = {split: [c for file in files for c in read_conversations(file)] for split, files in split_files.items()}
        statistics = {"processing_version": PROCESSING_VERSION, "files": {s: [str(f) for f in fs] for s, fs in split_files.items()}}
        recovered_stats = {"included": False}
        if include_recovered:
            exclude = {"validation": split_files["validation"][0], "test": split_files["test"][0]}
            exclude.update({f"train{index}": file for index, file in enumerate(split_files["train"])})
            recovered, recovered_stats = _recovered_conversations(root, cache_root, exclude)
            recovered_stats["included"] = bool(recovered)
            statistics["train_conversations_from_files"] = len(conversations["train"])
            conversations["train"] = conversations["train"] + recovered
        statistics["recovered"] = recovered_stats
        splits = {}
        for split in SPLITS:
            rows, split_stats = process_conversations(conversations[split], resources)
            statistics[split] = split_stats
            splits[split] = Dataset.from_list(rows, features=ROW_FEATURES)
        dataset = DatasetDict(splits)
        statistics["mask_agreement"] = resources.mask_agreement
        tmp = target.with_name(target.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        dataset.save_to_disk(str(tmp / "dataset"))
        (tmp / "statistics.json").write_text(json.dumps(statistics, indent=2, default=str), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        tmp.replace(target)
        dataset = load_from_disk(str(target / "dataset"))
    return (dataset, statistics) if return_statistics else dataset
