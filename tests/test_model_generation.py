"""generate(): greedy, beams, sampling, the copy-mixed logits, no padding inside a sequence.

The tests that compare with forward() pass the paper's decoding (``PAPER_DECODING``: no item slots,
no repetition control); the item slots and the default settings are tested in test_item_slots.py.
"""
import pytest
import torch

from kgsf_tiny import tiny_batch, tiny_model
from modeling_kgsf.generation_kgsf import KGSF_GENERATION_DEFAULTS, PAPER_DECODING
from modeling_kgsf.processing_kgsf import CONTEXT_KEYS



def context(batch):
    return {key: batch[key] for key in CONTEXT_KEYS}


@pytest.fixture(scope="module")
def model():
    model = tiny_model(seed=7).eval()
    model.set_item_token_ids(torch.arange(40, 52))  # item i <-> token 40 + i (kgsf_tiny's item tokens)
    return model


def greedy_by_hand(model, inputs, steps):
    """Decode with forward() only: the argmax of the mixed (vocabulary + copy) logits, eos then pad."""
    sequences = torch.full((inputs["input_ids"].shape[0], 1), model.config.decoder_start_token_id)
    done = torch.zeros(sequences.shape[0], dtype=torch.bool)
    with torch.no_grad():
        for _ in range(steps):
            logits = model(**inputs, decoder_input_ids=sequences, task="conv").lm_logits[:, -1]
            token = logits.argmax(-1).masked_fill(done, model.config.pad_token_id)
            sequences = torch.cat([sequences, token[:, None]], 1)
            done |= token == model.config.eos_token_id
            if done.all():
                break
    return sequences


def check_padding(sequences, eos=2, pad=0):
    for row in sequences.tolist():
        assert row[0] == 1  # decoder start
        body = row[1:]
        if eos in body:
            end = body.index(eos)
            assert pad not in body[:end] and all(token == pad for token in body[end + 1:]), row
        else:
            assert pad not in body, row


def test_generation_config_defaults(model):
    config = model.generation_config
    assert (config.decoder_start_token_id, config.eos_token_id, config.pad_token_id) == (1, 2, 0)
    assert config.max_new_tokens == model.config.max_response_length and config.use_cache is True
    assert config.item_slots is True and config.no_repeat_ngram_size == KGSF_GENERATION_DEFAULTS["no_repeat_ngram_size"] > 0
    assert config.repetition_penalty == KGSF_GENERATION_DEFAULTS["repetition_penalty"] > 1.0
    assert PAPER_DECODING == {"item_slots": False, "no_repeat_ngram_size": 0, "repetition_penalty": 1.0, "num_beams": 1, "do_sample": False}


def test_greedy_matches_forward_argmax(model):
    inputs = context(tiny_batch(seed=11))
    generated = model.generate(**inputs, max_new_tokens=6, **PAPER_DECODING)
    expected = greedy_by_hand(model, inputs, 6)
    assert torch.equal(generated, expected[:, : generated.shape[1]])
    check_padding(generated)


def sequence_log_prob(model, inputs, sequences, copies: int = 1) -> torch.Tensor:
    """Sum over generated tokens (up to and including the first eos) of log p(token | prefix, context),
    recomputed with forward(); each context row repeated ``copies`` times."""
    expanded = {key: value.repeat_interleave(copies, dim=0) for key, value in inputs.items()}
    with torch.no_grad():
        logits = model(**expanded, decoder_input_ids=sequences[:, :-1], task="conv").lm_logits
    log_probs = torch.log_softmax(logits.float(), -1).gather(-1, sequences[:, 1:, None]).squeeze(-1)
    generated = sequences[:, 1:]
    ended = (generated == model.config.eos_token_id).int().cumsum(-1)
    keep = (ended == 0) | ((ended == 1) & (generated == model.config.eos_token_id))  # up to the first eos
    return (log_probs * keep).sum(-1)


def test_beam_scores_are_the_models_sequence_log_probs(model):
    """Beam search runs on the mixed (vocabulary + copy) distribution: with length_penalty=0 the score
    it reports for each returned beam equals the sequence's log-probability recomputed by forward(),
    the beams come best first, and the best beam is at least as likely as the greedy reply."""
    inputs = context(tiny_batch(seed=12))
    beams = model.generate(**inputs, max_new_tokens=6, num_return_sequences=2, length_penalty=0.0, return_dict_in_generate=True,
                           output_scores=True, **{**PAPER_DECODING, "num_beams": 4})
    recomputed = sequence_log_prob(model, inputs, beams.sequences, copies=2)
    assert torch.allclose(beams.sequences_scores, recomputed, atol=1e-4), (beams.sequences_scores, recomputed)
    assert (beams.sequences_scores.view(-1, 2)[:, 0] >= beams.sequences_scores.view(-1, 2)[:, 1] - 1e-6).all()
    greedy = model.generate(**inputs, max_new_tokens=6, **PAPER_DECODING)
    greedy_score = sequence_log_prob(model, inputs, greedy)
    assert (beams.sequences_scores.view(-1, 2)[:, 0] >= greedy_score - 1e-4).all()


def test_beam_search_expands_the_context(model):
    inputs = context(tiny_batch(seed=13, empty_rows=(2,)))
    beams = model.generate(**inputs, max_new_tokens=6, num_beams=3, num_return_sequences=2, do_sample=False)
    assert beams.shape[0] == 2 * inputs["input_ids"].shape[0]
    check_padding(beams)
    # each row's beams are decoded against that row's context: row 2 (no words, no entities) differs from row 0
    assert not torch.equal(beams[0:2], beams[4:6])


def test_sampling_and_no_padding_inside(model):
    inputs = context(tiny_batch(batch_size=4, seed=14))
    kwargs = dict(do_sample=True, num_beams=1, top_k=20, top_p=0.95, temperature=2.0, num_return_sequences=8, max_new_tokens=8)
    with torch.no_grad():  # make the end token likely so that sequences end at various lengths
        model.kgsf.shared.weight[2].mul_(4.0)
    try:
        torch.manual_seed(0)
        sampled = model.generate(**inputs, **kwargs)
        torch.manual_seed(0)
        again = model.generate(**inputs, **kwargs)
        torch.manual_seed(1)
        other = model.generate(**inputs, **kwargs)
        greedy = model.generate(**inputs, max_new_tokens=8, do_sample=False, num_beams=1)
    finally:
        with torch.no_grad():
            model.kgsf.shared.weight[2].div_(4.0)
    assert sampled.shape[0] == 32
    assert (sampled[:, 1:] == 2).any(), "no sequence ended: the padding check would be vacuous"
    check_padding(sampled)
    assert torch.equal(sampled, again), "the same seed must give the same samples"
    assert not torch.equal(sampled, other), "another seed must give other samples"
    # sampling draws from the distribution, it does not copy the argmax: some sample leaves the greedy path
    width = min(sampled.shape[1], greedy.shape[1])
    assert not torch.equal(sampled[:, :width], greedy.repeat_interleave(8, dim=0)[:, :width])


def test_inference_caches_follow_weight_updates():
    """Copy rows and cross-attention keys/values cached without grad equal a fresh computation,
    also after an in-place weight update."""
    model = tiny_model(seed=8).eval()
    inputs = context(tiny_batch(seed=14))
    decoder_input_ids = torch.tensor([[1, 5, 7]] * inputs["input_ids"].shape[0])

    def logits(grad: bool):
        with torch.set_grad_enabled(grad):
            return model(**inputs, decoder_input_ids=decoder_input_ids, task="conv").lm_logits.detach()

    with torch.no_grad():
        encoder_outputs = model.get_encoder()(**inputs)
        first = model(decoder_input_ids=decoder_input_ids, encoder_outputs=encoder_outputs, task="conv").lm_logits
        again = model(decoder_input_ids=decoder_input_ids, encoder_outputs=encoder_outputs, task="conv").lm_logits
    assert torch.equal(first, again)
    assert torch.equal(logits(False), logits(True))
    with torch.no_grad():
        model.copy_head.vocab_projection.weight.mul_(1.5)
        model.kgsf.decoder.layers[0].encoder_attn.k_proj.weight.add_(0.1)
        model.kgsf.set_vocab_masks(model.kgsf.kg_word_vocab_mask, ~model.kgsf.item_token_vocab_mask)
        updated = model(decoder_input_ids=decoder_input_ids, encoder_outputs=encoder_outputs, task="conv").lm_logits
    assert not torch.equal(updated, first)
    with torch.enable_grad():
        expected = model(decoder_input_ids=decoder_input_ids, encoder_outputs=encoder_outputs, task="conv").lm_logits.detach()
    assert torch.equal(updated, expected)
