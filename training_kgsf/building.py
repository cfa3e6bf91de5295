"""A model for a stage: its flags (``ModelArguments``), a new model over the data's graphs or the
previous stage's folder (``build_model``), the folder a stage saves (``make_save_model``) and the
``(accelerator, data, model)`` every stage starts from (``stage_setup``).
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate.utils import set_seed
from transformers import HfArgumentParser
from transformers.trainer_utils import enable_full_determinism

from datasets_scripts.kg_resources import save_kg_resources
from modeling_kgsf.configuration_kgsf import KGSFConfig
from modeling_kgsf.generation_kgsf import item_token_ids_from_vocab
from modeling_kgsf.modeling_kgsf import KGSFForConversationalRecommendation

from .data import DataArguments, KGSFData, data_sizes
from .model_card import config_summary, write_model_card
from .trainer import TrainingArguments, make_accelerator

REPO_ROOT = Path(__file__).resolve().parents[1]  # presets are also looked up here (a source checkout)


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


def parse_overrides(text: str | None) -> dict:
    """``'use_mim=false,num_bases=4'`` -> ``{"use_mim": False, "num_bases": 4}``; unknown keys are
    refused by name (:meth:`KGSFConfig.check_keys`)."""
    overrides = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        if "=" not in item:
            raise ValueError(f"config override '{item}' is not key=value")
        key, value = item.split("=", 1)
        try:
            overrides[key.strip()] = json.loads(value.strip().lower() if value.strip().lower() in ("true", "false") else value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value.strip()
    KGSFConfig.check_keys(overrides, source="--config_overrides")
    return overrides

def build_model(data: KGSFData, model_args: ModelArguments, word_embeddings: bool = True):
    """Start from ``init_from`` (previous stage) or build a new model over the data's graphs; a new
    model's token embedding starts from word2vec vectors (``word_embeddings``; False: random, as for
    speed measurements)."""
    overrides = parse_overrides(model_args.config_overrides)
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
    config_kwargs = {}
    if model_args.model_config:
        config_file = resolve_preset(model_args.model_config)
        config_kwargs = json.loads(config_file.read_text(encoding="utf-8"))
        KGSFConfig.check_keys(config_kwargs, source=f"model config ({config_file})")
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
    entities = resources.entities
    movies = {movie: (entity, entities.movie_id_to_mentions.get(movie, 0)) for movie, entity in entities.movie_id_to_entity.items()}
    model.set_vocab_masks(kg_word_vocab_mask=resources.kg_word_vocab_mask, item_token_vocab_mask=resources.item_token_vocab_mask,
                          item_token_ids=item_token_ids_from_vocab(data.tokenizer.get_vocab(), movies, resources.item_entity_ids,
                                                                   resources.item_token_vocab_mask))
    if word_embeddings:
        model.load_word_embeddings(data.word_embeddings(config.d_model))
    return model


def make_save_model(data: KGSFData, stage: str, training_args: TrainingArguments):
    """The trainer's ``save_model`` callback: weights + tokenizer + processor files
    (``kg_resources.json``, ``entity_linker.json``, ``processor_config.json``: what the pipeline
    needs to link free text and explain; ``item_cues.json``: what the training conversations say
    about each item, for the ranking) + model card in one folder."""

    def save_model(model, folder: Path, metrics: dict) -> None:
        folder = Path(folder)
        model.save_pretrained(folder)
        data.tokenizer.save_pretrained(folder)
        save_kg_resources(data.resources, folder, data.item_cues())
        write_model_card(folder, stage, metrics, data.statistics(), asdict(training_args), config_summary(model.config))

    return save_model


def resolve_preset(path: str) -> Path:
    """A preset path as given, or relative to the repository root (scripts may run from anywhere)."""
    candidate = Path(path)
    return candidate if candidate.exists() or candidate.is_absolute() else REPO_ROOT / candidate


def stage_setup(training_args: TrainingArguments, data_args: DataArguments, model_args: ModelArguments):
    """``(accelerator, data, model)`` of a stage; the first process fills the data caches (processed
    splits, word vectors) while the others wait, then they read them. The seed is set before the
    model is built, so a new model's initial weights come from ``--seed`` too."""
    accelerator = make_accelerator(training_args)
    if training_args.full_determinism:
        enable_full_determinism(training_args.seed)
    else:
        set_seed(training_args.seed)
        torch.use_deterministic_algorithms(training_args.deterministic_algorithms, warn_only=True)
    with accelerator.main_process_first():
        data = KGSFData(data_args, model_args.init_from)
        model = build_model(data, model_args)
    return accelerator, data, model

