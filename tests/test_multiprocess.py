"""Every stage under two processes (DDP with gloo on the CPU), as a user launches it:

    accelerate launch --multi_gpu --num_processes 2 examples/<stage>.py ...

and evaluation gathered across processes: the metrics of a 2-process evaluation equal the
1-process ones on a split whose size does not divide evenly (examples repeated to even out the
last batch must be dropped, none counted twice)."""
from __future__ import annotations

import json
import socket
import sys

import pytest

from fake_data import make_fake_data_dir
from run_helpers import REPO, run_checked

TINY_MODEL = {"d_model": 16, "kg_dim": 8, "ffn_dim": 16, "attention_heads": 2, "num_bases": 2,
              "item_graph_encoder": "featureless", "mim_form": "contrastive"}


def free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "1", "--mixed_precision", "no",
          "--dynamo_backend", "no"]


def run(args, timeout=300):
    if args[:len(LAUNCH)] == LAUNCH:
        args = [*LAUNCH, "--main_process_port", free_port(), *args[len(LAUNCH):]]
    return run_checked(args, timeout=timeout, OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    data_dir = make_fake_data_dir(root / "data")
    (root / "tiny.json").write_text(json.dumps(TINY_MODEL))
    common = ["--data_dir", str(data_dir), "--cache_dir", str(root / "cache"), "--include_recovered", "false"]
    stage = ["--batch_size", "1", "--max_steps", "3", "--checkpoint_steps", "2", "--eval_steps", "2"]
    launch = [*LAUNCH, "--num_processes", "2"]
    run([*launch, "examples/pretrain_mim.py", "--output_dir", str(root / "mim"), *stage, *common, "--model_config", str(root / "tiny.json")])
    run([*launch, "examples/train_recommender.py", "--output_dir", str(root / "rec"), *stage, *common, "--init_from", str(root / "mim" / "best")])
    run([*launch, "examples/train_conversation.py", "--output_dir", str(root / "conv"), *stage, *common,
         "--init_from", str(root / "rec" / "best"), "--generation_batches", "1"])
    return {"root": root, "common": common}


def test_every_stage_trains_under_two_processes(two_process_run):
    root = two_process_run["root"]
    for stage in ("mim", "rec", "conv"):
        summary = json.loads((root / stage / "summary.json").read_text())
        assert summary["steps"] == 3 and (root / stage / "best" / "model.safetensors").exists()
        assert (root / stage / "checkpoints" / "step_3").is_dir()


def test_evaluation_gathers_each_example_once(two_process_run):
    """The train split (3 conversation turns) on 2 processes with batch size 1: process 1 repeats an
    example to even out the batches; the gathered metrics equal the 1-process run's."""
    root, common = two_process_run["root"], two_process_run["common"]
    evaluate = ["examples/evaluate_kgsf.py", "--model", str(root / "conv" / "best"), "--split", "train", "--batch_size", "1",
                "--generation_examples", "2", *common]
    run([*LAUNCH, "--num_processes", "2", *evaluate, "--output", str(root / "eval2.json")])
    run([sys.executable, *evaluate, "--output", str(root / "eval1.json")])
    one, two = (json.loads((root / name).read_text()) for name in ("eval1.json", "eval2.json"))
    assert (one["num_processes"], two["num_processes"]) == (1, 2)
    assert one["recommendation"]["count"] == two["recommendation"]["count"] > 0
    for key, value in one["recommendation"].items():
        assert two["recommendation"][key] == pytest.approx(value, abs=1e-6), key
    assert two["conversation"]["generated_replies"] == one["conversation"]["generated_replies"] == 2
    for key, value in one["conversation"].items():
        assert two["conversation"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
