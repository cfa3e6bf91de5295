"""Stage 2 of KGSF (Algorithm 1): train the recommender with L_rec + λ·L_MIM.

    python examples/train_recommender.py --output_dir runs/rec --init_from runs/mim/best
    accelerate launch examples/train_recommender.py --output_dir runs/rec ...

Early stopping and model selection on validation Recall@1 + Recall@50, as in the reference.
The best weights end in ``<output_dir>/best`` (a save_pretrained folder with a model card).
"""
from __future__ import annotations

from accelerate import Accelerator

from common import DataArguments, KGSFData, ModelArguments, build_model, parse_arguments, train_stage
from kgsf_evaluation import evaluate_recommendation
from kgsf_trainer import TrainingArguments

REC_KEYS = ("input_ids", "attention_mask", "context_entity_ids", "context_entity_mask", "context_word_ids",
            "context_word_mask", "rec_labels")


def recommendation_loss(model, batch):
    outputs = model(**{key: batch[key] for key in REC_KEYS})
    logs = {"rec": outputs.rec_loss.item()}
    if outputs.mim_loss is not None:
        logs["mim"] = outputs.mim_loss.item()
    return outputs.loss, logs


def main(argv=None):
    training_args, data_args, model_args = parse_arguments(TrainingArguments, DataArguments, ModelArguments, argv=argv)
    accelerator = Accelerator()
    data = KGSFData(data_args, model_args.init_from)
    model = build_model(data, model_args)
    eval_loader = data.eval_dataloader(data_args.eval_split, "rec", training_args.batch_size, accelerator, data_args.max_eval_examples)

    def evaluate(model, accelerator):
        return evaluate_recommendation(model, eval_loader, accelerator)

    return train_stage("recommender", training_args, data, model, accelerator, data.split("train", "rec", data_args.max_train_examples),
                       data.collator("rec"), compute_loss=recommendation_loss, evaluate=evaluate,
                       score=lambda metrics: metrics["recall@1"] + metrics["recall@50"])


if __name__ == "__main__":
    main()
