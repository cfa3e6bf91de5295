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
