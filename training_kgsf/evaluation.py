"""Evaluation of a KGSF model (or a baseline with the same outputs) with the package's evaluate modules
(``modeling_kgsf/metrics``, loadable with ``evaluate.load`` from an installed copy).

* :func:`evaluate_recommendation`: Recall@1/10/50 on all examples, on cold-start examples and
  under the two dedup protocols, ``dedup_turns`` and ``dedup_filtered`` (``metrics/kgsf_recall``,
  config ``protocols``).
* :func:`evaluate_conversation`: perplexity of the reference replies; with ``generate=True`` also
  generated replies scored by Distinct-n (both forms), item ratio, items per reply,
  recommendation-in-reply, loop rate and BLEU-1..4 (unsmoothed, as the reference); optionally the
  same figures for the human replies of the same turns (the ceiling).

A generated reply is the product of two independent choices, so that any of the four cells
{paper, default} decoding x {reference, ours} counting can be asked for:

* **decoding** (``decoding``): ``"default"`` calls ``generate`` with the model's own
  ``generation_config`` (item slots, repetition controls); ``"paper"`` with
  ``modeling_kgsf.generation_kgsf.PAPER_DECODING`` (plain greedy, items only through the copy
  distribution, no item slots, no repetition control: the paper's decoding).
* **counting** (``counting``): how long replies are decoded and which tokens are counted.

  - ``"ours"``: at most ``max_new_tokens`` (default 30) tokens, each row stops at its ``__end__``,
    replies are cut at the first ``__end__``; Distinct-n in both forms (unique/all n-grams, and
    unique n-grams per reply).
  - ``"reference"``: as RUCAIBox/KGSF (``model.py`` ``decode_greedy``, ``run.py`` ``val``,
    ``vector2sentence``, ``metrics_cal_gen``): at most 20 decoding steps; a row does not stop at
    its ``__end__``, the *batch* stops once every row has emitted one
    (:class:`EndInEveryRow`), so what a row holds after its ``__end__`` depends on the other
    rows of its batch: generation runs in batches of the reference's 32 rows
    (``REFERENCE_BATCH_SIZE``, the reference's ``--batch_size``); every token but pad/start/end is
    kept, also those after ``__end__`` (``vector2sentence`` keeps ids > 3 and unk); Distinct-n is
    unique n-grams over all replies divided by the number of replies
    (``distinct-n_per_sentence``); BLEU on the same tokens. These figures (and the other metrics
    counted on the same replies) go to ``results["reference_protocol"]``; the main figures are
    then those of the same replies cut at their first ``__end__``.

``protocol`` names a cell: ``"ours"`` = default decoding, our counting (the default);
``"reference"`` = the paper's decoding, the reference's counting. An explicit ``decoding`` or
``counting`` overrides the protocol's.

Both evaluations run under Accelerate: every process scores its shard and the results are
gathered with ``gather_for_metrics`` (which drops the examples repeated to even out the last
batch), so every example is counted once and the numbers do not depend on the number of
processes (up to float summation order). Generation on the first ``max_generation_batches``
batches covers the same examples with any number of processes: the gathered replies are cut to
that many batches.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.utils import logging

from modeling_kgsf.generation_kgsf import PAPER_DECODING
from modeling_kgsf.metrics import load_metric
from modeling_kgsf.processing_kgsf import CONTEXT_KEYS, IGNORE_INDEX

logger = logging.get_logger(__name__)

K_VALUES = (1, 10, 50)
DECODINGS = ("default", "paper")
COUNTINGS = ("ours", "reference")
#: protocol -> (decoding, counting)
PROTOCOL_CELLS = {"ours": ("default", "ours"), "reference": ("paper", "reference")}
PROTOCOLS = tuple(PROTOCOL_CELLS)
REFERENCE_STEPS = 20  # the reference code decodes greedily for maxlen=20 steps
REFERENCE_BATCH_SIZE = 32  # the reference's --batch_size default, also its test batches (run.py)
DEFAULT_MAX_NEW_TOKENS = 30  # the reference replies are cut to 30 tokens
TARGETS_KEY = "target_entity_ids"


def _without_padding(rows: torch.Tensor, pad: int) -> list[list[int]]:
    return [[value for value in row if value != pad] for row in rows.tolist()]


@torch.no_grad()
@torch.no_grad()
def frozen_graph_inputs(model, accelerator) -> dict:
    """``{"graph_encodings": ...}``: the node vectors of a model whose graph side does not change during
    an evaluation, computed once (``encode_graphs``) for all its forward and generate calls; ``{}``
    for a model without graph encoders (REDIAL)."""
    encode = getattr(accelerator.unwrap_model(model), "encode_graphs", None)
    return {"graph_encodings": encode()} if encode is not None else {}


def evaluate_recommendation(model, dataloader, accelerator, k_values=K_VALUES) -> dict:
    """Recall@k (all / cold start / dedup_turns / dedup_filtered) over a dataloader of
    recommendation batches.

    The model must return ``rec_logits`` (B, n_item). Rankings are cut at ``max(k)`` plus the
    number of context items, which is what ``dedup_filtered`` needs after removing them.
    """
    max_k = max(k_values)
    rankings, targets, context_items = [], [], []
    num_items = None
    graphs = frozen_graph_inputs(model, accelerator)
    for batch in dataloader:
        logits = model(**{key: batch[key] for key in CONTEXT_KEYS if key in batch}, **graphs).rec_logits  # (B, n_item)
        num_items = logits.shape[-1]
        depth = min(max_k + batch["context_item_indices"].shape[1], logits.shape[-1])
        ranking = logits.topk(depth, dim=-1).indices
        ranking = accelerator.pad_across_processes(ranking, dim=1, pad_index=-1)
        items = accelerator.pad_across_processes(batch["context_item_indices"], dim=1, pad_index=-1)
        ranking, labels, items = accelerator.gather_for_metrics((ranking, batch["rec_labels"], items))
        keep = labels != IGNORE_INDEX
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


def protocol_cell(protocol: str = "ours", decoding: str | None = None, counting: str | None = None) -> tuple[str, str]:
    """``(decoding, counting)`` of a protocol (:data:`PROTOCOL_CELLS`), either one overridden when given."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    decoding = decoding or PROTOCOL_CELLS[protocol][0]
    counting = counting or PROTOCOL_CELLS[protocol][1]
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
    if counting not in COUNTINGS:
        raise ValueError(f"counting must be one of {COUNTINGS}, got {counting!r}")
    return decoding, counting


def generation_settings(model, decoding: str | None = None, protocol: str = "ours", max_new_tokens: int | None = None,
                        counting: str | None = None) -> dict:
    """The ``generate`` keyword arguments of a cell (:func:`protocol_cell`), JSON-serialisable: the
    decoding's (:func:`decoding_kwargs`) plus the counting's length (``ours``: ``max_new_tokens``,
    default 30; ``reference``: 20 steps and ``eos_token_id=None``, so that a row goes on after its
    ``__end__``; :func:`evaluate_conversation` adds the batch stop, :class:`EndInEveryRow`)."""
    decoding, counting = protocol_cell(protocol, decoding, counting)
    kwargs = decoding_kwargs(model, decoding)
    if counting == "reference":
        kwargs.update(max_new_tokens=REFERENCE_STEPS, eos_token_id=None)
    else:
        kwargs["max_new_tokens"] = max_new_tokens or DEFAULT_MAX_NEW_TOKENS
    return kwargs


class EndInEveryRow(StoppingCriteria):
    """The reference's batch stop (``decode_greedy``: ``all_finished``): every row is done once every
    row of the batch holds ``end_token_id``; until then no row stops, also after its own end token.
    (No ``eos_token_id`` attribute: ``generate`` must not pad the rows that have ended.)"""

    def __init__(self, end_token_id: int):
        self.end_token_id = int(end_token_id)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        ended = (input_ids == self.end_token_id).any(dim=-1)  # (B,)
        return ended.all().expand_as(ended)


def reference_stopping(tokenizer) -> StoppingCriteriaList:
    """The ``stopping_criteria`` of the reference counting: :class:`EndInEveryRow` on the end token."""
    return StoppingCriteriaList([EndInEveryRow(tokenizer.eos_token_id)])


def generate_in_batches(model, inputs: dict, kwargs: dict, batch_size: int | None, pad_token_id: int) -> torch.Tensor:
    """``model.generate(**inputs, **kwargs)`` on consecutive chunks of ``batch_size`` rows (None: all
    at once; per-row tensors of ``kwargs`` such as ``item_scores`` are cut the same way), the
    outputs right-padded with ``pad_token_id`` to one width."""
    rows = inputs["input_ids"].shape[0]
    if batch_size is None or rows <= batch_size:
        return model.generate(**inputs, **kwargs)

    def chunk(values: dict, start: int) -> dict:
        return {key: value[start: start + batch_size] if torch.is_tensor(value) and value.dim() and value.shape[0] == rows
                else value for key, value in values.items()}

    parts = [model.generate(**chunk(inputs, start), **chunk(kwargs, start)) for start in range(0, rows, batch_size)]
    width = max(part.shape[1] for part in parts)
    return torch.cat([F.pad(part, (0, width - part.shape[1]), value=pad_token_id) for part in parts])


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
                          item_tokens: list[str] | None = None, samples: list | None = None, decoding: str | None = None,
                          protocol: str = "ours", max_new_tokens: int | None = None,
                          item_entities: dict[str, int] | None = None, human: bool = False, counting: str | None = None,
                          generation_batch_size: int | None = None) -> dict:
    """Perplexity of the reference replies, and generation metrics on generated replies.

    ``max_generation_batches`` bounds how many batches are generated for (generation is the slow
    part on a CPU); perplexity always uses the whole dataloader. ``protocol``, ``decoding`` and
    ``counting``: see the module (a cell; by default ours). ``max_new_tokens`` (counting ``ours``;
    default 30) bounds the replies; the reference counting decodes at most 20 steps.
    ``generation_batch_size``: rows per ``generate`` call (default: the reference's 32 with the
    reference counting, whose batch stop depends on the batch; each dataloader batch otherwise);
    the dataloader's batches should then be a multiple of it, so that the generation batches are the
    reference's consecutive runs of rows. ``generation_kwargs`` are passed to ``generate`` over the
    cell's. ``item_entities`` (``{"@<movieId>": entity id}``, see :func:`item_entities_of_tokens`)
    defines the item tokens and, with batches from :func:`conversation_dataloader`, gives
    recommendation-in-reply. ``human=True`` adds ``results["human"]``: the same figures for the
    human replies of the generated turns (the ceiling). ``samples``, when a list, receives
    ``(context tokens, reference, generated)`` triples.
    """
    decoding, counting = protocol_cell(protocol, decoding, counting)
    reference = counting == "reference"
    unwrapped = accelerator.unwrap_model(model)
    kwargs = generation_settings(unwrapped, decoding, max_new_tokens=max_new_tokens, counting=counting)
    if reference:
        kwargs["stopping_criteria"] = reference_stopping(tokenizer)
        generation_batch_size = generation_batch_size or REFERENCE_BATCH_SIZE
    kwargs.update(generation_kwargs or {})
    graphs = frozen_graph_inputs(model, accelerator)
    kwargs.update(graphs)
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
        inputs = {key: batch[key] for key in CONTEXT_KEYS if key in batch}
        outputs = model(**inputs, labels=batch["labels"], **graphs)
        logits = outputs.lm_logits  # (B, Lr, vocab)
        token_nll = F.cross_entropy(logits.transpose(1, 2).float(), batch["labels"], ignore_index=IGNORE_INDEX, reduction="none")
        nll, count = accelerator.gather_for_metrics((token_nll.sum(-1), (batch["labels"] != IGNORE_INDEX).sum(-1)))
        nll_total += nll.tolist()
        token_total += count.tolist()
        if generate and (max_generation_batches is None or batch_index * accelerator.num_processes < max_generation_batches):
            if reference and batch_index == 0 and first_batch_size % generation_batch_size:
                logger.warning(f"reference counting: batches of {first_batch_size} rows are generated in runs of "
                               f"{generation_batch_size}; the reference's batches are consecutive runs of {generation_batch_size} "
                               f"rows of the split, matched only when the batch size is a multiple of {generation_batch_size}")
            generated = generate_in_batches(unwrapped, inputs, kwargs, generation_batch_size, tokenizer.pad_token_id)
            generated = accelerator.pad_across_processes(generated, dim=1, pad_index=tokenizer.pad_token_id)
            labels = accelerator.pad_across_processes(batch["labels"], dim=1, pad_index=IGNORE_INDEX)
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
                reply = decode_reply(tokenizer, [t for t in label_ids if t != IGNORE_INDEX])
                hypotheses.append(hypothesis)
                references.append(reply)
                if reference:
                    raw_hypotheses.append(decode_reply(tokenizer, generated_ids, stop_at_end=False))
                targets.append([token for entity in target_ids if entity >= 0 for token in tokens_of_entity.get(entity, [])])
                if samples is not None:
                    samples.append((decode_reply(tokenizer, context_ids), reply, hypothesis))
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
        if human:  # the human replies have nothing after __end__: the same figures under both countings
            results["human"] = reply_metrics(references, None, item_tokens, target_items)
        if reference:
            results["reference_protocol"] = {**reply_metrics(raw_hypotheses, references, item_tokens, target_items),
                                             "generation_batch_size": generation_batch_size}
    return results


def recorded_dataset(folder) -> dict:
    """The dataset a model folder was trained on, as the folder records it: ``{"dataset": name,
    "dataset_dir": folder or None, "source": file}`` from ``adaptation_report.json``, the model
    card's data statistics (``README.md``) or the stage's ``data_statistics.json`` beside the folder,
    the first that names one; ``{}`` when none does (older folders: ReDial)."""
    folder = Path(str(folder))
    candidates = [folder / "adaptation_report.json", folder / "README.md", folder.parent / "data_statistics.json"]
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        if path.suffix == ".md":  # the card's statistics: the first ```json block after "## Data"
            block = text.partition("## Data")[2].partition("```json")[2].partition("```")[0]
            text = block or "{}"
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("dataset"):
            return {"dataset": record["dataset"], "dataset_dir": record.get("dataset_dir"), "source": str(path)}
    return {}


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
