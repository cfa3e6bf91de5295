"""Choose the default decoding by reading: measured metrics and latency, then a blind read of replies.

    # 1. generate: metrics on --turns validation turns per decoding, 20-token reply latency, and a
    #    shuffled file of --read replies per decoding (the same turns for each) with the decoding hidden
    python benchmarks/decoding_read.py generate runs/quick/conversation/best --out_dir runs/decoding_read
    # 2. rate runs/decoding_read/blind.jsonl by hand into ratings.json: {"<id>": [grammatical, on_topic,
    #    film_where_human_did], ...} (1/0 each; the third is 1 when the human reply names no film)
    # 3. latency (optional, alone on the machine): the latencies again, on a freshly loaded model
    python benchmarks/decoding_read.py latency runs/decoding_read
    # 4. score: join the ratings with the hidden key and write the table
    python benchmarks/decoding_read.py score runs/decoding_read --ratings runs/decoding_read/ratings.json \\
        --output docs/results/decoding_read.json

A reply is **usable** when all three answers are yes. The chosen default is the decoding with the
most usable replies among those whose median 20-token reply (batch of one, ``min_new_tokens=20``)
takes at most ``--latency_budget_ms`` (300) on this machine; ties go to the faster decoding.
Metrics are our counting (replies stop at ``__end__``), BLEU unsmoothed as the evaluation computes it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training_kgsf.building import ModelArguments, build_model  # noqa: E402
from training_kgsf.data import DataArguments, KGSFData  # noqa: E402
from training_kgsf.evaluation import evaluate_conversation  # noqa: E402
from training_kgsf.evaluation import conversation_dataloader, item_entities_of_tokens  # noqa: E402
from training_kgsf.evaluate_folder import render  # noqa: E402
from modeling_kgsf.processing_kgsf import CONTEXT_KEYS  # noqa: E402

#: The decodings compared: each is added to the model's saved generation config.
DECODINGS = {
    "greedy": {"num_beams": 1, "do_sample": False},
    "beam4": {"num_beams": 4, "do_sample": False},
    "sampling": {"do_sample": True, "top_p": 0.9, "temperature": 0.7, "num_beams": 1},
}
RUBRIC = ("grammatical", "on_topic", "film_where_human_did")


def machine() -> str:
    return f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch {torch.__version__}, no GPU"


def reply_latency_ms(model, rows, collator, kwargs: dict, repeats: int, seed: int) -> float:
    """Median wall time of one 20-token reply (batch of one) over ``repeats`` turns."""
    times = []
    for index in range(repeats + 2):  # two warm-up turns
        batch = collator([rows[index % len(rows)]])
        torch.manual_seed(seed)
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(**{key: batch[key] for key in CONTEXT_KEYS}, max_new_tokens=20, min_new_tokens=20, **kwargs)
        if index >= 2:
            times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def generate(args) -> None:
    from accelerate import Accelerator

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(cpu=True)
    data = KGSFData(DataArguments(data_dir=args.data_dir, cache_dir=args.cache_dir), args.folder)
    model = build_model(data, ModelArguments(init_from=args.folder)).eval()
    rows = data.split("validation", "conv")
    picked = sorted(random.Random(args.seed).sample(range(len(rows)), min(args.turns, len(rows))))
    rows = rows.select(picked)
    read_positions = sorted(random.Random(args.seed + 1).sample(range(len(rows)), min(args.read, len(rows))))
    item_entities = item_entities_of_tokens(data.tokenizer, data.resources.item_token_vocab_mask,
                                            data.resources.entities.movie_id_to_entity)
    titles = data.resources.entities.movie_id_to_title
    collator = data.collator("conv")
    metrics, reads = {}, []
    for name, kwargs in DECODINGS.items():
        samples = []
        torch.manual_seed(args.seed)
        loader = conversation_dataloader(rows, collator, args.batch_size, accelerator)
        started = time.perf_counter()
        results = evaluate_conversation(model, loader, accelerator, data.tokenizer, samples=samples, item_entities=item_entities,
                                        generation_kwargs=dict(kwargs), max_new_tokens=30)
        results["seconds"] = round(time.perf_counter() - started, 1)
        results["latency_ms_20_tokens"] = reply_latency_ms(model, rows, collator, kwargs, args.latency_turns, args.seed)
        metrics[name] = results
        print(json.dumps({name: {key: results.get(key) for key in ("distinct-4_per_sentence", "item_ratio", "rec_in_reply",
                                                                   "bleu-1", "loop_rate", "latency_ms_20_tokens")}}), flush=True)
        for position in read_positions:
            context, reference, generated = samples[position]
            reads.append({"decoding": name, "turn": picked[position],
                          "context": [turn.strip() for turn in render(data.tokenizer, context, titles).split("_split_")][-3:],
                          "human": render(data.tokenizer, reference, titles),
                          "reply": render(data.tokenizer, generated, titles)})
    random.Random(args.seed + 2).shuffle(reads)
    key = {}
    with open(out_dir / "blind.jsonl", "w", encoding="utf-8") as blind:
        for number, read in enumerate(reads):
            read_id = f"r{number:03d}"
            key[read_id] = {"decoding": read["decoding"], "turn": read["turn"]}
            blind.write(json.dumps({"id": read_id, "context": read["context"], "human": read["human"], "reply": read["reply"]}) + "\n")
    (out_dir / "key.json").write_text(json.dumps(key, indent=1))
    (out_dir / "metrics.json").write_text(json.dumps({
        "folder": args.folder, "split": "validation", "turns": len(rows), "read_per_decoding": len(read_positions),
        "seed": args.seed, "decodings": DECODINGS, "metrics": metrics, "machine": machine(), "date": date.today().isoformat(),
        "command": " ".join(["python", "benchmarks/decoding_read.py", *sys.argv[1:]]),
    }, indent=2))
    print(f"wrote {out_dir / 'blind.jsonl'} ({len(reads)} replies, decodings hidden); rate them into ratings.json")


def latency(args) -> None:
    """Re-measure every decoding's 20-token reply latency on a freshly loaded model, before anything
    else runs in the process, and write it into ``metrics.json`` (``generate`` measures it after the
    decoding's evaluation, which on a busy machine gave figures 30x the quiet ones: run this alone)."""
    out_dir = Path(args.out_dir)
    generated = json.loads((out_dir / "metrics.json").read_text())
    data = KGSFData(DataArguments(data_dir=args.data_dir, cache_dir=args.cache_dir, train_source=args.train_source), generated["folder"])
    model = build_model(data, ModelArguments(init_from=generated["folder"])).eval()
    rows = data.split("validation", "conv")
    picked = sorted(random.Random(generated["seed"]).sample(range(len(rows)), generated["turns"]))
    rows = rows.select(picked)
    for name, kwargs in generated["decodings"].items():
        measured = reply_latency_ms(model, rows, data.collator("conv"), kwargs, args.latency_turns, generated["seed"])
        generated["metrics"][name]["latency_ms_20_tokens"] = measured
        print(json.dumps({name: measured}), flush=True)
    generated["latency_command"] = " ".join(["python", "benchmarks/decoding_read.py", *sys.argv[1:]])
    generated["latency_machine"] = machine()
    (out_dir / "metrics.json").write_text(json.dumps(generated, indent=2))


def score(args) -> dict:
    out_dir = Path(args.out_dir)
    key = json.loads((out_dir / "key.json").read_text())
    ratings = json.loads(Path(args.ratings).read_text())
    blind = {row["id"]: row for row in map(json.loads, (out_dir / "blind.jsonl").read_text().splitlines())}
    generated = json.loads((out_dir / "metrics.json").read_text())
    missing = sorted(set(key) - set(ratings))
    if missing:
        raise SystemExit(f"{args.ratings}: {len(missing)} replies are not rated (first: {missing[0]})")
    table = {}
    for name in generated["decodings"]:
        rated = [read_id for read_id in key if key[read_id]["decoding"] == name]
        answers = [ratings[read_id] for read_id in rated]
        measured = generated["metrics"][name]
        table[name] = {
            "n": len(rated),
            "usable": sum(all(answer) for answer in answers),
            **{criterion: sum(answer[index] for answer in answers) for index, criterion in enumerate(RUBRIC)},
            "generate_kwargs": generated["decodings"][name],
            "latency_ms_20_tokens": measured["latency_ms_20_tokens"],
            "metrics": {metric: measured.get(metric) for metric in (
                "distinct-2", "distinct-4", "distinct-2_per_sentence", "distinct-3_per_sentence", "distinct-4_per_sentence",
                "item_ratio", "rec_in_reply", "bleu-1", "bleu-2", "bleu-3", "bleu-4", "loop_rate", "mean_reply_length", "perplexity")},
            "replies": [{"id": read_id, **blind[read_id], "turn": key[read_id]["turn"],
                         "ratings": dict(zip(RUBRIC, ratings[read_id]))} for read_id in sorted(rated)],
        }
    within = [name for name in table if table[name]["latency_ms_20_tokens"] <= args.latency_budget_ms]
    if not within:
        raise SystemExit(f"no decoding replies within {args.latency_budget_ms} ms")
    default = max(within, key=lambda name: (table[name]["usable"], -table[name]["latency_ms_20_tokens"]))
    result = {
        "default": default,
        "rule": f"most usable replies (all three rubric answers yes) among decodings with a median 20-token reply <= "
                f"{args.latency_budget_ms} ms; ties to the faster",
        "rubric": {"grammatical": "reads as a grammatical English reply", "on_topic": "fits the last turns of the context",
                   "film_where_human_did": "names a film where the human reply did (yes when the human reply names none)"},
        "rated_blind": "replies shuffled across decodings with the decoding hidden (blind.jsonl), joined with key.json after rating",
        "folder": generated["folder"], "split": generated["split"], "turns_measured": generated["turns"],
        "machine": generated["machine"], "date": generated["date"], "generate_command": generated["command"],
        "latency_command": generated.get("latency_command", generated["command"]),
        "score_command": " ".join(["python", "benchmarks/decoding_read.py", *sys.argv[1:]]),
        "decodings": table,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({name: {k: table[name][k] for k in ("usable", *RUBRIC, "latency_ms_20_tokens")} for name in table}, indent=1))
    print(f"default: {default}")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="metrics, latency and the blind file")
    gen.add_argument("folder")
    gen.add_argument("--out_dir", required=True)
    gen.add_argument("--turns", type=int, default=1024)
    gen.add_argument("--read", type=int, default=50)
    gen.add_argument("--latency_turns", type=int, default=20)
    gen.add_argument("--batch_size", type=int, default=64)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--data_dir", default=None)
    gen.add_argument("--cache_dir", default=None)
    lat = commands.add_parser("latency", help="re-measure the latencies alone, on a fresh model")
    lat.add_argument("out_dir")
    lat.add_argument("--latency_turns", type=int, default=20)
    lat.add_argument("--data_dir", default=None)
    lat.add_argument("--cache_dir", default=None)
    lat.add_argument("--train_source", default="recovered", help="only validation is used; 'recovered' avoids rebuilding the train split")
    sco = commands.add_parser("score", help="join the ratings with the key and write the table")
    sco.add_argument("out_dir")
    sco.add_argument("--ratings", required=True)
    sco.add_argument("--output", required=True)
    sco.add_argument("--latency_budget_ms", type=float, default=300.0)
    args = parser.parse_args(argv)
    {"generate": generate, "latency": latency, "score": score}[args.command](args)


if __name__ == "__main__":
    main()
