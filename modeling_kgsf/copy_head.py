"""The copy head: extra logits for KG words and item tokens, added to the vocabulary logits."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class CopyRows:
    """The vocabulary projection's rows of the copy targets (:meth:`CopyHead.rows`): ``token_ids (M,)``,
    ``weight (M, d)``, ``bias (M,)``. Gathered from the weights; ``generate()`` gathers them once per
    call and passes them to every step (gathering ~17k rows costs more than a step's matmul)."""

    token_ids: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor


class CopyHead(nn.Module):
    r"""``copy = mask ⊙ W_v W_c [s_t; W_n n; W_w v]``, added to the vocabulary logits before the softmax.

    ``s_t`` is the decoder state, ``n`` / ``v`` the pooled context entity / word vectors (kg_dim,
    projected to d_model), ``mask`` (vocab,) is 1 on the tokens that are ConceptNet words or items
    (``kg_word_vocab_mask | item_token_vocab_mask``), 0 elsewhere: the reference's
    ``logits + representation_bias(copy_latent) * mask4``.
    """

    def __init__(self, config):
        super().__init__()
        d = config.d_model
        self.use_words = config.use_conceptnet
        self.entity_projection = nn.Linear(config.kg_dim, d)
        if self.use_words:
            self.word_projection = nn.Linear(config.kg_dim, d)
        self.mix = nn.Linear((3 if self.use_words else 2) * d, d)
        self.vocab_projection = nn.Linear(d, config.vocab_size)

    def forward(self, decoder_states, entity_vector, word_vector, copy_mask, vocab_logits, rows: CopyRows | None = None):
        """``decoder_states (B, L, d)``, vectors ``(B, k)``, ``copy_mask (V,)`` bool, ``vocab_logits (B, L, V)``
        -> ``vocab_logits + copy logits`` ``(B, L, V)``.

        Only the masked vocabulary rows are projected (the others would be multiplied by 0): ``rows``
        (:meth:`rows` of ``copy_mask``, e.g. gathered once per ``generate`` call), else gathered here.
        """
        length = decoder_states.shape[1]
        parts = [self.entity_projection(entity_vector)[:, None].expand(-1, length, -1)]
        if self.use_words:
            parts.append(self.word_projection(word_vector)[:, None].expand(-1, length, -1))
        latent = self.mix(torch.cat(parts + [decoder_states], dim=-1))  # (B, L, d)
        rows = rows if rows is not None else self.rows(copy_mask)
        copy_logits = F.linear(latent, rows.weight, rows.bias)  # (B, L, M)
        return vocab_logits.index_add(-1, rows.token_ids, copy_logits)

    def resize_vocab(self, vocab_size: int) -> None:
        """Resize the vocabulary projection to ``vocab_size`` rows (kept rows copied, new rows zero)."""
        self.vocab_projection = resized_rows(self.vocab_projection, vocab_size)

    def rows(self, copy_mask) -> CopyRows:
        """The vocabulary projection's rows of the tokens in ``copy_mask (V,)`` (with their gradients)."""
        token_ids = copy_mask.nonzero().squeeze(-1)
        return CopyRows(token_ids, self.vocab_projection.weight[token_ids], self.vocab_projection.bias[token_ids])


def resized_rows(layer: nn.Linear, out_features: int) -> nn.Linear:
    """A copy of ``layer`` with ``out_features`` output rows: kept rows copied, new rows zero (they
    add nothing until trained), same device, dtype and ``requires_grad``."""
    new = nn.Linear(layer.in_features, out_features, bias=layer.bias is not None, device=layer.weight.device, dtype=layer.weight.dtype)
    keep = min(out_features, layer.out_features)
    with torch.no_grad():
        for target, source in ((new.weight, layer.weight), (new.bias, layer.bias)):
            if target is not None:
                target.zero_()
                target[:keep] = source[:keep]
                target.requires_grad_(source.requires_grad)
    return new
