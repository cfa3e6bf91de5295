"""The recommender: user vector from the context's word and entity node vectors, scored against the items."""
from __future__ import annotations

import torch
from torch import nn

from .fusion import SelfAttentivePooling


class KGSFRecommender(nn.Module):
    r"""``p_u = β v + (1 − β) n``, ``β = σ(W_g [v; n])``, scores ``p_uᵀ n_i + b_i`` over the items.

    ``v`` and ``n`` are self-attentive poolings (``α = softmax(bᵀ tanh(W h))``) of the context word
    node vectors and context entity node vectors. Empty contexts pool to zero vectors, so a
    cold-start row (no entity) gets ``p_u = β v`` and a row with nothing gets ``p_u = 0`` (scores =
    item biases). ``use_conceptnet=False``: ``p_u = n`` (entities only, KBRD-like).
    """

    def __init__(self, config):
        super().__init__()
        self.use_words = config.use_conceptnet
        self.entity_pooling = SelfAttentivePooling(config.kg_dim)
        if self.use_words:
            self.word_pooling = SelfAttentivePooling(config.kg_dim)
            self.gate = nn.Linear(2 * config.kg_dim, 1)
        self.item_bias = nn.Parameter(torch.zeros(config.n_item))

    def pool(self, word_nodes, word_mask, entity_nodes, entity_mask):
        """-> word vector v (B, k) or None, its weights (B, Nw) or None, entity vector n (B, k), weights (B, Ne)."""
        entity_vector, entity_weights = self.entity_pooling(entity_nodes, entity_mask)
        if not self.use_words:
            return None, None, entity_vector, entity_weights
        word_vector, word_weights = self.word_pooling(word_nodes, word_mask)
        return word_vector, word_weights, entity_vector, entity_weights

    def user_vector(self, word_vector, entity_vector):
        """``(B, k)`` user vector p_u."""
        if word_vector is None:
            return entity_vector
        gate = torch.sigmoid(self.gate(torch.cat([word_vector, entity_vector], dim=-1)))  # (B, 1) β
        return gate * word_vector + (1 - gate) * entity_vector

    def forward(self, user_vector, item_nodes):
        """``user_vector (B, k)``, ``item_nodes (n_item, k)`` -> rec logits ``(B, n_item)``."""
        return user_vector @ item_nodes.T + self.item_bias
