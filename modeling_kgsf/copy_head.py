"""The copy head: extra logits for KG words and item tokens, added to the vocabulary logits."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class CopyHead(nn.Module):
    r"""``copy = mask ⊙ W_v W_c [s_t; W_n n; W_w v]``, added to the vocabulary logits before the softmax.

    ``s_t`` is the decoder state, ``n`` / ``v`` the pooled context entity / word vectors (kg_dim,
    projected to d_model), ``mask`` (vocab,) is 1 on the tokens that are ConceptNet words or items
    (``kg_word_vocab_mask | item_token_vocab_mask``), 0 elsewhere: the reference's
    ``logits + representation_bias(copy_latent) * mask4``.
    """

    def __init__(self, config):
        super().__init__()
        self._rows_cache: dict = {}  # gathered copy rows at inference (derived, never saved)
        d = config.d_model
        self.use_words = config.use_conceptnet
        self.entity_projection = nn.Linear(config.kg_dim, d)
        if self.use_words:
            self.word_projection = nn.Linear(config.kg_dim, d)
        self.mix = nn.Linear((3 if self.use_words else 2) * d, d)
        self.vocab_projection = nn.Linear(d, config.vocab_size)

    def forward(self, decoder_states, entity_vector, word_vector, copy_mask, vocab_logits):
        """``decoder_states (B, L, d)``, vectors ``(B, k)``, ``copy_mask (V,)`` bool, ``vocab_logits (B, L, V)``
        -> ``vocab_logits + copy logits`` ``(B, L, V)``.

        Only the masked vocabulary rows are projected (the others would be multiplied by 0).
        """
        length = decoder_states.shape[1]
        parts = [self.entity_projection(entity_vector)[:, None].expand(-1, length, -1)]
        if self.use_words:
            parts.append(self.word_projection(word_vector)[:, None].expand(-1, length, -1))
        latent = self.mix(torch.cat(parts + [decoder_states], dim=-1))  # (B, L, d)
        copy_ids, weight, bias = self._copy_rows(copy_mask)
        copy_logits = F.linear(latent, weight, bias)  # (B, L, M)
        return vocab_logits.index_add(-1, copy_ids, copy_logits)

    def resize_vocab(self, vocab_size: int) -> None:
        """Resize the vocabulary projection to ``vocab_size`` rows (kept rows copied, new rows zero)."""
        self.vocab_projection = resized_rows(self.vocab_projection, vocab_size)
        self._rows_cache = {}

    def _copy_rows(self, copy_mask):
        """``copy_ids (M,)`` and the projection rows ``(M, d)``, ``(M,)`` of the masked tokens.

        Without grad (generation) the gathered rows are kept while the weights and the mask are
        unchanged: gathering ~22k rows at every decoding step costs more than the matmul.
        """
        weight, bias = self.vocab_projection.weight, self.vocab_projection.bias
        if torch.is_grad_enabled():
            self._rows_cache = {}
            copy_ids = copy_mask.nonzero().squeeze(-1)
            return copy_ids, weight[copy_ids], bias[copy_ids]
        key = tuple((t.data_ptr(), t._version, t.device) for t in (weight, bias))
        cache = self._rows_cache
        if cache.get("key") != key or not torch.equal(cache["mask"], copy_mask):
            copy_ids = copy_mask.nonzero().squeeze(-1)
            cache = self._rows_cache = {"key": key, "mask": copy_mask.clone(), "rows": (copy_ids, weight[copy_ids], bias[copy_ids])}
        return cache["rows"]


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
