"""The turn-order merge as a data switch: ``load_redial(turn_order_method=...)`` and
``DataArguments.turn_order_method`` reach the reconstruction, and the processed-split cache is kept
per method (a second method must not reuse the first one's rows).

Runs on the fake data directory; the reconstruction itself is replaced by a recorder that returns
conversations depending on the method it was given (the real merges are tested in test_turn_order.py).
"""
from __future__ import annotations

import pytest

from datasets_scripts import turn_order as T
from datasets_scripts.redial import load_redial
from fake_data import make_conversation, make_fake_data_dir


@pytest.fixture
def reconstruction(tmp_path, monkeypatch):
    """``(data_dir, cache_dir, calls)``: a fake data directory with the reconstructed source's files
    present (their contents are never read) and ``turn_order.train_sources`` recording its ``method``:
    one rebuilt conversation for ``learned_merge``, two for any other method."""
    data_dir = make_fake_data_dir(tmp_path / "data")
    for name in (T.ZIP_FILE, T.CFCRS_FILE, T.LMH85_FILE):
        (data_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / name).write_text("")
    calls = []

    def recording_train_sources(data_dir, train, validation, test, reconstruct=True, method=T.DEFAULT_METHOD):
        calls.append(method)
        count = 1 if method == "learned_merge" else 2
        rebuilt = [make_conversation(f"{T.ID_PREFIX}{k}", [("I like horror movies", 1), ("watch @111 !", 2)], {"111": ""})
                   for k in range(count)]
        return {"reconstructed": rebuilt}, {"method": method, "reconstructed": {"kept": count}}

    monkeypatch.setattr(T, "train_sources", recording_train_sources)
    return data_dir, tmp_path / "cache", calls


def _processed(cache_dir):
    return sorted(path.name for path in (cache_dir / "processed").iterdir() if not path.name.endswith(".tmp"))


def test_method_reaches_the_reconstruction_and_keys_the_cache(reconstruction):
    data_dir, cache_dir, calls = reconstruction
    old, old_stats = load_redial(data_dir, cache_dir=cache_dir, train_source="reconstructed", turn_order_method="learned_merge",
                                 return_statistics=True)
    new, new_stats = load_redial(data_dir, cache_dir=cache_dir, train_source="reconstructed", return_statistics=True)
    assert calls == ["learned_merge", T.DEFAULT_METHOD]
    assert len(_processed(cache_dir)) == 2  # one processed split per method
    assert old_stats["turn_order"]["method"] == "learned_merge" and new_stats["turn_order"]["method"] == T.DEFAULT_METHOD
    rebuilt = [sorted(i for i in set(d["train"]["conversation_id"]) if i.startswith(T.ID_PREFIX)) for d in (old, new)]
    assert rebuilt == [[f"{T.ID_PREFIX}0"], [f"{T.ID_PREFIX}0", f"{T.ID_PREFIX}1"]]
    assert len(new["train"]) > len(old["train"])

    # each method reads its own cached rows back; the default named explicitly is the same split
    again = load_redial(data_dir, cache_dir=cache_dir, train_source="reconstructed", turn_order_method="learned_merge")
    named = load_redial(data_dir, cache_dir=cache_dir, train_source="reconstructed", turn_order_method=T.DEFAULT_METHOD)
    assert calls == ["learned_merge", T.DEFAULT_METHOD] and len(_processed(cache_dir)) == 2
    assert again["train"]["conversation_id"] == old["train"]["conversation_id"]
    assert named["train"]["conversation_id"] == new["train"]["conversation_id"]


def test_data_arguments_pass_the_method_through(reconstruction):
    from training_kgsf.data import DataArguments, KGSFData

    data_dir, cache_dir, calls = reconstruction
    data = KGSFData(DataArguments(data_dir=str(data_dir), cache_dir=str(cache_dir), train_source="reconstructed",
                                  turn_order_method="learned_merge"))
    assert calls == ["learned_merge"]
    assert data.statistics()["turn_order_method"] == "learned_merge"
    assert data.statistics()["conversations"]["train"] == 3  # the release's 2 + the 1 rebuilt by learned_merge


def test_method_errors_are_one_line(reconstruction):
    data_dir, cache_dir, calls = reconstruction
    with pytest.raises(ValueError, match="unknown turn_order_method 'shuffle'; expected one of learned_merge"):
        load_redial(data_dir, cache_dir=cache_dir, train_source="reconstructed", turn_order_method="shuffle")
    with pytest.raises(ValueError, match="applies to train_source='reconstructed' only, not 'release'"):
        load_redial(data_dir, cache_dir=cache_dir, train_source="release", turn_order_method="learned_merge")
    assert calls == []
