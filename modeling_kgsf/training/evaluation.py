"""Evaluation of a KGSF model (or a baseline with the same outputs) with the package's evaluate modules
(``modeling_kgsf/metrics``, loadable with ``evaluate.load`` from an installed copy).

* :func:`evaluate_recommendation`: Recall@1/10/50 on all examples, on cold-start examples and
  with the dedup protocol (``metrics/kgsf_recall``, config ``protocols``).
* :func:`evaluate_conversation`: perplexity of the reference replies; with ``generate=True`` also
  greedy replies scored by Distinct-n (both forms), item ratio and BLEU-1..4.

Both run under Accelerate: every process scores its shard and the results are gathered with
``gather_for_metrics`` (which drops the examples repeated to even out the last batch), so every
example is counted once and the numbers do not depend on the number of processes (up to float
summation order). Generation on the first ``max_generation_batches`` batches covers the same
examples with any number of processes: the gathered replies are cut to that many batches.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..metrics import load_metric

K_VALUES = (1, 10, 50)
REC_INPUTS = ("input_ids", "attention_mask", "context_entity_ids", "context_entity_mask", "context_word_ids", "context_word_mask")


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


def decode_reply(tokenizer, token_ids: list[int]) -> list[str]:
    """Tokens of a generated reply, up to the first end token, without special tokens."""
    tokens = []
    for token_id in token_ids:
        if token_id == tokenizer.eos_token_id:
            break
        if token_id in (tokenizer.pad_token_id, tokenizer.bos_token_id):
            continue
        tokens.append(tokenizer.convert_ids_to_tokens(token_id))
    return tokens


@torch.no_grad()
def evaluate_conversation(model, dataloader, accelerator, tokenizer, generate: bool = True,
                          max_generation_batches: int | None = None, generation_kwargs: dict | None = None,
                          item_tokens: list[str] | None = None, samples: list | None = None) -> dict:
    """Perplexity of the reference replies, and generation metrics on greedy replies.

    ``max_generation_batches`` bounds how many batches are generated for (generation is the slow
    part on a CPU); perplexity always uses the whole dataloader. ``samples``, when a list, receives
    ``(context tokens, reference, generated)`` triples for display.
    """
    unwrapped = accelerator.unwrap_model(model)
    generation_kwargs = {"max_new_tokens": 30, "num_beams": 1, "do_sample": False, **(generation_kwargs or {})}
    nll_total, token_total = [], []
    references, hypotheses = [], []
    first_batch_size = None
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
            generated = unwrapped.generate(**inputs, **generation_kwargs)
            generated = accelerator.pad_across_processes(generated, dim=1, pad_index=tokenizer.pad_token_id)
            labels = accelerator.pad_across_processes(batch["labels"], dim=1, pad_index=-100)
            contexts = accelerator.pad_across_processes(batch["input_ids"], dim=1, pad_index=tokenizer.pad_token_id)
            generated, labels, contexts = accelerator.gather_for_metrics((generated, labels, contexts))
            for generated_ids, label_ids, context_ids in zip(generated.tolist(), labels.tolist(), contexts.tolist()):
                hypothesis = decode_reply(tokenizer, generated_ids)
                reference = decode_reply(tokenizer, [t for t in label_ids if t != -100])
                hypotheses.append(hypothesis)
                references.append(reference)
                if samples is not None:
                    samples.append((decode_reply(tokenizer, context_ids), reference, hypothesis))
    if max_generation_batches is not None and hypotheses:  # the same replies whatever the number of processes
        limit = max_generation_batches * first_batch_size
        hypotheses, references = hypotheses[:limit], references[:limit]
        if samples is not None:
            del samples[limit:]
    results = load_metric("kgsf_perplexity").compute(predictions=nll_total, references=token_total)
    if hypotheses:
        results.update(load_metric("kgsf_distinct").compute(predictions=hypotheses))
        results.update(load_metric("kgsf_item_ratio").compute(predictions=hypotheses, item_tokens=item_tokens))
        results.update(load_metric("kgsf_bleu").compute(predictions=hypotheses, references=references))
        results["generated_replies"] = len(hypotheses)
    return results
