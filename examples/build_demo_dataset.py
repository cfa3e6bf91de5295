"""Build a small but real non-ReDial-format dataset in the generic CRS format, from data we have.

    python examples/build_demo_dataset.py --output_dir ~/.cache/kgsf/datasets/redial-unikg [--data_dir ../shared/data]

"redial-unikg": the 1,342 conversations of the official ReDial *test* split (which no KGSF
training split of this project contains, so a model trained on our ReDial train split has never
seen them), re-split 1,000 / 142 / 200 for train / validation / test by a hash of the conversation
id, and re-expressed in the generic format with another knowledge graph: UniCRS's DBpedia cut
(31,161 entities, 24 *named* relations, 105,364 triples, its own entity ids) instead of KGSF's
(64,362 entities, 46 unnamed relations). Items are ReDial's 6,924 movies, linked to that graph by
their DBpedia URI where they have one. It exercises every step a user with another dataset takes:
converting conversations, writing an item list and triples, ``dataset.json``, validation.

The folder is written outside the repository (data never goes into it).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from datasets_scripts import paths  # noqa: E402
from datasets_scripts.convert_crs import redial_items, redial_to_crs, write_jsonl  # noqa: E402
from datasets_scripts.crs_format import validate_dataset  # noqa: E402
from datasets_scripts.redial import read_conversations  # noqa: E402

SPLIT_SIZES = {"validation": 142, "test": 200}  # the rest is train


def split_of(conversation_ids: list[str]) -> dict[str, str]:
    """Deterministic split by the sha256 of the conversation id."""
    ordered = sorted(conversation_ids, key=lambda cid: hashlib.sha256(cid.encode()).hexdigest())
    split = {}
    for position, cid in enumerate(ordered):
        split[cid] = "validation" if position < SPLIT_SIZES["validation"] else "test" if position < sum(SPLIT_SIZES.values()) else "train"
    return split


def unicrs_triples(data_dir) -> list[tuple[str, str, str]]:
    """UniCRS's DBpedia KG as (head URI, relation URI, tail URI), self-loops left out."""
    def read(name):
        return json.loads(paths.data_file(name, data_dir).read_text(encoding="utf-8"))

    uri_of = {entity: uri for uri, entity in read(paths.UNICRS_ENTITY2ID_FILE).items()}
    relation_of = {relation: name for name, relation in read(paths.UNICRS_RELATION2ID_FILE).items()}
    triples = []
    for head, relations_and_tails in read(paths.UNICRS_KG_FILE).items():
        for relation, tail in relations_and_tails:
            name = relation_of[relation]
            if name != "self_loop" and int(head) != tail:
                triples.append((uri_of[int(head)], name, uri_of[tail]))
    return triples


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default=str(Path("~/.cache/kgsf/datasets/redial-unikg").expanduser()))
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--cache_dir", default=None)
    args = parser.parse_args(argv)
    output = Path(args.output_dir).expanduser().resolve()
    if REPO_ROOT in output.parents or output == REPO_ROOT:
        parser.error(f"{output} is inside the repository; write datasets elsewhere")
    output.mkdir(parents=True, exist_ok=True)

    conversations = [redial_to_crs(c) for c in read_conversations(paths.data_file(paths.TEST_FILE, args.data_dir))]
    split = split_of([c["conversation_id"] for c in conversations])
    for name in ("train", "validation", "test"):
        write_jsonl((c for c in conversations if split[c["conversation_id"]] == name), output / f"{name}.jsonl")
    items = redial_items(args.data_dir, args.cache_dir)
    write_jsonl(items, output / "items.jsonl")
    triples = unicrs_triples(args.data_dir)
    with open(output / "kg.tsv", "w", encoding="utf-8") as handle:
        for triple in triples:
            handle.write("\t".join(triple) + "\n")
    manifest = {
        "name": "redial-unikg",
        "description": "ReDial test conversations re-split 1000/142/200, with UniCRS's named DBpedia KG (built by examples/build_demo_dataset.py)",
        "splits": {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"},
        "items": "items.jsonl",
        "kg": "kg.tsv",
        "word_graph": "conceptnet",
        "link_entities": True,
    }
    (output / "dataset.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    statistics = validate_dataset(output, args.data_dir, args.cache_dir)
    print(json.dumps({key: statistics[key] for key in ("name", "graph", "vocabulary")}, indent=2))
    for name in ("train", "validation", "test"):
        s = statistics[name]
        print(f"{name}: {s['conversations']} conversations, {s['samples']} samples, {s['rec_samples']} rec examples")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
