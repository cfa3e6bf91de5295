"""Stage 3 of KGSF (Algorithm 1): train the KG-enhanced Transformer, graphs and recommender frozen.

    python examples/train_conversation.py --output_dir runs/conv --init_from runs/rec/best
    accelerate launch examples/train_conversation.py --output_dir runs/conv --init_from runs/rec/best

Model selection on validation perplexity of the reference replies (lower is better); each
evaluation also generates greedy replies for ``--generation_batches`` batches and logs
Distinct-n, item ratio and BLEU.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from accelerate import Accelerator

from common import DataArguments, KGSFData, ModelArguments, build_model, parse_arguments, train_stage
from kgsf_evaluation import evaluate_conversation
from kgsf_trainer import TrainingArguments

CONV_KEYS = ("input_ids", "attention_mask", "context_entity_ids", "context_entity_mask", "context_word_ids",
             "context_word_mask", "labels")


@dataclass
class ConversationArguments:
    generation_batches: int = field(default=2, metadata={"help": "Batches generated at each evaluation (0: none)."})
    freeze_recommender: bool = field(default=True, metadata={"help": "Freeze graphs, fusion and recommender (Algorithm 1)."})


def conversation_loss(model, batch):
    outputs = model(**{key: batch[key] for key in CONV_KEYS})
    return outputs.loss, {}


def main(argv=None):
    training_args, data_args, model_args, conv_args = parse_arguments(
        TrainingArguments, DataArguments, ModelArguments, ConversationArguments, argv=argv)
    accelerator = Accelerator()
    data = KGSFData(data_args, model_args.init_from)
    model = build_model(data, model_args)
    if conv_args.freeze_recommender:
        model.freeze_recommender()
    eval_loader = data.eval_dataloader(data_args.eval_split, "conv", training_args.batch_size, accelerator, data_args.max_eval_examples)

    def evaluate(model, accelerator):
        return evaluate_conversation(model, eval_loader, accelerator, data.tokenizer,
                                     generate=conv_args.generation_batches > 0,
                                     max_generation_batches=conv_args.generation_batches)

    return train_stage("conversation", training_args, data, model, accelerator, data.split("train", "conv", data_args.max_train_examples),
                       data.collator("conv"), compute_loss=conversation_loss, evaluate=evaluate,
                       score=lambda metrics: -metrics["perplexity"])


if __name__ == "__main__":
    main()
