"""Stage 1: build the processed ReDial dataset, graphs, vocabulary masks and word2vec; print statistics.

    python examples/build_dataset.py [--data-dir DIR] [--cache-dir DIR] [--train-file F ...] [--train-source SOURCE]

Data directory: ``--data-dir``, else ``$KGSF_DATA_DIR``, else ``../shared/data`` next to the
repository. Cache: ``--cache-dir``, else ``$KGSF_CACHE_DIR``, else ``~/.cache/kgsf``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets_scripts.collator import expand_for_recommendation  # noqa: E402
from datasets_scripts.redial import load_redial, load_resources  # noqa: E402
from datasets_scripts.word2vec import train_word2vec  # noqa: E402


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / max(1, whole):.1f}%)"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="raw data folder (default: $KGSF_DATA_DIR or ../shared/data)")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: $KGSF_CACHE_DIR or ~/.cache/kgsf)")
    parser.add_argument("--train-file", action="append", default=None, help="raw ReDial train jsonl (repeatable), e.g. the full train_data.jsonl")
    parser.add_argument("--no-recovered", action="store_true", help="only the release's 500 train conversations (same as --train-source release)")
    parser.add_argument("--train-source", default=None, choices=("release", "recovered", "ordered", "reconstructed"),
                        help="which ReDial training conversations (default: reconstructed, the whole train split; docs/DATA.md)")
    parser.add_argument("--overwrite-cache", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the statistics as JSON")
    args = parser.parse_args(argv)

    resources = load_resources(args.data_dir, args.cache_dir)
    dataset, stats = load_redial(
        args.data_dir, args.cache_dir, train_files=args.train_file, include_recovered=not args.no_recovered,
        train_source=args.train_source,
        resources=resources, return_statistics=True, overwrite_cache=args.overwrite_cache,
    )
    embeddings = train_word2vec(dataset["train"], resources.tokenizer, args.cache_dir)
    rec_sizes = {split: len(expand_for_recommendation(dataset[split])) for split in dataset}
    if args.json:
        print(json.dumps(stats, indent=2, default=str))
        return stats

    print("== splits")
    for split in dataset:
        s = stats[split]
        print(
            f"{split:>10}: {s['conversations']} conversations, {s['messages']} messages, {s['turns']} turns, "
            f"{s['samples']} samples ({s['samples_with_target']} with a target), {rec_sizes[split]} rec samples, "
            f"cold-start rec samples {_share(s['cold_start_rec_samples'], s['rec_samples'])}"
        )
    recovered = stats.get("recovered", {})
    print(f"recovered UniCRS conversations in train: {recovered.get('conversations_kept', 0) if recovered.get('included') else 'not included'}")
    print("== entity linking")
    for split in dataset:
        s = stats[split]
        print(
            f"{split:>10}: messages with a linked entity {_share(s['messages_with_linked_entity'], s['messages'])}; "
            f"mentions {s['mentions']}; unknown @movieIds {s['unknown_movie_ids']}; @movieIds not items {s['movie_ids_not_items']}; "
            f"skipped messages {s['skipped_messages']}"
        )
    graph, words = resources.item_graph, resources.word_graph
    print("== graphs")
    print(
        f"DBpedia: {graph.num_nodes} nodes, {graph.edge_index.shape[1]} edges, {graph.num_relations} relations "
        f"({graph.relation_name_coverage['named_relations']} named, covering {graph.relation_name_coverage['named_edge_share']:.1%} of edges), "
        f"{len(resources.entities.item_entity_ids)} items"
    )
    print(f"ConceptNet: {words.num_nodes} nodes, {words.edge_index.shape[1]} directed edges, {words.statistics}")
    print("== vocabulary masks vs the release")
    for name, agreement in stats["mask_agreement"].items():
        print(f"{name}: {agreement}")
    print(f"== word2vec: {tuple(embeddings.shape)}")
    return stats


if __name__ == "__main__":
    main()
