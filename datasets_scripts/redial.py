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
(or ``train_files``, e.g. the full ``train_data.jsonl``) plus, by ``train_source``, the ordered
CFCRS/lmh85 conversations and the rest of ReDial train with its turn order rebuilt by
:mod:`datasets_scripts.turn_order` (default), or the conversations :mod:`datasets_scripts.recover_unicrs`
rebuilds (``"recovered"``).

The processed splits are cached with ``save_to_disk`` under
``<cache>/processed/<hash of inputs and PROCESSING_VERSION>`` together with ``statistics.json``.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict, Features, Sequence, Value, load_from_disk

from modeling_kgsf.tokenization_kgsf import SPECIAL_TOKENS, KGSFTokenizer

from modeling_kgsf import processing_kgsf
from modeling_kgsf.linking_kgsf import EntityLinker
from modeling_kgsf.processing_kgsf import (
    DBpediaEntities,
    MAX_RESPONSE_TOKENS,
    ConceptLookup,
    KGSFProcessor,
    build_linker,
    context_columns,
    merged_turns,
    new_statistics,
    unique_in_order,
)

from . import kg, paths

PROCESSING_VERSION = "1"
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
_REQUIRED_KEYS = ("messages", "respondentWorkerId")

PathLike = str | os.PathLike | None


# ------------------------------------------------------------------------------------------------
# Resources
# ------------------------------------------------------------------------------------------------
@dataclass
class KGSFResources(ConceptLookup):
    """Everything the processing and the model need besides the rows."""

    entities: DBpediaEntities
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

    @property
    def processor(self) -> KGSFProcessor:
        """The :class:`KGSFProcessor` over these resources (what a model folder saves beside the weights)."""
        return KGSFProcessor(self.tokenizer, self.entities, self.concept_vocab, self.stopwords,
                             genre_entities(self.item_graph, self.entities), list(self.item_graph.relation_names),
                             list(self.item_graph.kgsf_relation_ids), linker=self.linker)


def genre_entities(item_graph: kg.ItemGraph, entities: DBpediaEntities) -> set[int]:
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



def conversation_text_key(conversation: dict) -> tuple[str, ...]:
    """A conversation's ordered message texts, white space collapsed and lower-cased: what identifies
    it when its id was changed."""
    return tuple(" ".join(str(message.get("text", "")).split()).lower() for message in conversation.get("messages", []))


def refuse_held_out_conversations(train: dict[Path, list[dict]], held_out: dict[str, list[dict]]) -> None:
    """Raise ``ValueError`` (one line naming the file, the conversation id and the split) when a
    training file (``{file: conversations}``) holds a conversation of a held-out split (``{split:
    conversations}``), by id or by its ordered message texts (:func:`conversation_text_key`).
    The original ReDial ``train_data.jsonl`` holds KGSF's 901 validation conversations."""
    ids, texts = {}, {}
    for split, conversations in held_out.items():
        for conversation in conversations:
            conversation_id = str(conversation.get("conversationId", ""))
            if conversation_id:
                ids.setdefault(conversation_id, split)
            key = conversation_text_key(conversation)
            if any(key):
                texts.setdefault(key, (split, conversation_id))
    for file, conversations in train.items():
        found = []
        for conversation in conversations:
            conversation_id = str(conversation.get("conversationId", ""))
            if conversation_id in ids:
                found.append(f"conversation {conversation_id} is in the {ids[conversation_id]} split")
            elif conversation_text_key(conversation) in texts:
                split, other = texts[conversation_text_key(conversation)]
                found.append(f"conversation {conversation_id or '(no id)'} has the text of {split} conversation {other}")
        if found:
            more = f" (and {len(found) - 1} more held-out conversations)" if len(found) > 1 else ""
            raise ValueError(f"training file {file}: {found[0]}{more}; a training file must not hold validation or test "
                             f"conversations (the original ReDial train_data.jsonl holds KGSF's 901 validation ones): remove them")

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


#: ``load_redial``'s train sources, each a superset of the one before it (DATA.md, "Train sources"):
#: the release's 500 (or ``train_files``); + the 842 conversations rebuilt from UniCRS samples (the
#: earlier default); instead of those, + the ordered CFCRS and lmh85 conversations; + the rest of
#: ReDial train with its turn order rebuilt (:mod:`datasets_scripts.turn_order`).
TRAIN_SOURCES = ("release", "recovered", "ordered", "reconstructed")
DEFAULT_TRAIN_SOURCE = "reconstructed"


def resolve_train_source(train_source: str | None = None, include_recovered: bool | None = True) -> str:
    """The train source: ``train_source`` when given, else ``"release"`` for ``include_recovered=False``
    and :data:`DEFAULT_TRAIN_SOURCE` otherwise."""
    if train_source is None:
        return "release" if include_recovered is False else DEFAULT_TRAIN_SOURCE
    if train_source not in TRAIN_SOURCES:
        raise ValueError(f"unknown train_source {train_source!r}; expected one of {', '.join(TRAIN_SOURCES)}")
    return train_source


def _train_source_files(root: Path, train_source: str) -> list[Path]:
    """The raw files a train source reads besides the splits (part of the cache key)."""
    if train_source not in ("ordered", "reconstructed"):
        return []
    from . import turn_order

    names = [turn_order.CFCRS_FILE, turn_order.LMH85_FILE, turn_order.MOVIES_CSV_FILE]
    names += [turn_order.ZIP_FILE] if train_source == "reconstructed" else []
    return [paths.data_file(name, root) for name in names]


def resolve_turn_order_method(turn_order_method: str | None, train_source: str) -> str | None:
    """The merge that rebuilds the reconstructed conversations' turn order: ``turn_order_method``
    (:data:`datasets_scripts.turn_order.MERGE_METHODS`) or, when ``None``, the loader's
    :data:`~datasets_scripts.turn_order.DEFAULT_METHOD`; ``None`` for sources that rebuild nothing
    (where giving a method is a ``ValueError``)."""
    if train_source != "reconstructed":
        if turn_order_method is not None:
            raise ValueError(f"turn_order_method applies to train_source='reconstructed' only, not {train_source!r}")
        return None
    from . import turn_order

    if turn_order_method is None:
        return turn_order.DEFAULT_METHOD
    if turn_order_method not in turn_order.MERGE_METHODS:
        raise ValueError(f"unknown turn_order_method {turn_order_method!r}; expected one of {', '.join(turn_order.MERGE_METHODS)}")
    return turn_order_method


def _cache_key(files: list[Path], train_source: str, turn_order_method: str | None = None) -> str:
    extra = [f"processing={PROCESSING_VERSION}", f"train_source={train_source}"]
    if turn_order_method is not None:  # the rows of the reconstructed conversations depend on the merge
        extra.append(f"turn_order_method={turn_order_method}")
    module = _recover_module() if train_source == "recovered" else None
    if module is not None:
        extra.append(hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest())
    here, model_package = Path(__file__).parent, Path(processing_kgsf.__file__).parent
    sources = [here / "redial.py", here / "kg.py", model_package / "linking_kgsf.py", model_package / "processing_kgsf.py",
               model_package / "tokenization_kgsf.py"]
    if train_source in ("ordered", "reconstructed"):
        sources.append(here / "turn_order.py")
    for source in sources:
        extra.append(hashlib.sha256(source.read_bytes()).hexdigest())
    return paths.fingerprint_files(files, *extra)


def _add_statistics(total: dict, part: dict) -> None:
    """``total += part`` for (nested) count dictionaries."""
    for key, value in part.items():
        if isinstance(value, dict):
            _add_statistics(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value


def _train_conversations(train_source: str, conversations: dict[str, list[dict]], split_files: dict[str, list[Path]], root: Path, cache_root: Path, statistics: dict,
                         turn_order_method: str | None = None) -> dict[str, list[dict]]:
    """Training conversations per source (``release`` = the train files) for ``train_source``;
    ``turn_order_method``: the merge of the reconstructed ones (:func:`resolve_turn_order_method`)."""
    sources = {"release": conversations["train"]}
    recovered_stats = {"included": False}
    if train_source == "recovered":
        exclude = {"validation": split_files["validation"][0], "test": split_files["test"][0]}
        exclude.update({f"train{index}": file for index, file in enumerate(split_files["train"])})
        recovered, recovered_stats = _recovered_conversations(root, cache_root, exclude)
        recovered_stats["included"] = bool(recovered)
        sources["recovered"] = recovered
    elif train_source in ("ordered", "reconstructed"):
        from . import turn_order

        extra, statistics["turn_order"] = turn_order.train_sources(
            root, conversations["train"], conversations["validation"], conversations["test"], reconstruct=train_source == "reconstructed",
            method=turn_order_method or turn_order.DEFAULT_METHOD)
        sources.update(extra)
    statistics["recovered"] = recovered_stats
    statistics["train_conversations_from_files"] = len(conversations["train"])
    return sources


def load_redial(
    data_dir: PathLike = None,
    cache_dir: PathLike = None,
    train_files: list[str | os.PathLike] | None = None,
    validation_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
    include_recovered: bool | None = True,
    resources: KGSFResources | None = None,
    return_statistics: bool = False,
    overwrite_cache: bool = False,
    train_source: str | None = None,
    turn_order_method: str | None = None,
):
    """The processed ReDial splits as a ``DatasetDict`` (train / validation / test).

    ``train_files``: raw ReDial jsonl files for training (default: the 500 train conversations;
    give the full ``train_data.jsonl`` if you have it). ``train_source`` (:data:`TRAIN_SOURCES`, DATA.md
    "Train sources"): ``"release"`` (the train files only), ``"recovered"`` (+ the conversations
    rebuilt from UniCRS samples), ``"ordered"`` (+ the ordered CFCRS and lmh85 conversations) or
    ``"reconstructed"`` (+ every other ReDial train conversation with its turn order rebuilt; the
    default). Whatever the source, nothing that shares an id or its text with validation or test is
    added; ``train_files`` holding such a conversation are refused (``ValueError``, one line naming
    the file, the id and the split: :func:`refuse_held_out_conversations`). ``include_recovered``
    is the older switch: ``False`` means ``"release"`` when no ``train_source`` is given, ``True``
    the default source. Per-source statistics are in ``statistics["train_sources"]``.
    ``turn_order_method`` (``"reconstructed"`` only): how the two message lists of a reconstructed
    conversation are merged (:data:`datasets_scripts.turn_order.MERGE_METHODS`; ``None``: the
    loader's default, ``turn_order.DEFAULT_METHOD``); the cache key includes it, the statistics
    record it (``statistics["turn_order"]["method"]``).
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
    train_source = resolve_train_source(train_source, include_recovered)
    turn_order_method = resolve_turn_order_method(turn_order_method, train_source)
    all_files += _train_source_files(root, train_source)
    target = cache_root / "processed" / _cache_key(all_files, train_source, turn_order_method)
    statistics_file = target / "statistics.json"

    if statistics_file.exists() and not overwrite_cache:
        dataset = load_from_disk(str(target / "dataset"))
        statistics = json.loads(statistics_file.read_text(encoding="utf-8"))
    else:
        resources = resources or load_resources(root, cache_root)
        by_file = {file: read_conversations(file) for files in split_files.values() for file in files}
        conversations = {split: [c for file in files for c in by_file[file]] for split, files in split_files.items()}
        if train_files:
            refuse_held_out_conversations({file: by_file[file] for file in split_files["train"]},
                                          {split: conversations[split] for split in ("validation", "test")})
        statistics = {"processing_version": PROCESSING_VERSION, "files": {s: [str(f) for f in fs] for s, fs in split_files.items()}}
        statistics["train_source"] = train_source
        train_sources = _train_conversations(train_source, conversations, split_files, root, cache_root, statistics, turn_order_method)
        splits = {}
        for split in SPLITS:
            if split == "train":
                rows, split_stats, statistics["train_sources"] = [], {}, {}
                for name, source_conversations in train_sources.items():
                    source_rows, statistics["train_sources"][name] = process_conversations(source_conversations, resources)
                    rows += source_rows
                    _add_statistics(split_stats, statistics["train_sources"][name])
            else:
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
