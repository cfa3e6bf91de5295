"""The copy head: extra logits for KG words and item tokens, added to the vocabulary logits."""
from __future__ import annotations

import torch
from torch import nn


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

    def forward(self, decoder_states, entity_vector, word_vector, copy_mask):
        """``decoder_states (B, L, d)``, vectors ``(B, k)``, ``copy_mask (V,)`` bool -> ``(B, L, V)``."""
        length = decoder_states.shape[1]
        parts = [self.entity_projection(entity_vector)[:, None].expand(-1, length, -1)]
        if self.use_words:
            parts.append(self.word_projection(word_vector)[:, None].expand(-1, length, -1))
        latent = self.mix(torch.cat(parts + [decoder_states], dim=-1))  # (B, L, d)
        return self.vocab_projection(latent) * copy_mask.to(latent.dtype)
