"""Evaluate a trained KGSF folder on a split: recommendation (all / cold start / dedup) and conversation.

    python examples/evaluate_kgsf.py --model runs/quick/conversation/best --split test --output results.json
    accelerate launch examples/evaluate_kgsf.py --model ... --split test

Prints the metrics, writes them as JSON, and shows sample dialogues (context, reference, generated).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from accelerate import Accelerator

from common import DataArguments, KGSFData, ModelArguments, build_model, parse_arguments
from kgsf_evaluation import evaluate_conversation, evaluate_recommendation


@dataclass
class EvaluationArguments:
    model: str = field(metadata={"help": "A save_pretrained folder (a training stage's best/)."})
    split: str = field(default="test", metadata={"help": "train, validation or test."})
    batch_size: int = field(default=64, metadata={"help": "Examples per batch and process."})
    generation_examples: int = field(default=512, metadata={"help": "Replies generated for the generation metrics (-1: all)."})
    skip_conversation: bool = field(default=False, metadata={"help": "Only evaluate recommendation (e.g. after stage 2)."})
    show_samples: int = field(default=3, metadata={"help": "Sample dialogues printed."})
    output: str | None = field(default=None, metadata={"help": "Write the metrics to this JSON file."})


def render(tokenizer, tokens: list[str], titles: dict) -> str:
    """Tokens as text, with ``@movieId`` shown as the movie title."""
    return tokenizer.convert_tokens_to_string([titles.get(token[1:], token) if token.startswith("@") else token for token in tokens])


def main(argv=None):
    eval_args, data_args = parse_arguments(EvaluationArguments, DataArguments, argv=argv)
    accelerator = Accelerator()
    data = KGSFData(data_args, eval_args.model)
    model = build_model(data, ModelArguments(init_from=eval_args.model))
    model = accelerator.prepare(model)
    model.eval()
    results = {"model": eval_args.model, "split": eval_args.split}
    loader = data.eval_dataloader(eval_args.split, "rec", eval_args.batch_size, accelerator, data_args.max_eval_examples)
    results["recommendation"] = evaluate_recommendation(model, loader, accelerator)
    samples = []
    if not eval_args.skip_conversation:
        loader = data.eval_dataloader(eval_args.split, "conv", eval_args.batch_size, accelerator, data_args.max_eval_examples)
        batches = None if eval_args.generation_examples < 0 else -(-eval_args.generation_examples // eval_args.batch_size)
        results["conversation"] = evaluate_conversation(model, loader, accelerator, data.tokenizer,
                                                        max_generation_batches=batches, samples=samples)
    if accelerator.is_main_process:
        print(json.dumps(results, indent=2))
        titles = data.resources.entities.movie_id_to_title
        for context, reference, generated in samples[: eval_args.show_samples]:
            turns = render(data.tokenizer, context, titles).split("_split_")
            print("\n--- sample dialogue ---")
            for turn in turns[-3:]:
                print(f"  context : {turn.strip()}")
            print(f"  reference: {render(data.tokenizer, reference, titles)}")
            print(f"  KGSF     : {render(data.tokenizer, generated, titles)}")
        if eval_args.output:
            Path(eval_args.output).parent.mkdir(parents=True, exist_ok=True)
            Path(eval_args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
