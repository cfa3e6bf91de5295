"""Self-attentive pooling and the two forms of Mutual Information Maximization (MIM)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SelfAttentivePooling(nn.Module):
    r"""``α = softmax_j(bᵀ tanh(W h_j))`` over the real positions, ``pooled = Σ_j α_j h_j``.

    ``nodes (B, L, d)``, ``mask (B, L)`` bool -> ``pooled (B, d)``, ``weights (B, L)``. A row with no
    real position (an empty context) pools to zeros with all-zero weights.
    """

    def __init__(self, dim: int, attention_dim: int | None = None):
        super().__init__()
        self.projection = nn.Linear(dim, attention_dim or dim, bias=False)  # W
        self.score = nn.Linear(attention_dim or dim, 1, bias=False)  # b

    def forward(self, nodes, mask):
        mask = mask.bool()
        logits = self.score(torch.tanh(self.projection(nodes))).squeeze(-1)  # (B, L)
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        weights = torch.softmax(logits, dim=-1) * mask.any(-1, keepdim=True)  # empty rows -> 0
        return (weights[..., None] * nodes).sum(1), weights


class ContrastiveMIM(nn.Module):
    r"""The paper's MIM: ``g(e, w) = σ(n_eᵀ T ṽ)`` with ``ṽ`` the self-attentive super token of the words.

    Positives: each context entity of a conversation with that conversation's super token.
    Negatives: the context entities of the other conversations of the batch (entities the
    conversation itself mentions are excluded) with the super token. Loss = binary cross-entropy,
    mean over positives + mean over negatives (the Jensen-Shannon MI estimator's form of
    "maximise E_P[g] − E_N[g]"). Rows without entities or without words contribute no pairs.
    """

    def __init__(self, kg_dim: int):
        super().__init__()
        self.bilinear = nn.Linear(kg_dim, kg_dim, bias=False)  # T

    def forward(self, entity_nodes, entity_ids, entity_mask, super_token, word_mask):
        """``entity_nodes (B, Ne, k)``, ``entity_ids (B, Ne)``, ``entity_mask (B, Ne)``, ``super_token (B, k)``."""
        entity_mask = entity_mask.bool() & word_mask.bool().any(-1, keepdim=True)  # pairs need both sides
        flat_entities = entity_nodes[entity_mask]  # (M, k)
        if flat_entities.shape[0] == 0:
            return None
        owner = torch.arange(entity_ids.shape[0], device=entity_ids.device)[:, None].expand_as(entity_ids)[entity_mask]  # (M,)
        flat_ids = entity_ids[entity_mask]  # (M,)
        has_words = word_mask.bool().any(-1)  # (B,)
        logits = flat_entities @ self.bilinear(super_token).T  # (M, B): n_e^T T v_b
        positive = owner[:, None] == torch.arange(super_token.shape[0], device=owner.device)[None, :]  # (M, B)
        # an entity that conversation b also mentions is not a negative for b
        mentioned = (entity_ids[None, :, :] == flat_ids[:, None, None]) & entity_mask[None]  # (M, B, Ne)
        negative = ~mentioned.any(-1) & has_words[None, :]
        loss = F.binary_cross_entropy_with_logits(logits[positive], torch.ones_like(logits[positive]))
        if negative.any():
            loss = loss + F.binary_cross_entropy_with_logits(logits[negative], torch.zeros_like(logits[negative]))
        return loss


class RegressionMIM(nn.Module):
    r"""The reference code's "MIM": ``ŷ = W_o W_n v`` regressed onto the context entities' multi-hot.

    ``L = mean_batch( Σ_e (ŷ_e − y_e)² / n_entity )`` with ``y`` the multi-hot of the context
    entities and ``v`` the word-side user vector.
    """

    def __init__(self, kg_dim: int, n_entity: int):
        super().__init__()
        self.norm = nn.Linear(kg_dim, kg_dim)
        self.output = nn.Linear(kg_dim, n_entity)
        self.n_entity = n_entity

    def forward(self, word_user_vector, entity_ids, entity_mask):
        scores = self.output(self.norm(word_user_vector))  # (B, n_entity)
        target = torch.zeros_like(scores)
        rows, slots = entity_mask.bool().nonzero(as_tuple=True)
        target[rows, entity_ids[rows, slots]] = 1.0  # multi-hot of the real context entities
        return ((scores - target) ** 2).sum(-1).div(self.n_entity).mean()
