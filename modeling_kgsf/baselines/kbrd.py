"""KBRD (Chen et al., EMNLP 2019, "Towards Knowledge-Based Recommender Dialog System") as a
configuration of KGSF.

KBRD's recommender is an R-GCN over DBpedia with self-attention over the context entities, the
user vector ``p_u`` scored against the item vectors: KGSF without the word side and without MIM
(``use_conceptnet=false, use_mim=false``). Its conversation model is a Transformer without KG
attention or copy whose output logits get a vocabulary bias computed from ``p_u``
(``user_vocab_bias=true``: ``Linear(512, vocab)(ReLU(Linear(kg_dim, 512)(p_u)))``, KBRD's
``user_representation_to_bias``). Both are trained with KGSF's stages and data (recommender
stage, then the conversation stage with the recommender frozen); ``examples/train_kbrd.py``
chains them.

Differences from the KBRD release: KBRD's R-GCN is PyG's RGCNConv over the same DBpedia subgraph
(as ours); KBRD trains its recommender with the same cross-entropy; its Transformer is ParlAI's
(ours is KGSF's with the KG attention layers removed, the same sizes as KGSF); KBRD's bias layer
sits on the recommender trained jointly, here the recommender is frozen in the conversation
stage like KGSF's (Algorithm 1).
"""
from __future__ import annotations

from ..configuration_kgsf import KGSFConfig

KBRD_RECOMMENDER_OVERRIDES = {"use_conceptnet": False, "use_mim": False}
KBRD_CONVERSATION_OVERRIDES = {"use_kg_attention": False, "use_copy": False, "user_vocab_bias": True}


def overrides_text(overrides: dict) -> str:
    """``{"use_mim": False}`` -> ``"use_mim=false"`` (the ``--config_overrides`` form)."""
    return ",".join(f"{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in overrides.items())


KBRD_RECOMMENDER_FLAGS = overrides_text(KBRD_RECOMMENDER_OVERRIDES)
KBRD_CONVERSATION_FLAGS = overrides_text(KBRD_CONVERSATION_OVERRIDES)


def kbrd_config(**kwargs) -> KGSFConfig:
    """A :class:`KGSFConfig` for the full KBRD model (recommender and conversation switches)."""
    return KGSFConfig(**{**KBRD_RECOMMENDER_OVERRIDES, **KBRD_CONVERSATION_OVERRIDES, **kwargs})
