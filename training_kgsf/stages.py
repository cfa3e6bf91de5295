"""The three KGSF training stages of Algorithm 1, as functions an installed package exposes.

    from training_kgsf.stages import pretrain_mim, train_recommender, train_conversation
    pretrain_mim(["--output_dir", "runs/mim", "--num_epochs", "1"])        # the flags of examples/pretrain_mim.py

Each stage is a loss, an evaluation and a score over the one loop of :class:`~.trainer.StageTrainer`.
``examples/`` holds thin scripts around these functions, so ``python examples/x.py`` and
``accelerate launch examples/x.py`` (one CPU, several GPUs or machines) run the same code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from modeling_kgsf.generation_kgsf import calibrate_item_slot_bias, calibrate_item_slot_bias_by_generation
from modeling_kgsf.modeling_kgsf import KGSFForConversationalRecommendation
from modeling_kgsf.processing_kgsf import CONTEXT_KEYS, CONV_KEYS, REC_KEYS

from .building import ModelArguments, make_save_model, parse_arguments, stage_setup
from .data import DataArguments, KGSFData, data_errors_in_one_line
from .evaluation import (DECODINGS, conversation_dataloader, evaluate_conversation, evaluate_recommendation, frozen_graph_inputs,
                         item_entities_of_tokens, parse_weights, selection_score)
from .trainer import StageTrainer, TrainingArguments


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


# What the next stage starts from: a stage's best/ folder, except MIM's last weights, which the
# reference keeps (it trains MIM 3 epochs and goes on). Measured (docs/RESULTS.md, "MIM for 3 epochs
# before the recommender"): the best by validation MIM loss was epoch 1 of 3 and gave no gain over
# -MIM; the last weights gave R@50 .388 against .374 (small config, 3 seeds).
HAND_OVER = {"mim": "last"}


def hand_over_options(stage: str) -> dict:
    """The flags a stage needs so that :func:`hand_over_folder` exists (``save_last`` for MIM)."""
    return {"save_last": True} if HAND_OVER.get(stage) == "last" else {}


def hand_over_folder(stage: str, stage_dir) -> Path:
    """The folder of a finished stage that the next stage starts from (:data:`HAND_OVER`); a stage
    finished before ``last/`` was kept hands over its ``best/``."""
    folder = Path(stage_dir) / HAND_OVER.get(stage, "best")
    return folder if (folder / "config.json").is_file() else Path(stage_dir) / "best"


# ------------------------------------------------------------------------------------------------
# Stage 1: MIM pre-training
# ------------------------------------------------------------------------------------------------
def mim_loss(model, batch, graph_encodings=None):
    """The MIM loss of a batch; ``graph_encodings`` (evaluation): node vectors computed once for all batches."""
    outputs = model(**{key: batch[key] for key in CONTEXT_KEYS}, task="mim", graph_encodings=graph_encodings)
    return outputs.mim_loss, {}


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
        graphs = frozen_graph_inputs(model, accelerator)
        with torch.random.fork_rng():
            torch.manual_seed(training_args.seed)
            losses = [accelerator.gather_for_metrics(mim_loss(model, batch, **graphs)[0].reshape(1)) for batch in eval_loader]
        return {"mim_loss": torch.cat(losses).mean().item()}

    return train_stage("mim", training_args, data, model, accelerator, data.split("train", "conv", data_args.max_train_examples),
                       data.collator("rec"), compute_loss=mim_loss, evaluate=evaluate, score=lambda metrics: -metrics["mim_loss"])


# ------------------------------------------------------------------------------------------------
# Stage 2: the recommender
# ------------------------------------------------------------------------------------------------
def recommendation_loss(model, batch):
    """L_rec + λ·L_MIM of a batch; the two terms are logged as tensors (the trainer reads them every ``log_steps``)."""
    outputs = model(**{key: batch[key] for key in REC_KEYS})
    logs = {"rec": outputs.rec_loss.detach()}
    if outputs.mim_loss is not None:
        logs["mim"] = outputs.mim_loss.detach()
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


def conversation_loss(model, batch, logits_at_labels_only: bool = False, graph_encodings=None):
    """The LM loss of a batch; ``logits_at_labels_only``: output logits at the labelled positions only (the same loss);
    ``graph_encodings``: the frozen graph side's node vectors (``model.encode_graphs()``), read, not recomputed."""
    if graph_encodings is not None:
        graph_encodings = graph_encodings.to(batch["input_ids"].device)  # no copy when already there
    outputs = model(**{key: batch[key] for key in CONV_KEYS}, logits_at_labels_only=logits_at_labels_only,
                    graph_encodings=graph_encodings)
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
    frozen_graphs = None
    if conv_args.freeze_recommender:
        model.freeze_recommender()
        with torch.no_grad():  # the frozen side's node vectors, once for the whole stage
            frozen_graphs = model.to(accelerator.device).encode_graphs()
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
                          compute_loss=partial(conversation_loss, logits_at_labels_only=conv_args.logits_at_labels_only,
                                               graph_encodings=frozen_graphs),
                          evaluate=evaluate, score=score, lengths=context_lengths(train_rows))
    if accelerator.is_main_process:
        for kept in ("best", "last") if training_args.save_last else ("best",):
            key = "item_slots" if kept == "best" else "last_item_slots"
            summary[key] = calibrate_saved_item_slots(Path(training_args.output_dir) / kept, eval_rows, data.collator("conv"),
                                                      training_args.batch_size, accelerator.device)
            accelerator.print(f"[conversation] item slots of {kept}/: {summary[key]}")
    accelerator.wait_for_everyone()
    return summary


CALIBRATION_ROWS = 256  # validation turns generated per pass when checking the bias with the model's own decoding


class _OnDevice:
    """A loader whose batches are moved to ``device`` (iterable again)."""

    def __init__(self, loader, device):
        self.loader, self.device = loader, device

    def __iter__(self):
        return ({key: value.to(self.device) for key, value in batch.items()} for batch in self.loader)


def calibrate_saved_item_slots(folder: Path, rows, collator, batch_size: int, device="cpu") -> dict | None:
    """Set ``item_slot_bias`` in a saved folder's ``generation_config.json`` so that its replies name items
    about as often as the human ones of ``rows``: the teacher-forced estimate
    (:func:`generation_kgsf.calibrate_item_slot_bias`, greedy's), then raised until the model's own
    decoding (beam search by default) reaches the human share on the first ``CALIBRATION_ROWS`` rows
    (:func:`generation_kgsf.calibrate_item_slot_bias_by_generation`); None when the folder is missing or
    its model has no item tokens. ``device``: where the model runs (the stage's)."""
    if not (folder / "config.json").is_file():
        return None
    model = KGSFForConversationalRecommendation.from_pretrained(folder).to(device)
    if not bool(model.kgsf.item_token_vocab_mask.any()):
        return None
    loader = _OnDevice(DataLoader(rows, batch_size=batch_size, shuffle=False, collate_fn=collator), device)
    result = calibrate_item_slot_bias(model, loader)
    sample = _OnDevice(DataLoader(rows.select(range(min(CALIBRATION_ROWS, len(rows)))), batch_size=batch_size, shuffle=False,
                                  collate_fn=collator), device)
    generated = calibrate_item_slot_bias_by_generation(model, sample, target=result["human_item_ratio"], start=result["item_slot_bias"])
    result.update(teacher_forced_bias=result["item_slot_bias"], item_slot_bias=generated["item_slot_bias"],
                  generated_item_ratio=generated["generated_item_ratio"], generation_passes=generated["passes"])
    model.generation_config.item_slot_bias = result["item_slot_bias"]
    model.generation_config.save_pretrained(folder)
    return result
