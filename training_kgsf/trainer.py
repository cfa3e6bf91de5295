"""The training loop shared by the three KGSF stages (MIM pre-training, recommender, conversation).

Accelerate does the device placement, data parallelism, gradient clipping and checkpointing, so
one script runs as ``python examples/x.py`` on a CPU and as ``accelerate launch examples/x.py`` on
several processes, GPUs or machines without edits.

Why not ``transformers.Trainer``: we kept this loop after weighing it. It is tested for a
bit-identical result after a SIGKILL and resume (atomic checkpoints, per-epoch seeded order
restored mid-epoch), and its evaluation hooks compute metrics inside the loop on every process
(recall over 6,924 items, generation) instead of gathering logits; reproducing both in
``Trainer`` means overriding its ``evaluate``/``prediction_step`` and re-validating resume, for
no change a user would see. What a ``Trainer`` user expects is here under the same names where
they exist (``output_dir``, ``seed``, ``learning_rate``, ``max_grad_norm``, ``max_steps``,
``eval_steps``, ``ddp_find_unused_parameters``, ``resume``), and ``accelerate launch`` /
``accelerate config`` work as with any Accelerate script.

What the loop adds on top of Accelerate:

* deterministic data order: the shuffle of epoch ``e`` is a permutation seeded with
  ``seed + e`` (:class:`EpochShuffleSampler`), so a resumed run sees the same batches; with
  ``group_by_length`` and per-example lengths (the conversation stage) the batches hold examples of
  similar length (:class:`LengthGroupedSampler`, from the same permutation);
* ``accelerator.save_state`` every ``checkpoint_steps`` (model, optimiser, RNG states and the
  loop's own :class:`LoopState`), and ``--resume`` continuing from the newest checkpoint, also
  after a SIGKILL (checkpoints are written to a temporary folder and renamed when complete);
* evaluation every ``eval_steps`` and at the end of each epoch, early stopping with ``patience``,
  and the best weights kept as a ``save_pretrained`` folder;
* a tqdm progress bar with loss and throughput; JSON-lines logs of the training loss
  (``train_log.jsonl``, every ``log_steps``: the mean since the previous line, summed on the device,
  so the step itself never waits for a GPU) and of every evaluation (``metrics.jsonl``);
* one path for a CPU and a GPU: bf16 autocast (``bf16``), fused Adam, batches pinned and copied
  without blocking on a GPU, prepared ahead by ``num_workers`` processes (``prefetch_batches``
  each), ``torch_compile``, and the learning rate scaled for a larger batch
  (``lr_scale_with_batch``); the summary reports the training examples per second (evaluations,
  saves and checkpoints left out);
* ``save_last``: the last step's weights as a model folder ``last/`` beside ``best/``;
* ``max_steps`` and ``time_budget`` (seconds) for short runs;
* several processes (DDP): parameters that get no gradient in a stage (the decoder while the
  recommender trains, the recommender while MIM pre-trains...) are found with one probe step
  before training (random state restored afterwards) and frozen for the stage, so the DDP
  reducer never waits for them; nothing changes for one process, where such parameters are
  never updated either. What a batch uses can still vary (a context without words or entities
  skips their encoder), so DDP also runs with ``find_unused_parameters=True`` by default
  (``ddp_find_unused_parameters``, transformers.Trainer's default too); without it such a batch
  makes the processes wait for each other for ever.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, set_seed
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm


@dataclass
class TrainingArguments:
    """Options of one training stage (parsed with ``transformers.HfArgumentParser``)."""

    output_dir: str = field(metadata={"help": "Folder for checkpoints, logs and the final model."})
    seed: int = field(default=42, metadata={"help": "Seed for initialisation, data order and sampling."})
    batch_size: int = field(default=32, metadata={"help": "Examples per batch and process."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate."})
    max_grad_norm: float = field(default=0.1, metadata={"help": "Gradient clipping (L2 norm)."})
    num_epochs: int = field(default=30, metadata={"help": "Upper bound on epochs."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimiser steps (-1: no bound)."})
    time_budget: float = field(default=-1, metadata={"help": "Stop after this many seconds of training (-1: no bound)."})
    eval_steps: int = field(default=0, metadata={"help": "Evaluate every N steps (0: only at the end of each epoch)."})
    patience: int = field(default=3, metadata={"help": "Stop after this many evaluations without improvement (0: never)."})
    checkpoint_steps: int = field(default=200, metadata={"help": "accelerator.save_state every N steps (0: never)."})
    resume: bool = field(default=False, metadata={"help": "Continue from the newest checkpoint in output_dir."})
    log_steps: int = field(default=10, metadata={"help": "Update the progress bar's loss every N steps."})
    num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes."})
    bf16: bool = field(default=False, metadata={
        "help": "Compute the training losses under torch.autocast(bfloat16) (weights, gradients and Adam stay float32; "
                "evaluation in float32). Measured on 2 CPU cores with AMX (benchmarks/bench_throughput.py): conversation "
                "training ~1.2x faster, losses within 1 percent of float32 over 40 steps; slower on CPUs without bfloat16 units."})
    group_by_length: bool = field(default=False, metadata={
        "help": "Batches of examples of similar length (as transformers.TrainingArguments.group_by_length): less padding "
                "(the conversation stage: 1.2x faster on 2 CPU cores), the same examples every epoch, a seeded random "
                "batch order. Off by default: in ReDial a context's length is its turn's position, and batches of "
                "similar turns raised the validation perplexity after one epoch by a quarter (docs/RESULTS.md). Used by "
                "the stages that give lengths (the conversation stage); the others shuffle as without it."})
    lr_scale_with_batch: str = field(default="none", metadata={
        "help": "Scale --learning_rate with the global batch (batch_size x processes) against --lr_reference_batch: 'none', "
                "'linear' (lr x batch / reference) or 'sqrt' (lr x sqrt(batch / reference), the usual rule for Adam). For a "
                "larger batch on a GPU: docs/results/lr_scaling_cpu.json compares the loss per example seen."})
    lr_reference_batch: int = field(default=32, metadata={"help": "The batch --learning_rate was tuned for (the reference's 32)."})
    torch_compile: bool = field(default=False, metadata={
        "help": "Run the training forward through torch.compile (the model's evaluation and saving are untouched). Off by "
                "default: measure it first (benchmarks/bench_throughput.py --compile)."})
    prefetch_batches: int = field(default=2, metadata={
        "help": "Batches each DataLoader worker prepares ahead (prefetch_factor; with --num_workers > 0). On a GPU the "
                "batches are also pinned and copied without blocking."})
    save_last: bool = field(default=False, metadata={
        "help": "Also save the weights of the last step as a model folder in <output_dir>/last (beside best/)."})
    deterministic_algorithms: bool = field(default=True, metadata={
        "help": "torch.use_deterministic_algorithms(True, warn_only=True) for the stage: without it, float sums of the "
                "graph/attention kernels may differ in the last bit from run to run on a CPU (measured), so the same seed "
                "would not give bit-identical weights."})
    full_determinism: bool = field(default=False, metadata={
        "help": "transformers.enable_full_determinism(seed): deterministic GPU kernels (slower). On a CPU the same command "
                "and seed already give bit-identical results (docs: Reproducibility)."})
    freeze_unused_parameters: bool = field(default=True, metadata={
        "help": "Freeze, for this stage, the parameters that get no gradient in a probe step (needed by DDP; no effect on results)."})
    ddp_find_unused_parameters: bool = field(default=True, metadata={
        "help": "DistributedDataParallel(find_unused_parameters=...): needed when the parameters a batch uses vary from batch to "
                "batch (a context without words or entities skips their encoders); as transformers.Trainer's default."})


def make_accelerator(args: TrainingArguments | None = None) -> Accelerator:
    """The Accelerator of a stage (DDP options from ``args``); the launcher sets the rest.

    Several processes on a machine without GPU (``accelerate launch --multi_gpu --num_processes 2``
    or ``torchrun --nproc_per_node 2``, which set ``WORLD_SIZE``): Accelerate only forms a
    process group on the CPU when asked for the CPU, so it is asked here (gloo backend).
    """
    find_unused = bool(args and args.ddp_find_unused_parameters)
    several_processes = int(os.environ.get("WORLD_SIZE", "1")) > 1
    # on a GPU the batches come from pinned memory (StageTrainer) and are copied without blocking the host
    return Accelerator(cpu=several_processes and not torch.cuda.is_available(),
                       dataloader_config=DataLoaderConfiguration(non_blocking=torch.cuda.is_available()),
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused)])


LR_SCALINGS = ("none", "linear", "sqrt")


def scaled_learning_rate(learning_rate: float, global_batch: int, reference_batch: int = 32, rule: str = "none") -> float:
    """``learning_rate`` for a global batch of ``global_batch`` examples, tuned at ``reference_batch``:
    unchanged (``none``), times ``global_batch / reference_batch`` (``linear``) or its square root (``sqrt``)."""
    if rule not in LR_SCALINGS:
        raise ValueError(f"--lr_scale_with_batch must be one of {LR_SCALINGS}, got {rule!r}")
    if reference_batch <= 0:
        raise ValueError(f"--lr_reference_batch must be positive, got {reference_batch}")
    ratio = global_batch / reference_batch
    return learning_rate * {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[rule]


def freeze_unused_parameters(model: torch.nn.Module, compute_loss: Callable, batch: dict) -> list[str]:
    """Run one forward/backward pass on ``batch`` and set ``requires_grad=False`` on the trainable
    parameters that received no gradient; returns their names. The random state (dropout, MIM
    negatives) is restored, and the gradients are cleared, so training starts as it would have."""
    with torch.random.fork_rng():
        model.train()
        loss, _ = compute_loss(model, batch)
        loss.backward()
    unused = [name for name, parameter in model.named_parameters() if parameter.requires_grad and parameter.grad is None]
    for name, parameter in model.named_parameters():
        if name in unused:
            parameter.requires_grad_(False)
        parameter.grad = None
    return unused


class EpochShuffleSampler(Sampler[int]):
    """Shuffles with a permutation seeded by ``seed + epoch``: the same order on every run and resume."""

    def __init__(self, num_examples: int, seed: int):
        self.num_examples = num_examples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_examples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_examples


MEGABATCH_BATCHES = 50  # batches per length-sorted megabatch (transformers' LengthGroupedSampler uses 50 too)


class LengthGroupedSampler(EpochShuffleSampler):
    """:class:`EpochShuffleSampler`'s permutation of epoch ``e``, cut into megabatches of
    ``megabatch_batches * batch_size`` examples, each sorted by ``lengths`` and cut into batches of
    ``batch_size``; then the batches of the whole epoch are shuffled (seeded by ``seed + e``), whole,
    so the DataLoader still cuts exactly these batches (the last, short one stays last). Each batch
    holds examples of similar length; which examples share a megabatch, and the batch order, change
    every epoch. Unlike transformers' ``LengthGroupedSampler`` the batches are not visited longest to
    shortest within a megabatch: in ReDial the context length is the turn's position, and sweeping
    from late to early turns for 50 batches in a row tripled the validation perplexity after one epoch
    (docs/RESULTS.md)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, megabatch_batches: int = MEGABATCH_BATCHES):
        super().__init__(len(lengths), seed)
        self.lengths = [int(length) for length in lengths]
        self.batch_size = batch_size
        self.megabatch_size = megabatch_batches * batch_size

    def __iter__(self) -> Iterator[int]:
        order = list(super().__iter__())
        batches = []
        for start in range(0, len(order), self.megabatch_size):
            grouped = sorted(order[start: start + self.megabatch_size], key=lambda index: -self.lengths[index])
            batches += [grouped[first: first + self.batch_size] for first in range(0, len(grouped), self.batch_size)]
        last = batches.pop() if batches and len(batches[-1]) < self.batch_size else None
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        batches = [batches[index] for index in torch.randperm(len(batches), generator=generator).tolist()]
        return iter([index for batch in batches + ([last] if last else []) for index in batch])


@dataclass
class LoopState:
    """Where the loop is; saved with every checkpoint (``register_for_checkpointing``)."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    elapsed_seconds: float = 0.0
    best_score: float = -math.inf
    best_step: int = -1
    evaluations_without_improvement: int = 0
    last_evaluated_step: int = -1
    stopped_early: bool = False
    examples_seen: int = 0
    overhead_seconds: float = 0.0  # of elapsed_seconds: evaluations, best/ saves and checkpoints

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


class LossWindow:
    """The losses (and tensor logs) of the steps since the last log line, summed on their device: the
    step never waits for the device; :meth:`means` reads it once and starts a new window."""

    def __init__(self):
        self.loss, self.logs, self.counts, self.steps = None, {}, {}, 0

    def add(self, loss: torch.Tensor, logs: dict) -> None:
        loss = loss.detach()
        self.loss = loss if self.loss is None else self.loss + loss
        self.steps += 1
        for key, value in logs.items():
            value = value.detach() if torch.is_tensor(value) else value
            self.logs[key] = value if key not in self.logs else self.logs[key] + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> tuple[float, dict]:
        loss = float(self.loss) / self.steps if self.steps else float("nan")
        logs = {key: float(value) / self.counts[key] for key, value in self.logs.items()}
        self.__init__()
        return loss, logs


class StageTrainer:
    """Trains one stage.

    Args:
        args: the loop's options.
        model: the model (a ``PreTrainedModel``); only parameters with ``requires_grad`` are trained.
        train_dataset: a map-style dataset of examples.
        collate_fn: builds a batch dict from a list of examples.
        compute_loss: ``(model, batch) -> (loss, {name: float})``.
        evaluate: ``(model, accelerator) -> {metric: value}``, run on every process (use
            ``accelerator.gather_for_metrics`` inside).
        score: ``metrics -> float``, higher is better; it picks the best weights and drives early stopping.
        save_model: ``(unwrapped_model, folder, metrics) -> None``, writes a self-contained folder.
        stage: the stage's name, for logs.
        lengths: per example of ``train_dataset``, the length that ``args.group_by_length`` groups
            batches by (None: plain shuffle).
    """

    def __init__(
        self,
        args: TrainingArguments,
        model: torch.nn.Module,
        train_dataset,
        collate_fn: Callable,
        compute_loss: Callable,
        evaluate: Callable,
        score: Callable[[dict], float],
        save_model: Callable,
        stage: str,
        accelerator: Accelerator | None = None,
        lengths: Sequence[int] | None = None,
    ):
        self.args = args
        self.stage = stage
        self.output_dir = Path(args.output_dir)
        self.accelerator = accelerator or Accelerator()
        self.compute_loss = compute_loss
        self.evaluate_fn = evaluate
        self.score = score
        self.save_model = save_model
        self.state = LoopState()
        set_seed(args.seed)

        if args.group_by_length and lengths is not None:
            self.sampler = LengthGroupedSampler(lengths, args.batch_size, args.seed)
        else:
            self.sampler = EpochShuffleSampler(len(train_dataset), args.seed)
        workers = args.num_workers > 0
        dataloader = DataLoader(
            train_dataset,
            batch_size=args.batch_size,
            sampler=self.sampler,
            collate_fn=collate_fn,
            num_workers=args.num_workers,
            pin_memory=self.accelerator.device.type == "cuda",  # page-locked: the copy to the GPU does not block
            persistent_workers=workers,  # not restarted every epoch
            prefetch_factor=args.prefetch_batches if workers else None,
            # a private generator: starting an iterator must not draw from the global RNG, or a
            # resumed run (which starts its iterator after restoring the RNG) would diverge
            generator=torch.Generator().manual_seed(args.seed),
        )
        self.frozen_unused: list[str] = []
        if args.freeze_unused_parameters and len(train_dataset):
            self.frozen_unused = freeze_unused_parameters(model, compute_loss, next(iter(dataloader)))
            if self.frozen_unused:
                self.accelerator.print(f"[{stage}] {len(self.frozen_unused)} parameter tensors get no gradient in this stage "
                                       f"and are frozen for it (e.g. {self.frozen_unused[0]})")
        parameters = [p for p in model.parameters() if p.requires_grad]
        if not parameters:
            raise ValueError(f"stage '{stage}': the model has no trainable parameters")
        self.learning_rate = scaled_learning_rate(args.learning_rate, args.batch_size * self.accelerator.num_processes,
                                                  args.lr_reference_batch, args.lr_scale_with_batch)
        # fused Adam (one kernel for all parameters, CPU and CUDA): on a CPU it is ~7x faster than the default over the
        # 74M featureless R-GCN weights
        optimizer = torch.optim.Adam(parameters, lr=self.learning_rate, fused=True)
        self.model, self.optimizer, self.dataloader = self.accelerator.prepare(model, optimizer, dataloader)
        # what the training step calls: the model, or its compiled forward (the same parameters); evaluation and saving
        # use self.model
        self.train_model = torch.compile(self.model) if args.torch_compile else self.model
        self.last_metrics: dict = {}
        self.accelerator.register_for_checkpointing(self.state)

    # ---------------------------------------------------------------- checkpoints
    @property
    def checkpoint_root(self) -> Path:
        return self.output_dir / "checkpoints"

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint (``step_<n>`` folders; incomplete ones end in ``.tmp``)."""
        if not self.checkpoint_root.exists():
            return None
        complete = [p for p in self.checkpoint_root.iterdir() if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit()]
        return max(complete, key=lambda p: int(p.name[5:]), default=None)

    def save_checkpoint(self) -> None:
        """Write the checkpoint atomically (temp folder, then rename) and keep only the newest one."""
        final = self.checkpoint_root / f"step_{self.state.step}"
        partial = self.checkpoint_root / f"step_{self.state.step}.tmp"
        if self.accelerator.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self.accelerator.save_state(str(partial))
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            os.replace(partial, final)
            for old in self.checkpoint_root.iterdir():
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def maybe_resume(self) -> None:
        if not self.args.resume:
            return
        checkpoint = self.latest_checkpoint()
        if checkpoint is None:
            self.accelerator.print(f"[{self.stage}] --resume: no checkpoint in {self.checkpoint_root}, starting fresh")
            return
        self.accelerator.load_state(str(checkpoint))
        self.accelerator.print(f"[{self.stage}] resumed from {checkpoint} (step {self.state.step}, epoch {self.state.epoch})")

    # ---------------------------------------------------------------- logs
    def log_path(self) -> Path:
        """One JSON line per evaluation."""
        return self.output_dir / "metrics.jsonl"

    def log_training(self, loss: float, logs: dict, examples_per_second: float) -> None:
        """One JSON line every ``log_steps`` steps in ``train_log.jsonl`` (the training curves): the mean loss
        (and logs) of the steps since the previous line, and the examples seen so far."""
        if self.accelerator.is_main_process:
            record = {"step": self.state.step, "epoch": self.state.epoch, "examples": self.state.examples_seen, "loss": loss, **logs,
                      "examples_per_second": round(examples_per_second, 2)}
            with (self.output_dir / "train_log.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    # ---------------------------------------------------------------- evaluation

    def run_evaluation(self) -> dict:
        started = time.time()
        try:
            return self._run_evaluation()
        finally:
            self.state.overhead_seconds += time.time() - started

    def _run_evaluation(self) -> dict:
        self.model.eval()
        with torch.no_grad():
            metrics = self.evaluate_fn(self.model, self.accelerator)
        self.model.train()
        score = self.score(metrics)
        self.last_metrics = metrics
        self.state.last_evaluated_step = self.state.step
        record = {"stage": self.stage, "step": self.state.step, "epoch": self.state.epoch, "score": score, **metrics}
        improved = score > self.state.best_score
        if improved:
            self.state.best_score, self.state.best_step = score, self.state.step
            self.state.evaluations_without_improvement = 0
            self.save(self.output_dir / "best", metrics)
        else:
            self.state.evaluations_without_improvement += 1
        if self.accelerator.is_main_process:
            with self.log_path().open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        self.accelerator.print(f"[{self.stage}] step {self.state.step}: {shown}{' (best)' if improved else ''}")
        return metrics

    def save(self, folder: Path, metrics: dict) -> None:
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            self.save_model(self.accelerator.unwrap_model(self.model), folder, metrics)
        self.accelerator.wait_for_everyone()

    # ---------------------------------------------------------------- the loop
    def out_of_budget(self, started: float) -> bool:
        args, state = self.args, self.state
        if args.max_steps > 0 and state.step >= args.max_steps:
            return True
        return args.time_budget > 0 and state.elapsed_seconds + (time.time() - started) >= args.time_budget

    def train(self) -> dict:
        """Run the stage; returns the best evaluation's metrics (and leaves ``best/`` on disk)."""
        args, state = self.args, self.state
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.maybe_resume()
        self.model.train()
        started = time.time()
        steps_per_epoch = len(self.dataloader)
        finished = state.stopped_early
        progress = tqdm(
            total=steps_per_epoch * args.num_epochs if args.max_steps <= 0 else args.max_steps,
            initial=state.step,
            desc=self.stage,
            disable=not self.accelerator.is_local_main_process,
            dynamic_ncols=True,
        )
        window = LossWindow()
        while not finished and state.epoch < args.num_epochs:
            self.dataloader.set_epoch(state.epoch)
            batches = self.dataloader
            if state.step_in_epoch:
                batches = self.accelerator.skip_first_batches(self.dataloader, state.step_in_epoch)
            examples_seen, window_start = 0, time.time()
            for batch in batches:
                with torch.autocast(self.accelerator.device.type, dtype=torch.bfloat16, enabled=args.bf16):
                    loss, logs = self.compute_loss(self.train_model, batch)
                self.accelerator.backward(loss)
                if args.max_grad_norm > 0:
                    self.accelerator.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                window.add(loss, logs)  # on the device: no host synchronisation in the step
                state.step += 1
                state.step_in_epoch += 1
                batch_examples = next(iter(batch.values())).shape[0] * self.accelerator.num_processes
                examples_seen += batch_examples
                state.examples_seen += batch_examples
                progress.update(1)
                if state.step % args.log_steps == 0:
                    mean_loss, mean_logs = window.means()  # the one read of the device every log_steps steps
                    throughput = examples_seen / max(time.time() - window_start, 1e-9)
                    progress.set_postfix(loss=f"{mean_loss:.4f}", ex_per_s=f"{throughput:.1f}", **{k: f"{v:.4f}" for k, v in mean_logs.items()})
                    self.log_training(mean_loss, mean_logs, throughput)
                if args.eval_steps and state.step % args.eval_steps == 0:
                    self.run_evaluation()
                    if args.patience and state.evaluations_without_improvement >= args.patience:
                        state.stopped_early = finished = True
                if args.checkpoint_steps and state.step % args.checkpoint_steps == 0:
                    state.elapsed_seconds += time.time() - started
                    started = time.time()
                    self.save_checkpoint()
                    state.overhead_seconds += time.time() - started
                if finished or self.out_of_budget(started):
                    finished = True
                    break
            else:  # the epoch ran to its end
                state.epoch += 1
                state.step_in_epoch = 0
                if state.last_evaluated_step != state.step:
                    self.run_evaluation()
                if args.patience and state.evaluations_without_improvement >= args.patience:
                    state.stopped_early = finished = True
        progress.close()
        if state.last_evaluated_step != state.step:  # stopped by max_steps / time_budget mid-epoch
            self.run_evaluation()
        state.elapsed_seconds += time.time() - started
        latest = self.latest_checkpoint()
        if args.checkpoint_steps and (latest is None or latest.name != f"step_{state.step}"):
            self.save_checkpoint()
        best = self.output_dir / "best"
        training_seconds = max(state.elapsed_seconds - state.overhead_seconds, 1e-9)
        summary = {"stage": self.stage, "best_step": state.best_step, "best_score": state.best_score, "steps": state.step,
                   "epochs": state.epoch, "epochs_seen": round(state.examples_seen / max(1, len(self.dataloader.dataset)), 4),
                   "train_seconds": round(state.elapsed_seconds, 3),
                   "overhead_seconds": round(state.overhead_seconds, 3), "examples_seen": state.examples_seen,
                   "examples_per_second": round(state.examples_seen / training_seconds, 2),
                   "learning_rate": self.learning_rate, "best_model": str(best)}
        if args.save_last:  # the weights of the last step (evaluated above), beside best/
            self.save(self.output_dir / "last", self.last_metrics)
            summary.update(last_step=state.step, last_score=self.score(self.last_metrics) if self.last_metrics else None,
                           last_model=str(self.output_dir / "last"))
        if self.accelerator.is_main_process:
            (self.output_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        return summary
