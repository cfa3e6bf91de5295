"""Item slots (generation_kgsf): one "an item goes here" decision, filled with the recommender's best
item not mentioned yet, in every generate() mode; the default generation settings; save/load."""
import json

import pytest
import torch

from kgsf_tiny import N_ITEM, tiny_batch, tiny_model
from modeling_kgsf import KGSFForConversationalRecommendation
from modeling_kgsf.generation_kgsf import (
    PAPER_DECODING,
    ItemSlotLogitsProcessor,
    item_token_ids_from_vocab,
    repeated_ngram,
)
from modeling_kgsf.processing_kgsf import CONTEXT_KEYS

ITEM_TOKENS = torch.arange(40, 40 + N_ITEM)  # kgsf_tiny marks tokens 40..51 as item tokens: item i <-> token 40 + i
NO_REPETITION_CONTROL = {"no_repeat_ngram_size": 0, "repetition_penalty": 1.0}
GREEDY = {**NO_REPETITION_CONTROL, "num_beams": 1}  # the default decoding is beam search (4 beams)


def context(batch):
    return {key: batch[key] for key in CONTEXT_KEYS}


def slot_model(seed=7):
    model = tiny_model(seed=seed).eval()
    model.set_item_token_ids(ITEM_TOKENS)
    return model


def mentioned_in_context(model, inputs) -> torch.Tensor:
    """(B, n_item) bool: items among the context entities, or whose token is in the context text."""
    item_of_entity = {int(e): i for i, e in enumerate(model.kgsf.item_entity_ids.tolist())}
    mentioned = torch.zeros(inputs["input_ids"].shape[0], N_ITEM, dtype=torch.bool)
    for row, (ids, mask, tokens) in enumerate(zip(inputs["context_entity_ids"], inputs["context_entity_mask"], inputs["input_ids"])):
        for entity in ids[mask].tolist():
            if entity in item_of_entity:
                mentioned[row, item_of_entity[entity]] = True
        for token in tokens.tolist():
            if 40 <= token < 40 + N_ITEM:
                mentioned[row, token - 40] = True
    return mentioned


def unseen_ranking(model, inputs) -> list[list[int]]:
    """Per row, the items by recommender score (forward(task="rec")), context items left out."""
    with torch.no_grad():
        rec = model(**inputs, task="rec").rec_logits
    mentioned = mentioned_in_context(model, inputs)
    return [[i for i in row.argsort(descending=True).tolist() if not seen[i]] for row, seen in zip(rec, mentioned)]


def slot_greedy_by_hand(model, inputs, steps, max_item_slots=3):
    """Greedy decoding with the slot rule written out: item tokens' summed probability on the best
    unseen item's token, the other item tokens impossible (all of them once ``max_item_slots``
    items are named); the argmax; eos then pad."""
    ranking = unseen_ranking(model, inputs)
    sequences = torch.full((inputs["input_ids"].shape[0], 1), 1)
    done = torch.zeros(sequences.shape[0], dtype=torch.bool)
    with torch.no_grad():
        for _ in range(steps):
            logits = model(**inputs, decoder_input_ids=sequences, task="conv").lm_logits[:, -1].float()
            for row in range(logits.shape[0]):
                named = {t - 40 for t in sequences[row].tolist() if 40 <= t < 40 + N_ITEM}
                mass = torch.logsumexp(logits[row, ITEM_TOKENS], 0)
                logits[row, ITEM_TOKENS] = float("-inf")
                free = [i for i in ranking[row] if i not in named]
                if free and (max_item_slots is None or len(named) < max_item_slots):
                    logits[row, 40 + free[0]] = mass
            token = logits.argmax(-1).masked_fill(done, 0)
            sequences = torch.cat([sequences, token[:, None]], 1)
            done |= token == 2
            if done.all():
                break
    return sequences


def items_of(sequence) -> list[int]:
    return [t - 40 for t in sequence.tolist() if 40 <= t < 40 + N_ITEM]


# --------------------------------------------------------------------------- the processor alone
def test_processor_puts_the_summed_item_mass_on_the_best_unseen_item():
    vocab, mask = 10, torch.zeros(10, dtype=torch.bool)
    mask[[5, 6, 7, 8]] = True
    item_token_ids = torch.tensor([5, 6, 7, 8, -1])  # item 4 has no token
    item_scores = torch.tensor([[0.0, 3.0, 2.0, 1.0, 9.0], [0.0, 3.0, 2.0, 1.0, 9.0]])
    mentioned = torch.zeros(2, 5, dtype=torch.bool)
    mentioned[1, 1] = True  # row 1's context names item 1
    processor = ItemSlotLogitsProcessor(mask, item_token_ids, item_scores, mentioned)
    scores = torch.randn(2, vocab)
    prefix = torch.tensor([[1, 3], [1, 3]])
    out = processor(prefix, scores.clone())
    expected_mass = torch.logsumexp(scores[:, 5:9], -1)
    assert torch.allclose(out[0, 6], expected_mass[0]) and torch.allclose(out[1, 7], expected_mass[1])  # items 1 / 2
    assert torch.isinf(out[0, [5, 7, 8]]).all() and torch.isinf(out[1, [5, 6, 8]]).all()
    assert torch.equal(out[:, :5], scores[:, :5]) and torch.equal(out[:, 9:], scores[:, 9:])  # words untouched
    # an item named earlier in the sequence is not named again; with every item used, no slot at all
    out = processor(torch.tensor([[1, 6], [1, 7]]), scores.clone())
    assert torch.allclose(out[0, 7], expected_mass[0]) and torch.allclose(out[1, 8], expected_mass[1])
    out = processor(torch.tensor([[1, 5, 6, 7, 8], [1, 5, 6, 7, 8]]), scores.clone())
    assert torch.isinf(out[:, 5:9]).all() and torch.equal(out[:, :5], scores[:, :5])
    # beams: rows repeated for each context; log-probabilities (beam search) give the same slot
    out = processor(torch.tensor([[1, 3]] * 4), torch.log_softmax(scores, -1).repeat_interleave(2, 0))
    assert torch.allclose(out[1, 6].exp(), torch.softmax(scores, -1)[0, 5:9].sum())


def test_processor_closes_the_slot_after_max_item_slots_items():
    mask = torch.zeros(10, dtype=torch.bool)
    mask[[5, 6, 7, 8]] = True
    item_scores = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    scores = torch.randn(1, 10)
    capped = ItemSlotLogitsProcessor(mask, torch.tensor([5, 6, 7, 8]), item_scores, max_item_slots=2)
    out = capped(torch.tensor([[1, 5]]), scores.clone())  # one item named: the slot is still open
    assert torch.allclose(out[0, 6], torch.logsumexp(scores[0, 5:9], -1))
    out = capped(torch.tensor([[1, 5, 3, 6]]), scores.clone())  # two named: closed
    assert torch.isinf(out[0, 5:9]).all() and torch.equal(out[0, :5], scores[0, :5]) and torch.equal(out[0, 9:], scores[0, 9:])
    assert torch.isinf(ItemSlotLogitsProcessor(mask, torch.tensor([5, 6, 7, 8]), item_scores, max_item_slots=0)(
        torch.tensor([[1]]), scores.clone())[0, 5:9]).all()
    with pytest.raises(ValueError, match="max_item_slots"):
        ItemSlotLogitsProcessor(mask, max_item_slots=-1)


def test_item_token_map_from_a_vocabulary():
    vocab = {"__pad__": 0, "@10": 5, "@11": 6, "@12": 7, "@13": 8}
    movies = {"10": [100, "A", 3], "11": [101, "B", 9], "12": [101, "B again", 1], "13": [555, "not an item", 1], "14": [102, "no token", 1]}
    ids = item_token_ids_from_vocab(vocab, movies, [100, 101, 102])
    assert ids.tolist() == [5, 6, -1]  # the most mentioned token names item 1; item 2 has no token


# --------------------------------------------------------------------------- generate()
def test_greedy_item_slots_match_the_rule_written_by_hand():
    model = slot_model()
    inputs = context(tiny_batch(seed=11))
    generated = model.generate(**inputs, max_new_tokens=8, **GREEDY)  # item slots: the default
    expected = slot_greedy_by_hand(model, inputs, 8)
    assert torch.equal(generated, expected[:, : generated.shape[1]])
    assert any(items_of(row) for row in generated), "no slot taken: the comparison would not test the slots"


@pytest.mark.parametrize("mode", [{"num_beams": 1}, {"num_beams": 3, "num_return_sequences": 2},
                                  {"do_sample": True, "num_beams": 1, "num_return_sequences": 3, "temperature": 1.5}])
def test_every_mode_names_the_best_unseen_items_in_order_never_twice(mode):
    model = slot_model()
    inputs = context(tiny_batch(seed=12))
    torch.manual_seed(0)
    sequences = model.generate(**inputs, max_new_tokens=10, **mode)
    copies = sequences.shape[0] // inputs["input_ids"].shape[0]
    ranking = unseen_ranking(model, inputs)
    named = 0
    for index, sequence in enumerate(sequences):
        items = items_of(sequence)
        named += len(items)
        assert len(set(items)) == len(items), sequence  # never the same item twice in one reply
        assert items == ranking[index // copies][: len(items)], (sequence, ranking[index // copies])
    assert named > 0
    paper = model.generate(**inputs, max_new_tokens=10, **{**PAPER_DECODING, **mode})
    assert not torch.equal(paper, sequences)  # the paper's copy-only decoding is another distribution


def test_max_item_slots_caps_the_items_of_a_reply():
    """Without the cap this model chains items; with it no reply names more than the cap, in every mode."""
    model = slot_model()
    inputs = context(tiny_batch(seed=12))
    uncapped = model.generate(**inputs, max_new_tokens=16, max_item_slots=None, **GREEDY)
    most = max(len(items_of(row)) for row in uncapped)
    assert most >= 2, "the model names at most one item anyway: the cap would not be tested"
    assert model.generation_config.max_item_slots == 3
    for mode in ({}, {"num_beams": 1}, {"num_beams": 3}, {"do_sample": True, "num_beams": 1}):
        torch.manual_seed(0)
        capped = model.generate(**inputs, max_new_tokens=16, max_item_slots=most - 1, **NO_REPETITION_CONTROL, **mode)
        assert max(len(items_of(row)) for row in capped) <= most - 1, mode


def test_beam_scores_are_log_probs_of_the_slot_distribution():
    model = slot_model()
    inputs = context(tiny_batch(seed=13))
    beams = model.generate(**inputs, max_new_tokens=6, num_beams=3, length_penalty=0.0, return_dict_in_generate=True,
                           output_scores=True, **NO_REPETITION_CONTROL)
    ranking = unseen_ranking(model, inputs)
    sequences = beams.sequences
    with torch.no_grad():
        logits = model(**inputs, decoder_input_ids=sequences[:, :-1], task="conv").lm_logits.float()
    total = torch.zeros(sequences.shape[0])
    for row in range(sequences.shape[0]):
        for step in range(sequences.shape[1] - 1):
            token = int(sequences[row, step + 1])
            log_probs = torch.log_softmax(logits[row, step], -1)
            if 40 <= token < 40 + N_ITEM:
                named = set(items_of(sequences[row, : step + 1]))
                assert token - 40 == [i for i in ranking[row] if i not in named][0]
                total[row] += torch.logsumexp(log_probs[ITEM_TOKENS], 0)
            else:
                total[row] += log_probs[token]
            if token == 2:
                break
    assert torch.allclose(beams.sequences_scores, total, atol=1e-4), (beams.sequences_scores, total)


def test_trained_model_fills_its_item_slots_with_the_recommenders_top_unseen_items():
    """A tiny model trained a few steps on replies "5 <item> 6 <item> __end__" (random items, drawn
    again at each step, so that it learns the shape and not one item sequence per context) generates,
    greedily with the default settings, exactly that shape with the recommender's two best unseen items."""
    torch.manual_seed(0)
    model = slot_model(seed=3)
    batch = tiny_batch(batch_size=4, seed=21)
    draws = torch.Generator().manual_seed(0)
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    for _ in range(300):
        items = torch.randint(0, N_ITEM, (4, 2), generator=draws)
        batch["labels"] = torch.stack([torch.full((4,), 5), 40 + items[:, 0], torch.full((4,), 6), 40 + items[:, 1], torch.full((4,), 2)], 1)
        loss = model(**context(batch), labels=batch["labels"], task="conv").loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    inputs = context(batch)
    generated = model.generate(**inputs, max_new_tokens=8)
    ranking = unseen_ranking(model, inputs)
    for row, sequence in enumerate(generated.tolist()):
        assert sequence[:6] == [1, 5, 40 + ranking[row][0], 6, 40 + ranking[row][1], 2], (sequence, ranking[row])
    paper = model.generate(**inputs, max_new_tokens=8, **PAPER_DECODING)
    assert not torch.equal(paper[:, :6], generated[:, :6])  # copy-only decoding names the decoder's own items instead


def test_default_settings_do_not_loop_where_paper_decoding_does():
    model = slot_model()
    inputs = context(tiny_batch(seed=11))
    paper = model.generate(**inputs, max_new_tokens=20, **PAPER_DECODING)
    assert any(repeated_ngram([t for t in row if t not in (0, 1, 2)]) for row in paper.tolist())  # the test has a loop to stop
    for kwargs in ({}, {"num_beams": 1}, {"num_beams": 3}, {"do_sample": True, "num_beams": 1}):
        torch.manual_seed(0)
        replies = model.generate(**inputs, max_new_tokens=20, **kwargs)
        for row in replies.tolist():
            body = row[1: row.index(2) if 2 in row else len(row)]
            assert not repeated_ngram(body), (kwargs, row)


def test_generation_config_and_item_tokens_survive_save_and_load(tmp_path):
    model = slot_model()
    model.generation_config.no_repeat_ngram_size = 4  # a folder's own choice is kept
    model.save_pretrained(tmp_path / "new")
    loaded = KGSFForConversationalRecommendation.from_pretrained(tmp_path / "new").eval()
    config = loaded.generation_config
    assert (config.item_slots, config.no_repeat_ngram_size, config.repetition_penalty, config.use_cache) == (True, 4, 1.2, True)
    assert config.max_item_slots == 3
    assert torch.equal(loaded.kgsf.item_token_ids, ITEM_TOKENS)
    inputs = context(tiny_batch(seed=11))
    assert torch.equal(loaded.generate(**inputs, max_new_tokens=8), model.generate(**inputs, max_new_tokens=8))
    assert torch.equal(loaded.generate(**inputs, max_new_tokens=8, item_slots=False), model.generate(**inputs, max_new_tokens=8, item_slots=False))


def test_older_folders_get_the_item_tokens_and_the_generation_defaults(tmp_path):
    """A folder saved before item slots: no item_token_ids in the weights, a plain generation_config.json."""
    from safetensors.torch import load_file, save_file

    model = slot_model()
    old = tmp_path / "old"
    model.save_pretrained(old)
    weights = load_file(old / "model.safetensors")
    del weights["kgsf.item_token_ids"]
    save_file(weights, old / "model.safetensors", metadata={"format": "pt"})
    generation = json.loads((old / "generation_config.json").read_text())
    for key in ("item_slots", "no_repeat_ngram_size", "repetition_penalty", "num_beams", "default_decoding"):
        del generation[key]
    (old / "generation_config.json").write_text(json.dumps(generation))
    loaded = KGSFForConversationalRecommendation.from_pretrained(old)
    assert (loaded.kgsf.item_token_ids == -1).all() and not loaded.kgsf.item_tokens_known()
    assert loaded.generation_config.item_slots is True and loaded.generation_config.no_repeat_ngram_size == 3
    assert loaded.generation_config.max_item_slots == 3
    assert (loaded.generation_config.num_beams, loaded.generation_config.default_decoding) == (4, "beam4")
    # saved with item slots but before the cap existed: the cap is added, the folder's other choices kept
    del generation["max_item_slots"]
    (old / "generation_config.json").write_text(json.dumps({**generation, "item_slots": True, "no_repeat_ngram_size": 0}))
    loaded = KGSFForConversationalRecommendation.from_pretrained(old)
    assert (loaded.generation_config.max_item_slots, loaded.generation_config.no_repeat_ngram_size) == (3, 0)
    assert loaded.generation_config.num_beams == 4  # saved when greedy was the default: the read's choice now
    (old / "generation_config.json").write_text(json.dumps({**generation, "item_slots": True, "do_sample": True}))
    assert KGSFForConversationalRecommendation.from_pretrained(old).generation_config.num_beams in (None, 1)  # its own decoding kept
    # with the tokenizer's vocab.json and kg_resources.json beside the weights, the map is rebuilt
    entities = model.kgsf.item_entity_ids.tolist()
    (old / "vocab.json").write_text(json.dumps({f"@m{i}": 40 + i for i in range(N_ITEM)}))
    (old / "kg_resources.json").write_text(json.dumps({"movies": {f"m{i}": [entities[i], f"Movie {i}", 1] for i in range(N_ITEM)}}))
    loaded = KGSFForConversationalRecommendation.from_pretrained(old)
    assert torch.equal(loaded.kgsf.item_token_ids, ITEM_TOKENS)


def test_item_token_ids_are_checked():
    model = tiny_model(seed=1)
    with pytest.raises(ValueError, match="n_item"):
        model.set_item_token_ids(torch.arange(3))
    with pytest.raises(ValueError, match="not item tokens"):
        model.set_item_token_ids(torch.arange(N_ITEM))  # tokens 0..11 are not item tokens
    with pytest.raises(ValueError, match="share a token"):
        model.set_item_token_ids(torch.full((N_ITEM,), 40))
