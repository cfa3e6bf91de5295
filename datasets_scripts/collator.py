"""Batches for the model (``docs/DESIGN.md``, "Batches") and the per-item expansion for recommendation.

:class:`modeling_kgsf.processing_kgsf.KGSFDataCollator` (with the processor, on the model floor)
turns processed rows into padded tensors. ``mode="rec"`` expects rows from :func:`expand_for_recommendation` (one per (turn, target
item), ``target_item`` column) and emits ``rec_labels``; ``mode="conv"`` also emits ``labels``
(response ids + ``__end__``, pad -100), and ``rec_labels`` when a ``target_item`` column exists
(else all -100).
"""
from __future__ import annotations

from modeling_kgsf.processing_kgsf import NO_TARGET


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
