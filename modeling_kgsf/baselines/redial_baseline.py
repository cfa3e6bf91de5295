"""REDIAL (Li et al., NeurIPS 2018, "Towards Deep Conversational Recommendations") as a transformers
model over our batches, compact and CPU-trainable: the paper's Table 2/3 baseline.

What is kept:

* **HRED dialogue model.** The context tokens (turns joined by ``_split_``, as in every batch) are
  cut into utterances; a bidirectional GRU encodes each utterance (last states of both
  directions), a GRU over the utterance vectors gives the conversation state ``c``, and a GRU
  decoder starts from ``tanh(W c)`` (every layer) and reads the reply's token embeddings (shared
  with the utterance encoder, as in the original).
* **Autoencoder recommender.** Input: the multi-hot vector over the items mentioned so far in the
  conversation (the items among ``context_entity_ids``); one sigmoid hidden layer
  (``recommender_hidden_size``) and a linear output over all items (a user-based AutoRec, as the
  original's). Its output is ``rec_logits``.
* **The switch.** At every decoding step ``s_t = σ(w·[c; h_t] + b)`` is the probability of
  emitting an item: ``p(w) = (1 − s_t)·softmax(language_out(h_t))(w)`` for words and
  ``p(@id) = s_t·softmax(rec_logits)(item(@id)) / |tokens of that item|`` for item tokens (the
  ``@movieId`` tokens of ``token_item_index``). Item tokens get no mass from the word softmax, so
  items can only be named through the recommender, as in the original (where movies are outputs
  after the vocabulary). ``lm_logits`` are the log of that mixture, so the usual cross-entropy /
  ``generate`` over them are the NLL / greedy search of the mixed distribution.

What is simplified or left out (see also docs/RESULTS.md):

* **No sentiment-analysis module.** The original predicts, with a separate HRNN trained on the
  ReDial forms, whether the seeker liked each mentioned movie, and feeds those probabilities to
  the autoencoder and the HRED. Here every mentioned item enters the autoencoder as 1 ("liked";
  disliked mentions are not told apart) and the HRED gets no sentiment features.
* **No MovieLens pre-training** of the autoencoder: it is trained on ReDial only, with the same
  cross-entropy on the target item as every other recommender of our tables (the original used
  a reconstruction loss on ratings).
* No GenSen sentence encoder (the original's pretrained utterance encoder): the utterance GRU is
  trained from word2vec-initialised embeddings. No beam search specifics (``generate`` takes the
  usual arguments; greedy in our evaluation), and mentioned movies are not forbidden at
  generation.

The model reads only the batch keys of docs/DESIGN.md (``input_ids``, ``attention_mask``,
``context_entity_ids``, ``context_entity_mask``, ``rec_labels``, ``labels``; the word-graph keys
are accepted and ignored), so ``training_kgsf.evaluation.evaluate_recommendation`` and
``evaluate_conversation`` score it exactly like KGSF. Besides torch and transformers this file
imports only ``IGNORE_INDEX`` (from ``modeling_kgsf.processing_kgsf``), so a saved folder loads with
``trust_remote_code`` where the ``kgsf`` package is installed. The pieces it shares with KGSF's
head are copies marked ``# Copied from modeling_kgsf.modeling_kgsf.<name>`` and kept identical by
``utils/check_copies.py`` (docs/DESIGN.md).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence
from transformers import GenerationConfig, GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

# Absolute, not ``from ..processing_kgsf``: save_pretrained copies this file with the files of its
# one-dot relative imports, and a two-dot import makes it fail.
from modeling_kgsf.processing_kgsf import IGNORE_INDEX

TASKS = ("rec", "conv", "all")


class RedialConfig(PretrainedConfig):
    r"""Configuration of :class:`RedialForConversationalRecommendation`.

    Args:
        vocab_size (int, 23929): word vocabulary (the KGSF tokenizer's).
        n_item (int, 6924): recommendable items.
        embedding_dim (int, 300): token embedding size (word2vec-initialised in training).
        utterance_hidden_size (int, 256): hidden size of each direction of the utterance GRU.
        conversation_hidden_size (int, 512): hidden size of the conversation GRU (``c``).
        decoder_hidden_size (int, 512): hidden size of the decoder GRU.
        decoder_layers (int, 1): decoder GRU layers.
        recommender_hidden_size (int, 1000): the autoencoder's (sigmoid) hidden layer.
        dropout (float, 0.1): dropout on embeddings and decoder states.
        split_token_id (int, -1): id of ``_split_`` (the turn separator); -1 = the context is one utterance.
        max_response_length (int, 30): the default ``max_new_tokens``.
        pad_token_id / bos_token_id (= decoder_start_token_id) / eos_token_id / unk_token_id (0 / 1 / 2 / 3).
    """

    model_type = "kgsf_redial"

    def __init__(
        self,
        vocab_size: int = 23929,
        n_item: int = 6924,
        embedding_dim: int = 300,
        utterance_hidden_size: int = 256,
        conversation_hidden_size: int = 512,
        decoder_hidden_size: int = 512,
        decoder_layers: int = 1,
        recommender_hidden_size: int = 1000,
        dropout: float = 0.1,
        split_token_id: int = -1,
        max_response_length: int = 30,
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        unk_token_id: int = 3,
        decoder_start_token_id: int = 1,
        is_encoder_decoder: bool = True,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.n_item = n_item
        self.embedding_dim = embedding_dim
        self.utterance_hidden_size = utterance_hidden_size
        self.conversation_hidden_size = conversation_hidden_size
        self.decoder_hidden_size = decoder_hidden_size
        self.decoder_layers = decoder_layers
        self.recommender_hidden_size = recommender_hidden_size
        self.dropout = dropout
        self.split_token_id = split_token_id
        self.max_response_length = max_response_length
        self.unk_token_id = unk_token_id
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                         decoder_start_token_id=decoder_start_token_id, is_encoder_decoder=is_encoder_decoder, **kwargs)


@dataclass
class RedialContextOutput(ModelOutput):
    """What the decoder needs from the context (the ``encoder_outputs`` of ``generate``; batch first)."""

    last_hidden_state: torch.FloatTensor | None = None  # (B, 1, Hc) the conversation state c
    item_logits: torch.FloatTensor | None = None  # (B, n_item) the recommender's scores


@dataclass
class RedialOutput(ModelOutput):
    """``loss`` = ``rec_loss`` (task "rec"), ``lm_loss`` (task "conv") or their sum (task "all");
    ``lm_logits`` (= ``logits``) are log-probabilities of the switch's mixture."""

    loss: torch.FloatTensor | None = None
    rec_loss: torch.FloatTensor | None = None
    lm_loss: torch.FloatTensor | None = None
    rec_logits: torch.FloatTensor | None = None  # (B, n_item)
    lm_logits: torch.FloatTensor | None = None  # (B, Lr, vocab)
    logits: torch.FloatTensor | None = None  # same tensor as lm_logits (what GenerationMixin reads)
    switch_probabilities: torch.FloatTensor | None = None  # (B, Lr) P(item) at each step
    conversation_state: torch.FloatTensor | None = None  # (B, Hc)


class RedialPreTrainedModel(PreTrainedModel):
    config_class = RedialConfig
    config: RedialConfig
    base_model_prefix = "redial"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False

    def _init_weights(self, module):
        """Xavier-uniform linears, N(0, dim^-1/2) embeddings (padding row 0), GRUs U(±1/sqrt(hidden)) (PyTorch's)."""
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=module.embedding_dim**-0.5)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.GRU):
            bound = module.hidden_size**-0.5
            for parameter in module.parameters():
                init.uniform_(parameter, -bound, bound)


class _RedialEncoder:
    """What ``get_encoder()`` returns for ``generate`` (a callable, not a registered module)."""

    def __init__(self, model):
        self.model = model

    def forward(self, input_ids=None, attention_mask=None, context_entity_ids=None, context_entity_mask=None, **kwargs):
        return self.model.encode_context(input_ids, attention_mask, context_entity_ids, context_entity_mask)

    __call__ = forward


class RedialForConversationalRecommendation(RedialPreTrainedModel, GenerationMixin):
    """REDIAL: HRED dialogue model + autoencoder recommender + switching decoder (module docstring).

    Buffers (saved with the weights): ``item_entity_ids (n_item,)`` (entity id of each item, to find
    the mentioned items among the context entities) and ``token_item_index (vocab,)`` (item index
    of each ``@movieId`` token, -1 for words); fill them with :meth:`set_item_maps`.

    ``forward(**batch, task=None)``: ``"rec"`` (``rec_logits``; ``rec_loss`` with ``rec_labels``),
    ``"conv"`` (``lm_logits``; ``lm_loss`` with ``labels``; decoder input = labels shifted right
    after ``__start__`` unless ``decoder_input_ids``), ``"all"``; None picks ``"conv"`` when
    ``labels`` / ``decoder_input_ids`` / ``encoder_outputs`` are given (plus ``"rec"`` with
    ``rec_labels``), else ``"rec"``.
    """

    def __init__(self, config: RedialConfig):
        super().__init__(config)
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id)
        self.utterance_encoder = nn.GRU(config.embedding_dim, config.utterance_hidden_size, batch_first=True, bidirectional=True)
        self.conversation_encoder = nn.GRU(2 * config.utterance_hidden_size, config.conversation_hidden_size, batch_first=True)
        self.decoder_init = nn.Linear(config.conversation_hidden_size, config.decoder_layers * config.decoder_hidden_size)
        self.decoder = nn.GRU(config.embedding_dim, config.decoder_hidden_size, num_layers=config.decoder_layers, batch_first=True,
                              dropout=config.dropout if config.decoder_layers > 1 else 0.0)
        self.language_out = nn.Linear(config.decoder_hidden_size, config.vocab_size)
        self.switch = nn.Linear(config.conversation_hidden_size + config.decoder_hidden_size, 1)
        self.recommender_encoder = nn.Linear(config.n_item, config.recommender_hidden_size)
        self.recommender_decoder = nn.Linear(config.recommender_hidden_size, config.n_item)
        self.dropout = nn.Dropout(config.dropout)
        self.register_buffer("item_entity_ids", torch.zeros(config.n_item, dtype=torch.long))
        self.register_buffer("token_item_index", torch.full((config.vocab_size,), -1, dtype=torch.long))
        self.post_init()
        self.generation_config = GenerationConfig(
            decoder_start_token_id=config.decoder_start_token_id, bos_token_id=config.bos_token_id,
            eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id,
            max_new_tokens=config.max_response_length, use_cache=False,
        )

    # ------------------------------------------------------------------ setup
    def set_item_maps(self, item_entity_ids, token_item_index):
        """``item_entity_ids (n_item,)``: entity id of each item; ``token_item_index (vocab,)``: item
        index of each item token, -1 elsewhere."""
        item_entity_ids, token_item_index = torch.as_tensor(item_entity_ids), torch.as_tensor(token_item_index)
        if tuple(item_entity_ids.shape) != (self.config.n_item,):
            raise ValueError(f"item_entity_ids: expected shape ({self.config.n_item},) (n_item), got {tuple(item_entity_ids.shape)}")
        if tuple(token_item_index.shape) != (self.config.vocab_size,):
            raise ValueError(f"token_item_index: expected shape ({self.config.vocab_size},) (vocab_size), got {tuple(token_item_index.shape)}")
        if token_item_index.numel() and (int(token_item_index.min()) < -1 or int(token_item_index.max()) >= self.config.n_item):
            raise ValueError(f"token_item_index: values must be -1 or item indices in [0, {self.config.n_item})")
        with torch.no_grad():
            self.item_entity_ids.copy_(item_entity_ids)
            self.token_item_index.copy_(token_item_index)

    # Copied from modeling_kgsf.modeling_kgsf.KGSFModel.load_word_embeddings with self.shared->self.embedding, d_model->embedding_dim
    def load_word_embeddings(self, weights):
        """Initialise the shared token embedding (vocab, embedding_dim), e.g. with word2vec vectors."""
        weights = torch.as_tensor(weights)
        expected = (self.config.vocab_size, self.config.embedding_dim)
        if tuple(weights.shape) != expected:
            raise ValueError(f"word embeddings: expected shape {expected} (vocab_size, embedding_dim), got {tuple(weights.shape)}")
        with torch.no_grad():
            self.embedding.weight.copy_(weights)

    # Copied from modeling_kgsf.modeling_kgsf.KGSFModel.get_input_embeddings with self.shared->self.embedding
    def get_input_embeddings(self):
        return self.embedding

    # Copied from modeling_kgsf.modeling_kgsf.KGSFModel.set_input_embeddings with self.shared->self.embedding
    def set_input_embeddings(self, value):
        self.embedding = value

    def recommender_modules(self) -> list[nn.Module]:
        return [self.recommender_encoder, self.recommender_decoder]

    def freeze_recommender(self, frozen: bool = True):
        """Stop (or restart) training the autoencoder (the conversation stage)."""
        for module in self.recommender_modules():
            module.requires_grad_(not frozen)

    # ------------------------------------------------------------------ recommender
    def mentioned_items(self, context_entity_ids, context_entity_mask=None, batch_size: int | None = None) -> torch.Tensor:
        """(B, n_item) float: 1 for the items among the context entities (the autoencoder's input)."""
        n_item = self.config.n_item
        if context_entity_ids is None:
            return torch.zeros(batch_size or 1, n_item, device=self.item_entity_ids.device)
        mask = context_entity_mask.bool() if context_entity_mask is not None else torch.ones_like(context_entity_ids, dtype=torch.bool)
        sorted_ids, order = self.item_entity_ids.sort()
        position = torch.searchsorted(sorted_ids, context_entity_ids).clamp(max=n_item - 1)
        hit = (sorted_ids[position] == context_entity_ids) & mask
        multi_hot = torch.zeros(context_entity_ids.shape[0], n_item, device=context_entity_ids.device)
        return multi_hot.scatter_reduce_(1, order[position], hit.float(), reduce="amax")

    def recommend(self, mentioned: torch.Tensor) -> torch.Tensor:
        """The autoencoder: mentioned-items vector (B, n_item) -> item scores (B, n_item)."""
        hidden = torch.sigmoid(self.recommender_encoder(mentioned.to(self.recommender_encoder.weight.dtype)))
        return self.recommender_decoder(self.dropout(hidden))

    # ------------------------------------------------------------------ HRED encoder
    def encode_conversation(self, input_ids, attention_mask=None) -> torch.Tensor:
        """Context tokens (B, L) -> conversation state (B, Hc): utterance GRU, then conversation GRU."""
        config = self.config
        batch, length = input_ids.shape
        real = input_ids.ne(config.pad_token_id)
        if attention_mask is not None:
            real &= attention_mask.bool()
        is_split = input_ids.eq(config.split_token_id) & real if config.split_token_id >= 0 else torch.zeros_like(real)
        utterance = is_split.long().cumsum(1)  # utterance number of every position
        keep = real & ~is_split
        rows, columns = keep.nonzero(as_tuple=True)  # row-major: each utterance's tokens are contiguous
        group = rows * (length + 1) + utterance[rows, columns]
        groups, inverse, counts = torch.unique_consecutive(group, return_inverse=True, return_counts=True)
        utterance_vectors = torch.zeros(batch, 1, 2 * config.utterance_hidden_size, device=input_ids.device,
                                        dtype=self.embedding.weight.dtype)
        lengths = torch.ones(batch, dtype=torch.long)
        if groups.numel():
            starts = counts.cumsum(0) - counts
            offset = torch.arange(group.numel(), device=input_ids.device) - starts[inverse]
            tokens = torch.full((groups.numel(), int(counts.max())), config.pad_token_id, dtype=torch.long, device=input_ids.device)
            tokens[inverse, offset] = input_ids[rows, columns]
            packed = pack_padded_sequence(self.dropout(self.embedding(tokens)), counts.cpu(), batch_first=True, enforce_sorted=False)
            _, last = self.utterance_encoder(packed)  # (2, G, Hu)
            encoded = torch.cat([last[0], last[1]], dim=-1)  # (G, 2 Hu)
            group_row = groups // (length + 1)
            per_row = torch.bincount(group_row, minlength=batch)
            slot = torch.arange(groups.numel(), device=input_ids.device) - (per_row.cumsum(0) - per_row)[group_row]
            utterance_vectors = encoded.new_zeros(batch, int(per_row.max()), encoded.shape[-1])
            utterance_vectors[group_row, slot] = encoded
            lengths = per_row.clamp(min=1).cpu()  # a row without any utterance reads one zero vector
        packed = pack_padded_sequence(utterance_vectors, lengths, batch_first=True, enforce_sorted=False)
        _, last = self.conversation_encoder(packed)  # (1, B, Hc)
        return last[-1]

    def encode_context(self, input_ids, attention_mask=None, context_entity_ids=None, context_entity_mask=None,
                       **kwargs) -> RedialContextOutput:
        """Everything the decoder needs: the conversation state and the recommender's item scores."""
        if input_ids is None:
            raise ValueError("the conversation part needs input_ids (the context tokens)")
        state = self.encode_conversation(input_ids, attention_mask)
        items = self.recommend(self.mentioned_items(context_entity_ids, context_entity_mask, input_ids.shape[0]))
        return RedialContextOutput(last_hidden_state=state.unsqueeze(1), item_logits=items)

    # ------------------------------------------------------------------ generation plumbing
    def get_encoder(self, modality=None):
        return _RedialEncoder(self)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # no cache: the GRU reruns over the prefix (replies are <= 30 tokens)

    def prepare_inputs_for_generation(self, input_ids, encoder_outputs=None, attention_mask=None, **kwargs):
        return {"decoder_input_ids": input_ids, "encoder_outputs": encoder_outputs, "attention_mask": attention_mask,
                "task": "conv", "logits_to_keep": 1}

    # Copied from modeling_kgsf.modeling_kgsf.KGSFForConversationalRecommendation.shift_labels_right
    def shift_labels_right(self, labels: torch.LongTensor) -> torch.LongTensor:
        """``[start] + labels[:, :-1]`` with -100 replaced by pad: the teacher-forced decoder input."""
        shifted = torch.cat([torch.full_like(labels[:, :1], self.config.decoder_start_token_id), labels[:, :-1]], dim=1)
        return shifted.masked_fill(shifted == IGNORE_INDEX, self.config.pad_token_id)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,  # (B, Lc) context tokens, turns joined by _split_
        attention_mask: torch.Tensor | None = None,  # (B, Lc)
        context_entity_ids: torch.LongTensor | None = None,  # (B, Ne) the mentioned items are found among them
        context_entity_mask: torch.BoolTensor | None = None,  # (B, Ne)
        context_word_ids: torch.LongTensor | None = None,  # unused (REDIAL has no word graph)
        context_word_mask: torch.BoolTensor | None = None,  # unused
        rec_labels: torch.LongTensor | None = None,  # (B,) item index, -100 = none
        context_item_indices: torch.LongTensor | None = None,  # unused (evaluation protocol)
        labels: torch.LongTensor | None = None,  # (B, Lr) response + __end__, -100 = pad
        decoder_input_ids: torch.LongTensor | None = None,  # (B, Lr)
        encoder_outputs: RedialContextOutput | None = None,
        task: str | None = None,
        logits_to_keep: int = 0,
        return_dict: bool | None = None,
        **kwargs,
    ) -> RedialOutput:
        if task is None:
            conv = labels is not None or decoder_input_ids is not None or encoder_outputs is not None
            task = ("all" if rec_labels is not None else "conv") if conv else "rec"
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS} or None, got {task!r}")
        do_rec, do_conv = task in ("rec", "all"), task in ("conv", "all")
        if logits_to_keep and labels is not None:
            raise ValueError("logits_to_keep is for generation: the LM loss needs the logits of every position")
        out = RedialOutput()
        losses = []
        if do_rec:
            batch = (input_ids if input_ids is not None else context_entity_ids).shape[0]
            out.rec_logits = self.recommend(self.mentioned_items(context_entity_ids, context_entity_mask, batch))
            if rec_labels is not None:
                out.rec_loss = _cross_entropy(out.rec_logits, rec_labels)
                losses.append(out.rec_loss)
        if do_conv:
            if decoder_input_ids is None:
                if labels is None:
                    raise ValueError("task 'conv' needs labels or decoder_input_ids")
                decoder_input_ids = self.shift_labels_right(labels)
            context = encoder_outputs if encoder_outputs is not None else self.encode_context(
                input_ids, attention_mask, context_entity_ids, context_entity_mask)
            state = context.last_hidden_state[:, 0]  # (B, Hc)
            out.conversation_state = state
            config = self.config
            initial = torch.tanh(self.decoder_init(state)).view(-1, config.decoder_layers, config.decoder_hidden_size)
            hidden, _ = self.decoder(self.dropout(self.embedding(decoder_input_ids)), initial.transpose(0, 1).contiguous())
            if logits_to_keep:
                hidden = hidden[:, -logits_to_keep:]
            out.lm_logits, switch = self.output_log_probs(hidden, state, context.item_logits)
            out.logits = out.lm_logits
            out.switch_probabilities = switch
            if labels is not None:
                out.lm_loss = _cross_entropy(out.lm_logits.reshape(-1, out.lm_logits.shape[-1]), labels.reshape(-1))
                losses.append(out.lm_loss)
        if losses:
            out.loss = sum(losses[1:], losses[0])
        return _as_requested(out, self.config, return_dict)

    def output_log_probs(self, hidden, state, item_logits) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder states (B, T, Hd) -> (log p over the vocabulary (B, T, V), switch P(item) (B, T)).

        Words: ``log(1 − s) + log_softmax(language_out(h))`` with the item tokens left out of the
        word softmax; item tokens: ``log s + log_softmax(item scores)[item] − log(#tokens of the
        item)`` (items without a token are left out). Pad and start are never predicted.
        """
        hidden = self.dropout(hidden)
        word_logits = self.language_out(hidden).float()  # (B, T, V)
        minimum = torch.finfo(word_logits.dtype).min
        vocab = word_logits.shape[-1]
        never = torch.zeros(vocab, dtype=torch.bool, device=word_logits.device)
        never[[self.config.pad_token_id, self.config.decoder_start_token_id]] = True
        token_item = self.token_item_index
        is_item_token = token_item.ge(0)
        switch_logit = self.switch(torch.cat([state.unsqueeze(1).expand(-1, hidden.shape[1], -1), hidden], dim=-1)).float()  # (B, T, 1)
        if not bool(is_item_token.any()):  # no item tokens (maps not set): a plain decoder
            log_probs = F.log_softmax(word_logits.masked_fill(never, minimum), dim=-1)
            return log_probs.masked_fill(never, minimum), torch.zeros_like(switch_logit[..., 0])
        word_log_probs = F.log_softmax(word_logits.masked_fill(never | is_item_token, minimum), dim=-1)
        item_of_token = token_item.clamp(min=0)
        tokens_per_item = torch.bincount(token_item[is_item_token], minlength=self.config.n_item)  # (n_item,)
        item_log_probs = F.log_softmax(item_logits.float().masked_fill(tokens_per_item.eq(0), minimum), dim=-1)  # (B, n_item)
        per_token = item_log_probs[:, item_of_token] - tokens_per_item.clamp(min=1).float().log()[item_of_token]  # (B, V)
        log_probs = torch.where(is_item_token, F.logsigmoid(switch_logit) + per_token.unsqueeze(1),
                                F.logsigmoid(-switch_logit) + word_log_probs)
        return log_probs.clamp(min=minimum).masked_fill(never, minimum), torch.sigmoid(switch_logit[..., 0])


# Copied from modeling_kgsf.modeling_kgsf._as_requested
def _as_requested(out: ModelOutput, config, return_dict: bool | None):
    """``out``, or with ``return_dict=False`` (as given, else the config's) the tuple of its non-None
    fields in declaration order (loss first), as transformers models return it."""
    if return_dict if return_dict is not None else getattr(config, "return_dict", True):
        return out
    return tuple(getattr(out, field.name) for field in fields(out) if getattr(out, field.name) is not None)


# Copied from modeling_kgsf.modeling_kgsf._cross_entropy
def _cross_entropy(logits, labels):
    """Mean CE over labels != -100 (0 with a graph, not NaN, when there is none)."""
    if not (labels != IGNORE_INDEX).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)


def token_item_index_from_vocab(vocab: dict[str, int], movie_id_to_entity: dict[str, int], item_index_of_entity: dict[int, int]) -> torch.Tensor:
    """(vocab,) long: the item index of every ``@<movieId>`` token whose movie is an item, -1 elsewhere."""
    index = torch.full((len(vocab),), -1, dtype=torch.long)
    for token, token_id in vocab.items():
        if token.startswith("@") and 0 <= token_id < len(vocab):
            item = item_index_of_entity.get(movie_id_to_entity.get(token[1:], -1))
            if item is not None:
                index[token_id] = item
    return index


RedialConfig.register_for_auto_class()
RedialForConversationalRecommendation.register_for_auto_class("AutoModelForSeq2SeqLM")
