"""``--train_files`` refuses conversations of the validation and test splits, by id and by text
(datasets_scripts/redial.py, ``refuse_held_out_conversations``), on the tiny fake data directory."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from datasets_scripts.redial import load_redial
from fake_data import CONVERSATIONS, make_fake_data_dir, write_jsonl

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return make_fake_data_dir(tmp_path_factory.mktemp("data")), tmp_path_factory.mktemp("cache")


def train_file(folder: Path, name: str, conversations: list[dict]) -> Path:
    path = folder / name
    write_jsonl(path, conversations)
    return path


def test_a_validation_conversation_is_refused_with_its_id(fake, tmp_path):
    data_dir, cache = fake
    path = train_file(tmp_path, "with_validation.jsonl", CONVERSATIONS["train"] + CONVERSATIONS["valid"])
    with pytest.raises(ValueError) as error:
        load_redial(data_dir, cache, train_files=[path], include_recovered=False)
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message and "conversation 20 is in the validation split" in message


def test_a_test_conversation_with_a_new_id_is_refused_by_its_text(fake, tmp_path):
    data_dir, cache = fake
    renamed = copy.deepcopy(CONVERSATIONS["test"][0])
    renamed["conversationId"] = "777"
    for message in renamed["messages"]:
        message["text"] = "  " + message["text"].upper() + " "  # case and spacing do not hide it
    path = train_file(tmp_path, "renamed_test.jsonl", CONVERSATIONS["train"] + [renamed])
    with pytest.raises(ValueError, match=r"renamed_test\.jsonl: conversation 777 has the text of test conversation 30"):
        load_redial(data_dir, cache, train_files=[path], include_recovered=False)


def test_clean_train_files_load(fake, tmp_path):
    data_dir, cache = fake
    changed = copy.deepcopy(CONVERSATIONS["test"][0])
    changed["conversationId"] = "778"
    changed["messages"][-1]["text"] = "you should watch @111"  # another conversation: not refused
    path = train_file(tmp_path, "clean.jsonl", CONVERSATIONS["train"] + [changed])
    dataset = load_redial(data_dir, cache, train_files=[path], include_recovered=False)
    assert "778" in set(dataset["train"]["conversation_id"])


def test_the_stage_flag_prints_one_line(fake, tmp_path):
    """``--train_files`` of a stage script fails with the check's line (the last of the traceback)."""
    data_dir, cache = fake
    path = train_file(tmp_path, "stage_train.jsonl", CONVERSATIONS["valid"])
    result = subprocess.run([sys.executable, "examples/pretrain_mim.py", "--output_dir", str(tmp_path / "out"),
                             "--data_dir", str(data_dir), "--cache_dir", str(cache), "--train_source", "release",
                             "--train_files", str(path), "--max_steps", "1"], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode != 0
    assert f"ValueError: training file {path}: conversation 20 is in the validation split" in result.stderr
