"""What the stage scripts share: argument parsing, data and model set-up, saving.

Kept out of the package on purpose: these are the example scripts' glue, the package's modules
(data in ``datasets_scripts``, model in ``modeling_kgsf``) know nothing of it.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from transformers import HfArgumentParser

from kgsf_trainer import StageTrainer, TrainingArguments
from model_card import config_summary, write_model_card

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # running from a clone without `pip install -e .`
    sys.path.insert(0, str(REPO_ROOT))

from datasets_scripts.collator import KGSFDataCollator, expand_for_recommendation  # noqa: E402
from datasets_scripts.crs_format import load_crs_dataset  # noqa: E402
from datasets_scripts.kg_resources import save_kg_resources  # noqa: E402
from datasets_scripts.redial import load_redial, load_resources  # noqa: E402
from datasets_scripts.word2vec import train_word2vec  # noqa: E402
from modeling_kgsf.tokenization_kgsf import KGSFTokenizer  # noqa: E402


@dataclass
class DataArguments:
    data_dir: str | None = field(default=None, metadata={"help": "ReDial + KG files (default: $KGSF_DATA_DIR, then ../shared/data)."})
    dataset_dir: str | None = field(default=None, metadata={"help": "A dataset folder in the generic CRS format (docs/CRS_FORMAT.md) instead of ReDial."})
    cache_dir: str | None = field(default=None, metadata={"help": "Converted and processed data (default: $KGSF_CACHE_DIR, then ~/.cache/kgsf)."})
    include_recovered: bool = field(default=True, metadata={"help": "Add the conversations recovered from UniCRS samples to train."})
    max_train_examples: int = field(default=-1, metadata={"help": "Use only the first N training examples (-1: all)."})
    max_eval_examples: int = field(default=-1, metadata={"help": "Use only the first N evaluation examples (-1: all)."})
    eval_split: str = field(default="validation", metadata={"help": "Split used for model selection."})
    train_files: list[str] | None = field(default=None, metadata={"help": "Raw ReDial jsonl training files (e.g. the full train_data.jsonl)."})


@dataclass
class ModelArguments:
    init_from: str | None = field(default=None, metadata={"help": "A save_pretrained folder to start from (the previous stage's best/)."})
    model_config: str | None = field(default=None, metadata={"help": "JSON file with KGSFConfig arguments (see configuration/)."})
    config_overrides: str | None = field(default=None, metadata={"help": "Comma-separated key=value KGSFConfig overrides, e.g. 'use_mim=false,num_bases=4'."})


def parse_arguments(*dataclass_types, argv: list[str] | None = None):
    """Flags, or a single JSON file holding all of them (HfArgumentParser)."""
    parser = HfArgumentParser(dataclass_types)
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(argv[0])
    return parser.parse_args_into_dataclasses(args=argv)


def _parse_overrides(text: str | None) -> dict:
    overrides = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        if "=" not in item:
            raise ValueError(f"config override '{item}' is not key=value")
        key, value = item.split("=", 1)
        try:
            overrides[key.strip()] = json.loads(value.strip().lower() if value.strip().lower() in ("true", "false") else value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value.strip()
    return overrides


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
                include_recovered=data_args.include_recovered, resources=self.resources, return_statistics=True,
            )
            self.dataset_name = "ReDial"
        self.tokenizer = self.resources.tokenizer
        self._expanded = {}

    def word_embeddings(self, dim: int) -> torch.Tensor:
        """word2vec vectors trained on the training split (cached), to initialise the word embeddings."""
        return train_word2vec(self.splits["train"], self.tokenizer, cache_dir=self.args.cache_dir, dim=dim)

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
        }


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


def build_model(data: KGSFData, model_args: ModelArguments):
    """Start from ``init_from`` (previous stage) or build a new model over the data's graphs."""
    from modeling_kgsf import KGSFConfig, KGSFForConversationalRecommendation

    overrides = _parse_overrides(model_args.config_overrides)
    if model_args.init_from:
        model = KGSFForConversationalRecommendation.from_pretrained(model_args.init_from, **overrides)
        mismatches = [f"{key}: model {getattr(model.config, key)}, data {value}" for key, value in data_sizes(data).items()
                      if getattr(model.config, key) != value]
        if mismatches:
            raise ValueError(
                f"{model_args.init_from} was trained on other data than {data.dataset_name} ({'; '.join(mismatches)}). "
                f"Adapt it to the new vocabulary and graphs first: python examples/adapt_model.py --model {model_args.init_from} "
                f"--dataset_dir DATASET --output_dir ADAPTED (or run examples/run_pipeline.py with --init_from, which does it)")
        return model
    config_kwargs = json.loads(_resolve(model_args.model_config).read_text()) if model_args.model_config else {}
    resources = data.resources
    if resources.word_graph.num_nodes <= 1:  # a dataset without word graph ("word_graph": "none")
        no_words = {key: False for key in ("use_conceptnet", "use_mim") if key not in overrides}
        print(f"[kgsf] the data has no word graph: {', '.join(f'{k}=false' for k in no_words) or 'nothing'} set "
              "(the word-graph branch and MIM, which aligns words with entities, have nothing to work on)")
        config_kwargs = {**config_kwargs, **no_words}
    config = KGSFConfig(
        **{
            **config_kwargs,
            **data_sizes(data),
            "n_dbpedia_edges": resources.item_graph.edge_index.shape[1],
            "n_conceptnet_edges": resources.word_graph.edge_index.shape[1],
            **overrides,
        }
    )
    model = KGSFForConversationalRecommendation(config)
    model.set_graphs(
        dbpedia_edge_index=resources.item_graph.edge_index,
        dbpedia_edge_type=resources.item_graph.edge_type,
        conceptnet_edge_index=resources.word_graph.edge_index,
        item_entity_ids=resources.item_entity_ids,
    )
    model.set_vocab_masks(kg_word_vocab_mask=resources.kg_word_vocab_mask, item_token_vocab_mask=resources.item_token_vocab_mask)
    model.load_word_embeddings(data.word_embeddings(config.d_model))
    return model


def make_save_model(data: KGSFData, stage: str, training_args: TrainingArguments):
    """The trainer's ``save_model`` callback: weights + tokenizer + ``kg_resources.json`` (what the
    pipeline needs to link free text and explain, see ``datasets_scripts/kg_resources.py``) + model
    card in one folder."""

    def save_model(model, folder: Path, metrics: dict) -> None:
        folder = Path(folder)
        model.save_pretrained(folder)
        data.tokenizer.save_pretrained(folder)
        save_kg_resources(data.resources, folder)
        write_model_card(folder, stage, metrics, data.statistics(), asdict(training_args), config_summary(model.config))

    return save_model


def _resolve(path: str) -> Path:
    """A preset path as given, or relative to the repository root (scripts may run from anywhere)."""
    candidate = Path(path)
    return candidate if candidate.exists() or candidate.is_absolute() else REPO_ROOT / candidate


def train_stage(stage: str, training_args: TrainingArguments, data: KGSFData, model, accelerator, train_rows, collator,
                compute_loss, evaluate, score) -> dict:
    """Run one stage with the shared loop; its best weights end as a model folder in ``<output_dir>/best``."""
    trainer = StageTrainer(
        training_args, model, train_rows, collator, compute_loss=compute_loss, evaluate=evaluate, score=score,
        save_model=make_save_model(data, stage, training_args), stage=stage, accelerator=accelerator,
    )
    summary = trainer.train()
    accelerator.print(summary)
    return summary
