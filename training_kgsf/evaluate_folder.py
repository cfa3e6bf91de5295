"""Evaluation of a trained folder on a split (``examples/evaluate_kgsf.py``): recommendation, perplexity
and the generated replies beside the human ones, under our protocol or the reference's.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate.utils import set_seed

from modeling_kgsf.generation_kgsf import decoding_summary

from .building import ModelArguments, build_model, parse_arguments
from .data import DataArguments, KGSFData, data_errors_in_one_line
from .evaluation import (REFERENCE_BATCH_SIZE, conversation_dataloader, evaluate_conversation, evaluate_recommendation,
                         generation_settings, item_entities_of_tokens, protocol_cell, recorded_dataset)
from .trainer import make_accelerator


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
