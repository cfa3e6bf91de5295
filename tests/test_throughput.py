"""Throughput levers give the same results: the key/value cache of generate() (same tokens in every
decoding mode, forward with a cache = forward without), the SDPA attention kernel (= the eager one,
also for a query without keys), output logits at the labelled positions only (same loss), and the
length-grouped batches (every example once per epoch, the same order for the same seed)."""
import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import BatchSampler
from transformers import DynamicCache, EncoderDecoderCache

from kgsf_tiny import tiny_batch, tiny_config, tiny_model
from modeling_kgsf.generation_kgsf import PAPER_DECODING
from training_kgsf.trainer import EpochShuffleSampler, LengthGroupedSampler
from modeling_kgsf.transformer import MultiHeadAttention
from modeling_kgsf.processing_kgsf import CONTEXT_KEYS

KBRD = {"use_conceptnet": False, "use_mim": False, "use_kg_attention": False, "use_copy": False, "user_vocab_bias": True}


def context(batch):
    return {key: batch[key] for key in CONTEXT_KEYS}


def slot_model(seed=7, **overrides):
    model = tiny_model(seed=seed, **overrides).eval()
    model.set_item_token_ids(torch.arange(40, 52))  # item i <-> token 40 + i (kgsf_tiny's item tokens)
    return model


# --------------------------------------------------------------------------- key/value cache
@pytest.mark.parametrize("mode", [
    PAPER_DECODING,  # plain greedy
    {},  # the defaults: item slots, no_repeat_ngram_size, repetition_penalty
    {**PAPER_DECODING, "num_beams": 4, "num_return_sequences": 2},
    {"num_beams": 3},
    {"do_sample": True, "num_return_sequences": 3, "temperature": 1.5},
], ids=["greedy", "default", "beams", "beams-slots", "sampling"])
@pytest.mark.parametrize("overrides", [{}, KBRD], ids=["kgsf", "kbrd"])
def test_cached_generation_gives_the_same_tokens(mode, overrides):
    model = slot_model(**overrides)
    inputs = context(tiny_batch(seed=12, empty_rows=(2,)))
    torch.manual_seed(0)
    without = model.generate(**inputs, max_new_tokens=10, use_cache=False, **mode)
    torch.manual_seed(0)
    cached = model.generate(**inputs, max_new_tokens=10, return_dict_in_generate=True, **mode)  # use_cache: the default
    assert model.generation_config.use_cache is True
    assert torch.equal(cached.sequences, without), (cached.sequences, without)
    assert isinstance(cached.cache, EncoderDecoderCache) and cached.cache.get_seq_length() >= cached.sequences.shape[1] - 1


def test_greedy_cache_feeds_one_token_per_step():
    model = slot_model()
    inputs = context(tiny_batch(seed=11))
    lengths = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: lengths.append(kwargs["decoder_input_ids"].shape[1]),
                                           with_kwargs=True)
    try:
        sequences = model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, **PAPER_DECODING)
        lengths_cached, lengths[:] = list(lengths), []
        model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, use_cache=False, **PAPER_DECODING)
    finally:
        hook.remove()
    assert lengths_cached == [1] * (sequences.shape[1] - 1)  # with the cache: the new token only
    assert lengths == list(range(1, sequences.shape[1]))  # without: the whole prefix


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("overrides", [{}, KBRD], ids=["kgsf", "kbrd"])
def test_forward_with_a_cache_equals_forward_without(attn_implementation, overrides):
    """Decoding a prefix one token (then two tokens) at a time against a cache gives the logits of
    the whole prefix decoded at once, at every position."""
    model = tiny_model(seed=5, **overrides).eval()
    model.set_attn_implementation(attn_implementation)
    inputs = context(tiny_batch(seed=13, empty_rows=(1,)))
    prefix = torch.randint(4, 60, (inputs["input_ids"].shape[0], 7), generator=torch.Generator().manual_seed(3))
    prefix[:, 0] = 1
    with torch.no_grad():
        encoder_outputs = model.get_encoder()(**inputs)
        full = model(decoder_input_ids=prefix, encoder_outputs=encoder_outputs, task="conv").lm_logits  # (B, 7, V)
        for chunk in (1, 2):
            cache, steps = EncoderDecoderCache(DynamicCache(), DynamicCache()), []
            for start in range(0, prefix.shape[1], chunk):
                out = model(decoder_input_ids=prefix[:, start: start + chunk], encoder_outputs=encoder_outputs, cache=cache,
                            task="conv")
                cache = out.cache
                steps.append(out.lm_logits)
            stepwise = torch.cat(steps, dim=1)
            finite = torch.isfinite(full)
            assert torch.equal(finite, torch.isfinite(stepwise))
            assert torch.allclose(stepwise[finite], full[finite], atol=1e-5), (chunk, (stepwise - full)[finite].abs().max())
        # use_cache=True starts a cache; past_key_values is the older name of cache
        first = model(decoder_input_ids=prefix[:, :4], encoder_outputs=encoder_outputs, use_cache=True, task="conv")
        with pytest.warns(FutureWarning, match="past_key_values"):
            rest = model(decoder_input_ids=prefix[:, 4:], encoder_outputs=encoder_outputs, past_key_values=first.cache, task="conv")
    assert torch.allclose(rest.lm_logits[finite[:, 4:]], full[:, 4:][finite[:, 4:]], atol=1e-5)


# --------------------------------------------------------------------------- attention kernels
def test_sdpa_equals_eager_also_for_a_query_without_keys():
    torch.manual_seed(0)
    attention = MultiHeadAttention(tiny_config())
    query, key = torch.randn(3, 4, 16, requires_grad=True), torch.randn(3, 5, 16)
    key_mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)  # row 1: no keys
    results = {}
    for implementation in ("eager", "sdpa"):
        attention.config._attn_implementation = implementation
        for causal, mask in ((False, key_mask), (True, None), (True, key_mask)):
            query.grad = None
            out = attention(query, key if not causal else query, mask if not causal else (mask[:, :4] if mask is not None else None),
                            causal=causal)
            out.square().sum().backward()
            results[implementation, causal, mask is None] = (out.detach(), query.grad.clone())
    for (implementation, causal, no_mask), (out, grad) in results.items():
        expected_out, expected_grad = results["eager", causal, no_mask]
        assert torch.isfinite(out).all() and torch.isfinite(grad).all()
        assert torch.allclose(out, expected_out, atol=1e-6) and torch.allclose(grad, expected_grad, atol=1e-5)
    empty_row = results["sdpa", False, False][0][1]
    assert torch.allclose(empty_row, attention.out_proj.bias.detach().expand_as(empty_row))  # zero attention output


@pytest.mark.parametrize("overrides", [{}, KBRD], ids=["kgsf", "kbrd"])
def test_sdpa_model_equals_eager_model(overrides):
    """Loss, mixed logits and every gradient agree (rows 2 and 3: contexts without words or entities,
    whose KG cross-attentions have no keys)."""
    batch = tiny_batch(seed=21, empty_rows=(2, 3))
    results = {}
    for implementation in ("eager", "sdpa"):
        model = tiny_model(seed=4, attn_implementation=implementation, **overrides).train()
        assert model.config._attn_implementation == implementation
        torch.manual_seed(0)  # the same dropout masks
        out = model(**batch, task="conv")
        out.loss.backward()
        results[implementation] = out, {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    (eager, eager_grads), (sdpa, sdpa_grads) = results["eager"], results["sdpa"]
    assert torch.allclose(sdpa.loss, eager.loss, atol=1e-5)
    finite = torch.isfinite(eager.lm_logits)
    assert torch.allclose(sdpa.lm_logits[finite], eager.lm_logits[finite], atol=1e-5)
    assert eager_grads.keys() == sdpa_grads.keys()
    for name, grad in eager_grads.items():
        assert torch.allclose(sdpa_grads[name], grad, atol=1e-5), name


# --------------------------------------------------------------------------- output layer at the labels
@pytest.mark.parametrize("overrides", [{}, KBRD], ids=["kgsf", "kbrd"])
def test_logits_at_labels_only_give_the_same_loss(overrides):
    batch = tiny_batch(seed=22)
    batch["labels"][2, 1:] = -100  # replies of several lengths (row 0 is padded too)
    model = tiny_model(seed=6, **overrides).train()
    outputs, grads = {}, {}
    for at_labels in (False, True):
        model.zero_grad()
        torch.manual_seed(0)
        outputs[at_labels] = model(**batch, task="conv", logits_at_labels_only=at_labels)
        outputs[at_labels].loss.backward()
        grads[at_labels] = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    full, kept = outputs[False], outputs[True]
    keep = batch["labels"] != -100
    assert kept.lm_logits.shape == (int(keep.sum()), model.config.vocab_size)
    assert torch.allclose(kept.lm_logits, full.lm_logits[keep], atol=1e-5)
    assert torch.allclose(kept.loss, full.loss, atol=1e-5)
    for name, grad in grads[False].items():
        assert torch.allclose(grads[True][name], grad, atol=1e-5), name
    with pytest.raises(ValueError, match="needs labels"):
        model(**context(batch), decoder_input_ids=batch["labels"].clamp(min=0), task="conv", logits_at_labels_only=True)


# --------------------------------------------------------------------------- length-grouped batches
def test_length_grouped_sampler_is_a_seeded_permutation_of_sorted_megabatches():
    lengths = torch.randint(1, 200, (1000,), generator=torch.Generator().manual_seed(0)).tolist()
    batch_size, megabatch = 8, 5 * 8
    sampler = LengthGroupedSampler(lengths, batch_size, seed=3, megabatch_batches=5)
    epochs = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(len(lengths))) and len(sampler) == len(lengths)  # every example once
        again = LengthGroupedSampler(lengths, batch_size, seed=3, megabatch_batches=5)
        again.set_epoch(epoch)
        assert list(again) == order  # deterministic for the seed and epoch
        shuffle = EpochShuffleSampler(len(lengths), seed=3)
        shuffle.set_epoch(epoch)
        permutation = list(shuffle)
        # the batches: those of the permutation's megabatches sorted by length, in a shuffled order
        expected = []
        for start in range(0, len(order), megabatch):
            chunk = sorted(permutation[start: start + megabatch], key=lambda i: -lengths[i])
            expected += [tuple(chunk[b: b + batch_size]) for b in range(0, len(chunk), batch_size)]
        got = [tuple(order[b: b + batch_size]) for b in range(0, len(order), batch_size)]
        assert sorted(got) == sorted(expected) and got != expected  # whole batches, not visited longest to shortest
        epochs.append((order, permutation))
    assert epochs[0][0] != epochs[1][0]
    assert list(LengthGroupedSampler(lengths, batch_size, seed=4, megabatch_batches=5)) != epochs[0][0]
    # less padding: the summed longest length per batch is far below that of shuffled batches
    def padded(order):
        return sum(max(lengths[i] for i in order[s: s + batch_size]) for s in range(0, len(order), batch_size))
    assert padded(epochs[0][0]) < 0.75 * padded(epochs[0][1])


def test_length_grouped_batches_shard_across_processes():
    """Accelerate deals the DataLoader's batches out to the processes: each process gets whole
    length-grouped batches, and together they cover every example."""
    lengths = list(range(96, 0, -1))
    sampler = LengthGroupedSampler(lengths, batch_size=4, seed=0, megabatch_batches=5)
    batches = list(BatchSampler(sampler, batch_size=4, drop_last=False))
    shards = [list(BatchSamplerShard(BatchSampler(sampler, batch_size=4, drop_last=False), num_processes=2, process_index=rank))
              for rank in range(2)]
    assert shards[0] == batches[0::2] and shards[1] == batches[1::2]
    assert sorted(i for shard in shards for batch in shard for i in batch) == list(range(96))


def test_the_trainer_groups_batches_when_given_lengths(tmp_path):
    from accelerate import Accelerator

    from training_kgsf.trainer import StageTrainer, TrainingArguments

    dataset = [{"x": torch.ones(3)} for _ in range(20)]

    def make(lengths, **options):
        args = TrainingArguments(output_dir=str(tmp_path), batch_size=4, checkpoint_steps=0, freeze_unused_parameters=False,
                                 **options)
        return StageTrainer(args, torch.nn.Linear(3, 1), dataset, lambda rows: {"x": torch.stack([r["x"] for r in rows])},
                            compute_loss=None, evaluate=None, score=None, save_model=None, stage="toy",
                            accelerator=Accelerator(cpu=True), lengths=lengths)

    assert type(make(list(range(20))).sampler) is EpochShuffleSampler  # off by default (it costs perplexity)
    assert isinstance(make(list(range(20)), group_by_length=True).sampler, LengthGroupedSampler)
    assert type(make(None, group_by_length=True).sampler) is EpochShuffleSampler  # no lengths: plain shuffle


# --------------------------------------------------------------------------- bf16 (TrainingArguments.bf16)
@pytest.mark.parametrize("task", ["conv", "rec", "mim"])
def test_bf16_autocast_losses_are_close_to_float32(task):
    """Every stage's loss runs under bfloat16 autocast (the sparse graph encoders stay float32) and
    stays near its float32 value; the gradients reach the float32 weights."""
    batch = tiny_batch(seed=23)
    losses = {}
    for bf16 in (False, True):
        model = tiny_model(seed=9).train()
        torch.manual_seed(0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(**batch, task=task) if task != "rec" else model(**{k: v for k, v in batch.items() if k != "labels"}, task="rec")
        loss = out.loss
        loss.backward()
        assert all(p.grad is None or p.grad.dtype == torch.float32 for p in model.parameters())
        losses[bf16] = loss.float().item()
    assert losses[True] == pytest.approx(losses[False], rel=0.05)
