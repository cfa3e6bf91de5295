"""The decoding read: ratings joined with the hidden key, and the default chosen by reading within the latency budget."""
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "decoding_read.py"


def _module():
    spec = importlib.util.spec_from_file_location("decoding_read", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lay_out(folder: Path, latency: dict, ratings_by_decoding: dict):
    key, blind, ratings = {}, [], {}
    for name, answers in ratings_by_decoding.items():
        for index, answer in enumerate(answers):
            read_id = f"{name}-{index}"
            key[read_id] = {"decoding": name, "turn": index}
            blind.append({"id": read_id, "context": ["hi"], "human": "hello", "reply": f"reply {index}"})
            ratings[read_id] = answer
    (folder / "key.json").write_text(json.dumps(key))
    (folder / "blind.jsonl").write_text("\n".join(json.dumps(row) for row in blind))
    (folder / "metrics.json").write_text(json.dumps({
        "folder": "m", "split": "validation", "turns": 4, "machine": "test", "date": "2026-12-07", "command": "c",
        "decodings": {name: {} for name in ratings_by_decoding},
        "metrics": {name: {"latency_ms_20_tokens": latency[name], "item_ratio": 0.5} for name in ratings_by_decoding}}))
    (folder / "ratings.json").write_text(json.dumps(ratings))


def test_default_is_the_best_read_within_the_latency_budget(tmp_path):
    module = _module()
    _lay_out(tmp_path, {"greedy": 100, "beam4": 250, "slow": 900},
             {"greedy": [[1, 1, 1], [0, 1, 1]], "beam4": [[1, 1, 1], [1, 1, 1]], "slow": [[1, 1, 1], [1, 1, 1]]})
    result = module.score(module.argparse.Namespace(out_dir=str(tmp_path), ratings=str(tmp_path / "ratings.json"),
                                                    output=str(tmp_path / "out.json"), latency_budget_ms=300.0))
    assert result["default"] == "beam4"  # "slow" reads as well but is over budget
    assert result["decodings"]["greedy"]["usable"] == 1 and result["decodings"]["greedy"]["grammatical"] == 1
    assert json.loads((tmp_path / "out.json").read_text())["decodings"]["beam4"]["n"] == 2
    tied = module.score(module.argparse.Namespace(out_dir=str(tmp_path), ratings=str(tmp_path / "ratings.json"),
                                                  output=str(tmp_path / "out.json"), latency_budget_ms=1000.0))
    assert tied["default"] == "beam4"  # tie between beam4 and slow: the faster


def test_unrated_replies_are_refused(tmp_path):
    module = _module()
    _lay_out(tmp_path, {"greedy": 100}, {"greedy": [[1, 1, 1], [1, 0, 1]]})
    ratings = json.loads((tmp_path / "ratings.json").read_text())
    ratings.pop("greedy-1")
    (tmp_path / "ratings.json").write_text(json.dumps(ratings))
    with pytest.raises(SystemExit, match="not rated"):
        module.score(module.argparse.Namespace(out_dir=str(tmp_path), ratings=str(tmp_path / "ratings.json"),
                                               output=str(tmp_path / "out.json"), latency_budget_ms=300.0))
