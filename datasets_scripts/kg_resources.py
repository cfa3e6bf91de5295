"""What a saved model folder needs, besides the weights, to link free text and explain recommendations.

``kg_resources.json`` (plain JSON, no pickles) holds: the DBpedia entity URIs (entity id ->
URI), the item list, the ReDial movies (movieId -> entity id, title, mention count), the concept
vocabulary, the stopwords, the entities the linker matches in lower case (genres), the names
of the item graph's relations (model relation id -> DBpedia property or null), and the names of
entities not named by a DBpedia URI (``entity_names``: entity id -> names, from datasets in the
generic CRS format, whose items play the movies' part: item id -> node, name). Every training
stage writes it next to the weights (``examples/common.py``), so a folder is self-contained: the
pipeline (:mod:`modeling_kgsf.pipeline_kgsf`) rebuilds the entity linker from it and never reads
``../shared/data``.

* :func:`save_kg_resources(resources, folder)` writes the file from :func:`redial.load_resources`'s
  resources; :func:`load_kg_resources(folder, tokenizer)` reads it back as :class:`InferenceResources`
  (what :func:`redial.context_row` needs, plus relation names).
* Folders saved before the file existed get it with::

      python -m datasets_scripts.kg_resources --data-dir ../shared/data FOLDER [FOLDER ...]

  which checks that the data matches the model (entity, item and relation counts) before writing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import kg
from .entity_linker import EntityLinker
from .redial import ConceptLookup, build_linker, genre_entities, load_resources

KG_RESOURCES_FILE = "kg_resources.json"
FORMAT = "kgsf-kg-resources"
FORMAT_VERSION = 1
ADD_COMMAND = "python -m datasets_scripts.kg_resources --data-dir ../shared/data {folder}"


@dataclass
class InferenceResources(ConceptLookup):
    """The linking and explanation side of :class:`redial.KGSFResources`, as read from a model folder."""

    entities: kg.DBpediaEntities
    concept_vocab: dict[str, int]
    stopwords: set[str]
    case_free_entities: set[int]
    relation_names: list[str | None]  # model relation id -> DBpedia property name or None
    tokenizer: object = None  # the folder's KGSFTokenizer (set by the caller)
    linker: EntityLinker | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.linker is None:
            self.linker = build_linker(self.entities, self.stopwords, self.concept_vocab, self.case_free_entities)


def kg_resources_dict(resources) -> dict:
    """The JSON content for :class:`redial.KGSFResources` (see the module docstring)."""
    entities = resources.entities
    movie_ids = sorted(set(entities.movie_id_to_title) | set(entities.movie_id_to_entity), key=lambda m: (len(m), m))
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "n_entity": entities.num_entities,
        "n_relation": resources.item_graph.num_relations,
        "entity_uris": entities.entity_to_uri,
        "item_entity_ids": list(entities.item_entity_ids),
        # movieId -> [entity id or null, title or null, nbMentions]
        "movies": {
            m: [entities.movie_id_to_entity.get(m), entities.movie_id_to_title.get(m), entities.movie_id_to_mentions.get(m, 0)]
            for m in movie_ids
        },
        "concept_vocab": resources.concept_vocab,
        "stopwords": sorted(resources.stopwords),
        "case_free_entities": sorted(genre_entities(resources.item_graph, entities)),
        "relation_names": list(resources.item_graph.relation_names),
        "kgsf_relation_ids": list(resources.item_graph.kgsf_relation_ids),
        # entity id (as a string) -> names, for entities named other than by a DBpedia URI
        "entity_names": {str(entity): names for entity, names in sorted(entities.entity_names.items())},
    }


def save_kg_resources(resources, folder: str | os.PathLike) -> Path:
    """Write ``kg_resources.json`` into ``folder`` (created if needed); returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / KG_RESOURCES_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(kg_resources_dict(resources), ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    tmp.replace(path)
    return path


def load_kg_resources(folder: str | os.PathLike, tokenizer=None) -> InferenceResources:
    """Read ``kg_resources.json`` from a model folder; ``FileNotFoundError`` says how to add it."""
    path = Path(folder) / KG_RESOURCES_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{folder} has no {KG_RESOURCES_FILE} (the entity names, movie titles and concept vocabulary that linking "
            f"and explanations need; folders saved before it existed lack it). Add it with:\n  {ADD_COMMAND.format(folder=folder)}"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != FORMAT or data.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a {FORMAT} file of version {FORMAT_VERSION} (format={data.get('format')!r}, version={data.get('version')!r})")
    uris = data["entity_uris"]
    movies = data["movies"]
    entities = kg.DBpediaEntities(
        uri_to_entity={uri: entity for entity, uri in enumerate(uris)},
        entity_to_uri=uris,
        item_entity_ids=list(data["item_entity_ids"]),
        movie_id_to_entity={m: e for m, (e, _, _) in movies.items() if e is not None},
        movie_id_to_title={m: t for m, (_, t, _) in movies.items() if t is not None},
        movie_id_to_mentions={m: n for m, (_, _, n) in movies.items()},
        entity_names={int(entity): list(names) for entity, names in data.get("entity_names", {}).items()},
    )
    return InferenceResources(
        entities=entities,
        concept_vocab=dict(data["concept_vocab"]),
        stopwords=set(data["stopwords"]),
        case_free_entities=set(data["case_free_entities"]),
        relation_names=list(data["relation_names"]),
        tokenizer=tokenizer,
    )


def check_matches_model(resources, config: dict) -> list[str]:
    """Mismatches between the data's sizes and a model config (empty when they agree)."""
    expected = {
        "n_entity": resources.entities.num_entities,
        "n_item": len(resources.entities.item_entity_ids),
        "n_relation": resources.item_graph.num_relations,
    }
    return [f"{key}: model {config.get(key)} vs data {value}" for key, value in expected.items() if config.get(key) != value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datasets_scripts.kg_resources",
        description=f"Write {KG_RESOURCES_FILE} (linking and explanation data) into existing KGSF model folders.",
    )
    parser.add_argument("folders", nargs="+", help="save_pretrained folders (e.g. runs/quick/conversation/best)")
    parser.add_argument("--data-dir", default=None, help="ReDial + KG files (default: $KGSF_DATA_DIR, then ../shared/data)")
    parser.add_argument("--cache-dir", default=None, help="converted-pickle cache (default: $KGSF_CACHE_DIR, then ~/.cache/kgsf)")
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not (Path(folder) / "config.json").is_file():
            parser.error(f"{folder} is not a model folder (no config.json)")
    resources = load_resources(args.data_dir, args.cache_dir)
    status = 0
    for folder in args.folders:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        problems = ([f"model_type is {config.get('model_type')!r}, not 'kgsf'"] if config.get("model_type") != "kgsf" else [])
        problems += check_matches_model(resources, config)
        if problems:
            print(f"{folder}: not written, the data does not match the model ({'; '.join(problems)})", file=sys.stderr)
            status = 1
            continue
        print(f"wrote {save_kg_resources(resources, folder)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
