"""The shared training loop: determinism, resume after interruption, early stopping, budgets."""
import json
import sys
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from training_kgsf.trainer import StageTrainer, TrainingArguments


class ToyDataset(torch.utils.data.Dataset):
    def __init__(self, n=40):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=generator)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def collate(examples):
    return {"x": torch.stack([e["x"] for e in examples]), "y": torch.stack([e["y"] for e in examples])}


class ToyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dropout = torch.nn.Dropout(0.2)  # makes the RNG state matter on resume
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.linear(self.dropout(x)).squeeze(-1)


def make_trainer(tmp_path, scores=None, **overrides):
    torch.manual_seed(0)
    options = dict(batch_size=8, learning_rate=0.05, max_grad_norm=1.0, num_epochs=3, patience=0, checkpoint_steps=2)
    args = TrainingArguments(output_dir=str(tmp_path), **{**options, **overrides})
    dataset = ToyDataset()
    scores = iter(scores) if scores is not None else None

    def compute_loss(model, batch):
        loss = torch.nn.functional.mse_loss(model(batch["x"]), batch["y"])
        return loss, {}

    def evaluate(model, accelerator):
        if scores is not None:
            return {"score": next(scores)}
        loss = torch.nn.functional.mse_loss(model(dataset.x), dataset.y).item()
        return {"neg_loss": -loss}

    def save_model(model, folder, metrics):
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), folder / "weights.pt")

    return StageTrainer(args, ToyModel(), dataset, collate, compute_loss, evaluate,
                        score=lambda m: next(iter(m.values())), save_model=save_model, stage="toy",
                        accelerator=Accelerator(cpu=True))


def final_weights(trainer):
    return {k: v.clone() for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}


def test_loss_goes_down_and_outputs_are_written(tmp_path):
    trainer = make_trainer(tmp_path)
    summary = trainer.train()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 3  # one evaluation per epoch
    assert records[-1]["neg_loss"] > records[0]["neg_loss"]
    assert summary["steps"] == 15 and (tmp_path / "best" / "weights.pt").exists()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_15"]


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    reference = make_trainer(tmp_path / "straight")
    reference.train()
    expected = final_weights(reference)

    interrupted = make_trainer(tmp_path / "resumed", max_steps=7)  # stops mid-epoch 1
    assert interrupted.train()["steps"] == 7
    # a crash loses everything after the newest checkpoint: drop the final one to mimic it
    checkpoints = tmp_path / "resumed" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_7"]

    resumed = make_trainer(tmp_path / "resumed", resume=True)
    assert resumed.state.step == 0
    summary = resumed.train()
    assert summary["steps"] == 15
    for name, tensor in final_weights(resumed).items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0)


def test_early_stopping_keeps_the_best(tmp_path):
    trainer = make_trainer(tmp_path, scores=[0.1, 0.5, 0.4, 0.3, 0.2], eval_steps=2, num_epochs=10)
    trainer.args.patience = 2
    summary = trainer.train()
    assert summary["best_step"] == 4 and summary["best_score"] == 0.5
    # evaluations at steps 2, 4, 5 (end of epoch 0: 40 examples / 8) and 6; 5 and 6 do not improve
    assert summary["steps"] == 6
    assert (tmp_path / "best" / "weights.pt").exists()


def test_time_budget_stops(tmp_path):
    trainer = make_trainer(tmp_path, time_budget=1e-9, num_epochs=50)
    assert trainer.train()["steps"] == 1


_KILLED_RUN = """
import sys, time
sys.path[:0] = [{tests!r}, {examples!r}]
import test_trainer
trainer = test_trainer.make_trainer({out!r}, resume={resume}, checkpoint_steps=1)
if not {resume}:  # slow the first run down so that it is killed mid-way
    inner = trainer.compute_loss
    trainer.compute_loss = lambda model, batch: (time.sleep(0.3), inner(model, batch))[1]
trainer.train()
import torch
torch.save(trainer.accelerator.unwrap_model(trainer.model).state_dict(), {out!r} + "/final.pt")
"""


def test_resume_after_sigkill(tmp_path):
    import signal
    import subprocess
    import time

    here = Path(__file__).resolve().parent
    out = str(tmp_path / "killed")

    def script(resume):
        return _KILLED_RUN.format(tests=str(here), examples=str(here.parent / "examples"), out=out, resume=resume)

    process = subprocess.Popen([sys.executable, "-c", script(False)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = Path(out) / "checkpoints"
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name == "step_4" for p in checkpoints.glob("step_*")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (Path(out) / "final.pt").exists(), "the run finished before it could be killed"

    subprocess.run([sys.executable, "-c", script(True)], check=True, capture_output=True)
    reference = make_trainer(tmp_path / "straight")
    reference.train()
    resumed = torch.load(Path(out) / "final.pt")
    for name, tensor in final_weights(reference).items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0)


# --------------------------------------------------------------------------- the one path for CPU and GPU (issue #26)
def test_learning_rate_scales_with_the_global_batch():
    from training_kgsf.trainer import scaled_learning_rate

    assert scaled_learning_rate(1e-3, 512, 32, "none") == 1e-3
    assert scaled_learning_rate(1e-3, 512, 32, "linear") == pytest.approx(16e-3)
    assert scaled_learning_rate(1e-3, 512, 32, "sqrt") == pytest.approx(4e-3)
    with pytest.raises(ValueError, match="lr_scale_with_batch"):
        scaled_learning_rate(1e-3, 512, 32, "cubic")


def test_trainer_uses_the_scaled_learning_rate(tmp_path):
    trainer = make_trainer(tmp_path, lr_scale_with_batch="linear", lr_reference_batch=4)  # batch 8 -> x2
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.1) and trainer.learning_rate == pytest.approx(0.1)


def test_logged_loss_is_the_mean_since_the_previous_line(tmp_path):
    """The step keeps the loss on the device; every log_steps the mean of the window is written once."""
    trainer = make_trainer(tmp_path, log_steps=5, num_epochs=2)
    steps = []
    inner = trainer.compute_loss

    def compute_loss(model, batch):
        loss, logs = inner(model, batch)
        steps.append(loss.item())
        return loss, {"twice": loss.detach() * 2}

    trainer.compute_loss = compute_loss
    trainer.train()
    lines = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [5, 10]
    assert [line["examples"] for line in lines] == [40, 80]  # 5 batches of 8
    for line, first in zip(lines, (0, 5)):
        assert line["loss"] == pytest.approx(sum(steps[first: first + 5]) / 5, rel=1e-6)
        assert line["twice"] == pytest.approx(2 * line["loss"], rel=1e-6)


def test_save_last_keeps_the_last_weights_beside_the_best(tmp_path):
    trainer = make_trainer(tmp_path, scores=[0.5, 0.1, 0.2], num_epochs=3, save_last=True)
    summary = trainer.train()
    assert summary["best_step"] == 5 and summary["last_step"] == summary["steps"] == 15 and summary["last_score"] == 0.2
    last = torch.load(tmp_path / "last" / "weights.pt")
    for name, tensor in final_weights(trainer).items():
        torch.testing.assert_close(last[name], tensor, rtol=0, atol=0)
    assert not torch.equal(torch.load(tmp_path / "best" / "weights.pt")["linear.weight"], last["linear.weight"])
    # examples per second of the training steps: evaluations and saves are left out
    assert summary["examples_seen"] == 120 and summary["epochs_seen"] == 3.0
    assert summary["examples_per_second"] == pytest.approx(120 / (summary["train_seconds"] - summary["overhead_seconds"]), rel=0.1)  # seconds rounded to 1 ms
    assert 0 < summary["overhead_seconds"] < summary["train_seconds"]
