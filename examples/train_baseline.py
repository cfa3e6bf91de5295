"""Recommendation baselines of the paper's Table 2, trained and evaluated like KGSF.

    python examples/train_baseline.py --baseline popularity --output_dir runs/popularity
    python examples/train_baseline.py --baseline textcnn --output_dir runs/textcnn

* ``popularity``: ranks items by how often they are recommended in the training split.
* ``textcnn``: a CNN over the context words (Kim, 2014) gives the user vector, scored against
  learned item embeddings; trained with cross-entropy like the KGSF recommender.

(The paper's other baselines have their own scripts: ``examples/train_kbrd.py`` (KBRD, a KGSF
configuration: ``use_conceptnet=false,use_mim=false`` for the recommender) and
``examples/train_redial.py`` (REDIAL); ``examples/run_tables.py`` runs all of them.)
Both write ``test_metrics.json`` with the same recall protocols as ``evaluate_kgsf.py``.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.utils import ModelOutput

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout without `pip install -e .`

from training_kgsf.building import parse_arguments  # noqa: E402
from training_kgsf.data import DataArguments, KGSFData  # noqa: E402
from training_kgsf.evaluation import evaluate_recommendation  # noqa: E402
from training_kgsf.trainer import StageTrainer, TrainingArguments, make_accelerator  # noqa: E402


@dataclass
class BaselineArguments:
    baseline: str = field(default="textcnn", metadata={"help": "popularity or textcnn."})
    embedding_dim: int = field(default=300, metadata={"help": "TextCNN word embedding size."})
    num_filters: int = field(default=128, metadata={"help": "TextCNN filters per width."})
    filter_widths: str = field(default="3,4,5", metadata={"help": "TextCNN filter widths."})
    test_split: str = field(default="test", metadata={"help": "Split for the final evaluation."})


@dataclass
class RecommenderOutput(ModelOutput):
    loss: torch.Tensor | None = None
    rec_logits: torch.Tensor | None = None


class PopularityRecommender(nn.Module):
    """Scores every item by its (log) count as a target in the training split."""

    def __init__(self, target_counts: torch.Tensor):
        super().__init__()
        self.register_buffer("log_counts", torch.log1p(target_counts.float()))

    def forward(self, input_ids, **unused):
        return RecommenderOutput(rec_logits=self.log_counts.expand(input_ids.shape[0], -1))


class TextCNNRecommender(nn.Module):
    """User vector = max-pooled convolutions over the context token embeddings; score = u·item."""

    def __init__(self, vocab_size: int, n_item: int, embedding_dim: int, num_filters: int, widths: list[int]):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.convolutions = nn.ModuleList(nn.Conv1d(embedding_dim, num_filters, width, padding=width - 1) for width in widths)
        self.dropout = nn.Dropout(0.1)
        self.user_projection = nn.Linear(num_filters * len(widths), embedding_dim)
        self.item_embedding = nn.Embedding(n_item, embedding_dim)
        self.item_bias = nn.Parameter(torch.zeros(n_item))
        # unit-scale dot products at the start: N(0, 1) item vectors make the first logits ~sqrt(dim)
        nn.init.normal_(self.item_embedding.weight, std=embedding_dim**-0.5)

    def forward(self, input_ids, attention_mask=None, rec_labels=None, **unused):
        tokens = self.embedding(input_ids).transpose(1, 2)  # (B, dim, L)
        pooled = [conv(tokens).relu().amax(dim=-1) for conv in self.convolutions]  # each (B, filters)
        user = self.user_projection(self.dropout(torch.cat(pooled, dim=-1)))  # (B, dim)
        logits = user @ self.item_embedding.weight.T + self.item_bias  # (B, n_item)
        loss = F.cross_entropy(logits, rec_labels, ignore_index=-100) if rec_labels is not None else None
        return RecommenderOutput(loss=loss, rec_logits=logits)


def target_counts(rows, item_index_of_entity: dict[int, int], n_item: int) -> torch.Tensor:
    counts = torch.zeros(n_item, dtype=torch.long)
    for entity in rows["target_item"]:
        if entity in item_index_of_entity:
            counts[item_index_of_entity[entity]] += 1
    return counts


def main(argv=None):
    training_args, data_args, baseline_args = parse_arguments(TrainingArguments, DataArguments, BaselineArguments, argv=argv)
    accelerator = make_accelerator(training_args)
    data = KGSFData(data_args)
    n_item = data.resources.item_entity_ids.numel()
    train_rows = data.split("train", "rec", data_args.max_train_examples)
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    if baseline_args.baseline == "popularity":
        model = accelerator.prepare(PopularityRecommender(target_counts(train_rows, data.resources.item_index_of_entity, n_item)))
    elif baseline_args.baseline == "textcnn":
        widths = [int(width) for width in baseline_args.filter_widths.split(",")]
        model = TextCNNRecommender(len(data.tokenizer), n_item, baseline_args.embedding_dim, baseline_args.num_filters, widths)
        eval_loader = data.eval_dataloader(data_args.eval_split, "rec", training_args.batch_size, accelerator, data_args.max_eval_examples)

        def save_model(model, folder, metrics):
            folder.mkdir(parents=True, exist_ok=True)
            save_file(model.state_dict(), str(folder / "model.safetensors"))
            (folder / "textcnn_config.json").write_text(json.dumps({"vocab_size": len(data.tokenizer), "n_item": n_item,
                                                                    **asdict(baseline_args)}, indent=2), encoding="utf-8")

        def compute_loss(model, batch):
            outputs = model(input_ids=batch["input_ids"], rec_labels=batch["rec_labels"])
            return outputs.loss, {}

        trainer = StageTrainer(
            training_args, model, train_rows, data.collator("rec"), compute_loss=compute_loss,
            evaluate=lambda model, accelerator: evaluate_recommendation(model, eval_loader, accelerator),
            score=lambda metrics: metrics["recall@1"] + metrics["recall@50"], save_model=save_model,
            stage="textcnn", accelerator=accelerator,
        )
        trainer.train()
        model = trainer.model
        accelerator.unwrap_model(model).load_state_dict(load_file(str(output_dir / "best" / "model.safetensors")))
    else:
        raise ValueError(f"unknown baseline {baseline_args.baseline!r}: use popularity or textcnn")

    model.eval()
    test_loader = data.eval_dataloader(baseline_args.test_split, "rec", training_args.batch_size, accelerator)
    results = {"model": baseline_args.baseline, "split": baseline_args.test_split,
               "recommendation": evaluate_recommendation(model, test_loader, accelerator)}
    if accelerator.is_main_process:
        (output_dir / "test_metrics.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
        print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
