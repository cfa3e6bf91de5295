"""Evaluation of a KGSF model (or a baseline with the same outputs) with the package's evaluate modules
(``modeling_kgsf/metrics``, loadable with ``evaluate.load`` from an installed copy).

* :func:`evaluate_recommendation`: Recall@1/10/50 on all examples, on cold-start examples and
  with the dedup protocol (``metrics/kgsf_recall``, config ``protocols``).
* :func:`evaluate_conversation`: perplexity of the reference replies; with ``generate=True`` also
  generated replies scored by Distinct-n (both forms), item ratio, items per reply,
  recommendation-in-reply, loop rate and BLEU-1..4; optionally the same figures for the human
  replies of the same turns (the ceiling) and for the reference code's counting protocol.

Decoding (``decoding``): ``"default"`` calls ``generate`` with the model's own
``generation_config`` (only ``max_new_tokens`` is set); ``"paper"`` with
``modeling_kgsf.generation_kgsf.PAPER_DECODING`` (plain greedy, no item slots, no repetition
control: the paper's decoding).

Counting protocols (``protocol``):

* ``"ours"``: replies stop at the first ``__end__``; every generated turn counts (all test replies
  with ``generation_examples=-1``); Distinct-n in both forms (unique/all n-grams, and unique
  n-grams per reply).
* ``"reference"``: as RUCAIBox/KGSF counts: 20 decoding steps that do not stop at ``__end__``, and
  every token but pad/start/end is kept, also those generated **after** ``__end__``
  (``vector2sentence`` keeps ids > 3); Distinct-n is unique n-grams over all replies divided by
  the number of replies (``distinct-n_per_sentence``). These figures (and the other metrics
  counted on the same raw replies) go to ``results["reference_protocol"]``; the main figures are
  then those of the same 20-step replies cut at ``__end__`` (with greedy decoding the tokens up to
  the first ``__end__`` are the same whether or not decoding stops there; not so with beams).

Both evaluations run under Accelerate: every process scores its shard and the results are
gathered with ``gather_for_metrics`` (which drops the examples repeated to even out the last
batch), so every example is counted once and the numbers do not depend on the number of
processes (up to float summation order). Generation on the first ``max_generation_batches``
batches covers the same examples with any number of processes: the gathered replies are cut to
that many batches.
"""
from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..generation_kgsf import PAPER_DECODING
from ..metrics import load_metric

K_VALUES = (1, 10, 50)
REC_INPUTS = ("input_ids", "attention_mask", "context_entity_ids", "context_entity_mask", "context_word_ids", "context_word_mask")
DECODINGS = ("default", "paper")
PROTOCOLS = ("ours", "reference")
REFERENCE_STEPS = 20  # the reference code decodes greedily for maxlen=20 steps
DEFAULT_MAX_NEW_TOKENS = 30  # the reference replies are cut to 30 tokens
TARGETS_KEY = "target_entity_ids"


def _without_padding(rows: torch.Tensor, pad: int) -> list[list[int]]:
    return [[value for value in row if value != pad] for row in rows.tolist()]


@torch.no_grad()
def evaluate_recommendation(model, dataloader, accelerator, k_values=K_VALUES) -> dict:
    """Recall@k (all / cold start / dedup) over a dataloader of recommendation batches.

    The model must return ``rec_logits`` (B, n_item). Rankings are cut at ``max(k)`` plus the
    number of context items, which is what the dedup protocol needs after removing them.
    """
    max_k = max(k_values)
    rankings, targets, context_items = [], [], []
    num_items = None
    for batch in dataloader:
        logits = model(**{key: batch[key] for key in REC_INPUTS if key in batch}).rec_logits  # (B, n_item)
        num_items = logits.shape[-1]
        depth = min(max_k + batch["context_item_indices"].shape[1], logits.shape[-1])
        ranking = logits.topk(depth, dim=-1).indices
        ranking = accelerator.pad_across_processes(ranking, dim=1, pad_index=-1)
        items = accelerator.pad_across_processes(batch["context_item_indices"], dim=1, pad_index=-1)
        ranking, labels, items = accelerator.gather_for_metrics((ranking, batch["rec_labels"], items))
        keep = labels != -100
        rankings += _without_padding(ranking[keep], -1)
        targets += labels[keep].tolist()
        context_items += _without_padding(items[keep], -1)
    recall = load_metric("kgsf_recall", "protocols")
    return recall.compute(predictions=rankings, references=targets, context_items=context_items, k_values=list(k_values),
                          num_items=num_items)


# ------------------------------------------------------------------------------------------------
# Conversation
# ------------------------------------------------------------------------------------------------
def decode_reply(tokenizer, token_ids: list[int], stop_at_end: bool = True) -> list[str]:
    """Tokens of a generated reply without pad/start/end tokens: up to the first end token
    (``stop_at_end``, our protocol), or all of them, also those after an end token (the reference
    code's ``vector2sentence``)."""
    tokens = []
    for token_id in token_ids:
        if token_id == tokenizer.eos_token_id:
            if stop_at_end:
                break
            continue
        if token_id in (tokenizer.pad_token_id, tokenizer.bos_token_id):
            continue
        tokens.append(tokenizer.convert_ids_to_tokens(token_id))
    return tokens


def paper_decoding() -> dict:
    """A copy of ``generation_kgsf.PAPER_DECODING`` (the paper's plain greedy decoding)."""
    return dict(PAPER_DECODING)


def decoding_kwargs(model, decoding: str = "default") -> dict:
    """``generate`` keyword arguments of a decoding: none for ``"default"`` (the model's
    ``generation_config``), ``PAPER_DECODING`` for ``"paper"``. Options the model does not know
    (``item_slots`` on a model without item slots) are left out: it already decodes without them."""
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
    if decoding == "default":
        return {}
    accepted = set(inspect.signature(model.generate).parameters)
    return {key: value for key, value in paper_decoding().items()
            if hasattr(model.generation_config, key) or key in accepted}


def generation_settings(model, decoding: str = "default", protocol: str = "ours", max_new_tokens: int | None = None) -> dict:
    """The ``generate`` keyword arguments of a decoding and a counting protocol: the decoding's
    (:func:`decoding_kwargs`) plus ``max_new_tokens`` (``ours``: ``max_new_tokens``, default 30;
    ``reference``: 20 steps and ``eos_token_id=None``, so that decoding goes on after ``__end__``)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    kwargs = decoding_kwargs(model, decoding)
    if protocol == "reference":
        kwargs.update(max_new_tokens=REFERENCE_STEPS, eos_token_id=None)
    else:
        kwargs["max_new_tokens"] = max_new_tokens or DEFAULT_MAX_NEW_TOKENS
    return kwargs


def item_entities_of_tokens(tokenizer, item_token_vocab_mask, movie_id_to_entity: dict) -> dict[str, int]:
    """``{"@<movieId>": entity id}`` for the vocabulary's item tokens (``item_token_vocab_mask``)."""
    tokens = tokenizer.convert_ids_to_tokens(torch.as_tensor(item_token_vocab_mask).nonzero().view(-1).tolist())
    return {token: movie_id_to_entity[token[1:]] for token in tokens if token[1:] in movie_id_to_entity}


class WithTargetItems:
    """Wrap a conversation collator: the batch also gets ``target_entity_ids`` (B, T), each turn's
    target items (the rows' ``target_items``, entity ids; -1 = padding), for recommendation-in-reply."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, rows: list[dict]) -> dict:
        batch = self.collator(rows)
        targets = [list(row.get("target_items") or []) for row in rows]
        width = max([1] + [len(items) for items in targets])
        batch[TARGETS_KEY] = torch.tensor([items + [-1] * (width - len(items)) for items in targets], dtype=torch.long)
        return batch


def conversation_dataloader(rows, collator, batch_size: int, accelerator) -> DataLoader:
    """An evaluation dataloader of conversation rows whose batches carry the turns' target items."""
    loader = DataLoader(rows, batch_size=batch_size, shuffle=False, collate_fn=WithTargetItems(collator))
    return accelerator.prepare(loader)


def reply_metrics(replies: list[list[str]], references: list[list[str]] | None = None, item_tokens: list[str] | None = None,
                  target_items: list[list[str]] | None = None) -> dict:
    """The generation metrics of a list of replies (token lists): Distinct-1..4 (both forms),
    item ratio, items per reply, distinct items, recommendation-in-reply (with ``target_items``),
    loop rate (repeated word 3-gram), mean length and, with ``references``, BLEU."""
    if not replies:
        return {}
    results = dict(load_metric("kgsf_distinct").compute(predictions=replies))
    results.update(load_metric("kgsf_item_ratio").compute(predictions=replies, item_tokens=item_tokens, target_items=target_items))
    results.update(load_metric("kgsf_loop_rate").compute(predictions=replies))
    results["mean_reply_length"] = sum(len(reply) for reply in replies) / len(replies)
    if references is not None:
        results.update(load_metric("kgsf_bleu").compute(predictions=replies, references=references))
    return results


@torch.no_grad()
def evaluate_conversation(model, dataloader, accelerator, tokenizer, generate: bool = True,
                          max_generation_batches: int | None = None, generation_kwargs: dict | None = None,
                          item_tokens: list[str] | None = None, samples: list | None = None, decoding: str = "default",
                          protocol: str = "ours", max_new_tokens: int | None = None,
                          item_entities: dict[str, int] | None = None, human: bool = False) -> dict:
    """Perplexity of the reference replies, and generation metrics on generated replies.

    ``max_generation_batches`` bounds how many batches are generated for (generation is the slow
    part on a CPU); perplexity always uses the whole dataloader. ``decoding`` and ``protocol``: see
    the module. ``max_new_tokens`` (protocol ``ours``; default 30) bounds the replies; the
    reference protocol always decodes 20 steps. ``generation_kwargs`` are passed to ``generate``
    over the decoding's. ``item_entities`` (``{"@<movieId>": entity id}``, see
    :func:`item_entities_of_tokens`) defines the item tokens and, with batches from
    :func:`conversation_dataloader`, gives recommendation-in-reply. ``human=True`` adds
    ``results["human"]``: the same figures for the human replies of the generated turns (the
    ceiling). ``samples``, when a list, receives ``(context tokens, reference, generated)`` triples.
    """
    unwrapped = accelerator.unwrap_model(model)
    kwargs = {**generation_settings(unwrapped, decoding, protocol, max_new_tokens), **(generation_kwargs or {})}
    if item_entities is not None and item_tokens is None:
        item_tokens = sorted(item_entities)
    tokens_of_entity = {}
    for token, entity in (item_entities or {}).items():
        tokens_of_entity.setdefault(entity, []).append(token)

    nll_total, token_total = [], []
    references, hypotheses, raw_hypotheses, targets = [], [], [], []
    first_batch_size, has_targets = None, item_entities is not None
    for batch_index, batch in enumerate(dataloader):
        first_batch_size = first_batch_size or batch["input_ids"].shape[0]  # examples per batch and process
        inputs = {key: batch[key] for key in REC_INPUTS if key in batch}
        outputs = model(**inputs, labels=batch["labels"])
        logits = outputs.lm_logits  # (B, Lr, vocab)
        token_nll = F.cross_entropy(logits.transpose(1, 2).float(), batch["labels"], ignore_index=-100, reduction="none")
        nll, count = accelerator.gather_for_metrics((token_nll.sum(-1), (batch["labels"] != -100).sum(-1)))
        nll_total += nll.tolist()
        token_total += count.tolist()
        if generate and (max_generation_batches is None or batch_index * accelerator.num_processes < max_generation_batches):
            generated = unwrapped.generate(**inputs, **kwargs)
            generated = accelerator.pad_across_processes(generated, dim=1, pad_index=tokenizer.pad_token_id)
            labels = accelerator.pad_across_processes(batch["labels"], dim=1, pad_index=-100)
            contexts = accelerator.pad_across_processes(batch["input_ids"], dim=1, pad_index=tokenizer.pad_token_id)
            turn_targets = batch.get(TARGETS_KEY)
            if turn_targets is None:  # a dataloader without targets: no recommendation-in-reply
                has_targets = False
                turn_targets = torch.full_like(batch["labels"][:, :1], -1)
            turn_targets = accelerator.pad_across_processes(turn_targets, dim=1, pad_index=-1)
            generated, labels, contexts, turn_targets = accelerator.gather_for_metrics((generated, labels, contexts, turn_targets))
            for generated_ids, label_ids, context_ids, target_ids in zip(
                    generated.tolist(), labels.tolist(), contexts.tolist(), turn_targets.tolist()):
                hypothesis = decode_reply(tokenizer, generated_ids)
                reference = decode_reply(tokenizer, [t for t in label_ids if t != -100])
                hypotheses.append(hypothesis)
                references.append(reference)
                if protocol == "reference":
                    raw_hypotheses.append(decode_reply(tokenizer, generated_ids, stop_at_end=False))
                targets.append([token for entity in target_ids if entity >= 0 for token in tokens_of_entity.get(entity, [])])
                if samples is not None:
                    samples.append((decode_reply(tokenizer, context_ids), reference, hypothesis))
    if max_generation_batches is not None and hypotheses:  # the same replies whatever the number of processes
        limit = max_generation_batches * first_batch_size
        hypotheses, references, raw_hypotheses, targets = hypotheses[:limit], references[:limit], raw_hypotheses[:limit], targets[:limit]
        if samples is not None:
            del samples[limit:]
    results = load_metric("kgsf_perplexity").compute(predictions=nll_total, references=token_total)
    if hypotheses:
        target_items = targets if has_targets else None
        results.update(reply_metrics(hypotheses, references, item_tokens, target_items))
        results["generated_replies"] = len(hypotheses)
        if human:  # the human replies have nothing after __end__: the same figures under both protocols
            results["human"] = reply_metrics(references, None, item_tokens, target_items)
        if protocol == "reference":
            results["reference_protocol"] = reply_metrics(raw_hypotheses, references, item_tokens, target_items)
    return results


def selection_score(metrics: dict, weights: dict[str, float]) -> float:
    """``sum(weight * metrics[name])``: the conversation stage's ``--selection generation`` score
    (higher is better). A metric that is None (e.g. no reply mentions an item) counts 0."""
    missing = [name for name in weights if name not in metrics]
    if missing:
        raise KeyError(f"selection weights name metrics the evaluation does not report: {missing} "
                       f"(reported: {', '.join(sorted(metrics))})")
    return float(sum(weight * (metrics[name] or 0.0) for name, weight in weights.items()))


def parse_weights(text: str) -> dict[str, float]:
    """``'nll_per_token=-1,item_ratio=1'`` -> ``{"nll_per_token": -1.0, "item_ratio": 1.0}``."""
    weights = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.rpartition("=")
        if not sep or not name.strip():
            raise ValueError(f"selection weight '{item}' is not metric=weight")
        weights[name.strip()] = float(value)
    if not weights:
        raise ValueError("no selection weights given")
    return weights
