"""The text Transformer of KGSF: ParlAI-style encoder and the KG-enhanced decoder (post-layer-norm).

Reference: 2 layers, 2 heads, d = 300, FFN 300, sinusoidal positions, one token embedding shared
by encoder, decoder and the output projection. Each decoder layer (paper, Sec. 4.3):

    A0 = MHA(R, R, R)            causal self-attention
    A1 = MHA(A0, V_C, V_C)       context word (ConceptNet) node vectors, projected kg_dim -> d
    A2 = MHA(A1, N_C, N_C)       context entity (DBpedia) node vectors, projected kg_dim -> d
    A3 = MHA(A2, X, X)           encoder states
    R' = FFN(A3)

each sub-layer as ``x = LayerNorm(x + Dropout(sublayer(x)))``.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def sinusoidal_positions(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(length, dim)`` ParlAI position codes: sin on even, cos on odd dims, ``pos / 10000^(2⌊j/2⌋/dim)``.

    Computed on the fly (no buffer: nothing to save, nothing left uninitialised by meta loading).
    """
    position = torch.arange(length, device=device, dtype=torch.float64)[:, None]
    exponent = 2 * (torch.arange(dim, device=device) // 2).double() / dim
    angles = position / torch.pow(10000.0, exponent)[None, :]  # (length, dim)
    codes = torch.empty_like(angles)
    codes[:, 0::2] = torch.sin(angles[:, 0::2])
    codes[:, 1::2] = torch.cos(angles[:, 1::2])
    return codes.to(dtype)


class MultiHeadAttention(nn.Module):
    r"""``softmax(Q Kᵀ / sqrt(d_h) + mask) V`` over ``heads`` heads, then an output projection.

    ``key_mask (B, Lk)`` bool (True = attend); ``causal`` adds the autoregressive mask. A query
    whose keys are all masked (an empty context) gets a zero vector, not NaN.
    """

    def __init__(self, dim: int, heads: int, attention_dropout: float = 0.0):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.attention_dropout = attention_dropout
        self._kv_cache: tuple | None = None  # cross-attention keys/values at inference (derived, never saved)

    def _keys_values(self, key, cache: bool):
        """Projected keys and values ``(B, L, d)``. With ``cache`` (no grad, cross-attention) they are
        kept for the same ``key`` tensor: every decoding step attends to the same context states."""
        if not cache or torch.is_grad_enabled():
            return self.k_proj(key), self.v_proj(key)
        weights = tuple((t.data_ptr(), t._version, t.device) for t in (*self.k_proj.parameters(), *self.v_proj.parameters()))
        cached = self._kv_cache
        if cached is None or cached[0] is not key or cached[1] != (key._version, weights):
            cached = self._kv_cache = (key, (key._version, weights), self.k_proj(key), self.v_proj(key))
        return cached[2], cached[3]

    def forward(self, query, key, key_mask, causal: bool = False, cache_keys: bool = False):
        batch, query_length, dim = query.shape  # (B, Lq, d)
        key_length = key.shape[1]

        def split(x):  # (B, L, d) -> (B, h, L, d_h)
            return x.view(batch, -1, self.heads, self.head_dim).transpose(1, 2)

        projected_keys, projected_values = self._keys_values(key, cache_keys)
        q, k, v = split(self.q_proj(query)), split(projected_keys), split(projected_values)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # (B, h, Lq, Lk)
        allowed = key_mask[:, None, None, :].bool()  # (B, 1, 1, Lk)
        if causal:
            allowed = allowed & torch.ones(query_length, key_length, dtype=torch.bool, device=query.device).tril()
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1) * allowed.any(-1, keepdim=True)  # all-masked rows -> 0
        weights = F.dropout(weights, self.attention_dropout, self.training)
        out = (weights @ v).transpose(1, 2).reshape(batch, query_length, dim)
        return self.out_proj(out)


class FeedForward(nn.Module):
    """``W2 Dropout(ReLU(W1 x))``."""

    def __init__(self, dim: int, hidden: int, relu_dropout: float):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.relu_dropout = relu_dropout

    def forward(self, x):
        return self.fc2(F.dropout(F.relu(self.fc1(x)), self.relu_dropout, self.training))


class EncoderLayer(nn.Module):
    """Self-attention and FFN, each ``x = LayerNorm(x + Dropout(f(x)))``."""

    def __init__(self, config):
        super().__init__()
        self.self_attn = MultiHeadAttention(config.d_model, config.attention_heads, config.attention_dropout)
        self.self_attn_norm = nn.LayerNorm(config.d_model)
        self.ffn = FeedForward(config.d_model, config.ffn_dim, config.relu_dropout)
        self.ffn_norm = nn.LayerNorm(config.d_model)
        self.dropout = config.dropout

    def forward(self, hidden, mask):
        hidden = self.self_attn_norm(hidden + F.dropout(self.self_attn(hidden, hidden, mask), self.dropout, self.training))
        hidden = self.ffn_norm(hidden + F.dropout(self.ffn(hidden), self.dropout, self.training))
        return hidden * mask[..., None].to(hidden.dtype)


def embed_tokens(embedding: nn.Embedding, input_ids, config, training: bool):
    """Token embedding (× sqrt(d) if ``scale_embedding``) + sinusoidal positions, then dropout."""
    hidden = embedding(input_ids)  # (B, L, d)
    if config.scale_embedding:
        hidden = hidden * math.sqrt(config.d_model)
    hidden = hidden + sinusoidal_positions(input_ids.shape[1], config.d_model, hidden.device, hidden.dtype)[None]
    return F.dropout(hidden, config.dropout, training)


class KGSFEncoder(nn.Module):
    """Context tokens ``(B, Lc)`` -> states ``(B, Lc, d)`` (padding positions zeroed)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))

    def forward(self, input_ids, attention_mask, token_embedding: nn.Embedding):
        mask = attention_mask.bool()
        hidden = embed_tokens(token_embedding, input_ids, self.config, self.training) * mask[..., None]
        for layer in self.layers:
            hidden = layer(hidden, mask)
        return hidden


class KGDecoderLayer(nn.Module):
    """Causal self-attention -> context words -> context entities -> encoder -> FFN (post-LN).

    With ``config.use_kg_attention=False`` the two KG sub-layers are absent (a plain Transformer
    decoder layer); with ``use_conceptnet=False`` the word sub-layer is absent.
    """

    def __init__(self, config):
        super().__init__()
        d, heads, p = config.d_model, config.attention_heads, config.attention_dropout
        self.self_attn, self.self_attn_norm = MultiHeadAttention(d, heads, p), nn.LayerNorm(d)
        self.use_word_attention = config.use_kg_attention and config.use_conceptnet
        self.use_entity_attention = config.use_kg_attention
        if self.use_word_attention:
            self.word_attn, self.word_attn_norm = MultiHeadAttention(d, heads, p), nn.LayerNorm(d)
        if self.use_entity_attention:
            self.entity_attn, self.entity_attn_norm = MultiHeadAttention(d, heads, p), nn.LayerNorm(d)
        self.encoder_attn, self.encoder_attn_norm = MultiHeadAttention(d, heads, p), nn.LayerNorm(d)
        self.ffn, self.ffn_norm = FeedForward(d, config.ffn_dim, config.relu_dropout), nn.LayerNorm(d)
        self.dropout = config.dropout

    def _residual(self, hidden, sublayer_out, norm):
        return norm(hidden + F.dropout(sublayer_out, self.dropout, self.training))

    def forward(self, hidden, decoder_mask, word_states, word_mask, entity_states, entity_mask, encoder_states, encoder_mask):
        hidden = self._residual(hidden, self.self_attn(hidden, hidden, decoder_mask, causal=True), self.self_attn_norm)
        if self.use_word_attention:
            hidden = self._residual(hidden, self.word_attn(hidden, word_states, word_mask, cache_keys=True), self.word_attn_norm)
        if self.use_entity_attention:
            hidden = self._residual(hidden, self.entity_attn(hidden, entity_states, entity_mask, cache_keys=True), self.entity_attn_norm)
        hidden = self._residual(hidden, self.encoder_attn(hidden, encoder_states, encoder_mask, cache_keys=True), self.encoder_attn_norm)
        return self._residual(hidden, self.ffn(hidden), self.ffn_norm)


class KGSFDecoder(nn.Module):
    """Response prefix ``(B, Lr)`` + context -> decoder states ``(B, Lr, d)``."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(KGDecoderLayer(config) for _ in range(config.decoder_layers))

    def forward(self, decoder_input_ids, token_embedding: nn.Embedding, encoder_states, encoder_mask, word_states, word_mask,
                entity_states, entity_mask):
        decoder_mask = torch.ones_like(decoder_input_ids, dtype=torch.bool)  # the causal mask does the rest
        hidden = embed_tokens(token_embedding, decoder_input_ids, self.config, self.training)
        for layer in self.layers:
            hidden = layer(hidden, decoder_mask, word_states, word_mask, entity_states, entity_mask, encoder_states, encoder_mask)
        return hidden
