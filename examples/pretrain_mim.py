"""Stage 1 of KGSF (Algorithm 1): pre-train the two graph encoders with Mutual Information Maximization.

    python examples/pretrain_mim.py --output_dir runs/mim --num_epochs 3
    accelerate launch examples/pretrain_mim.py --output_dir runs/mim

The MIM form (the paper's contrastive one, or the reference code's regression) is a config
option (``--config_overrides mim_form=regression``). Model selection on validation MIM loss.
"""
from __future__ import annotations

import torch
from accelerate import Accelerator

from common import DataArguments, KGSFData, ModelArguments, build_model, parse_arguments, train_stage
from kgsf_trainer import TrainingArguments

MIM_KEYS = ("input_ids", "attention_mask", "context_entity_ids", "context_entity_mask", "context_word_ids", "context_word_mask")


def mim_loss(model, batch):
    outputs = model(**{key: batch[key] for key in MIM_KEYS}, task="mim")
    return outputs.mim_loss, {}


def main(argv=None):
    training_args, data_args, model_args = parse_arguments(TrainingArguments, DataArguments, ModelArguments, argv=argv)
    accelerator = Accelerator()
    data = KGSFData(data_args, model_args.init_from)
    model = build_model(data, model_args)
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


if __name__ == "__main__":
    main()
