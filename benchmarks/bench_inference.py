"""Inference latency of a trained folder through the pipeline (``ConversationalRecommender``).

    python benchmarks/bench_inference.py runs/quick/conversation/best [--turns 50] [--threads N]

Times loading the folder's processor alone (``KGSFProcessor.from_pretrained``; target <= 1 s) and
the whole recommender (weights, processor, node vectors cached at load), warms up, then reports the median and 90th
percentile over ``--turns`` seeker turns (the first seeker messages of the ReDial-style prompts
below, cycled) of: one recommendation with explanations (tokenise + link + collate + recommender
+ attention ranking + DBpedia paths, k=10, 2 hops), the same with 3 hops, one without
explanations, and a 20-token reply with the default decoding (beam search, 4 beams) and greedy
(``min_new_tokens=20`` forces exactly 20 tokens).
Targets: recommendation <= 10 ms, 20-token reply <= 150 ms (on 2 CPU cores).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_kgsf import ConversationalRecommender  # noqa: E402
from modeling_kgsf.processing_kgsf import KGSFProcessor  # noqa: E402

PROMPTS = [
    ["Hi! I loved Paranormal Activity, anything scary?"],
    ["Hello", "Hi, what kind of movies do you like?", "I like comedies with Will Ferrell and Adam Sandler."],
    ["I'm looking for a good romantic comedy", "Have you seen The Notebook (2004) ?", "Yes, I liked it. Something like that, maybe with Tom Hanks"],
    ["Any family movies? My kids loved Frozen and Toy Story"],
    ["I want a thriller directed by Christopher Nolan", "Did you see Inception?", "Yes! Loved it"],
]


def timed(function, repeats: int) -> list[float]:
    times = []
    for index in range(repeats):
        start = time.perf_counter()
        function(index)
        times.append((time.perf_counter() - start) * 1000)
    return times


def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    return {"median_ms": round(statistics.median(times), 2), "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 2), "n": len(times)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--output", default=None, help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    KGSFProcessor.from_pretrained(args.folder)  # tokenizer + kg_resources.json + the saved linker index
    processor_load_s = time.perf_counter() - start
    start = time.perf_counter()
    crs = ConversationalRecommender.from_pretrained(args.folder)
    load_s = time.perf_counter() - start

    def prompt(index):
        return PROMPTS[index % len(PROMPTS)]

    for index in range(len(PROMPTS)):  # warm-up
        crs.recommend(prompt(index), k=10)
        crs.respond(prompt(index), max_new_tokens=20, min_new_tokens=20)
    results = {
        "folder": args.folder,
        "torch_threads": torch.get_num_threads(),
        "nproc": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "processor_load_s": round(processor_load_s, 2),
        "load_s": round(load_s, 2),
        "recommend_k10_explained_2hops": summary(timed(lambda i: crs.recommend(prompt(i), k=10), args.turns)),
        "recommend_k10_explained_3hops": summary(timed(lambda i: crs.recommend(prompt(i), k=10, max_hops=3), args.turns)),
        "recommend_k10_no_explanation": summary(timed(lambda i: crs.recommend(prompt(i), k=10, explain=False), args.turns)),
        "reply_20_tokens_default": summary(timed(lambda i: crs.respond(prompt(i), max_new_tokens=20, min_new_tokens=20), args.turns)),
        "reply_20_tokens_greedy": summary(timed(lambda i: crs.respond(prompt(i), max_new_tokens=20, min_new_tokens=20, num_beams=1),
                                                args.turns)),
        "load_average_after": os.getloadavg(),
    }
    print(json.dumps(results, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
