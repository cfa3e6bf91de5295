"""Training and generation throughput: the settings before issue #14 and the new defaults, side by side in one run.

    python benchmarks/bench_throughput.py --model runs/quick/conversation/best            # writes docs/results/throughput.json
    python benchmarks/bench_throughput.py --sections generation --generation_examples -1  # all 7,087 test turns
    python benchmarks/bench_throughput.py --device cuda --output docs/results/throughput_cuda.json

The sections can run in separate calls (``--sections``; each call keeps the other sections of
an existing ``--output``): all four take about 6 minutes on 2 CPU cores.

Everything runs on the real data (``--train_source``, default ``reconstructed``: 54,415 training
rows), with models built by the stages' own builder (``training.stages.build_model`` over
``--model_config``, random initialisation: speed does not depend on the weights) and the stages'
own loss functions, data collators and samplers. Before/after settings alternate within each
section (``--repeats`` rounds), so both see the same machine load; the best round is reported
(every round is kept under ``raw``).

Sections (``--sections``, default all):

* ``train``: conversation-stage training steps (forward, backward, gradient clipping, fused Adam,
  as ``StageTrainer``; graphs and recommender frozen; batch ``--batch_size``), ``--train_steps``
  batches of the epoch after one warm-up batch (the same positions in the shuffled and the
  length-grouped order, covering the length ranks of the sorted megabatches), for: **before** (eager
  attention, output logits at every position, shuffled batches), each lever alone (``sdpa``
  attention, ``logits_at_labels_only``, ``group_by_length``), **after** (the new defaults: sdpa and
  logits at the labels only) and, measured but not defaults, the defaults with ``group_by_length``
  (it costs validation perplexity, see ``TrainingArguments.group_by_length``) and under bf16 autocast
  (``TrainingArguments.bf16``).
  -> ``conversation_train_speedup`` = after / before examples per second.
* ``generation``: greedy replies (the model's default decoding: item slots, repetition control;
  at most 30 tokens, as the evaluation) for ``--generation_examples`` test turns (blocks of
  ``--generation_batch_size`` consecutive turns spread evenly over the split, as the evaluation
  batches them; -1: all 7,087), **before** (eager, ``use_cache=False``, the split's order) and
  **after** (sdpa, key/value cache, batches grouped by context length), plus the cache alone, the
  grouping alone and cache + sdpa in the split's order (what ``evaluate_model`` does now); every
  setting must give the same tokens as before (``identical_replies``). A batch decodes until its
  longest reply ends, so grouping pays only when it does not spread the few 30-token replies over
  more batches: small samples are noisy for it (the default sample is 1,024 turns).
  -> ``generation_speedup`` = after / before replies per second.
* ``recommender``: MIM and recommender training steps and evaluation forwards (nothing of the
  issue touches them; eager vs sdpa shows no slowdown) and the conversation evaluation forward.
* ``latency``: ``benchmarks/bench_inference.py``'s figures through the pipeline
  (``ConversationalRecommender``): recommendation (k=10, explained) and a 20-token greedy reply,
  before (eager, no cache) and after (defaults).

* ``gpu_path`` (issue #26; only when named): each stage's training step (conversation, recommender,
  MIM), **today** (batch 32, float32, the conversation stage re-encoding its frozen graphs every
  step) against the **new path** of ``--gpu_preset`` (configuration/reference_gpu.json: its batch
  size and bf16 per stage, the frozen graph encodings computed once; ``--compile``: torch.compile),
  about ``--gpu_path_examples`` examples per setting and round.
  -> ``gpu_path_speedup`` per stage = new path / today examples per second. With ``--device cuda``
  this is the side-by-side GPU figure of the issue::

      python benchmarks/bench_throughput.py --device cuda --sections gpu_path --output docs/results/throughput_gpu_path_cuda.json

``full_preset_full_data_hours_2cpu``: an estimate, not a measurement: the full preset's schedule
(``configuration/full.json``: MIM 3 epochs, recommender 30, conversation 30, each with one
validation evaluation per epoch, then the test evaluation) run to its epoch bound (no early
stopping) over the full train split, timed with the per-example figures measured here (new
defaults); ``raw.estimate`` shows the terms, and the same estimate with the settings before.
With ``--device cuda`` the key keeps its name and the figure is that device's.
It needs every section (a partial run keeps the other sections of an existing ``--output``).

``--model FOLDER``: a trained folder for ``generation`` and ``latency``, whose replies end where a
trained model says ``__end__`` (without it, the random model of the other sections replies: after
its few training steps it mostly says ``__end__`` at once, which measures little). Its config must
match the data (any ReDial train source: the vocabulary and graphs are the same).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from functools import partial
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_inference import PROMPTS, summary, timed  # noqa: E402
from torch.utils.data import BatchSampler  # noqa: E402

from modeling_kgsf import ConversationalRecommender  # noqa: E402
from modeling_kgsf.processing_kgsf import CONTEXT_KEYS  # noqa: E402
from training_kgsf.evaluation import generation_settings  # noqa: E402
from modeling_kgsf.processing_kgsf import CONV_KEYS  # noqa: E402
from training_kgsf.building import ModelArguments, build_model  # noqa: E402
from training_kgsf.data import DataArguments, KGSFData  # noqa: E402
from training_kgsf.stages import context_lengths, conversation_loss, mim_loss, recommendation_loss  # noqa: E402
from training_kgsf.trainer import MEGABATCH_BATCHES, EpochShuffleSampler, LengthGroupedSampler  # noqa: E402

SECTIONS = ("train", "generation", "recommender", "latency", "gpu_path")
DEFAULT_SECTIONS = ("train", "generation", "recommender", "latency")  # gpu_path: asked for by name (issue #26)
MAX_GRAD_NORM = 0.1  # TrainingArguments' default
BEFORE = {"attn_implementation": "eager", "logits_at_labels_only": False, "group_by_length": False}
AFTER = {"attn_implementation": "sdpa", "logits_at_labels_only": True, "group_by_length": False}  # the defaults
TRAIN_SETTINGS = {
    "before": BEFORE,
    "sdpa_only": {**BEFORE, "attn_implementation": "sdpa"},
    "logits_at_labels_only_only": {**BEFORE, "logits_at_labels_only": True},
    "group_by_length_only": {**BEFORE, "group_by_length": True},
    "after": AFTER,
    "after_group_by_length": {**AFTER, "group_by_length": True},  # an option: it costs validation perplexity
    "after_bf16_autocast": {**AFTER, "bf16": True},
}
GENERATION_SETTINGS = {
    "before": {"attn_implementation": "eager", "use_cache": False, "group_by_length": False},
    "cache_only": {"attn_implementation": "eager", "use_cache": True, "group_by_length": False},
    "group_by_length_only": {"attn_implementation": "eager", "use_cache": False, "group_by_length": True},
    "cache_sdpa": {"attn_implementation": "sdpa", "use_cache": True, "group_by_length": False},  # what evaluate_model now does
    "after": {"attn_implementation": "sdpa", "use_cache": True, "group_by_length": True},
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def to_device(batch: dict, device: torch.device) -> dict:
    return {key: value.to(device) for key, value in batch.items()}


def spread_batches(rows, collator, sampler, batch_size: int, count: int, device, seed: int,
                   stride: int = MEGABATCH_BATCHES) -> list[dict]:
    """``count`` batches of the sampler's epoch, the same positions for any sampler of that size:
    batch ``i`` is at rank ``i * stride // count`` of a seeded random block of ``stride`` batches.
    With a length-grouped order (blocks = its sorted megabatches) the sample covers the length
    ranks evenly (evenly spaced positions would all fall on the longest batch of a megabatch);
    with a shuffled order the positions are just some batches of a random order."""
    batches = list(BatchSampler(sampler, batch_size, drop_last=True))
    blocks = torch.randperm(max(1, len(batches) // stride), generator=torch.Generator().manual_seed(seed)).tolist()
    positions = [min(blocks[i % len(blocks)] * stride + i * stride // count, len(batches) - 1) for i in range(count)]
    return [to_device(collator([rows[i] for i in batches[position]]), device) for position in positions]


def examples_per_second(model, optimizer, compute_loss, batches: list[dict], device, bf16: bool = False, forward=None) -> float:
    """Training steps as ``StageTrainer`` runs them (``bf16``: its ``--bf16``; ``forward``: what the loss calls, e.g. the
    compiled model) over ``batches`` (the first one is a warm-up)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    forward = forward or model

    def step(batch):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = compute_loss(forward, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, MAX_GRAD_NORM)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(batches[0])
    synchronize(device)
    start = time.perf_counter()
    for batch in batches[1:]:
        step(batch)
    synchronize(device)
    return sum(b["input_ids"].shape[0] for b in batches[1:]) / (time.perf_counter() - start)


@torch.no_grad()
def forward_examples_per_second(model, forward, batches: list[dict], device) -> float:
    """Evaluation forwards (no grad) over ``batches`` (the first one is a warm-up)."""
    forward(model, batches[0])
    synchronize(device)
    start = time.perf_counter()
    for batch in batches[1:]:
        forward(model, batch)
    synchronize(device)
    return sum(b["input_ids"].shape[0] for b in batches[1:]) / (time.perf_counter() - start)


def interleaved(settings: dict, measure, repeats: int) -> dict:
    """``measure(name, setting)`` for every setting, ``repeats`` rounds in turn; best and all rounds."""
    rounds = {name: [] for name in settings}
    for _ in range(repeats):
        for name, setting in settings.items():
            rounds[name].append(measure(name, setting))
            print(f"  {name}: {rounds[name][-1]:.2f}", flush=True)
    return {name: {"best": max(values), "rounds": [round(v, 3) for v in values]} for name, values in rounds.items()}


# --------------------------------------------------------------------------- sections
def bench_train(args, data, model, device) -> dict:
    """Conversation-stage examples per second, before / each lever / after."""
    rows = data.split("train", "conv")
    collator = data.collator("conv")
    count = args.train_steps + 1
    orders = {False: EpochShuffleSampler(len(rows), args.seed),
              True: LengthGroupedSampler(context_lengths(rows), args.batch_size, args.seed)}
    batches = {grouped: spread_batches(rows, collator, sampler, args.batch_size, count, device, args.seed)
               for grouped, sampler in orders.items()}
    model.freeze_recommender()
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3, fused=True)

    def measure(name, setting):
        model.set_attn_implementation(setting["attn_implementation"])
        loss = partial(conversation_loss, logits_at_labels_only=setting["logits_at_labels_only"])
        return examples_per_second(model, optimizer, loss, batches[setting["group_by_length"]], device, setting.get("bf16", False))

    print("conversation training, examples/s:", flush=True)
    results = interleaved(TRAIN_SETTINGS, measure, args.repeats)
    padded = {("grouped" if grouped else "shuffled"): {
        "mean_padded_context": sum(b["input_ids"].shape[1] for b in group[1:]) / args.train_steps,
        "mean_padded_reply": sum(b["labels"].shape[1] for b in group[1:]) / args.train_steps,
        "mean_reply_tokens": sum(int((b["labels"] != -100).sum()) for b in group[1:]) / (args.train_steps * args.batch_size)}
        for grouped, group in batches.items()}
    model.set_attn_implementation("sdpa")
    return {"examples_per_second": results, "batches": padded, "steps": args.train_steps, "batch_size": args.batch_size,
            "speedup": results["after"]["best"] / results["before"]["best"]}


def generation_sample(rows, count: int, block: int) -> list[int]:
    """``count`` test turns (-1: all) as blocks of ``block`` consecutive turns spread evenly over the split."""
    if count < 0 or count >= len(rows):
        return list(range(len(rows)))
    blocks = max(1, count // block)
    starts = [i * (len(rows) - block) // max(1, blocks - 1) for i in range(blocks)] if blocks > 1 else [0]
    return [index for start in starts for index in range(start, start + block)][:count]


def bench_generation(args, data, model, device) -> dict:
    """Greedy replies per second on test turns, before / each lever / after, and the same tokens."""
    rows = data.split("test", "conv")
    collator = data.collator("conv")
    sample = generation_sample(rows, args.generation_examples, args.generation_batch_size)
    lengths = context_lengths(rows.select(sample))
    by_length = [sample[i] for i in sorted(range(len(sample)), key=lambda i: -lengths[i])]
    generate_kwargs = generation_settings(model, "default", "ours")  # as the evaluation: the model's decoding, <= 30 tokens
    model.eval()
    replies: dict[str, dict[int, list[int]]] = {}

    @torch.no_grad()
    def measure(name, setting):
        model.set_attn_implementation(setting["attn_implementation"])
        order = by_length if setting["group_by_length"] else sample
        out = {}
        synchronize(device)
        start = time.perf_counter()
        graphs = model.encode_graphs()  # once per call, as the evaluation (frozen_graph_inputs)
        for first in range(0, len(order), args.generation_batch_size):
            indices = order[first: first + args.generation_batch_size]
            batch = to_device(collator([rows[i] for i in indices]), device)
            sequences = model.generate(**{key: batch[key] for key in CONTEXT_KEYS}, use_cache=setting["use_cache"],
                                       graph_encodings=graphs, **generate_kwargs)
            for index, sequence in zip(indices, sequences.tolist()):
                out[index] = [token for token in sequence if token != model.config.pad_token_id]
        synchronize(device)
        seconds = time.perf_counter() - start
        replies[name] = out
        return len(order) / seconds

    measure("warm-up", GENERATION_SETTINGS["after"])  # first calls (allocations, node cache) are not timed
    print(f"generation, replies/s ({len(sample)} test turns):", flush=True)
    results = interleaved(GENERATION_SETTINGS, measure, args.repeats)
    before = replies["before"]
    identical = {name: sum(out[i] == before[i] for i in sample) for name, out in replies.items() if name in GENERATION_SETTINGS}
    model.set_attn_implementation("sdpa")
    return {"replies_per_second": results, "turns": len(sample), "batch_size": args.generation_batch_size,
            "identical_replies": identical, "mean_reply_tokens": sum(len(before[i]) - 1 for i in sample) / len(sample),
            "generate_kwargs": generate_kwargs, "speedup": results["after"]["best"] / results["before"]["best"]}


def bench_recommender(args, data, model, device) -> dict:
    """MIM / recommender training steps and evaluation forwards (eager vs sdpa), and the conversation evaluation forward."""
    model.freeze_recommender(False)
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3, fused=True)
    count = args.recommender_steps + 1
    rec_rows, conv_rows = data.split("train", "rec"), data.split("train", "conv")
    rec_batches = spread_batches(rec_rows, data.collator("rec"), EpochShuffleSampler(len(rec_rows), args.seed), args.batch_size, count,
                                 device, args.seed)
    mim_batches = spread_batches(conv_rows, data.collator("rec"), EpochShuffleSampler(len(conv_rows), args.seed), args.batch_size, count,
                                 device, args.seed)
    settings = {"before": {"attn_implementation": "eager"}, "after": {"attn_implementation": "sdpa"}}

    def training(compute_loss, batches):
        def measure(name, setting):
            model.set_attn_implementation(setting["attn_implementation"])
            return examples_per_second(model, optimizer, compute_loss, batches, device)
        return measure

    print("recommender training, examples/s:", flush=True)
    results = {"recommender_train": interleaved(settings, training(recommendation_loss, rec_batches), args.repeats)}
    print("MIM training, examples/s:", flush=True)
    results["mim_train"] = interleaved(settings, training(mim_loss, mim_batches), args.repeats)
    model.eval()
    eval_count = args.eval_batches + 1
    valid_rec, valid_conv = data.split("validation", "rec"), data.split("validation", "conv")
    eval_rec = spread_batches(valid_rec, data.collator("rec"), range(len(valid_rec)), args.eval_batch_size, eval_count, device, args.seed)
    eval_conv = spread_batches(valid_conv, data.collator("conv"), range(len(valid_conv)), args.eval_batch_size, eval_count, device,
                               args.seed)

    def forward_rate(forward, batches):
        def measure(name, setting):
            model.set_attn_implementation(setting["attn_implementation"])
            return forward_examples_per_second(model, forward, batches, device)
        return measure

    print("recommender evaluation forward, examples/s:", flush=True)
    results["recommender_eval"] = interleaved(
        settings, forward_rate(lambda m, b: m(**{k: b[k] for k in CONTEXT_KEYS}), eval_rec), args.repeats)
    print("conversation evaluation forward (perplexity), examples/s:", flush=True)
    results["conversation_eval"] = interleaved(
        settings, forward_rate(lambda m, b: m(**{k: b[k] for k in CONV_KEYS}), eval_conv), args.repeats)
    model.set_attn_implementation("sdpa")
    results["steps"], results["eval_batches"] = args.recommender_steps, args.eval_batches
    return results


def bench_latency(args, recommender: ConversationalRecommender) -> dict:
    """bench_inference.py's recommendation and 20-token reply latencies, before (eager, no cache) and after."""
    model = recommender.model

    def prompt(index):
        return PROMPTS[index % len(PROMPTS)]

    results = {}
    for round_index in range(args.repeats):
        for name, (implementation, use_cache) in {"before": ("eager", False), "after": ("sdpa", True)}.items():
            model.set_attn_implementation(implementation)
            for index in range(len(PROMPTS)):  # warm-up
                recommender.recommend(prompt(index), k=10)
                recommender.respond(prompt(index), max_new_tokens=20, min_new_tokens=20, use_cache=use_cache)
            figures = {
                "recommend_k10_explained_2hops": summary(timed(lambda i: recommender.recommend(prompt(i), k=10), args.latency_turns)),
                "reply_20_tokens_greedy": summary(timed(
                    lambda i: recommender.respond(prompt(i), max_new_tokens=20, min_new_tokens=20, use_cache=use_cache),
                    args.latency_turns)),
            }
            print(f"  latency {name}: " + ", ".join(f"{k} {v['median_ms']} ms" for k, v in figures.items()), flush=True)
            previous = results.get(name)
            if previous is None or figures["reply_20_tokens_greedy"]["median_ms"] < previous["reply_20_tokens_greedy"]["median_ms"]:
                results[name] = figures  # the best round
    model.set_attn_implementation("sdpa")
    return results


GPU_PRESET = "configuration/reference_gpu.json"
TODAY = {"batch_size": 32, "bf16": False, "frozen_graphs": False, "lr_scale_with_batch": "none"}  # the stage defaults before #26


def bench_gpu_path(args, data, model, device) -> dict:
    """Examples per second of each stage's training step, today's settings (``TODAY``: batch 32, float32, the
    conversation stage re-encoding the frozen graphs every step) against the new path (``--gpu_preset``'s batch
    size and bf16 per stage, the frozen graph encodings computed once and passed, ``--compile``: torch.compile),
    alternated in rounds on the same batches' examples. Batches are collated before timing (on the device): the
    step is measured, not the loader."""
    preset = json.loads((REPO / args.gpu_preset).read_text(encoding="utf-8"))
    conv_rows, rec_rows = data.split("train", "conv"), data.split("train", "rec")
    stages = {"conversation": (conv_rows, "conv", partial(conversation_loss, logits_at_labels_only=True)),
              "recommender": (rec_rows, "rec", recommendation_loss), "mim": (conv_rows, "rec", mim_loss)}
    results = {}
    for stage, (rows, task, loss) in stages.items():
        new = {"batch_size": preset[stage].get("batch_size", 32), "bf16": bool(preset[stage].get("bf16", False)),
               "frozen_graphs": stage == "conversation", "lr_scale_with_batch": preset[stage].get("lr_scale_with_batch", "none"),
               "compile": args.compile}
        settings = {"today": TODAY, "new_path": new}
        examples = args.gpu_path_examples
        batches = {name: spread_batches(rows, data.collator(task), EpochShuffleSampler(len(rows), args.seed), setting["batch_size"],
                                        max(2, examples // setting["batch_size"]) + 1, device, args.seed)
                   for name, setting in settings.items()}
        model.freeze_recommender(stage == "conversation")
        model.train()
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3, fused=True)
        compiled = torch.compile(model) if args.compile else None

        def measure(name, setting, stage=stage, loss=loss, batches=batches, optimizer=optimizer, compiled=compiled):
            compute_loss = loss
            if setting["frozen_graphs"]:
                with torch.no_grad():
                    graphs = model.encode_graphs()  # once per stage (train_conversation)
                compute_loss = partial(loss, graph_encodings=graphs)
            return examples_per_second(model, optimizer, compute_loss, batches[name], device, setting["bf16"],
                                       forward=compiled if setting.get("compile") else None)

        print(f"{stage} training, examples/s (today vs new path):", flush=True)
        rates = interleaved(settings, measure, args.repeats)
        results[stage] = {"examples_per_second": rates, "settings": settings,
                          "steps": {name: len(group) - 1 for name, group in batches.items()},
                          "speedup": rates["new_path"]["best"] / rates["today"]["best"]}
    model.freeze_recommender(False)
    return {**results, "preset": args.gpu_preset, "compile": args.compile}


# --------------------------------------------------------------------------- the estimate
def full_preset_estimate(raw: dict, data: KGSFData, setting: str) -> dict:
    """Hours for configuration/full.json's schedule on the full train split, from the measured rates."""
    preset = json.loads((REPO / "configuration" / "full.json").read_text(encoding="utf-8"))
    rows = {"train_conv": len(data.split("train", "conv")), "train_rec": len(data.split("train", "rec")),
            "validation_conv": len(data.split("validation", "conv")), "validation_rec": len(data.split("validation", "rec")),
            "test_conv": len(data.split("test", "conv")), "test_rec": len(data.split("test", "rec"))}
    other, train, generation = raw["recommender"], raw["train"]["examples_per_second"], raw["generation"]["replies_per_second"]
    rate = {"conversation_train": train[setting]["best"], "generation": generation[setting]["best"],
            "recommender_train": other["recommender_train"][setting]["best"], "mim_train": other["mim_train"][setting]["best"],
            "recommender_eval": other["recommender_eval"][setting]["best"],
            "conversation_eval": other["conversation_eval"][setting]["best"]}
    generated_per_evaluation = preset["conversation"].get("generation_batches", 2) * 32  # validation batches of TrainingArguments' 32
    seconds = {
        # MIM: training rows = the conversation rows; its evaluation (MIM loss on the validation rec rows) counted at the rec forward rate
        "mim": preset["mim"]["num_epochs"] * (rows["train_conv"] / rate["mim_train"] + rows["validation_rec"] / rate["recommender_eval"]),
        "recommender": preset["recommender"]["num_epochs"] * (rows["train_rec"] / rate["recommender_train"]
                                                                + rows["validation_rec"] / rate["recommender_eval"]),
        "conversation": preset["conversation"]["num_epochs"] * (rows["train_conv"] / rate["conversation_train"]
                                                                  + rows["validation_conv"] / rate["conversation_eval"]
                                                                  + generated_per_evaluation / rate["generation"]),
        "test_evaluation": rows["test_rec"] / rate["recommender_eval"] + rows["test_conv"] / rate["conversation_eval"]
                           + rows["test_conv"] / rate["generation"],
    }
    return {"hours": sum(seconds.values()) / 3600, "hours_by_stage": {k: round(v / 3600, 2) for k, v in seconds.items()},
            "rows": rows, "rates_examples_per_second": {k: round(v, 2) for k, v in rate.items()},
            "epochs": {stage: preset[stage]["num_epochs"] for stage in ("mim", "recommender", "conversation")},
            "how": "sum over stages of epochs x (training rows / measured training examples per second + validation rows / "
                   "measured evaluation forwards per second [+ generated validation replies / replies per second]) + the test "
                   "evaluation (all test turns: recommendation, perplexity, one greedy reply each); every stage runs to its epoch "
                   "bound (no early stopping), checkpoint writing and data loading not counted"}


# --------------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", default=list(DEFAULT_SECTIONS), choices=SECTIONS)
    parser.add_argument("--gpu_preset", default=GPU_PRESET, help="gpu_path: the preset whose per-stage batch size and bf16 are the new path")
    parser.add_argument("--gpu_path_examples", type=int, default=1024, help="gpu_path: timed examples per stage, setting and round")
    parser.add_argument("--compile", action="store_true", help="gpu_path: the new path's training forward through torch.compile")
    parser.add_argument("--model", default=None, help="trained folder for generation and latency (default: the random model)")
    parser.add_argument("--model_config", default="configuration/kgsf_reference.json")
    parser.add_argument("--train_source", default="reconstructed")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--cache_dir", default=None)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch_size", type=int, default=32, help="training batch (TrainingArguments' default)")
    parser.add_argument("--train_steps", type=int, default=20, help="timed conversation steps per setting and round")
    parser.add_argument("--recommender_steps", type=int, default=5, help="timed MIM / recommender steps per setting and round")
    parser.add_argument("--eval_batches", type=int, default=4)
    parser.add_argument("--eval_batch_size", type=int, default=32)
    parser.add_argument("--generation_examples", type=int, default=1024, help="test turns to reply to (-1: all 7,087)")
    parser.add_argument("--generation_batch_size", type=int, default=64, help="as evaluate_model's --batch_size")
    parser.add_argument("--latency_turns", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2, help="rounds of each section's settings, alternated")
    parser.add_argument("--output", default="docs/results/throughput.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)  # as the stages (TrainingArguments.deterministic_algorithms)

    data = KGSFData(DataArguments(data_dir=args.data_dir, cache_dir=args.cache_dir, train_source=args.train_source))
    model = build_model(data, ModelArguments(model_config=args.model_config), word_embeddings=False).to(device)
    output = REPO / args.output if not Path(args.output).is_absolute() else Path(args.output)
    previous = json.loads(output.read_text(encoding="utf-8")) if output.exists() else {}
    raw = dict(previous.get("raw", {})) if set(args.sections) != set(DEFAULT_SECTIONS) else {}
    started = time.time()
    if "train" in args.sections:
        raw["train"] = bench_train(args, data, model, device)
    if "recommender" in args.sections:
        raw["recommender"] = bench_recommender(args, data, model, device)
    if "gpu_path" in args.sections:
        raw["gpu_path"] = bench_gpu_path(args, data, model, device)
    if {"generation", "latency"} & set(args.sections):
        if args.model:
            recommender = ConversationalRecommender.from_pretrained(args.model, device=device)
        else:
            recommender = ConversationalRecommender(model, data.resources.processor)
        if "generation" in args.sections:
            raw["generation"] = bench_generation(args, data, recommender.model, device)
        if "latency" in args.sections:
            raw["latency"] = bench_latency(args, recommender)
        raw["generation_model"] = args.model or f"random initialisation of {args.model_config}"
    raw["seconds"] = {**raw.get("seconds", {}), "+".join(args.sections): round(time.time() - started, 1)}

    results = {
        "conversation_train_speedup": raw["train"]["speedup"] if "train" in raw else None,
        "generation_speedup": raw["generation"]["speedup"] if "generation" in raw else None,
        **({"gpu_path_speedup": {stage: raw["gpu_path"][stage]["speedup"] for stage in ("conversation", "recommender", "mim")}}
           if "gpu_path" in raw else {}),
        "full_preset_full_data_hours_2cpu": None,
        "full_preset_full_data_hours_estimated": True,
        "raw": raw,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
                   + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""),
        "load_average_at_end": os.getloadavg(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "python " + " ".join(shlex.quote(a) for a in ["benchmarks/bench_throughput.py",
                                                                  *(sys.argv[1:] if argv is None else argv)]),
    }
    if all(section in raw for section in ("train", "generation", "recommender")):
        estimate = full_preset_estimate(raw, data, "after")
        raw["estimate"] = {"after": estimate, "before": full_preset_estimate(raw, data, "before")}
        results["full_preset_full_data_hours_2cpu"] = round(estimate["hours"], 1)
        results["full_preset_full_data_hours_how"] = estimate["how"]
    if previous and set(args.sections) != set(DEFAULT_SECTIONS):
        results["commands"] = [*previous.get("commands", [previous.get("command")]), results["command"]]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in results.items() if k != "raw"}, indent=2))
    return results


if __name__ == "__main__":
    main()
