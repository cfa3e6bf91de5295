"""The learning rate for a larger batch (``TrainingArguments.lr_scale_with_batch``): the conversation stage's
training loss per example seen, at the reference batch and at larger ones with the scaled rate, on the real data.

    python benchmarks/lr_scaling_curve.py --output docs/results/lr_scaling_cpu.json

Every run starts from the same initial weights (``--model_config``, random initialisation, ``--seed``) and
reads the same examples in the same order (``EpochShuffleSampler``'s permutation does not depend on the
batch), through ``StageTrainer`` with the stage's own loss (graphs and recommender frozen, their
encodings computed once, logits at the labels only), for ``--examples`` examples. The training loss is
logged every ``--log_examples`` examples (the mean over those steps); at the end the validation loss
(mean token NLL) of the first ``--eval_examples`` validation turns. ``gap`` compares each larger-batch run
with the reference-batch run at the same examples seen: the relative difference of the logged losses
(``(large - small) / small``), over the second half of the curve (``mean``, ``max``) and at the end.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from accelerate import Accelerator  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from modeling_kgsf.processing_kgsf import CONV_KEYS, IGNORE_INDEX  # noqa: E402
from training_kgsf.building import ModelArguments, build_model  # noqa: E402
from training_kgsf.data import DataArguments, KGSFData  # noqa: E402
from training_kgsf.stages import conversation_loss  # noqa: E402
from training_kgsf.trainer import StageTrainer, TrainingArguments  # noqa: E402


def parse_run(text: str) -> tuple[int, str]:
    """``'128:sqrt'`` -> ``(128, 'sqrt')``."""
    batch, _, rule = text.partition(":")
    return int(batch), rule or "none"


@torch.no_grad()
def validation_loss(model, loader, graphs) -> float:
    """Mean token NLL of the reference replies."""
    model.eval()
    total = tokens = 0.0
    for batch in loader:
        count = int((batch["labels"] != IGNORE_INDEX).sum())
        total += float(model(**{key: batch[key] for key in CONV_KEYS}, graph_encodings=graphs).loss) * count
        tokens += count
    model.train()
    return total / max(tokens, 1)


def run(args, data, batch_size: int, rule: str, folder: Path) -> dict:
    torch.manual_seed(args.seed)
    model = build_model(data, ModelArguments(model_config=args.model_config), word_embeddings=False)
    model.freeze_recommender()
    with torch.no_grad():
        graphs = model.encode_graphs()
    rows = data.split("train", "conv")
    eval_loader = DataLoader(data.split("validation", "conv", args.eval_examples), batch_size=64, collate_fn=data.collator("conv"))
    training = TrainingArguments(output_dir=str(folder), seed=args.seed, batch_size=batch_size, learning_rate=args.learning_rate,
                                 lr_scale_with_batch=rule, lr_reference_batch=args.reference_batch, num_epochs=1,
                                 max_steps=args.examples // batch_size, log_steps=max(1, args.log_examples // batch_size),
                                 checkpoint_steps=0, patience=0, freeze_unused_parameters=False)
    trainer = StageTrainer(training, model, rows, data.collator("conv"),
                           compute_loss=partial(conversation_loss, logits_at_labels_only=True, graph_encodings=graphs),
                           evaluate=lambda model, accelerator: {"validation_nll": validation_loss(model, eval_loader, graphs)},
                           score=lambda metrics: -metrics["validation_nll"], save_model=lambda *_: None,
                           stage=f"batch{batch_size}_{rule}", accelerator=Accelerator(cpu=True))
    summary = trainer.train()
    curve = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    return {"batch_size": batch_size, "rule": rule, "learning_rate": trainer.learning_rate, "steps": summary["steps"],
            "examples": summary["examples_seen"], "examples_per_second": summary["examples_per_second"],
            "validation_nll": trainer.last_metrics["validation_nll"],
            "curve": [{"examples": line["examples"], "loss": round(line["loss"], 5)} for line in curve]}


def gap(small: dict, large: dict) -> dict:
    """Relative loss difference of ``large`` against ``small`` at the examples both logged."""
    reference = {point["examples"]: point["loss"] for point in small["curve"]}
    shared = [(point["examples"], (point["loss"] - reference[point["examples"]]) / reference[point["examples"]])
              for point in large["curve"] if point["examples"] in reference]
    second_half = [value for examples, value in shared if examples > large["examples"] / 2]
    return {"points": len(shared), "mean_second_half": sum(second_half) / max(1, len(second_half)),
            "max_abs_second_half": max((abs(value) for value in second_half), default=None),
            "at_end": shared[-1][1] if shared else None,
            "validation_nll": (large["validation_nll"] - small["validation_nll"]) / small["validation_nll"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_config", default="configuration/kgsf_small.json")
    parser.add_argument("--train_source", default="recovered")
    parser.add_argument("--runs", nargs="+", default=["32:none", "128:sqrt", "128:linear"],
                        help="batch:rule pairs; the first is the reference curve")
    parser.add_argument("--reference_batch", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--examples", type=int, default=4096, help="training examples per run")
    parser.add_argument("--log_examples", type=int, default=256, help="a log line every this many examples (a multiple of every batch)")
    parser.add_argument("--eval_examples", type=int, default=512)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="docs/results/lr_scaling_cpu.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = [parse_run(text) for text in args.runs]
    bad = [batch for batch, _ in runs if args.log_examples % batch or args.examples % batch]
    if bad:
        raise SystemExit(f"error: --log_examples and --examples must be multiples of every batch size (not of {bad})")
    started = time.time()
    data = KGSFData(DataArguments(train_source=args.train_source))
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for batch_size, rule in runs:
            results.append(run(args, data, batch_size, rule, Path(scratch) / f"{batch_size}_{rule}"))
            print(f"batch {batch_size} {rule}: lr {results[-1]['learning_rate']:.5f}, validation NLL {results[-1]['validation_nll']:.4f}, "
                  f"{results[-1]['examples_per_second']:.1f} examples/s", flush=True)
    record = {
        "runs": results,
        "gap_to_reference_batch": {f"{r['batch_size']}:{r['rule']}": gap(results[0], r) for r in results[1:]},
        "settings": {**vars(args), "stage": "conversation (graphs and recommender frozen, random initialisation)"},
        "seconds": round(time.time() - started, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "python " + " ".join(shlex.quote(a) for a in ["benchmarks/lr_scaling_curve.py", *(sys.argv[1:] if argv is None else argv)]),
    }
    output = Path(args.output) if Path(args.output).is_absolute() else REPO / args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record["gap_to_reference_batch"], indent=2))
    return record


if __name__ == "__main__":
    main()
