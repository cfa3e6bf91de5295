"""Tests for datasets_scripts/turn_order.py and load_redial's train sources.

The first tests use conversations built in code; the last ones run on the real files in
../shared/data (skipped when absent; the first processing of the default train source takes a few
minutes, then the processed split is read from the cache).
"""
from __future__ import annotations

import pytest

from datasets_scripts import turn_order as T

# A known conversation: (list, text); list 0 is the first sender's (here the seeker).
CONVERSATION = [
    (0, "Hi there! I'm looking for a good comedy tonight."),
    (1, "Hello! What kind of comedies do you like?"),
    (0, "I like @111 and @222"),
    (0, "and anything with Jim Carrey"),
    (1, "Have you seen @333 ?"),
    (0, "No, I haven't. What is it about?"),
    (1, "It's about a man whose life is a TV show. You might like @444 too"),
    (0, "Yes I loved that one! Thanks"),
    (1, "You're welcome, have a great night!"),
    (0, "Bye!"),
]


def _example(conversation=CONVERSATION, seeker=0) -> T.OrderedExample:
    lists = ([t for s, t in conversation if s == 0], [t for s, t in conversation if s == 1])
    return T.OrderedExample(lists, [s for s, _ in conversation], seeker, "c1", "test")


def _training_examples(copies: int = 30) -> list[T.OrderedExample]:
    """Variants of the known conversation (and of it with the recommender first) to fit the models on."""
    examples = []
    for k in range(copies):
        conversation = [(s, t.replace("comedy", f"comedy {k}")) for s, t in CONVERSATION]
        examples.append(_example(conversation, 0))
        # the same without the first message: the recommender opens, so its list comes first
        examples.append(_example([(1 - s, t) for s, t in conversation[1:]], seeker=1))
    return examples


def test_split_conversation_comes_back_in_order():
    example = _example()
    model = T.fit_models(_training_examples())
    order, seeker = model.reconstruct(example.lists)
    assert order == example.order and seeker == 0
    metrics = T.evaluate([example], [(order, seeker)])
    assert metrics["order_exact"] == metrics["message_position_accuracy"] == metrics["turn_boundary_f1"] == metrics["role_accuracy"] == 1.0


def test_role_decision_follows_the_content_not_the_list_position():
    example = _example()
    model = T.fit_models(_training_examples())
    swapped = (example.lists[1], example.lists[0])  # the recommender's list given first
    assert model.role.seeker(swapped) == 1 and model.role.seeker(example.lists) == 0


def test_merge_is_monotone_and_starts_with_the_first_list():
    example = _example()
    model = T.fit_models(_training_examples())
    for lists in (example.lists, (example.lists[0][:2], example.lists[1]), (example.lists[0], [])):
        order = model.merge.merge(lists)
        assert order.count(0) == len(lists[0]) and order.count(1) == len(lists[1])
        assert order[0] == 0
    assert T.alternation_order(example.lists)[:4] == [0, 1, 0, 1]
    assert sorted(T.relative_position_order(example.lists)) == sorted(example.order)


def test_order_from_turns_splits_merged_turns_into_messages():
    example = _example()
    turns = [(0, CONVERSATION[0][1]), (1, CONVERSATION[1][1]), (0, CONVERSATION[2][1] + "  " + CONVERSATION[3][1])]
    turns += [(s, t) for s, t in CONVERSATION[4:8]] + [(1, None)]  # masked last response; trailing seeker turn lost
    assert T.order_from_turns(example.lists, turns, titles=None) == example.order
    assert T.order_from_turns(example.lists, [(0, "something else entirely")], titles=None) is None


def test_rec_samples_and_leak_metrics():
    example = _example()

    class Link:
        items = {111, 222, 333, 444}

        def __call__(self, text):
            ids = [int(t[1:]) for t in text.split() if t.startswith("@")]
            return ids, ids

    truth = T.rec_samples(example, example.order, 0, Link())
    assert len(truth) == 4  # every recommender turn has an earlier turn
    first = truth[((1, 0),)]
    assert first == ((), (), ())
    wrong = T.evaluate([example], [([0, 1, 1, 0, 0, 1, 0, 1, 0, 0], 0)], Link())
    assert wrong["rec_turn_samples_exact"] < 1.0
    right = T.evaluate([example], [(example.order, 0)], Link())
    assert right["rec_turn_samples_exact"] == right["rec_samples_exact"] == 1.0


def test_next_message_merge_recovers_an_order_the_relative_position_merge_gets_wrong():
    example = _example()
    assert T.relative_position_order(example.lists) != example.order
    model = T.fit_models(_training_examples(), ("next_message", "next_message_mbr"))
    for method in ("next_message", "next_message_mbr"):
        assert model.reconstruct(example.lists, method) == (example.order, 0)
    # the recommender's list first (the seeker's first message dropped): still recovered
    swapped = _example([(1 - s, t) for s, t in CONVERSATION[1:]], seeker=1)
    assert model.reconstruct(swapped.lists, "next_message_mbr") == (swapped.order, 1)
    with pytest.raises(ValueError, match="unknown turn-order method"):
        model.reconstruct(example.lists, "nonsense")


def test_best_path_and_run_probabilities_are_exact_on_a_toy_lattice():
    true = [0, 0, 1, 0, 1, 1, 0]
    n = (true.count(0), true.count(1))
    switches = {}  # (i, j, last) -> does the true order switch there?
    position, last = [0, 0], None
    for side in true:
        if last is not None:
            switches[position[0], position[1], last] = side != last
        last, position[side] = side, position[side] + 1
    logit = lambda i, j, last: 4.0 if switches.get((i, j, last)) else -4.0  # noqa: E731
    assert T._best_path(n, logit, [0.0] * 4) == true
    # every message lies in exactly one run: the run probabilities covering it sum to 1
    switch = {(i, j, last, run): 1 / (1 + 2.718281828 ** -logit(i, j, last)) for i in range(n[0]) for j in range(n[1]) for last in (0, 1) for run in (1, 2, 3)}
    for side in (0, 1):
        runs = T._run_probabilities(n, switch, side)
        for k in range(n[side]):
            assert sum(p for (a, b, _), p in runs.items() if a <= k <= b) == pytest.approx(1.0)
        assert max(runs, key=runs.get) == ((0, 1, 0) if side == 0 else (0, 0, 2))


def test_item_sets_metric_counts_item_sets_not_other_entities():
    example = _example()

    class Link:
        items = {111, 222, 333, 444}

        def __call__(self, text):
            ids = [int(t[1:]) for t in text.split() if t.startswith("@")]
            return ids + ([999] if "Jim Carrey" in text else []), ids

    # "and anything with Jim Carrey" (non-item entity 999) after the recommender's "Have you seen @333 ?":
    # every recommender turn keeps its messages and item sets; all but the first see the entities in
    # another order (or without 999), so their full rows differ
    moved = [0, 1, 0, 1, 0, 0, 1, 0, 1, 0]
    metrics = T.evaluate([example], [(moved, 0)], Link())
    assert metrics["rec_turn_item_sets_exact"] == 1.0 and metrics["rec_turn_samples_exact"] == 0.25
    # "I like @111 and @222" after the recommender's question: its turn gains 111 and 222 in context
    early = [0, 0, 0, 1, 1, 0, 1, 0, 1, 0]
    metrics = T.evaluate([example], [(early, 0)], Link())
    assert metrics["counts"]["samples_true"] == 4 and metrics["counts"]["item_sets_exact"] == 2
    assert metrics["rec_turn_item_sets_exact"] == 0.5
    assert T.evaluate([example], [(example.order, 0)], Link())["rec_turn_item_sets_exact"] == 1.0


def test_cross_validation_never_fits_on_the_held_out_fold(monkeypatch):
    examples = _training_examples(6)
    for number, example in enumerate(examples):
        example.conversation_id = f"c{number}"
    fitted = []
    real_fit = T.fit_models

    def recording_fit(train, methods=T.MERGE_METHODS):
        fitted.append({e.conversation_id for e in train})
        return real_fit(train, methods)

    monkeypatch.setattr(T, "fit_models", recording_fit)
    result = T.cross_validate(examples, k=3)
    assert len(fitted) == 3
    for held, train_ids in zip(T.folds(len(examples), 3), fitted):
        held_ids = {examples[n].conversation_id for n in held}
        assert not held_ids & train_ids and len(held_ids | train_ids) == len(examples)
    assert f"{T.DEFAULT_METHOD}+learned_role" in result
    assert all(m["conversations"] == len(examples) for m in result.values())


def test_held_out_texts_exclude_duplicates_but_not_stock_phrases():
    held = {"test": [{"conversationId": "t1", "messages": [{"text": t, "senderWorkerId": s} for s, t in CONVERSATION]}]}
    held["test"] += [{"conversationId": f"g{k}", "messages": [{"text": "Hi, what kind of movies do you like?", "senderWorkerId": 1}]} for k in range(10)]
    texts = T.HeldOutTexts(held, titles=None)
    assert texts.overlapping([t for _, t in CONVERSATION])  # the same conversation
    assert texts.overlapping([CONVERSATION[0][1], CONVERSATION[1][1], CONVERSATION[6][1], "something new"])  # near-duplicate: 3 long messages
    assert not texts.overlapping(["Hi, what kind of movies do you like?", "I like horror films a lot, anything scary"])


# ------------------------------------------------------------------------------------------------
# Real files
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real():
    from datasets_scripts import paths

    try:
        root = paths.resolve_data_dir()
        paths.data_file(T.ZIP_FILE, root)
    except FileNotFoundError as error:  # pragma: no cover - depends on the machine
        pytest.skip(f"real data not available: {error}")
    from datasets_scripts.redial import read_conversations

    return root, read_conversations(root / paths.VALID_FILE), read_conversations(root / paths.TEST_FILE), read_conversations(root / paths.TRAIN_FILE)


def test_real_ordered_sources_exclude_validation_and_test(real):
    root, validation, test, train = real
    ordered = T.ordered_examples(root, train, {"validation": validation, "test": test})
    held_ids = {c["conversationId"] for c in validation + test}
    assert not {e.conversation_id for e in ordered.examples} & held_ids
    assert ordered.stats["cfcrs"]["dropped_id_in_validation_or_test"] == 88
    assert ordered.stats["lmh85"]["dropped_id_in_validation_or_test"] == 34
    held = T.HeldOutTexts({"validation": validation, "test": test}, T.movie_titles(root))
    added = [c for source, conversations in ordered.conversations.items() if source != "release" for c in conversations]
    assert len(added) > 1000 and not [c for c in added if held.overlapping([t for _, t in T.conversation_messages(c)])]
    assert T.check_lmh85(root, train + validation)["turn_texts_identical"] == 60


def test_real_default_train_split_is_large_and_disjoint_from_validation_and_test(real):
    from datasets_scripts.redial import load_redial

    root, validation, test, _ = real
    dataset, statistics = load_redial(root, return_statistics=True)
    assert statistics["train_source"] == "reconstructed"
    assert statistics["turn_order"]["method"] == T.DEFAULT_METHOD
    assert statistics["train"]["conversations"] >= 8500
    train_ids = set(dataset["train"]["conversation_id"])
    assert not train_ids & {c["conversationId"] for c in validation + test}
    assert statistics["validation"]["conversations"] == 901 and statistics["test"]["conversations"] == 1342

    # text: no added training conversation is (a near-duplicate of) a validation/test conversation
    titles = T.movie_titles(root)
    entries = T.read_split_conversations(root)
    index = T.EntryIndex(entries, titles)
    held_entries = {index.match(T.conversation_messages(c)) for c in validation + test} - {None}
    assert len(held_entries) == 901
    reconstructed = [int(i[len(T.ID_PREFIX):]) for i in train_ids if i.startswith(T.ID_PREFIX)]
    assert len(reconstructed) >= 7000 and not set(reconstructed) & held_entries
    held = T.HeldOutTexts({"validation": validation, "test": test}, titles)
    assert not [k for k in reconstructed if held.overlapping(entries[k].lists[0] + entries[k].lists[1])]
