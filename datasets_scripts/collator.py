"""Batches for the model (``docs/DESIGN.md``, "Batches") and the per-item expansion for recommendation.

``KGSFDataCollator(tokenizer, item_index_of_entity, mode)`` turns processed rows into padded
tensors. ``mode="rec"`` expects rows from :func:`expand_for_recommendation` (one per (turn, target
item), ``target_item`` column) and emits ``rec_labels``; ``mode="conv"`` also emits ``labels``
(response ids + ``__end__``, pad -100), and ``rec_labels`` when a ``target_item`` column exists
(else all -100).
"""
from __future__ import annotations

import torch

IGNORE_INDEX = -100
NO_TARGET = -1  # ``target_item`` of rows kept without a target


def expand_for_recommendation(dataset, drop_without_target: bool = True):
    """One row per (turn, target item), as the reference trains the recommender.

    Adds an int column ``target_item`` (entity id). Rows without target items are dropped, or kept
    once with ``target_item = -1`` when ``drop_without_target`` is False (for conversation use).
    """

    def expand(batch):
        out = {column: [] for column in batch}
        out["target_item"] = []
        for index, targets in enumerate(batch["target_items"]):
            expanded = list(targets) or ([] if drop_without_target else [NO_TARGET])
            for target in expanded:
                for column in batch:
                    out[column].append(batch[column][index])
                out["target_item"].append(target)
        return out

    return dataset.map(expand, batched=True, desc="expanding recommendation targets")


def _pad(sequences: list[list[int]], pad_value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, max(1, longest)) long tensor and bool mask (True = real position)."""
    width = max(1, max((len(sequence) for sequence in sequences), default=0))
    values = torch.full((len(sequences), width), pad_value, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.bool)
    for row, sequence in enumerate(sequences):
        if sequence:
            values[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
            mask[row, : len(sequence)] = True
    return values, mask


class KGSFDataCollator:
    """Collate processed rows into the batch dict of DESIGN.md."""

    def __init__(self, tokenizer, item_index_of_entity: dict[int, int], mode: str = "rec"):
        if mode not in ("rec", "conv"):
            raise ValueError(f"mode must be 'rec' or 'conv', got {mode!r}")
        self.tokenizer = tokenizer
        self.item_index_of_entity = item_index_of_entity
        self.mode = mode

    def _rec_label(self, row: dict) -> int:
        target = row.get("target_item", NO_TARGET)
        return self.item_index_of_entity.get(target, IGNORE_INDEX) if target is not None and target >= 0 else IGNORE_INDEX

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        tokenizer = self.tokenizer
        input_ids, attention_mask = _pad([tokenizer.convert_tokens_to_ids(row["context_tokens"]) for row in rows], tokenizer.pad_token_id)
        entity_ids, entity_mask = _pad([row["context_entities"] for row in rows], 0)
        word_ids, word_mask = _pad([row["context_words"] for row in rows], 0)
        item_indices, _ = _pad(
            [[self.item_index_of_entity[e] for e in row["context_items"] if e in self.item_index_of_entity] for row in rows], -1
        )
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask.long(),
            "context_entity_ids": entity_ids,
            "context_entity_mask": entity_mask,
            "context_word_ids": word_ids,
            "context_word_mask": word_mask,
            "rec_labels": torch.tensor([self._rec_label(row) for row in rows], dtype=torch.long),
            "context_item_indices": item_indices,
        }
        if self.mode == "conv":
            responses = [tokenizer.convert_tokens_to_ids(row["response_tokens"]) + [tokenizer.eos_token_id] for row in rows]
            batch["labels"], _ = _pad(responses, IGNORE_INDEX)
        return batch
