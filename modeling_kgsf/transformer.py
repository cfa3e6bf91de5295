"""The text Transformer of KGSF: ParlAI-style encoder and the KG-enhanced decoder (post-layer-norm).

Reference: 2 layers, 2 heads, d = 300, FFN 300, sinusoidal positions, one token embedding shared
by encoder, decoder and the output projection. Each decoder layer (paper, Sec. 4.3):

    A0 = MHA(R, R, R)            causal self-attention
    A1 = MHA(A0, V_C, V_C)       context word (ConceptNet) node vectors, projected kg_dim -> d
    A2 = MHA(A1, N_C, N_C)       context entity (DBpedia) node vectors, projected kg_dim -> d
    A3 = MHA(A2, X, X)           encoder states
    R' = FFN(A3)

each sub-layer as ``x = LayerNorm(x + Dropout(sublayer(x)))``.

Attention runs as ``config._attn_implementation`` says (``"sdpa"``: ``scaled_dot_product_attention``;
``"eager"``: written out). With a transformers ``EncoderDecoderCache`` (generation) the decoder takes
only the tokens after the cached ones: their self-attention keys/values are appended to the cache,
and the keys/values of the three cross-attentions are projected once per context.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from transformers.cache_utils import DynamicLayer


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


def allowed_keys(key_mask, causal: bool, query_length: int, key_length: int, device) -> torch.Tensor | None:
    """``(B or 1, 1, Lq, Lk)`` bool, True = attend, or None when every query sees every key.

    ``key_mask (B, Lk)`` (None: no padding); ``causal``: query ``i`` is at position ``Lk - Lq + i``
    (the last ``Lq`` of the keys, as with a key/value cache) and sees the keys up to it.
    """
    allowed = key_mask[:, None, None, :].bool() if key_mask is not None else None
    if causal and query_length > 1:
        order = torch.ones(query_length, key_length, dtype=torch.bool, device=device).tril(key_length - query_length)
        allowed = order if allowed is None else allowed & order
    return allowed


def eager_attention(q, k, v, allowed, dropout: float, training: bool) -> torch.Tensor:
    """``softmax(Q Kᵀ / sqrt(d_h) + mask) V`` written out; ``q (B, h, Lq, d_h)``, ``k``/``v (B, h, Lk, d_h)``."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, h, Lq, Lk)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    if allowed is not None:
        weights = weights * allowed.any(-1, keepdim=True)  # all-masked rows -> 0
    return F.dropout(weights, dropout, training) @ v


def sdpa_attention(q, k, v, allowed, dropout: float, training: bool, causal_square: bool = False) -> torch.Tensor:
    """The same with ``F.scaled_dot_product_attention`` (fused kernels); ``causal_square``: ``allowed``
    is exactly the causal mask of ``Lq == Lk`` (``is_causal``, no mask tensor)."""
    dropout = dropout if training else 0.0
    if allowed is None or causal_square:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal_square)
    has_key = allowed.any(-1, keepdim=True)  # (B, 1, Lq, 1); a row without keys attends to all, then is zeroed
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed | ~has_key, dropout_p=dropout)
    return out * has_key


class MultiHeadAttention(nn.Module):
    r"""``softmax(Q Kᵀ / sqrt(d_h) + mask) V`` over ``heads`` heads, then an output projection.

    ``key_mask (B, Lk)`` bool (True = attend; None = every key); ``causal`` adds the autoregressive
    mask. A query whose keys are all masked (an empty context) gets a zero vector, not NaN. The
    kernel is ``config._attn_implementation`` (transformers' switch, read at each call): ``"sdpa"``
    (``F.scaled_dot_product_attention``, the default) or ``"eager"`` (the matmuls written out).
    """

    def __init__(self, config):
        super().__init__()
        dim = config.d_model
        self.config = config
        self.heads, self.head_dim = config.attention_heads, dim // config.attention_heads
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.attention_dropout = config.attention_dropout

    def _split(self, x):  # (B, L, d) -> (B, h, L, d_h)
        return x.view(x.shape[0], -1, self.heads, self.head_dim).transpose(1, 2)

    def _project(self, key):
        return self._split(self.k_proj(key)), self._split(self.v_proj(key))

    def keys_values(self, key, cache=None, cache_index: int = 0, cross: bool = False):
        """Projected keys and values ``(B, h, L, d_h)`` of ``key (B, Lk, d)``.

        ``cache`` (a transformers ``Cache``): self-attention (``cross=False``): a ``DynamicCache``; the
        new keys/values are appended to its layer ``cache_index`` and all of them returned.
        Cross-attention: an ``EncoderDecoderCache``; projected once per context into layer
        ``cache_index`` of its ``cross_attention_cache``, then read back. Without a cache: projected
        at every call (``generate(..., use_cache=False)`` projects the context at every step).
        """
        if cache is not None and not cross:
            return cache.update(*self._project(key), cache_index)
        if cache is not None:
            if cache.is_updated.get(cache_index):
                layer = cache.cross_attention_cache.layers[cache_index]
                return layer.keys, layer.values
            keys_values = cache.cross_attention_cache.update(*self._project(key), cache_index)
            cache.is_updated[cache_index] = True
            return keys_values
        return self._project(key)

    def forward(self, query, key, key_mask=None, causal: bool = False, cache=None, cache_index: int = 0, cross: bool = False):
        """``query (B, Lq, d)``, ``key (B, Lk, d)`` -> ``(B, Lq, d)``; ``cache``: :meth:`keys_values`."""
        batch, query_length, dim = query.shape
        q = self._split(self.q_proj(query))
        k, v = self.keys_values(key, cache, cache_index, cross)
        key_length = k.shape[2]
        allowed = allowed_keys(key_mask, causal, query_length, key_length, query.device)
        if self.config._attn_implementation == "eager":
            out = eager_attention(q, k, v, allowed, self.attention_dropout, self.training)
        else:
            causal_square = causal and key_mask is None and query_length == key_length > 1
            out = sdpa_attention(q, k, v, allowed, self.attention_dropout, self.training, causal_square)
        return self.out_proj(out.transpose(1, 2).reshape(batch, query_length, dim))


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
        self.self_attn = MultiHeadAttention(config)
        self.self_attn_norm = nn.LayerNorm(config.d_model)
        self.ffn = FeedForward(config.d_model, config.ffn_dim, config.relu_dropout)
        self.ffn_norm = nn.LayerNorm(config.d_model)
        self.dropout = config.dropout

    def forward(self, hidden, mask):
        hidden = self.self_attn_norm(hidden + F.dropout(self.self_attn(hidden, hidden, mask), self.dropout, self.training))
        hidden = self.ffn_norm(hidden + F.dropout(self.ffn(hidden), self.dropout, self.training))
        return hidden * mask[..., None].to(hidden.dtype)


def embed_tokens(embedding: nn.Embedding, input_ids, config, training: bool, past_length: int = 0):
    """Token embedding (× sqrt(d) if ``scale_embedding``) + sinusoidal positions ``past_length ..
    past_length + L - 1`` (``past_length``: tokens already in a key/value cache), then dropout."""
    hidden = embedding(input_ids)  # (B, L, d)
    if config.scale_embedding:
        hidden = hidden * math.sqrt(config.d_model)
    positions = sinusoidal_positions(past_length + input_ids.shape[1], config.d_model, hidden.device, hidden.dtype)[past_length:]
    hidden = hidden + positions[None]
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


CROSS_ATTENTIONS_PER_LAYER = 3  # slots of a decoder layer in the cross-attention cache: words, entities, encoder


class KGDecoderLayer(nn.Module):
    """Causal self-attention -> context words -> context entities -> encoder -> FFN (post-LN).

    With ``config.use_kg_attention=False`` the two KG sub-layers are absent (a plain Transformer
    decoder layer); with ``use_conceptnet=False`` the word sub-layer is absent.
    """

    def __init__(self, config):
        super().__init__()
        d = config.d_model
        self.self_attn, self.self_attn_norm = MultiHeadAttention(config), nn.LayerNorm(d)
        self.use_word_attention = config.use_kg_attention and config.use_conceptnet
        self.use_entity_attention = config.use_kg_attention
        if self.use_word_attention:
            self.word_attn, self.word_attn_norm = MultiHeadAttention(config), nn.LayerNorm(d)
        if self.use_entity_attention:
            self.entity_attn, self.entity_attn_norm = MultiHeadAttention(config), nn.LayerNorm(d)
        self.encoder_attn, self.encoder_attn_norm = MultiHeadAttention(config), nn.LayerNorm(d)
        self.ffn, self.ffn_norm = FeedForward(d, config.ffn_dim, config.relu_dropout), nn.LayerNorm(d)
        self.dropout = config.dropout

    def _residual(self, hidden, sublayer_out, norm):
        return norm(hidden + F.dropout(sublayer_out, self.dropout, self.training))

    def forward(self, hidden, word_states, word_mask, entity_states, entity_mask, encoder_states, encoder_mask,
                cache=None, layer_index: int = 0):
        """``cache``: an ``EncoderDecoderCache`` (generation), or None. This layer's self-attention
        keys/values are layer ``layer_index`` of its self-attention cache; its three cross-attentions
        are slots ``3 * layer_index + 0 / 1 / 2`` (words, entities, encoder) of the cross-attention cache."""
        self_cache = cache.self_attention_cache if cache is not None else None
        slot = CROSS_ATTENTIONS_PER_LAYER * layer_index
        hidden = self._residual(hidden, self.self_attn(hidden, hidden, causal=True, cache=self_cache, cache_index=layer_index),
                                self.self_attn_norm)
        if self.use_word_attention:
            word = self.word_attn(hidden, word_states, word_mask, cache=cache, cache_index=slot, cross=True)
            hidden = self._residual(hidden, word, self.word_attn_norm)
        if self.use_entity_attention:
            entity = self.entity_attn(hidden, entity_states, entity_mask, cache=cache, cache_index=slot + 1, cross=True)
            hidden = self._residual(hidden, entity, self.entity_attn_norm)
        encoder = self.encoder_attn(hidden, encoder_states, encoder_mask, cache=cache, cache_index=slot + 2, cross=True)
        hidden = self._residual(hidden, encoder, self.encoder_attn_norm)
        return self._residual(hidden, self.ffn(hidden), self.ffn_norm)


class KGSFDecoder(nn.Module):
    """Response prefix ``(B, Lr)`` + context -> decoder states ``(B, Lr, d)``.

    With a ``cache`` (a transformers ``EncoderDecoderCache``) ``decoder_input_ids`` are the tokens
    after those already cached (generation: the last one); their positions continue from the
    cache's length.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(KGDecoderLayer(config) for _ in range(config.decoder_layers))

    def forward(self, decoder_input_ids, token_embedding: nn.Embedding, encoder_states, encoder_mask, word_states, word_mask,
                entity_states, entity_mask, cache=None):
        past_length = 0
        if cache is not None:
            past_length = cache.get_seq_length()
            slots = cache.cross_attention_cache.layers  # a cache built from the config has a layer per decoder layer: add the others
            while len(slots) < CROSS_ATTENTIONS_PER_LAYER * len(self.layers):
                slots.append(DynamicLayer())
        hidden = embed_tokens(token_embedding, decoder_input_ids, self.config, self.training, past_length)
        for index, layer in enumerate(self.layers):
            hidden = layer(hidden, word_states, word_mask, entity_states, entity_mask, encoder_states, encoder_mask, cache, index)
        return hidden
