"""The data a training stage reads: the processed splits and the resources built from the same files.

``KGSFData`` is the bundle (ReDial, or a folder in the generic CRS format with ``--dataset_dir``);
``DataArguments`` are its flags. This floor reads ``datasets_scripts`` (raw files -> rows) and the
model floor's processor; ``training_kgsf.building`` builds a model to fit it.
"""
from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from datasets_scripts.collator import expand_for_recommendation
from datasets_scripts.crs_format import CRSFormatError, load_crs_dataset
from datasets_scripts.kg_resources import count_item_cues
from datasets_scripts.redial import load_redial, load_resources
from datasets_scripts.word2vec import train_word2vec
from modeling_kgsf.preferences_kgsf import ItemCues
from modeling_kgsf.processing_kgsf import KGSFDataCollator
from modeling_kgsf.tokenization_kgsf import KGSFTokenizer


@dataclass
class DataArguments:
    data_dir: str | None = field(default=None, metadata={"help": "ReDial + KG files (default: $KGSF_DATA_DIR, then ../shared/data)."})
    dataset_dir: str | None = field(default=None, metadata={"help": "A dataset folder in the generic CRS format (docs/CRS_FORMAT.md) instead of ReDial."})
    cache_dir: str | None = field(default=None, metadata={"help": "Converted and processed data (default: $KGSF_CACHE_DIR, then ~/.cache/kgsf)."})
    include_recovered: bool = field(default=True, metadata={"help": "Older switch: false = the release's 500 train conversations only (when --train_source is not given)."})
    train_source: str | None = field(default=None, metadata={
        "help": "ReDial training conversations: release (500), recovered (+842 rebuilt from UniCRS samples), ordered (+ the "
                "ordered CFCRS/lmh85 ones: 1,822), reconstructed (+ every other train conversation, turn order rebuilt: "
                "9,095; the default). See docs/DATA.md."})
    turn_order_method: str | None = field(default=None, metadata={
        "help": "With --train_source reconstructed: how the two message lists of a rebuilt conversation are merged "
                "(learned_merge, next_message, next_message_mbr; default: the loader's, next_message_mbr). The processed "
                "split is cached per method. See docs/DATA.md, 'Train sources and turn-order reconstruction'."})
    max_train_examples: int = field(default=-1, metadata={"help": "Use only the first N training examples (-1: all)."})
    max_train_conversations: int = field(default=-1, metadata={
        "help": "Train on a random subset of N training conversations (-1: all), drawn with a fixed seed so that smaller "
                "subsets are contained in larger ones (learning curves)."})
    max_eval_examples: int = field(default=-1, metadata={"help": "Use only the first N evaluation examples (-1: all)."})
    eval_split: str = field(default="validation", metadata={"help": "Split used for model selection."})
    train_files: list[str] | None = field(default=None, metadata={"help": "Raw ReDial jsonl training files (e.g. the full train_data.jsonl)."})



class KGSFData:
    """The processed splits and the resources derived from the same files (tokenizer, graphs, maps).

    ReDial by default; with ``dataset_dir`` a folder in the generic CRS format, whose vocabulary
    extends the tokenizer of ``model_folder`` (the model a stage starts from) when there is one, so
    that a model keeps its token ids.
    """

    def __init__(self, data_args: DataArguments, model_folder: str | None = None):
        self.args = data_args
        if data_args.dataset_dir:
            base_tokenizer = None
            if model_folder and (Path(model_folder) / "vocab.json").exists():
                base_tokenizer = KGSFTokenizer.from_pretrained(model_folder)
            self.resources, self.splits, self.data_statistics = load_crs_dataset(
                data_args.dataset_dir, data_args.data_dir, data_args.cache_dir, base_tokenizer=base_tokenizer)
            self.dataset_name = self.data_statistics["name"]
        else:
            self.resources = load_resources(data_args.data_dir, cache_dir=data_args.cache_dir)
            self.splits, self.data_statistics = load_redial(
                data_args.data_dir, cache_dir=data_args.cache_dir, train_files=data_args.train_files,
                include_recovered=data_args.include_recovered, train_source=data_args.train_source,
                turn_order_method=data_args.turn_order_method, resources=self.resources, return_statistics=True,
            )
            self.dataset_name = "ReDial"
        if data_args.max_train_conversations > 0:
            self.splits["train"] = subset_conversations(self.splits["train"], data_args.max_train_conversations)
        self.tokenizer = self.resources.tokenizer
        self._expanded = {}
        self._item_cues = None

    def word_embeddings(self, dim: int) -> torch.Tensor:
        """word2vec vectors trained on the training split (cached), to initialise the word embeddings."""
        return train_word2vec(self.splits["train"], self.tokenizer, cache_dir=self.args.cache_dir, dim=dim)

    def item_cues(self) -> ItemCues:
        """What the training conversations say about each item (:class:`ItemCues`, saved beside the
        weights as ``item_cues.json``); counted over the train split once, on first use."""
        if self._item_cues is None:
            self._item_cues = count_item_cues(self.splits["train"], self.resources.item_index_of_entity,
                                              len(self.resources.item_entity_ids))
        return self._item_cues

    def split(self, name: str, task: str, limit: int = -1):
        """Rows of a split for a task: ``rec`` (one per turn and target item) or ``conv`` (one per turn)."""
        rows = self.splits[name]
        if task == "rec":
            if name not in self._expanded:
                self._expanded[name] = expand_for_recommendation(rows)
            rows = self._expanded[name]
        if limit > 0:
            rows = rows.select(range(min(limit, len(rows))))
        return rows

    def collator(self, task: str) -> KGSFDataCollator:
        return KGSFDataCollator(self.tokenizer, self.resources.item_index_of_entity, mode=task)

    def eval_dataloader(self, split: str, task: str, batch_size: int, accelerator, limit: int = -1) -> DataLoader:
        loader = DataLoader(self.split(split, task, limit), batch_size=batch_size, shuffle=False, collate_fn=self.collator(task))
        return accelerator.prepare(loader)

    def statistics(self) -> dict:
        """Split sizes, for model cards."""
        return {
            "dataset": self.dataset_name,
            **({"dataset_dir": self.args.dataset_dir, "description": self.data_statistics.get("description", ""),
                "graph": self.data_statistics.get("graph")} if self.args.dataset_dir else {}),
            "samples": {name: len(rows) for name, rows in self.splits.items()},
            "conversations": {name: len(set(rows["conversation_id"])) for name, rows in self.splits.items()},
            "include_recovered": self.args.include_recovered,
            **({"train_sources": self.data_statistics.get("train_sources"),
                "turn_order_method": (self.data_statistics.get("turn_order") or {}).get("method")} if not self.args.dataset_dir else {}),
        }


SUBSET_SEED = 0  # fixed: the subsets of a learning curve are nested whatever the training seed


def subset_conversations(rows, count: int):
    """The rows of ``count`` training conversations drawn at random (``SUBSET_SEED``); the first ``n``
    conversations of the draw are the same for every ``count >= n``, so subsets nest."""
    row_conversations = rows["conversation_id"]  # one column read
    conversation_ids = sorted(set(row_conversations), key=str)
    if count >= len(conversation_ids):
        return rows
    random.Random(SUBSET_SEED).shuffle(conversation_ids)
    kept = set(conversation_ids[:count])
    return rows.select([index for index, conversation in enumerate(row_conversations) if conversation in kept])


def data_sizes(data: KGSFData) -> dict:
    """The index-space sizes a model must have for this data (KGSFConfig names)."""
    resources = data.resources
    return {
        "vocab_size": len(data.tokenizer),
        "n_entity": resources.item_graph.num_nodes,
        "n_relation": resources.item_graph.num_relations,
        "n_concept": resources.word_graph.num_nodes,
        "n_item": resources.item_entity_ids.numel(),
    }



def data_errors_in_one_line(stage_command):
    """A stage command (``argv`` in, summary out) whose dataset errors (:class:`CRSFormatError`: an empty
    split, a malformed line...) end it with the one line that names the file, as the check prints them,
    not a traceback."""
    @wraps(stage_command)
    def command(argv=None):
        try:
            return stage_command(argv)
        except CRSFormatError as error:
            sys.exit(f"error: {error}")
    return command

