"""Decoding for KGSF replies: item slots filled by the recommender, and the default generation settings.

The paper's decoder names a movie only through its vocabulary + copy distribution: at a position
where the human reply has an item, a trained model spreads about 0.10 of its probability over the
~5,700 item tokens but puts at most ~0.003 on any one of them, so greedy and beam search never pick
an item, and the recommender's scores never reach the reply. With **item slots** (the default,
``generation_config.item_slots = True``) the item tokens are read as one decision:

* the *slot* is the summed probability of all item tokens at this step (``logsumexp`` of their
  scores): "an item goes here";
* that whole mass is put on one token, the recommender's best item for this context that is not
  mentioned yet (not in the context, not earlier in this sequence), and every other item token gets
  ``-inf``.

* once a sequence names ``generation_config.max_item_slots`` items (default 3) the slot is closed:
  every item token gets ``-inf`` (the item mass is then missing from the distribution; sampling
  renormalises over the words, beam scores keep the words' own log-probabilities).

The rest of the distribution (words, end token) is untouched, so greedy decoding names an item
exactly when the summed item probability beats every word, and beam search and sampling see the
same distribution.

* ``generation_config.item_slot_bias`` (log space, default 0) is added to the slot's score. Greedy
  decoding names an item only where the slot is the argmax, so a model whose data names items in
  few replies (INSPIRED: 16% of the recommender replies, 1.2% of their tokens; ReDial: about half)
  puts less mass on the slot than on the best word at every step and never names one.
  :func:`calibrate_item_slot_bias` sets the bias from the model's own scores on a data split (the
  conversation stage does it on validation, :mod:`training_kgsf.stages`): the smallest
  bias >= 0 with which the slot would win, teacher-forced, in as many replies as the human replies
  name items. A model that already names items often enough (ReDial's) keeps 0. :class:`ItemSlotLogitsProcessor` does this inside the standard ``generate()``
path (``KGSFForConversationalRecommendation._get_logits_processor`` puts it first, before the
repetition processors and the sampling warpers); the recommender scores are computed once per
context from the encoder outputs (the same pooled vectors as ``forward(task="rec")``), or passed as
``generate(..., item_scores=(B, n_item))`` (the pipeline passes its own ranking). The paper's
behaviour, items only through the copy distribution, is ``generate(..., item_slots=False)``, or all
of the paper's decoding with ``generate(..., **PAPER_DECODING)``.

The item index -> token map is the model's ``item_token_ids`` buffer (``(n_item,)``, -1 where an
item has no token), saved with the weights; folders saved before it existed get it at
``from_pretrained`` from their ``vocab.json`` and ``kg_resources.json``
(:func:`item_token_ids_from_folder`). Without a map the slot is filled with the decoder's own best
item token (still once per slot and never an item already mentioned).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import LogitsProcessor
from transformers.utils import logging

logger = logging.get_logger(__name__)

#: The paper's decoding: items only through the copy distribution, plain greedy search, no
#: repetition control (``generate(**inputs, **PAPER_DECODING)``; ``--decoding paper`` of the evaluation).
PAPER_DECODING = {"item_slots": False, "no_repeat_ngram_size": 0, "repetition_penalty": 1.0, "num_beams": 1, "do_sample": False}

#: What ``model.generation_config`` holds by default (saved in ``generation_config.json``), chosen by
#: measurement on validation replies (docs/DESIGN.md, "Replies and item slots").
#: ``max_item_slots=3``: 99.5% of the human replies of the ReDial train split name at most 3 items
#: (49.2% none, 38.4% one, 10.3% two, 1.6% three); without a cap a trained model sometimes chains
#: a dozen films one after another (docs/RESULTS.md, third session).
#: ``item_slot_bias=0.0``: the slot's own probability (set by :func:`calibrate_item_slot_bias`).
#: ``num_beams=4`` (``default_decoding="beam4"``): chosen by a blind read of 50 validation replies per
#: decoding (``benchmarks/decoding_read.py``, ``docs/results/decoding_read.json``): 27 of 50 usable
#: (grammatical, on topic, a film where the human named one) against 11 for greedy and 9 for sampling
#: (top_p .9, T .7), at 111 ms for a 20-token reply on 2 CPU cores (greedy 67 ms).
KGSF_GENERATION_DEFAULTS = {"item_slots": True, "max_item_slots": 3, "item_slot_bias": 0.0, "no_repeat_ngram_size": 3,
                            "repetition_penalty": 1.2, "num_beams": 4, "default_decoding": "beam4"}


DECODING_KEYS = ("default_decoding", "num_beams", "do_sample", "item_slots", "max_item_slots", "item_slot_bias",
                 "no_repeat_ngram_size", "repetition_penalty")


def decoding_summary(generation_config) -> dict:
    """The decoding a ``generation_config`` gives (:data:`DECODING_KEYS`), for records and displays."""
    return {key: getattr(generation_config, key, None) for key in DECODING_KEYS} if generation_config is not None else {}


def apply_generation_defaults(generation_config, only_unset: bool = True):
    """Set :data:`KGSF_GENERATION_DEFAULTS` on ``generation_config`` (in place, returned).

    ``only_unset``: keep a value that differs from the library default (a folder's own choice);
    used to upgrade ``generation_config.json`` files saved before item slots existed.
    """
    library = generation_config._get_default_generation_params()
    for key, value in KGSF_GENERATION_DEFAULTS.items():
        current = getattr(generation_config, key, None)
        if not only_unset or current is None or (key in library and current == library[key]):
            setattr(generation_config, key, value)
    return generation_config


# --------------------------------------------------------------------------- item token map
def item_token_ids_from_vocab(vocab: dict, movies: dict, item_entity_ids, item_token_vocab_mask=None) -> torch.Tensor:
    """``(n_item,)`` token id of each item (-1: none) from a vocabulary and an item table.

    ``vocab``: token -> id (item tokens are ``"@<movieId>"``); ``movies``: movieId -> ``(entity id,
    mentions)`` (or ``[entity, title, mentions]`` as in ``kg_resources.json``). When several tokens
    name one item, the most mentioned wins (then the smaller token id), as the pipeline names items.
    Tokens outside ``item_token_vocab_mask`` (when given) are not used.
    """
    item_entity_ids = [int(e) for e in torch.as_tensor(item_entity_ids).tolist()]
    index_of_entity = {entity: index for index, entity in enumerate(item_entity_ids)}
    best: dict[int, tuple] = {}
    for movie_id, value in movies.items():
        entity, mentions = (value[0], value[-1]) if isinstance(value, (list, tuple)) else (value, 0)
        token = vocab.get(f"@{movie_id}")
        if entity is None or token is None or int(entity) not in index_of_entity:
            continue
        if item_token_vocab_mask is not None and not bool(item_token_vocab_mask[token]):
            continue
        index = index_of_entity[int(entity)]
        key = (-(mentions or 0), token)
        if index not in best or key < best[index]:
            best[index] = key
    ids = torch.full((len(item_entity_ids),), -1, dtype=torch.long)
    for index, (_, token) in best.items():
        ids[index] = token
    return ids


def item_token_ids_from_folder(folder, item_entity_ids, item_token_vocab_mask=None) -> torch.Tensor | None:
    """:func:`item_token_ids_from_vocab` over a model folder's ``vocab.json`` and ``kg_resources.json``;
    None when the folder lacks them (or they cannot be read)."""
    folder = Path(str(folder))
    try:
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        movies = json.loads((folder / "kg_resources.json").read_text(encoding="utf-8"))["movies"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return item_token_ids_from_vocab(vocab, movies, item_entity_ids, item_token_vocab_mask)


# --------------------------------------------------------------------------- the processor
class ItemSlotLogitsProcessor(LogitsProcessor):
    """One item decision per step, filled by the recommender (module docstring).

    Args:
        item_token_mask: ``(V,)`` bool, the item tokens (the model's ``item_token_vocab_mask``).
        item_token_ids: ``(n_item,)`` token of each item, -1 where none; None: no map (the slot
            then goes to the decoder's best item token).
        item_scores: ``(N, n_item)`` recommender scores of each row's context (higher is better;
            ``-inf`` = never), rows as ``generate`` expands them (beams / returned sequences of one
            context are consecutive). Rows are repeated when the processor sees a multiple of N.
        mentioned_items: ``(N, n_item)`` bool, items the context already mentions.
        mentioned_tokens: ``(N, L)`` token ids of the context (its item tokens count as mentioned).
        max_item_slots: once a sequence names this many items the slot is closed (every item token
            ``-inf``); None: no cap.
        slot_bias: added to the slot's score (log space; module docstring, ``item_slot_bias``).
    """

    def __init__(self, item_token_mask: torch.Tensor, item_token_ids: torch.Tensor | None = None,
                 item_scores: torch.Tensor | None = None, mentioned_items: torch.Tensor | None = None,
                 mentioned_tokens: torch.Tensor | None = None, max_item_slots: int | None = None, slot_bias: float | None = 0.0):
        if max_item_slots is not None and max_item_slots < 0:
            raise ValueError(f"max_item_slots must be >= 0 or None, got {max_item_slots}")
        slot_bias = float(slot_bias or 0.0)
        if not torch.isfinite(torch.tensor(slot_bias)):
            raise ValueError(f"item_slot_bias must be a finite number, got {slot_bias}")
        self.max_item_slots = max_item_slots
        self.slot_bias = slot_bias
        mask = item_token_mask.bool()
        device = mask.device
        vocab = mask.numel()
        if item_token_ids is not None and bool((item_token_ids >= 0).any()):
            ids = item_token_ids.to(device)
            keep = ids >= 0
            self.candidate_tokens = ids[keep]  # (C,) one token per item that has one
            self.candidate_items = torch.nonzero(keep).squeeze(-1)  # (C,) its item index
            self.num_keys = ids.numel()  # mentions are counted per item
            self.key_of_token = torch.full((vocab + 1,), -1, dtype=torch.long, device=device)
            self.key_of_token[self.candidate_tokens] = self.candidate_items
            self.candidate_keys = self.candidate_items
        else:
            self.candidate_tokens = torch.nonzero(mask).squeeze(-1)
            self.candidate_items = None
            self.num_keys = vocab  # mentions are counted per token
            self.key_of_token = torch.full((vocab + 1,), -1, dtype=torch.long, device=device)
            self.key_of_token[self.candidate_tokens] = self.candidate_tokens
            self.candidate_keys = self.candidate_tokens
            item_scores = None  # scores over items cannot be placed on tokens without the map
        self.item_token_mask = mask
        self.item_columns = torch.nonzero(mask).squeeze(-1)  # (M,) every item token
        self.candidate_scores = None
        if item_scores is not None:
            self.candidate_scores = item_scores.to(device).float()[:, self.candidate_items]  # (N, C)
        rows = item_scores.shape[0] if item_scores is not None else (
            mentioned_items.shape[0] if mentioned_items is not None else (mentioned_tokens.shape[0] if mentioned_tokens is not None else 0))
        self.context_mentioned = torch.zeros(rows, self.num_keys + 1, dtype=torch.bool, device=device)
        if mentioned_items is not None and self.candidate_items is not None:
            self.context_mentioned[:, : self.num_keys] |= mentioned_items.to(device).bool()
        if mentioned_tokens is not None:
            self._mark(self.context_mentioned, mentioned_tokens.to(device))

    def _mark(self, mentioned: torch.Tensor, tokens: torch.Tensor) -> None:
        keys = self.key_of_token[tokens.clamp(0, self.key_of_token.numel() - 1)]
        mentioned.scatter_(1, keys.masked_fill(keys < 0, self.num_keys), True)

    def _per_row(self, tensor: torch.Tensor, rows: int) -> torch.Tensor:
        if tensor.shape[0] == rows:
            return tensor
        if tensor.shape[0] == 0 or rows % tensor.shape[0]:
            raise ValueError(f"ItemSlotLogitsProcessor: {rows} sequences for {tensor.shape[0]} contexts")
        return tensor.repeat_interleave(rows // tensor.shape[0], dim=0)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        rows = scores.shape[0]
        slot = torch.logsumexp(scores.index_select(1, self.item_columns).float(), dim=-1)  # (N,) log summed item probability
        mentioned = self._per_row(self.context_mentioned, rows).clone() if self.context_mentioned.shape[0] else \
            torch.zeros(rows, self.num_keys + 1, dtype=torch.bool, device=scores.device)
        self._mark(mentioned, input_ids)  # items earlier in this sequence
        if self.candidate_scores is not None:
            ranking = self._per_row(self.candidate_scores, rows)
        else:
            ranking = scores.index_select(1, self.candidate_tokens).float()
        ranking = ranking.masked_fill(mentioned[:, self.candidate_keys], float("-inf"))
        best_value, best = ranking.max(dim=-1)
        closed = ~(torch.isfinite(best_value) & torch.isfinite(slot))
        if self.max_item_slots is not None:  # items this sequence already names
            closed |= self.item_token_mask[input_ids].sum(-1) >= self.max_item_slots
        value = (slot + self.slot_bias).masked_fill(closed, float("-inf")).to(scores.dtype)
        out = scores.index_fill(1, self.item_columns, float("-inf"))
        return out.scatter_(1, self.candidate_tokens[best][:, None], value[:, None])


def build_item_slot_processor(model, model_kwargs: dict, encoder_input_ids: torch.Tensor | None,
                              max_item_slots: int | None = None, slot_bias: float | None = 0.0) -> ItemSlotLogitsProcessor:
    """The processor for one ``generate`` call of a ``KGSFForConversationalRecommendation``.

    ``model_kwargs`` are generate's (already expanded for beams / returned sequences): the context
    encoding ``encoder_outputs`` (its pooled word and entity vectors give the recommender scores,
    once per call, against the item vectors of ``graph_encodings`` when given), ``item_scores`` when
    given, ``context_entity_ids`` / ``context_entity_mask`` and ``context_item_indices`` (mentioned
    items). ``encoder_input_ids`` are the context tokens.
    """
    body = model.kgsf
    context = model_kwargs.get("encoder_outputs")
    rows = None
    if context is not None and getattr(context, "last_hidden_state", None) is not None:
        rows = context.last_hidden_state.shape[0]
    item_token_ids = body.item_token_ids if body.item_tokens_known() else None
    if item_token_ids is None and body.item_token_vocab_mask.any():
        logger.warning_once("item slots: the model has no item -> token map (item_token_ids); the slot takes the decoder's best "
                       "item token. Set it with model.set_item_token_ids(...) or load the folder with its kg_resources.json")
    item_scores = model_kwargs.get("item_scores")
    if item_scores is None and item_token_ids is not None and context is not None and context.entity_vector is not None:
        with torch.no_grad():
            recommender = body.recommender
            (items,) = body.entity_vectors(body.item_entity_ids, graph_encodings=model_kwargs.get("graph_encodings"))
            item_scores = recommender(recommender.user_vector(context.word_vector, context.entity_vector), items)  # (N, n_item)
    n_item = body.item_entity_ids.numel()
    device = body.item_token_vocab_mask.device
    rows = rows or (item_scores.shape[0] if item_scores is not None else None)
    mentioned_items = None
    entity_ids = model_kwargs.get("context_entity_ids")
    if entity_ids is not None:
        entity_mask = model_kwargs.get("context_entity_mask")
        entity_mask = torch.ones_like(entity_ids, dtype=torch.bool) if entity_mask is None else entity_mask.bool()
        item_of_entity = torch.full((model.config.n_entity + 1,), n_item, dtype=torch.long, device=device)
        item_of_entity[body.item_entity_ids] = torch.arange(n_item, device=device)
        index = item_of_entity[entity_ids.to(device).clamp(0, model.config.n_entity)].masked_fill(~entity_mask.to(device), n_item)
        mentioned_items = torch.zeros(index.shape[0], n_item + 1, dtype=torch.bool, device=device).scatter_(1, index, True)[:, :n_item]
    indices = model_kwargs.get("context_item_indices")
    if indices is not None:
        index = indices.to(device).masked_fill(indices.to(device) < 0, n_item)
        extra = torch.zeros(index.shape[0], n_item + 1, dtype=torch.bool, device=device).scatter_(1, index, True)[:, :n_item]
        mentioned_items = extra if mentioned_items is None else mentioned_items | extra
    tokens = encoder_input_ids
    if tokens is not None and rows and tokens.shape[0] != rows and rows % tokens.shape[0] == 0:
        tokens = tokens.repeat_interleave(rows // tokens.shape[0], dim=0)
    return ItemSlotLogitsProcessor(body.item_token_vocab_mask, item_token_ids, item_scores, mentioned_items, tokens,
                                   max_item_slots=max_item_slots, slot_bias=slot_bias)


SLOT_INPUTS = ("input_ids", "attention_mask", "context_entity_ids", "context_entity_mask", "context_word_ids", "context_word_mask")


@torch.no_grad()
def calibrate_item_slot_bias(model, batches, max_bias: float = 20.0) -> dict:
    """The ``item_slot_bias`` with which greedy decoding names items in about as many replies as the
    human replies of ``batches`` do (conversation batches with ``labels``); returns ``{"item_slot_bias",
    "human_item_ratio", "slot_win_ratio_before", "slot_win_ratio_after", "replies"}`` and sets nothing.

    Teacher-forced on the human replies: at each reply position the margin is the slot's log score
    (``logsumexp`` of the item tokens' logits) minus the best word's; the reply's margin is its
    largest. The bias is the smallest value >= 0 (at most ``max_bias``) with which the margin is
    positive in a share of replies at least the share of human replies that name an item (the
    (1 - share) quantile of the margins, negated; 0 when the slot already wins that often, or when
    no reply names an item).
    """
    body = model.kgsf
    mask = body.item_token_vocab_mask
    if not bool(mask.any()):
        raise ValueError("calibrate_item_slot_bias: the model has no item tokens (item_token_vocab_mask is empty)")
    was_training = model.training
    model.eval()
    margins, named = [], []
    graph_encodings, copy_rows = model.encode_graphs(), model.copy_rows()  # once: every batch reads them
    try:
        for batch in batches:
            labels = batch["labels"]
            logits = model(**{key: batch[key] for key in SLOT_INPUTS if key in batch}, labels=labels, task="conv",
                           graph_encodings=graph_encodings, copy_rows=copy_rows).lm_logits.float()
            slot = torch.logsumexp(logits[..., mask.to(logits.device)], dim=-1)  # (B, L)
            word = logits.masked_fill(mask.to(logits.device), float("-inf")).max(dim=-1).values  # (B, L)
            valid = labels != -100
            margins.append((slot - word).masked_fill(~valid, float("-inf")).max(dim=-1).values.cpu())
            named.append((valid & mask[labels.clamp(min=0)].to(valid.device)).any(dim=-1).cpu())
    finally:
        model.train(was_training)
    if not margins:
        raise ValueError("calibrate_item_slot_bias: no batches")
    margins, named = torch.cat(margins), torch.cat(named)
    share = float(named.float().mean())
    before = float((margins > 0).float().mean())
    bias = 0.0
    if share > 0 and before < share:
        threshold = float(torch.quantile(margins[torch.isfinite(margins)], 1.0 - share)) if torch.isfinite(margins).any() else 0.0
        bias = min(max_bias, max(0.0, -threshold + 1e-4))
    after = float((margins + bias > 0).float().mean())
    return {"item_slot_bias": bias, "human_item_ratio": share, "slot_win_ratio_before": before, "slot_win_ratio_after": after,
            "replies": int(margins.numel())}


@torch.no_grad()
def generated_item_ratio(model, batches, item_slot_bias: float, max_new_tokens: int = 20, graph_encodings=None) -> float:
    """Share of the replies that the model's own decoding (its ``generation_config``: beam search by
    default) generates for ``batches`` that name at least one item, with ``item_slot_bias``.
    ``graph_encodings``: the model's (``model.encode_graphs()``), computed here when not given."""
    mask = model.kgsf.item_token_vocab_mask
    graph_encodings = graph_encodings if graph_encodings is not None else model.encode_graphs()
    named = total = 0
    for batch in batches:
        sequences = model.generate(**{key: batch[key] for key in SLOT_INPUTS if key in batch}, max_new_tokens=max_new_tokens,
                                   item_slot_bias=float(item_slot_bias), graph_encodings=graph_encodings)
        named += int(mask.to(sequences.device)[sequences[:, 1:]].any(dim=-1).sum())
        total += sequences.shape[0]
    return named / max(1, total)


def calibrate_item_slot_bias_by_generation(model, batches, target: float, start: float = 0.0, max_bias: float = 20.0,
                                           steps: int = 6) -> dict:
    """The smallest ``item_slot_bias`` >= ``start`` with which the model's own decoding names items in at
    least a ``target`` share of its replies to ``batches``, by bisection over ``[start, max_bias]``
    (``steps`` halvings). Teacher-forced margins (:func:`calibrate_item_slot_bias`) describe greedy
    decoding; beam search keeps a whole sequence's probability and can pass the slot by where greedy
    takes it, so the default decoding is checked by generating. Returns ``{"item_slot_bias",
    "generated_item_ratio", "target", "passes"}`` and sets nothing."""
    model.eval()
    with torch.no_grad():
        encodings = model.encode_graphs()  # once for every pass
    ratio, passes = generated_item_ratio(model, batches, start, graph_encodings=encodings), 1
    if target <= 0 or ratio >= target:
        return {"item_slot_bias": float(start), "generated_item_ratio": ratio, "target": target, "passes": passes}
    low, high = float(start), float(max_bias)
    high_ratio, passes = generated_item_ratio(model, batches, high, graph_encodings=encodings), passes + 1
    if high_ratio < target:
        return {"item_slot_bias": high, "generated_item_ratio": high_ratio, "target": target, "passes": passes}
    for _ in range(steps):
        middle = (low + high) / 2
        middle_ratio, passes = generated_item_ratio(model, batches, middle, graph_encodings=encodings), passes + 1
        if middle_ratio >= target:
            high, high_ratio = middle, middle_ratio
        else:
            low = middle
    return {"item_slot_bias": high, "generated_item_ratio": high_ratio, "target": target, "passes": passes}


def repeated_ngram(tokens: list, n: int = 3) -> bool:
    """Whether a word ``n``-gram occurs twice in ``tokens`` (the loop measure of the reply tests)."""
    grams = [tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))
