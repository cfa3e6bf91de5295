"""The paper's other systems, trained and evaluated like KGSF (Tables 2 and 3).

* :mod:`.redial_baseline`: REDIAL (Li et al., 2018): HRED dialogue model, autoencoder
  recommender over the mentioned items, and the switch that puts a recommended item into a reply
  (:class:`RedialConfig`, :class:`RedialForConversationalRecommendation`).
* :mod:`.kbrd`: KBRD (Chen et al., 2019) as a configuration of KGSF (R-GCN recommender without
  the word side or MIM; Transformer with a vocabulary bias from the user vector).
Their training commands (``train_redial`` / ``train_kbrd``) are on the training floor, in
:mod:`training_kgsf.baselines`; nothing here imports them.

Popularity and TextCNN live in ``examples/train_baseline.py``.
"""
from .kbrd import KBRD_CONVERSATION_FLAGS, KBRD_CONVERSATION_OVERRIDES, KBRD_RECOMMENDER_FLAGS, KBRD_RECOMMENDER_OVERRIDES, kbrd_config
from .redial_baseline import RedialConfig, RedialContextOutput, RedialForConversationalRecommendation, RedialOutput, token_item_index_from_vocab

__all__ = [
    "KBRD_CONVERSATION_FLAGS", "KBRD_CONVERSATION_OVERRIDES", "KBRD_RECOMMENDER_FLAGS", "KBRD_RECOMMENDER_OVERRIDES",
    "RedialConfig", "RedialContextOutput", "RedialForConversationalRecommendation", "RedialOutput", "kbrd_config",
    "token_item_index_from_vocab",
]
