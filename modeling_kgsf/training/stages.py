"""The three KGSF training stages and the evaluation, as functions an installed package exposes.

    from modeling_kgsf.training import pretrain_mim, train_recommender, train_conversation, evaluate_model
    pretrain_mim(["--output_dir", "runs/mim", "--num_epochs", "1"])        # the flags of examples/pretrain_mim.py

This is the one layer that joins the data (``datasets_scripts``: rows, graphs, word vectors, the
processor's resources) and the model (``modeling_kgsf``); nothing in the model package imports
it. ``examples/`` holds thin scripts around these functions, so ``python examples/x.py`` and
``accelerate launch examples/x.py`` (one CPU, several GPUs or machines) run the same code.
"""
from __future__ import annotations

import json
import random
import sys
from dataclasses import asdict, dataclass, field
from functools import partial, wraps
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from accelerate.utils import set_seed
from transformers import HfArgumentParser
from transformers.trainer_utils import enable_full_determinism

from datasets_scripts.collator import KGSFDataCollator, expand_for_recommendation
from datasets_scripts.crs_format import CRSFormatError, load_crs_dataset
from datasets_scripts.kg_resources import save_kg_resources
from datasets_scripts.redial import load_redial, load_resources
from datasets_scripts.word2vec import train_word2vec

from ..configuration_kgsf import KGSFConfig
from ..generation_kgsf import calibrate_item_slot_bias, calibrate_item_slot_bias_by_generation, decoding_summary, item_token_ids_from_vocab
from ..modeling_kgsf import KGSFForConversationalRecommendation
from ..tokenization_kgsf import KGSFTokenizer
from .evaluation import (DECODINGS, REFERENCE_BATCH_SIZE, conversation_dataloader, evaluate_conversation, evaluate_recommendation,
                         generation_settings, item_entities_of_tokens, parse_weights, protocol_cell, recorded_dataset,
                         selection_score)
from .model_card import config_summary, write_model_card
from .trainer import StageTrainer, TrainingArguments, make_accelerator

REPO_ROOT = Path(__file__).resolve().parents[2]  # presets are also looked up here (a source checkout)


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
    max_train_examples: int = field(default=-1, metadata={"help": "Use only the first N training examples (-1: all)."})
    max_train_conversations: int = field(default=-1, metadata={
        "help": "Train on a random subset of N training conversations (-1: all), drawn with a fixed seed so that smaller "
                "subsets are contained in larger ones (learning curves)."})
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
                resources=self.resources, return_statistics=True,
            )
            self.dataset_name = "ReDial"
        if data_args.max_train_conversations > 0:
            self.splits["train"] = subset_conversations(self.splits["train"], data_args.max_train_conversations)
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
            **({"train_sources": self.data_statistics.get("train_sources")} if not self.args.dataset_dir else {}),
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
    needs to link free text and explain) + model card in one folder."""

    def save_model(model, folder: Path, metrics: dict) -> None:
        folder = Path(folder)
        model.save_pretrained(folder)
        data.tokenizer.save_pretrained(folder)
        save_kg_resources(data.resources, folder)
        write_model_card(folder, stage, metrics, data.statistics(), asdict(training_args), config_summary(model.config))

    return save_model


def resolve_preset(path: str) -> Path:
    """A preset path as given, or relative to the repository root (scripts may run from anywhere)."""
    candidate = Path(path)
    return candidate if candidate.exists() or candidate.is_absolute() else REPO_ROOT / candidate


def train_stage(stage: str, training_args: TrainingArguments, data: KGSFData, model, accelerator, train_rows, collator,
                compute_loss, evaluate, score, lengths=None) -> dict:
    """Run one stage with the shared loop; its best weights end as a model folder in ``<output_dir>/best``.
    ``lengths`` (per training row) group the batches with ``--group_by_length``."""
    trainer = StageTrainer(
        training_args, model, train_rows, collator, compute_loss=compute_loss, evaluate=evaluate, score=score,
        save_model=make_save_model(data, stage, training_args), stage=stage, accelerator=accelerator, lengths=lengths,
    )
    summary = trainer.train()
    if accelerator.is_main_process:  # what the stage trained on, for tables and learning curves
        (Path(training_args.output_dir) / "data_statistics.json").write_text(json.dumps(data.statistics(), indent=2), encoding="utf-8")
    accelerator.print(summary)
    return summary


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


# ------------------------------------------------------------------------------------------------
# Stage 1: MIM pre-training
# ------------------------------------------------------------------------------------------------
CONTEXT_KEYS = ("input_ids", "attention_mask", "context_entity_ids", "context_entity_mask", "context_word_ids", "context_word_mask")
REC_KEYS = CONTEXT_KEYS + ("rec_labels",)
CONV_KEYS = CONTEXT_KEYS + ("labels",)


def mim_loss(model, batch):
    outputs = model(**{key: batch[key] for key in CONTEXT_KEYS}, task="mim")
    return outputs.mim_loss, {}


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


@data_errors_in_one_line
def pretrain_mim(argv=None) -> dict:
    """Stage 1 of KGSF (Algorithm 1): pre-train the two graph encoders with Mutual Information
    Maximization. Model selection on validation MIM loss. The MIM form (the paper's contrastive
    one, or the reference code's regression) is a config option (``--config_overrides mim_form=regression``)."""
    training_args, data_args, model_args = parse_arguments(TrainingArguments, DataArguments, ModelArguments, argv=argv)
    accelerator, data, model = stage_setup(training_args, data_args, model_args)
    eval_loader = data.eval_dataloader(data_args.eval_split, "rec", training_args.batch_size, accelerator, data_args.max_eval_examples)

    @torch.no_grad()
    def evaluate(model, accelerator):
        # MIM negatives are sampled: fix the seed so that every evaluation sees the same ones
        with torch.random.fork_rng():
            torch.manual_seed(training_args.seed)
            losses = [accelerator.gather_for_metrics(mim_loss(model, batch)[0].reshape(1)) for batch in eval_loader]
        return {"mim_loss": torch.cat(losses).mean().item()}

    return train_stage("mim", training_args, data, model, accelerator, data.split("train", "conv", data_args.max_train_examples),
                       data.collator("rec"), compute_loss=mim_loss, evaluate=evaluate, score=lambda metrics: -metrics["mim_loss"])


# ------------------------------------------------------------------------------------------------
# Stage 2: the recommender
# ------------------------------------------------------------------------------------------------
def recommendation_loss(model, batch):
    outputs = model(**{key: batch[key] for key in REC_KEYS})
    logs = {"rec": outputs.rec_loss.item()}
    if outputs.mim_loss is not None:
        logs["mim"] = outputs.mim_loss.item()
    return outputs.loss, logs


@data_errors_in_one_line
def train_recommender(argv=None) -> dict:
    """Stage 2 of KGSF (Algorithm 1): the recommender with L_rec + λ·L_MIM. Early stopping and
    model selection on validation Recall@1 + Recall@50, as in the reference."""
    training_args, data_args, model_args = parse_arguments(TrainingArguments, DataArguments, ModelArguments, argv=argv)
    accelerator, data, model = stage_setup(training_args, data_args, model_args)
    eval_loader = data.eval_dataloader(data_args.eval_split, "rec", training_args.batch_size, accelerator, data_args.max_eval_examples)

    def evaluate(model, accelerator):
        return evaluate_recommendation(model, eval_loader, accelerator)

    return train_stage("recommender", training_args, data, model, accelerator, data.split("train", "rec", data_args.max_train_examples),
                       data.collator("rec"), compute_loss=recommendation_loss, evaluate=evaluate,
                       score=lambda metrics: metrics["recall@1"] + metrics["recall@50"])


# ------------------------------------------------------------------------------------------------
# Stage 3: the conversation model
# ------------------------------------------------------------------------------------------------
SELECTIONS = ("perplexity", "generation")
# -log-perplexity + 0.1 * distinct-4 per reply (weighted down: it is several units on a sample of a few hundred
# replies) + item ratio - loop rate (README, "Metrics")
DEFAULT_SELECTION_WEIGHTS = "nll_per_token=-1,distinct-4_per_sentence=0.1,item_ratio=1,loop_rate=-1"


@dataclass
class ConversationArguments:
    generation_batches: int = field(default=2, metadata={
        "help": "Batches of the validation split (its first ones: a fixed sample) generated at each evaluation (0: none)."})
    freeze_recommender: bool = field(default=True, metadata={"help": "Freeze graphs, fusion and recommender (Algorithm 1)."})
    selection: str = field(default="perplexity", metadata={
        "help": "What picks the best checkpoint and drives --patience: 'perplexity' (validation perplexity) or 'generation' "
                "(the --selection_weights score, which includes the replies generated on the fixed validation sample)."})
    selection_weights: str = field(default=DEFAULT_SELECTION_WEIGHTS, metadata={
        "help": "The --selection generation score: sum of weight * metric over 'metric=weight' pairs; any metric the "
                "evaluation reports (nll_per_token = log perplexity, distinct-n, distinct-n_per_sentence, item_ratio, "
                "items_per_reply, rec_in_reply, loop_rate, bleu-n, ...)."})
    decoding: str = field(default="default", metadata={
        "help": "Decoding of the evaluation replies: 'default' (the model's generation_config) or 'paper' (PAPER_DECODING: "
                "plain greedy, no item slots)."})
    logits_at_labels_only: bool = field(default=True, metadata={
        "help": "Compute the output layer (vocabulary + copy logits) only at the reply's tokens, not at padding: the same "
                "loss, less work (forward(logits_at_labels_only=True)); evaluation always computes every position."})


def conversation_loss(model, batch, logits_at_labels_only: bool = False):
    """The LM loss of a batch; ``logits_at_labels_only``: output logits at the labelled positions only (the same loss)."""
    outputs = model(**{key: batch[key] for key in CONV_KEYS}, logits_at_labels_only=logits_at_labels_only)
    return outputs.loss, {}


def context_lengths(rows) -> list[int]:
    """Context tokens of each row: what the conversation stage groups batches by (``--group_by_length``)."""
    return [len(tokens) for tokens in rows["context_tokens"]]


@data_errors_in_one_line
def train_conversation(argv=None) -> dict:
    """Stage 3 of KGSF (Algorithm 1): the KG-enhanced Transformer, graphs and recommender frozen.
    Each evaluation computes the validation perplexity and generates replies for the first
    ``--generation_batches`` validation batches (a fixed sample), logging Distinct-n, item ratio,
    recommendation-in-reply, loop rate and BLEU. Model selection and early stopping on validation
    perplexity (``--selection perplexity``) or on ``sum(weight * metric)`` over
    ``--selection_weights`` (``--selection generation``; default
    ``-nll_per_token + 0.1 * distinct-4_per_sentence + item_ratio - loop_rate``)."""
    training_args, data_args, model_args, conv_args = parse_arguments(
        TrainingArguments, DataArguments, ModelArguments, ConversationArguments, argv=argv)
    if conv_args.selection not in SELECTIONS:
        raise ValueError(f"--selection must be one of {SELECTIONS}, got {conv_args.selection!r}")
    if conv_args.decoding not in DECODINGS:
        raise ValueError(f"--decoding must be one of {DECODINGS}, got {conv_args.decoding!r}")
    weights = parse_weights(conv_args.selection_weights) if conv_args.selection == "generation" else None
    if weights and conv_args.generation_batches <= 0:
        raise ValueError("--selection generation scores generated replies: give --generation_batches > 0")

    def score(metrics: dict) -> float:
        return selection_score(metrics, weights) if weights else -metrics["perplexity"]

    accelerator, data, model = stage_setup(training_args, data_args, model_args)
    if conv_args.freeze_recommender:
        model.freeze_recommender()
    eval_rows = data.split(data_args.eval_split, "conv", data_args.max_eval_examples)
    eval_loader = conversation_dataloader(eval_rows, data.collator("conv"), training_args.batch_size, accelerator)
    item_entities = item_entities_of_tokens(data.tokenizer, data.resources.item_token_vocab_mask,
                                            data.resources.entities.movie_id_to_entity)

    def evaluate(model, accelerator):
        return evaluate_conversation(model, eval_loader, accelerator, data.tokenizer,
                                     generate=conv_args.generation_batches > 0,
                                     max_generation_batches=conv_args.generation_batches,
                                     decoding=conv_args.decoding, item_entities=item_entities)

    train_rows = data.split("train", "conv", data_args.max_train_examples)
    summary = train_stage("conversation", training_args, data, model, accelerator, train_rows, data.collator("conv"),
                          compute_loss=partial(conversation_loss, logits_at_labels_only=conv_args.logits_at_labels_only),
                          evaluate=evaluate, score=score, lengths=context_lengths(train_rows))
    if accelerator.is_main_process:
        summary["item_slots"] = calibrate_saved_item_slots(Path(training_args.output_dir) / "best", eval_rows, data.collator("conv"),
                                                           training_args.batch_size)
        accelerator.print(f"[conversation] item slots: {summary['item_slots']}")
    accelerator.wait_for_everyone()
    return summary


CALIBRATION_ROWS = 256  # validation turns generated per pass when checking the bias with the model's own decoding


def calibrate_saved_item_slots(folder: Path, rows, collator, batch_size: int) -> dict | None:
    """Set ``item_slot_bias`` in a saved folder's ``generation_config.json`` so that its replies name items
    about as often as the human ones of ``rows``: the teacher-forced estimate
    (:func:`generation_kgsf.calibrate_item_slot_bias`, greedy's), then raised until the model's own
    decoding (beam search by default) reaches the human share on the first ``CALIBRATION_ROWS`` rows
    (:func:`generation_kgsf.calibrate_item_slot_bias_by_generation`); None when the folder is missing or
    its model has no item tokens."""
    if not (folder / "config.json").is_file():
        return None
    model = KGSFForConversationalRecommendation.from_pretrained(folder)
    if not bool(model.kgsf.item_token_vocab_mask.any()):
        return None
    loader = DataLoader(rows, batch_size=batch_size, shuffle=False, collate_fn=collator)
    result = calibrate_item_slot_bias(model, loader)
    sample = DataLoader(rows.select(range(min(CALIBRATION_ROWS, len(rows)))), batch_size=batch_size, shuffle=False, collate_fn=collator)
    generated = calibrate_item_slot_bias_by_generation(model, sample, target=result["human_item_ratio"], start=result["item_slot_bias"])
    result.update(teacher_forced_bias=result["item_slot_bias"], item_slot_bias=generated["item_slot_bias"],
                  generated_item_ratio=generated["generated_item_ratio"], generation_passes=generated["passes"])
    model.generation_config.item_slot_bias = result["item_slot_bias"]
    model.generation_config.save_pretrained(folder)
    return result


# ------------------------------------------------------------------------------------------------
# Evaluation of a trained folder
# ------------------------------------------------------------------------------------------------
@dataclass
class EvaluationArguments:
    model: str = field(metadata={"help": "A save_pretrained folder (a training stage's best/)."})
    split: str = field(default="test", metadata={"help": "train, validation or test."})
    batch_size: int = field(default=64, metadata={"help": "Examples per batch and process."})
    generation_examples: int = field(default=-1, metadata={
        "help": "Replies generated for the generation metrics: the split's first N turns (-1: all of them)."})
    protocol: str = field(default="ours", metadata={
        "help": "A decoding x counting cell: 'ours' = default decoding, our counting; 'reference' = the paper's decoding "
                "with the reference's counting (RUCAIBox/KGSF: 20 steps, a batch of 32 stops once every row has emitted "
                "__end__, ids after __end__ kept, unique n-grams per reply; written under 'reference_protocol')."})
    decoding: str | None = field(default=None, metadata={
        "help": "Overrides the protocol's decoding. 'default': generate() with the model's generation_config (item "
                "slots, repetition controls); 'paper': PAPER_DECODING (plain greedy, items only through the copy "
                "distribution, no slots, no repetition control)."})
    counting: str | None = field(default=None, metadata={
        "help": "Overrides the protocol's counting: 'ours' (replies stop at __end__) or 'reference'."})
    max_new_tokens: int | None = field(default=None, metadata={
        "help": "Longest generated reply with --protocol ours (default 30, the reference replies' cut); the reference "
                "protocol always decodes 20 steps."})
    generate_kwargs: str | None = field(default=None, metadata={
        "help": "A JSON object of further generate() arguments over the decoding's, e.g. "
                "'{\"do_sample\": true, \"top_p\": 0.9}' (recorded in the output under generation.generate_kwargs)."})
    seed: int = field(default=42, metadata={"help": "Seed set before generating (for sampling decodings)."})
    skip_conversation: bool = field(default=False, metadata={"help": "Only evaluate recommendation (e.g. after stage 2)."})
    show_samples: int = field(default=3, metadata={"help": "Sample dialogues printed (and written under 'samples')."})
    output: str | None = field(default=None, metadata={"help": "Write the metrics to this JSON file."})


def render(tokenizer, tokens: list[str], titles: dict) -> str:
    """Tokens as text, with ``@movieId`` shown as the movie title."""
    return tokenizer.convert_tokens_to_string([" ".join(titles.get(token[1:], token).split()) if token.startswith("@") else token
                                              for token in tokens])


COMPARED_METRICS = ("distinct-2", "distinct-3", "distinct-4", "distinct-2_per_sentence", "distinct-3_per_sentence",
                    "distinct-4_per_sentence", "item_ratio", "items_per_reply", "rec_in_reply", "rec_in_reply_any",
                    "loop_rate", "mean_reply_length")


def comparison_table(results: dict) -> str:
    """The generation metrics of the model beside those of the human replies of the same turns."""
    columns = [("model", results.get("conversation", {})), ("human", results.get("human_replies", {}))]
    if "reference_protocol" in results:
        columns.insert(1, ("model, reference protocol", results["reference_protocol"]))

    def cell(value):
        return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = [f"{'':26}" + "".join(f"{name:>28}" for name, _ in columns)]
    for key in COMPARED_METRICS:
        if any(key in values for _, values in columns):
            lines.append(f"{key:26}" + "".join(f"{cell(values.get(key)):>28}" for _, values in columns))
    return "\n".join(lines)


def parse_generate_kwargs(text: str | None) -> dict:
    """``--generate_kwargs``: a JSON object (``None`` or empty: ``{}``)."""
    if not text:
        return {}
    try:
        kwargs = json.loads(text)
    except ValueError as error:
        raise ValueError(f"--generate_kwargs must be a JSON object, e.g. '{{\"do_sample\": true}}': {error}") from None
    if not isinstance(kwargs, dict):
        raise ValueError(f"--generate_kwargs must be a JSON object, got {type(kwargs).__name__}")
    return kwargs


def follow_recorded_dataset(model_folder: str, data_args: DataArguments) -> None:
    """Evaluate a model on the dataset it was trained on: without ``--dataset_dir``, the generic-format
    dataset the folder records (:func:`~.evaluation.recorded_dataset`) is used, or, when that folder is
    not on this machine, a one-line error says which flag to pass, before any data is loaded."""
    if data_args.dataset_dir:
        return
    record = recorded_dataset(model_folder)
    if not record or record["dataset"] == "ReDial":
        return
    dataset_dir = record.get("dataset_dir")
    if dataset_dir and Path(dataset_dir).is_dir():
        print(f"[evaluate] {model_folder} was trained on {record['dataset']} ({Path(record['source']).name}): "
              f"evaluating on --dataset_dir {dataset_dir}", file=sys.stderr)
        data_args.dataset_dir = dataset_dir
        return
    where = f" (recorded as {dataset_dir}, not found here)" if dataset_dir else ""
    sys.exit(f"error: {model_folder} was trained on {record['dataset']}, not ReDial: pass --dataset_dir with that dataset's folder{where}")


@data_errors_in_one_line
def evaluate_model(argv=None) -> dict:
    """Evaluate a trained folder on a split: recommendation (all / cold start / dedup_turns /
    dedup_filtered) and
    conversation (perplexity; generation metrics of the model's replies and, as the ceiling, of the
    human replies of the same turns; with ``--protocol reference`` also the reference code's
    counting); prints the metrics and sample dialogues, writes them as JSON with ``--output``."""
    eval_args, data_args = parse_arguments(EvaluationArguments, DataArguments, argv=argv)
    decoding, counting = protocol_cell(eval_args.protocol, eval_args.decoding, eval_args.counting)
    follow_recorded_dataset(eval_args.model, data_args)
    extra_kwargs = parse_generate_kwargs(eval_args.generate_kwargs)
    accelerator = make_accelerator()
    torch.use_deterministic_algorithms(True, warn_only=True)  # the same metrics on every run (see TrainingArguments)
    with accelerator.main_process_first():
        data = KGSFData(data_args, eval_args.model)
        model = build_model(data, ModelArguments(init_from=eval_args.model))
    model = accelerator.prepare(model)
    model.eval()
    results = {"model": eval_args.model, "split": eval_args.split, "num_processes": accelerator.num_processes}
    loader = data.eval_dataloader(eval_args.split, "rec", eval_args.batch_size, accelerator, data_args.max_eval_examples)
    results["recommendation"] = evaluate_recommendation(model, loader, accelerator)
    samples = []
    if not eval_args.skip_conversation:
        rows = data.split(eval_args.split, "conv", data_args.max_eval_examples)
        loader = conversation_dataloader(rows, data.collator("conv"), eval_args.batch_size, accelerator)
        batches = None if eval_args.generation_examples < 0 else -(-eval_args.generation_examples // eval_args.batch_size)
        item_entities = item_entities_of_tokens(data.tokenizer, data.resources.item_token_vocab_mask,
                                                data.resources.entities.movie_id_to_entity)
        set_seed(eval_args.seed)
        conversation = evaluate_conversation(model, loader, accelerator, data.tokenizer, max_generation_batches=batches,
                                             samples=samples, decoding=decoding, counting=counting,
                                             max_new_tokens=eval_args.max_new_tokens, item_entities=item_entities, human=True,
                                             generation_kwargs=extra_kwargs)
        results["generation"] = {
            "protocol": eval_args.protocol, "decoding": decoding, "counting": counting, "turns": len(rows),
            **({"generation_batch_size": REFERENCE_BATCH_SIZE} if counting == "reference" else {}),
            "model_generation_config": decoding_summary(getattr(accelerator.unwrap_model(model), "generation_config", None)),
            "generate_kwargs": {**generation_settings(accelerator.unwrap_model(model), decoding, max_new_tokens=eval_args.max_new_tokens,
                                                      counting=counting), **extra_kwargs},
        }
        if "human" in conversation:
            results["human_replies"] = conversation.pop("human")
        if "reference_protocol" in conversation:
            results["reference_protocol"] = conversation.pop("reference_protocol")
        results["conversation"] = conversation
    if accelerator.is_main_process:
        print(json.dumps(results, indent=2))
        if "human_replies" in results:
            print("\n--- generated replies beside the human replies of the same turns ---")
            print(comparison_table(results))
        titles = data.resources.entities.movie_id_to_title
        shown = []
        for context, reference, generated in samples[: eval_args.show_samples]:
            turns = [turn.strip() for turn in render(data.tokenizer, context, titles).split("_split_")]
            shown.append({"context": turns[-3:], "reference": render(data.tokenizer, reference, titles),
                          "generated": render(data.tokenizer, generated, titles)})
            print("\n--- sample dialogue ---")
            for turn in shown[-1]["context"]:
                print(f"  context : {turn}")
            print(f"  reference: {shown[-1]['reference']}")
            print(f"  KGSF     : {shown[-1]['generated']}")
        if shown:
            results["samples"] = shown
        if eval_args.output:
            Path(eval_args.output).parent.mkdir(parents=True, exist_ok=True)
            Path(eval_args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results
