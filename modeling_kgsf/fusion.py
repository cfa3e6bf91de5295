"""Self-attentive pooling and the forms of Mutual Information Maximization (MIM): the paper's
contrastive one, and the reference code's regression in two versions (ours and as the reference computes it)."""
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
    entities and ``v`` the word-side user vector. Its gradient reaches the word side only (the
    item-graph encoder does not take part); :class:`ReferenceRegressionMIM` is the reference's own
    computation.
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


class ReferenceRegressionMIM(nn.Module):
    r"""The regression MIM as the reference code computes it (RUCAIBox/KGSF ``infomax_loss``).

    Scores ``s_e = (W_n v + b_n)ᵀ n_e + c_e`` of the word-side user vector ``v`` against the R-GCN's
    own vectors ``n_e`` of every entity (so the loss trains the item-graph encoder too; ``c`` is a
    learned per-entity bias), target ``y`` = the multi-hot of the context's items (movies),
    ``L = mean_batch( m_b Σ_e (s_e − y_e)² )``: a per-example sum over all entities (not divided by
    ``n_entity``), ``m_b`` = 1 when the row has a context entity (the reference's ``db_con_mask``).

    Deliberate departures from the reference: its mask is ``(B, 1)`` against a ``(B,)`` loss, so
    its mean is ``mean(m) · mean(L_b)`` (every row's loss, scaled by the share of rows with
    entities); here a row without context entities contributes 0. Its target comes from the ``@``
    tokens of the truncated text context and sets a phantom entity (id ``len(entity2entityId)``,
    an isolated node) for every other token; here it is the context items among the context
    entities and there is no phantom node.
    """

    def __init__(self, kg_dim: int, n_entity: int):
        super().__init__()
        self.norm = nn.Linear(kg_dim, kg_dim)  # W_n, b_n
        self.entity_bias = nn.Parameter(torch.zeros(n_entity))  # c
        self.n_entity = n_entity

    def forward(self, word_user_vector, entity_nodes, entity_ids, entity_mask, item_entity_ids):
        """``word_user_vector (B, k)``, ``entity_nodes (n_entity, k)`` (all entities, R-GCN output),
        ``entity_ids``/``entity_mask (B, Ne)`` the context entities, ``item_entity_ids (n_item,)``."""
        entity_mask = entity_mask.bool()
        scores = self.norm(word_user_vector) @ entity_nodes.T + self.entity_bias  # (B, n_entity)
        target = torch.zeros_like(scores)
        rows, slots = (entity_mask & torch.isin(entity_ids, item_entity_ids)).nonzero(as_tuple=True)
        target[rows, entity_ids[rows, slots]] = 1.0  # multi-hot of the context's items
        per_example = ((scores - target) ** 2).sum(-1) * entity_mask.any(-1)  # (B,)
        return per_example.mean()


def build_mim(config) -> nn.Module:
    """The MIM module of ``config.mim_form`` (see :class:`~modeling_kgsf.KGSFConfig`)."""
    if config.mim_form == "contrastive":
        return ContrastiveMIM(config.kg_dim)
    if config.mim_form == "regression":
        return RegressionMIM(config.kg_dim, config.n_entity)
    if config.mim_form == "regression_reference":
        return ReferenceRegressionMIM(config.kg_dim, config.n_entity)
    raise ValueError(f"unknown mim_form {config.mim_form!r}")
