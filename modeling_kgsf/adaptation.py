"""Move a trained KGSF model to the index spaces of another dataset (vocabulary, KG, items).

A trained :class:`KGSFForConversationalRecommendation` numbers its tokens, DBpedia entities,
items, relations and ConceptNet concepts as dataset A (ReDial) does. To fine-tune it on a dataset
B with another vocabulary and another knowledge graph, :func:`adapt_model` builds a fresh model of
the same architecture whose index spaces are B's: every weight row whose token / entity / item /
relation / concept has a counterpart in A is copied from A, the other rows are initialised as
below, and the graph buffers and vocabulary masks are B's. Everything that does not depend on an
index space (Transformer layers, poolings, gate, MIM bilinear map, copy-head mix, ...) is copied
unchanged, and the config keeps every switch (``use_*``, ``mim_form``, ``item_graph_encoder``) and
changes only the sizes.

Example::

    from modeling_kgsf import KGSFForConversationalRecommendation
    from modeling_kgsf.adaptation import IndexSpaces, adapt_model, index_spaces_from_folder

    folder = "runs/quick/conversation/best"
    model = KGSFForConversationalRecommendation.from_pretrained(folder)
    old = index_spaces_from_folder(folder)          # vocab.json + kg_resources.json
    new = IndexSpaces(tokens=..., entities=..., item_entity_ids=..., relations=..., concepts=...)
    adapted, report = adapt_model(model, old, new, dbpedia_edge_index=..., dbpedia_edge_type=...,
                                  conceptnet_edge_index=..., kg_word_vocab_mask=...,
                                  item_token_vocab_mask=..., new_word_vectors=word2vec_b)
    print(report.to_dict()); adapted.save_pretrained("runs/b/init")

Index-space tensors (state-dict name: dimension -> space):

==================================================  ===============================================
``kgsf.shared.weight (V, d)``                         dim 0 -> tokens (tied input/output embedding)
``copy_head.vocab_projection.{weight (V, d), bias}``  dim 0 -> tokens (copy logits)
``kgsf.item_graph_encoder.rgcn.weight (B, N, k)``     dim 1 -> entities (``"featureless"`` encoder)
``kgsf.item_graph_encoder.rgcn.root (N, k)``          dim 0 -> entities (``"featureless"`` encoder)
``kgsf.item_graph_encoder.entity_embedding.weight``   dim 0 -> entities (``"embedding"`` encoder)
``kgsf.item_graph_encoder.rgcn.comp (R, B)``          dim 0 -> relations
``kgsf.word_graph_encoder.concept_embedding.weight``  dim 0 -> concepts
``kgsf.recommender.item_bias (n_item,)``              dim 0 -> items
``kgsf.mim.output.{weight (N, k), bias (N,)}``        dim 0 -> entities (``mim_form="regression"``)
==================================================  ===============================================

The buffers ``dbpedia_edge_index``, ``dbpedia_edge_type``, ``conceptnet_edge_index``,
``item_entity_ids``, ``kg_word_vocab_mask`` and ``item_token_vocab_mask`` are replaced by B's. Any
other parameter or buffer that has a dimension equal to one of A's index-space sizes
(``vocab_size``, ``n_entity``, ``n_relation``, ``n_concept``, ``n_item``, ``n_dbpedia_edges``,
``n_conceptnet_edges``) raises ``ValueError`` naming it: copying it unchanged would silently keep
A's row order. (A size that coincides with an architecture size such as ``d_model`` cannot be told
apart and is not checked; a parameter whose shape differs between the two configs is still caught.)

Matching (:func:`match_index_spaces`):

* tokens: exact string, then, for a still unmatched token of B, the token of A with the same lower
  case form (preferring the one that *is* lower case, else the lowest id). Token 0 (padding)
  always maps to token 0.
* entities: exact key (URI), then the normalised name (lower case, white space collapsed) when
  that name belongs to exactly one entity of A. Names come from ``IndexSpaces.entity_names`` or,
  when it is None, from DBpedia URIs by :func:`entity_name_from_key`.
* items follow entities: item j of B -> its entity in B -> the matched entity of A -> that entity's
  item index in A, if it is an item there.
* relations by name, concepts by word (None never matches; concept 0, the padding node, maps to 0).
  Exception: when B's relation (concept) list equals A's element for element, B numbers them as A
  does and every id maps to itself, unnamed ones included (so identical spaces give an identical
  model; ReDial has many unnamed relations).

A key that occurs several times (ReDial's relation names repeat, e.g. three ``writer`` relations)
matches occurrence by occurrence (k-th in B -> k-th in A; further ones -> the first), so identical
spaces map to themselves.

Initialisation of the rows without a counterpart in A:

* entities (R-GCN ``weight[:, e]`` and ``root[e]``, the embedding table, regression-MIM output
  rows): the mean of the rows of e's neighbours in B's item graph (``dbpedia_edge_index``, both
  directions, self loops and duplicate edges ignored) that were copied from A; an entity with no
  such neighbour gets the mean of all copied rows (of all A rows when nothing was copied). No noise:
  neighbour means already differ between entities, and an R-GCN node vector is a smooth function
  of its neighbourhood, so the mean is the natural prior.
* relations (``comp`` rows): the mean of A's ``comp`` rows (a relation of average basis mixture).
* concepts: the mean of the copied neighbours in B's word graph, else the mean of A's rows (row 0,
  the padding concept, left out of that mean).
* items (``item_bias``): the mean of A's item biases.
* tokens, embedding ``shared``: with ``new_word_vectors`` (B's word2vec, one row per token of B), an
  affine least-squares map ``[w, 1] -> embedding`` is fitted on the tokens matched by their exact
  string (lower-case matches, special tokens 0..3 and all-zero word vectors left out) and applied
  to the unmatched tokens that have a non-zero word vector; it needs at least ``dim(w) + 1`` pairs
  (fewer leave the map undetermined; ``report.details`` then says why it was skipped). Every
  other new token gets the mean of A's rows (pad row left out) plus ``N(0, (0.1 σ)²)`` noise, σ the
  per-dimension standard deviation of A's rows, drawn from ``seed``: the embedding is tied to the
  output layer, and identical rows would give identical logits that training could never separate.
* tokens, copy head ``vocab_projection``: the mean weight row and mean bias of A's rows *inside A's
  copy mask* (``kg_word_vocab_mask | item_token_vocab_mask``): only those rows are ever used and
  trained, the others are still at their random initialisation (all rows when the mask is empty).
* Token 0 (padding) keeps A's row 0 in both.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import torch

from .modeling_kgsf import KGSFForConversationalRecommendation

__all__ = [
    "AdaptationReport",
    "IndexMatch",
    "IndexSpaces",
    "SpaceReport",
    "adapt_model",
    "entity_name_from_key",
    "index_spaces_from_folder",
    "match_index_spaces",
]

SPACES = ("tokens", "entities", "items", "relations", "concepts")
NUM_SPECIAL_TOKENS = 4  # __pad__ __start__ __end__ __unk__
GRAPH_BUFFERS = ("dbpedia_edge_index", "dbpedia_edge_type", "conceptnet_edge_index", "item_entity_ids")
MASK_BUFFERS = ("kg_word_vocab_mask", "item_token_vocab_mask")
# the item -> token map (generation_kgsf): left unset (-1) in the adapted model; from_pretrained fills it from the
# saved folder's vocab.json and kg_resources.json, or set it with adapted.set_item_token_ids(...)
DERIVED_BUFFERS = ("item_token_ids",)
TOKEN_NOISE_SCALE = 0.1


# --------------------------------------------------------------------------- index spaces
@dataclass
class IndexSpaces:
    """The five index spaces of a dataset: what each id of the model means.

    tokens: token id -> token string (ids 0..3: ``__pad__ __start__ __end__ __unk__``).
    entities: entity id -> key (a DBpedia URI such as ``"<http://dbpedia.org/resource/Tom_Hanks>"``,
        or any id string).
    item_entity_ids: item index -> entity id (the model's ``item_entity_ids`` buffer).
    relations: relation id -> name (None = unnamed; never matched).
    concepts: concept id -> word (id 0 = padding concept, None).
    entity_names: optional readable name per entity (None entries allowed), the second key for
        matching entities; None = derived from the keys by :func:`entity_name_from_key`.
    """

    tokens: list[str]
    entities: list[str]
    item_entity_ids: list[int]
    relations: list[str | None]
    concepts: list[str | None]
    entity_names: list[str | None] | None = None

    def sizes(self) -> dict[str, int]:
        """Config sizes of these spaces: ``vocab_size``, ``n_entity``, ``n_item``, ``n_relation``, ``n_concept``."""
        return {
            "vocab_size": len(self.tokens),
            "n_entity": len(self.entities),
            "n_item": len(self.item_entity_ids),
            "n_relation": len(self.relations),
            "n_concept": len(self.concepts),
        }

    def names_of_entities(self) -> list[str | None]:
        """``entity_names`` if given, else the names derived from the entity keys."""
        if self.entity_names is not None:
            if len(self.entity_names) != len(self.entities):
                raise ValueError(f"entity_names has {len(self.entity_names)} entries for {len(self.entities)} entities")
            return list(self.entity_names)
        return [entity_name_from_key(key) for key in self.entities]


_DISAMBIGUATION = re.compile(r"\s*\([^()]*\)\s*$")


def entity_name_from_key(key: str | None) -> str | None:
    """A readable name from a DBpedia-style URI key, or None for a key that is not a URI.

    ``"<http://dbpedia.org/resource/The_Thin_Red_Line_(1998_film)>"`` -> ``"The Thin Red Line"``:
    the last path segment, percent-decoded, underscores as spaces, a trailing ``"(...)"``
    disambiguation dropped.
    """
    if not key:
        return None
    text = key.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if "://" not in text:
        return None
    tail = re.split(r"[/#]", text.rstrip("/"))[-1]
    name = unquote(tail).replace("_", " ")
    name = _DISAMBIGUATION.sub("", name).strip() or name.strip()
    return name or None


def _normalise_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = " ".join(name.lower().split())
    return name or None


def index_spaces_from_folder(folder, n_concept: int | None = None) -> IndexSpaces:
    """The index spaces of a saved model folder.

    Tokens from ``vocab.json`` (token -> id); entities, items, relations and concepts from
    ``kg_resources.json`` (keys ``entity_uris``, ``item_entity_ids``, ``relation_names``,
    ``concept_vocab`` {word: id}; optional ``entity_names``, a list entity id -> name or null, or a
    dict entity id -> [names] as ``datasets_scripts.kg_resources`` writes it; else names derived
    from the URIs). The concept list is sized by ``n_concept``, else by ``config.json``'s
    ``n_concept`` when the folder has one (ids without a word are None).
    """
    folder = Path(folder)
    vocab_path, kg_path = folder / "vocab.json", folder / "kg_resources.json"
    if not vocab_path.is_file():
        raise FileNotFoundError(f"{folder} has no vocab.json (the tokenizer vocabulary)")
    if not kg_path.is_file():
        raise FileNotFoundError(
            f"{folder} has no kg_resources.json (entity URIs, items, relation names, concept vocabulary); "
            f"add it with: python -m datasets_scripts.kg_resources --data-dir ../shared/data {folder}"
        )
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    tokens = _list_from_ids(vocab, "vocab.json")
    if any(token is None for token in tokens):
        raise ValueError(f"{vocab_path}: token ids are not contiguous (missing ids)")
    data = json.loads(kg_path.read_text(encoding="utf-8"))
    if n_concept is None:
        config_path = folder / "config.json"
        n_concept = json.loads(config_path.read_text(encoding="utf-8")).get("n_concept") if config_path.is_file() else None
    concepts = _list_from_ids(data["concept_vocab"], "concept_vocab", size=n_concept, first_id=1)
    entities = list(data["entity_uris"])
    names = data.get("entity_names")
    if isinstance(names, dict):  # datasets_scripts.kg_resources: {entity id: [names]} for named non-URI entities
        names = [(names.get(str(entity)) or [None])[0] or entity_name_from_key(uri) for entity, uri in enumerate(entities)]
    if names is not None and len(names) != len(entities):
        raise ValueError(f"{kg_path}: entity_names has {len(names)} entries for {len(entities)} entity_uris")
    return IndexSpaces(
        tokens=tokens,
        entities=entities,
        item_entity_ids=[int(e) for e in data["item_entity_ids"]],
        relations=list(data["relation_names"]),
        concepts=concepts,
        entity_names=_with_item_titles(list(names) if names is not None else [entity_name_from_key(uri) for uri in entities], data.get("movies", {})),
    )


_YEAR_SUFFIX = re.compile(r"\s*\(\s*\d{4}\s*\)\s*$")


def _with_item_titles(names: list[str | None], items: dict) -> list[str | None]:
    """Name the items that have no name yet (e.g. ReDial movies without a DBpedia page) by their
    title without the year, from ``kg_resources.json``'s ``movies`` (item id -> [entity, title, count])."""
    for entity, title, *_ in items.values():
        if entity is not None and 0 <= entity < len(names) and names[entity] is None and title:
            names[entity] = _YEAR_SUFFIX.sub("", " ".join(title.split())) or title
    return names


def _list_from_ids(mapping: dict[str, int], what: str, size: int | None = None, first_id: int = 0) -> list:
    """{word: id} -> list id -> word (None where no word has that id)."""
    if not mapping:
        return [None] * (size or first_id)
    largest = max(mapping.values())
    if min(mapping.values()) < first_id:
        raise ValueError(f"{what}: ids must be >= {first_id}")
    size = max(size or 0, largest + 1)
    words: list = [None] * size
    for word, index in mapping.items():
        if words[index] is not None:
            raise ValueError(f"{what}: id {index} is used by {words[index]!r} and {word!r}")
        words[index] = word
    return words


# --------------------------------------------------------------------------- matching
def _match_keys(old_keys, new_keys) -> list[int]:
    """new id -> old id with the same key (-1 if none); repeated keys match occurrence by occurrence."""
    positions: dict = defaultdict(list)
    for index, key in enumerate(old_keys):
        if key is not None:
            positions[key].append(index)
    seen: Counter = Counter()
    source = [-1] * len(new_keys)
    for index, key in enumerate(new_keys):
        if key is None or key not in positions:
            continue
        occurrences = positions[key]
        source[index] = occurrences[seen[key]] if seen[key] < len(occurrences) else occurrences[0]
        seen[key] += 1
    return source


@dataclass
class IndexMatch:
    """What :func:`match_index_spaces` found.

    ``sources[space] (len_new,)`` long: the id in A that each id of B copies, or -1 (new).
    ``by_fallback[space] (len_new,)`` bool: matched by the second rule (``"tokens"``: lower case,
    ``"entities"``: name); all False for the other spaces.
    """

    sources: dict[str, torch.Tensor]
    by_fallback: dict[str, torch.Tensor]


def match_index_spaces(old: IndexSpaces, new: IndexSpaces) -> IndexMatch:
    """Match every id of ``new`` to an id of ``old`` (or to nothing); rules: see the module docstring."""
    # tokens: exact, then lower case
    tokens = _match_keys(old.tokens, new.tokens)
    if old.tokens and new.tokens:
        tokens[0] = 0  # padding row stays padding
    lower: dict[str, list[int]] = defaultdict(list)
    for index, token in enumerate(old.tokens):
        lower[token.lower()].append(index)
    token_fallback = [False] * len(new.tokens)
    for index, token in enumerate(new.tokens):
        if tokens[index] >= 0:
            continue
        candidates = lower.get(token.lower())
        if candidates:
            tokens[index] = next((i for i in candidates if old.tokens[i] == token.lower()), candidates[0])
            token_fallback[index] = True

    # entities: exact key, then a name unique among the old entities
    entities = _match_keys(old.entities, new.entities)
    old_names = [_normalise_name(name) for name in old.names_of_entities()]
    counts = Counter(name for name in old_names if name is not None)
    unique = {name: index for index, name in enumerate(old_names) if name is not None and counts[name] == 1}
    entity_fallback = [False] * len(new.entities)
    for index, name in enumerate(new.names_of_entities()):
        name = _normalise_name(name)
        if entities[index] < 0 and name in unique:
            entities[index] = unique[name]
            entity_fallback[index] = True

    # items follow entities
    old_item_of_entity: dict[int, int] = {}
    for item, entity in enumerate(old.item_entity_ids):
        old_item_of_entity.setdefault(int(entity), item)
    items = []
    for entity in new.item_entity_ids:
        matched = entities[int(entity)]
        items.append(old_item_of_entity.get(matched, -1) if matched >= 0 else -1)

    # relations and concepts: by name / word; an identical list keeps its ids (unnamed ones included)
    relations = list(range(len(new.relations))) if list(old.relations) == list(new.relations) else _match_keys(old.relations, new.relations)
    concepts = list(range(len(new.concepts))) if list(old.concepts) == list(new.concepts) else _match_keys(old.concepts, new.concepts)
    if old.concepts and new.concepts:
        concepts[0] = 0  # padding concept
    sources = {"tokens": tokens, "entities": entities, "items": items, "relations": relations, "concepts": concepts}
    fallback = {"tokens": token_fallback, "entities": entity_fallback}
    return IndexMatch(
        sources={space: torch.tensor(ids, dtype=torch.long) for space, ids in sources.items()},
        by_fallback={space: torch.tensor(fallback.get(space, [False] * len(ids)), dtype=torch.bool) for space, ids in sources.items()},
    )


# --------------------------------------------------------------------------- report
@dataclass
class SpaceReport:
    """One index space: ``total`` ids in B, ``copied`` from A, ``new`` (initialised); ``old_total`` ids in A.

    ``matched_by_fallback``: copied rows matched by the second rule (lower-case token / entity name).
    ``init``: how the ``new`` rows were initialised, method -> number of ids.
    """

    total: int
    copied: int
    new: int
    old_total: int
    matched_by_fallback: int = 0
    init: dict[str, int] = field(default_factory=dict)


@dataclass
class AdaptationReport:
    """What :func:`adapt_model` did, per index space, plus details of the token map."""

    tokens: SpaceReport
    entities: SpaceReport
    items: SpaceReport
    relations: SpaceReport
    concepts: SpaceReport
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        lines = []
        for space in SPACES:
            r: SpaceReport = getattr(self, space)
            init = ", ".join(f"{method} {count}" for method, count in r.init.items()) or "-"
            lines.append(f"{space:<10} {r.total:>7} in B: {r.copied:>7} copied from A ({r.matched_by_fallback} by fallback), "
                         f"{r.new:>7} new ({init}); A had {r.old_total}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- which tensors are indexed by what
@dataclass
class _RowSpec:
    space: str  # one of SPACES
    dim: int  # the dimension indexed by the space
    init: str  # "token_embedding", "token_output", "entity", "relation", "concept", "item"


def _index_tensor_specs(model) -> dict[str, _RowSpec]:
    """State-dict name -> how the tensor is indexed, for the model's own index-space parameters."""
    names = {id(tensor): name for name, tensor in model.state_dict(keep_vars=True).items()}
    specs: dict[str, _RowSpec] = {}

    def add(tensor, space, dim, init):
        specs[names[id(tensor)]] = _RowSpec(space, dim, init)

    body = model.kgsf
    add(body.shared.weight, "tokens", 0, "token_embedding")
    if getattr(model, "copy_head", None) is not None:
        add(model.copy_head.vocab_projection.weight, "tokens", 0, "token_output")
        add(model.copy_head.vocab_projection.bias, "tokens", 0, "token_output")
    encoder = body.item_graph_encoder
    if encoder.featureless:
        add(encoder.rgcn.weight, "entities", 1, "entity")  # (B, n_entity, k)
        add(encoder.rgcn.root, "entities", 0, "entity")  # (n_entity, k)
    else:
        add(encoder.entity_embedding.weight, "entities", 0, "entity")  # (n_entity, e)
    add(encoder.rgcn.comp, "relations", 0, "relation")  # (R, B)
    if body.word_graph_encoder is not None:
        add(body.word_graph_encoder.concept_embedding.weight, "concepts", 0, "concept")  # (n_concept, k)
    add(body.recommender.item_bias, "items", 0, "item")  # (n_item,)
    output = getattr(body.mim, "output", None)  # RegressionMIM: Linear(k, n_entity)
    if isinstance(output, torch.nn.Linear):
        add(output.weight, "entities", 0, "entity")
        add(output.bias, "entities", 0, "entity")
    user_bias = getattr(model, "user_vocab_bias", None)  # KBRD: Sequential(..., Linear(512, vocab))
    if user_bias is not None:
        add(user_bias[-1].weight, "tokens", 0, "token_output")
        add(user_bias[-1].bias, "tokens", 0, "token_output")
    entity_bias = getattr(body.mim, "entity_bias", None)  # ReferenceRegressionMIM: (n_entity,)
    if entity_bias is not None:
        add(entity_bias, "entities", 0, "entity")
    return specs


def _architecture_sizes(config) -> set[int]:
    """Dimension sizes that belong to the architecture (an index size equal to one cannot be checked)."""
    d, k = config.d_model, config.kg_dim
    sizes = {1, 2, d, k, config.ffn_dim, config.num_bases, config.attention_heads, 2 * d, 3 * d, 2 * k, d // config.attention_heads}
    if config.item_graph_encoder == "embedding":
        sizes.add(config.entity_embedding_dim)
    return sizes


def _index_sizes(config) -> dict[str, int]:
    return {name: getattr(config, name) for name in
            ("vocab_size", "n_entity", "n_relation", "n_concept", "n_item", "n_dbpedia_edges", "n_conceptnet_edges")}


# --------------------------------------------------------------------------- row initialisers
def _neighbour_pairs(edge_index: torch.Tensor, matched: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique undirected pairs ``(node, neighbour)`` with node unmatched and neighbour matched, no self loops."""
    edge_index = edge_index.long().to(matched.device)
    num_nodes = matched.numel()
    both = torch.cat([edge_index, edge_index.flip(0)], dim=1)  # (2, 2E)
    node, neighbour = both[0], both[1]
    keep = (node != neighbour) & ~matched[node] & matched[neighbour]
    keys = torch.unique(node[keep] * num_nodes + neighbour[keep])
    return keys // num_nodes, keys % num_nodes


def _fill_neighbour_mean(rows: torch.Tensor, matched: torch.Tensor, pairs, fallback: torch.Tensor) -> dict[str, int]:
    """Unmatched rows of ``rows (N, F)`` <- mean of their matched neighbours' rows, else ``fallback (F,)``."""
    node, neighbour = pairs
    unmatched = ~matched
    sums = torch.zeros_like(rows, dtype=torch.float64).index_add_(0, node, rows[neighbour].double())
    counts = torch.bincount(node, minlength=rows.shape[0])
    has_neighbours = unmatched & (counts > 0)
    rows[has_neighbours] = (sums[has_neighbours] / counts[has_neighbours, None]).to(rows.dtype)
    alone = unmatched & (counts == 0)
    rows[alone] = fallback.to(rows.dtype)
    return {"neighbour_mean": int(has_neighbours.sum()), "global_mean": int(alone.sum())}


def _affine_least_squares(inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``S ((f+1), d)`` minimising ``||[x, 1] S - y||`` over the pairs; and the relative residual."""
    design = torch.cat([inputs.double(), torch.ones(inputs.shape[0], 1, dtype=torch.float64, device=inputs.device)], dim=1)
    solution = torch.linalg.lstsq(design.cpu(), targets.double().cpu(), driver="gelsd").solution.to(inputs.device)
    residual = torch.linalg.norm(design @ solution - targets.double()) / torch.linalg.norm(targets.double()).clamp(min=1e-12)
    return solution, float(residual)


# --------------------------------------------------------------------------- adaptation
def adapt_model(
    model: KGSFForConversationalRecommendation,
    old: IndexSpaces,
    new: IndexSpaces,
    *,
    dbpedia_edge_index: torch.Tensor,  # (2, E_db) B's item graph (row 0 source, row 1 target)
    dbpedia_edge_type: torch.Tensor,  # (E_db,) B's relation ids
    conceptnet_edge_index: torch.Tensor,  # (2, E_cn) B's word graph
    kg_word_vocab_mask: torch.Tensor,  # (V_B,) bool: B's tokens that are ConceptNet words
    item_token_vocab_mask: torch.Tensor,  # (V_B,) bool: B's tokens that are items
    new_word_vectors: torch.Tensor | None = None,  # (V_B, f) B's word vectors (e.g. word2vec), optional
    seed: int = 0,
) -> tuple[KGSFForConversationalRecommendation, AdaptationReport]:
    """A fresh model of ``model``'s architecture in B's index spaces, and a report of what was copied.

    ``model`` is a :class:`KGSFForConversationalRecommendation` in A's spaces (``old``); ``new`` and
    the graph / mask tensors describe B. The returned model is ``type(model)(config)`` with
    ``config`` = ``model.config`` with B's sizes (``vocab_size``, ``n_entity``, ``n_item``,
    ``n_relation``, ``n_concept``, ``n_dbpedia_edges``, ``n_conceptnet_edges``), on ``model``'s
    device, in its train/eval mode, with its ``requires_grad`` flags and generation config; ``model``
    is not modified. Matching and initialisation rules: see the module docstring.

    Raises ``ValueError`` when ``old`` does not describe ``model`` (sizes, items), when B's tensors
    do not fit ``new``, and on a parameter or buffer indexed by a space this function does not know
    how to map (named in the message).
    """
    if type(model).__name__ != "KGSFForConversationalRecommendation" or not hasattr(model, "kgsf"):
        raise TypeError(f"adapt_model needs a KGSFForConversationalRecommendation, got {type(model).__name__}")
    _check_old_spaces(model, old)
    _check_new_inputs(new, kg_word_vocab_mask, item_token_vocab_mask, new_word_vectors)
    old_state = model.state_dict()
    specs = _index_tensor_specs(model)
    replaced = {f"kgsf.{name}" for name in GRAPH_BUFFERS + MASK_BUFFERS + DERIVED_BUFFERS}
    _refuse_unknown_index_tensors(old_state, specs, replaced, model.config)

    dbpedia_edge_index, dbpedia_edge_type = torch.as_tensor(dbpedia_edge_index), torch.as_tensor(dbpedia_edge_type)
    conceptnet_edge_index = torch.as_tensor(conceptnet_edge_index)
    adapted = _fresh_model(model, new, dbpedia_edge_index, dbpedia_edge_type, conceptnet_edge_index,
                           kg_word_vocab_mask, item_token_vocab_mask)
    fresh_state = adapted.state_dict()
    _check_same_keys(type(model).__name__, old_state, fresh_state)

    match = match_index_spaces(old, new)
    device = next(model.parameters()).device
    sources = {space: source.to(device) for space, source in match.sources.items()}
    generator = torch.Generator().manual_seed(seed)
    context = _AdaptationContext(
        model=model, sources=sources, generator=generator, new_word_vectors=new_word_vectors,
        entity_pairs=_neighbour_pairs(dbpedia_edge_index, sources["entities"] >= 0),
        concept_pairs=_neighbour_pairs(conceptnet_edge_index, sources["concepts"] >= 0),
        token_special=min(NUM_SPECIAL_TOKENS, len(new.tokens)),
        token_exact=(sources["tokens"] >= 0) & ~match.by_fallback["tokens"].to(device),
    )
    _load_remapped_state(adapted, old_state, fresh_state, specs, replaced, context)
    _copy_settings(model, adapted, device)
    return adapted, _adaptation_report(old, match, context)


def _refuse_unknown_index_tensors(old_state: dict, specs: dict[str, _RowSpec], replaced: set[str], config):
    """Raise ``ValueError`` on a tensor with an index-space size that is neither in ``specs`` nor replaced."""
    index_sizes = {name: size for name, size in _index_sizes(config).items() if size not in _architecture_sizes(config)}
    for name, tensor in old_state.items():
        if name in specs or name in replaced:
            continue
        hits = [f"dim {dim} = {size} = {label}" for dim, size in enumerate(tensor.shape)
                for label, value in index_sizes.items() if size == value]
        if hits:
            raise ValueError(
                f"{name} {tuple(tensor.shape)}: {'; '.join(hits)} of the model's index spaces, but adapt_model does not know "
                f"how this tensor is indexed; copying it unchanged would keep A's row order. Teach "
                f"modeling_kgsf.adaptation._index_tensor_specs about it (or remove it) first."
            )


def _fresh_model(model, new: IndexSpaces, dbpedia_edge_index, dbpedia_edge_type, conceptnet_edge_index,
                 kg_word_vocab_mask, item_token_vocab_mask):
    """``type(model)`` freshly initialised with B's sizes, graph buffers and vocabulary masks."""
    new_config = copy.deepcopy(model.config)
    for key, value in new.sizes().items():
        setattr(new_config, key, value)
    new_config.n_dbpedia_edges = int(dbpedia_edge_index.shape[-1])
    new_config.n_conceptnet_edges = int(conceptnet_edge_index.shape[-1])
    adapted = type(model)(new_config)
    adapted.set_graphs(dbpedia_edge_index=dbpedia_edge_index, dbpedia_edge_type=dbpedia_edge_type,
                       conceptnet_edge_index=conceptnet_edge_index, item_entity_ids=torch.tensor(new.item_entity_ids, dtype=torch.long))
    adapted.set_vocab_masks(kg_word_vocab_mask=torch.as_tensor(kg_word_vocab_mask), item_token_vocab_mask=torch.as_tensor(item_token_vocab_mask))
    return adapted


def _check_same_keys(class_name: str, old_state: dict, fresh_state: dict):
    """Raise ``ValueError`` when the model to adapt and a fresh one of its class hold different tensors."""
    unknown = sorted(set(old_state) - set(fresh_state))
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not in {class_name}(config) (added to this instance?); cannot be adapted")
    missing = sorted(set(fresh_state) - set(old_state))
    if missing:
        raise ValueError(f"{', '.join(missing)}: in {class_name}(config) but not in the model to adapt")


def _load_remapped_state(adapted, old_state: dict, fresh_state: dict, specs: dict[str, _RowSpec], replaced: set[str],
                         context: "_AdaptationContext"):
    """Load A's tensors into ``adapted``: index-space tensors remapped, the others copied, ``replaced`` left as built."""
    new_state = {}
    for name, tensor in old_state.items():
        if name in replaced:
            continue
        tensor = tensor.detach()
        if name in specs:
            value = context.remap(name, tensor, specs[name])
        else:
            value = tensor.clone()
        if tuple(value.shape) != tuple(fresh_state[name].shape):
            raise ValueError(f"{name}: shape {tuple(tensor.shape)} in the model to adapt, {tuple(fresh_state[name].shape)} "
                             f"expected in the adapted model (the tensor depends on an index space in an unknown way)")
        new_state[name] = value.contiguous()
    result = adapted.load_state_dict(new_state, strict=False, assign=True)
    if result.unexpected_keys or set(result.missing_keys) != replaced:
        raise RuntimeError(f"state dict mismatch: missing {result.missing_keys}, unexpected {result.unexpected_keys}")


def _copy_settings(model, adapted, device: torch.device):
    """``adapted`` on ``model``'s device, with its ``requires_grad`` flags, generation config and train/eval mode."""
    adapted.to(device)
    flags = dict(model.named_parameters())
    for name, parameter in adapted.named_parameters():
        parameter.requires_grad_(flags[name].requires_grad)
    adapted.generation_config = copy.deepcopy(model.generation_config)
    if getattr(adapted.generation_config, "item_slot_bias", None):  # calibrated on A's replies: B's are its own
        adapted.generation_config.item_slot_bias = 0.0  # (the conversation stage calibrates it again)
    adapted.train(model.training)


def _adaptation_report(old: IndexSpaces, match: IndexMatch, context: "_AdaptationContext") -> AdaptationReport:
    """Per space: rows copied from A, matched by fallback, and initialised (by method)."""
    reports = {}
    old_sizes = dict(zip(SPACES, (len(old.tokens), len(old.entities), len(old.item_entity_ids), len(old.relations), len(old.concepts))))
    for space in SPACES:
        source = context.sources[space]
        copied = int((source >= 0).sum())
        reports[space] = SpaceReport(
            total=source.numel(), copied=copied, new=source.numel() - copied, old_total=old_sizes[space],
            matched_by_fallback=int(match.by_fallback[space].sum()), init=context.init.get(space, {}),
        )
    return AdaptationReport(**reports, details=context.details)


@dataclass
class _AdaptationContext:
    """The shared state of one adaptation: matches, graphs, RNG; builds every index-space tensor."""

    model: KGSFForConversationalRecommendation
    sources: dict[str, torch.Tensor]
    generator: torch.Generator
    new_word_vectors: torch.Tensor | None
    entity_pairs: tuple[torch.Tensor, torch.Tensor]
    concept_pairs: tuple[torch.Tensor, torch.Tensor]
    token_special: int
    token_exact: torch.Tensor  # (V_B,) bool: tokens matched by their exact string
    init: dict[str, dict[str, int]] = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def remap(self, name: str, tensor: torch.Tensor, spec: _RowSpec) -> torch.Tensor:
        """``tensor`` with dimension ``spec.dim`` re-indexed by B's ids (copied rows + initialised rows)."""
        source = self.sources[spec.space]
        old_rows = tensor.movedim(spec.dim, 0)
        rest = old_rows.shape[1:]
        old_rows = old_rows.reshape(old_rows.shape[0], math.prod(rest))  # (N_A, F); N_A may be 0
        matched = source >= 0
        rows = old_rows.new_zeros(source.numel(), old_rows.shape[1])  # (N_B, F)
        rows[matched] = old_rows[source[matched]]
        counts = getattr(self, f"_init_{spec.init}")(rows, matched, old_rows)
        if spec.space not in self.init or spec.init == "token_embedding":
            self.init[spec.space] = counts  # one record per space (the token embedding's for tokens)
        return rows.reshape(source.numel(), *rest).movedim(0, spec.dim)

    # each initialiser fills the unmatched rows of ``rows (N_B, F)`` in place and returns method -> count
    def _init_entity(self, rows, matched, old_rows):
        fallback = rows[matched].double().mean(0) if matched.any() else old_rows.double().mean(0)
        return _fill_neighbour_mean(rows, matched, self.entity_pairs, fallback)

    def _init_concept(self, rows, matched, old_rows):
        fallback = (old_rows[1:] if old_rows.shape[0] > 1 else old_rows).double().mean(0)  # padding concept left out
        counts = _fill_neighbour_mean(rows, matched, self.concept_pairs, fallback)
        return {"neighbour_mean": counts["neighbour_mean"], "mean_of_A": counts["global_mean"]}

    def _init_relation(self, rows, matched, old_rows):
        if old_rows.shape[0] == 0:  # A had none (e.g. all its relations were filtered out): uniform mixture
            rows[~matched] = 1.0 / max(1, rows.shape[1])
            return {"uniform": int((~matched).sum())}
        rows[~matched] = old_rows.double().mean(0).to(rows.dtype)
        return {"mean_of_A": int((~matched).sum())}

    _init_item = _init_relation

    def _init_token_output(self, rows, matched, old_rows):
        body = self.model.kgsf
        copy_mask = (body.kg_word_vocab_mask | body.item_token_vocab_mask).to(old_rows.device)
        trained = old_rows[copy_mask] if copy_mask.any() else old_rows
        rows[~matched] = trained.double().mean(0).to(rows.dtype)
        return {"mean_of_A_copy_rows": int((~matched).sum())}

    def _init_token_embedding(self, rows, matched, old_rows):
        unmatched = ~matched
        pad = self.model.config.pad_token_id
        reference = torch.cat([old_rows[:pad], old_rows[pad + 1:]]) if old_rows.shape[0] > 1 else old_rows
        counts = {}
        vectors = self.new_word_vectors
        if vectors is not None and unmatched.any():
            vectors = torch.as_tensor(vectors).to(rows.device)
            has_vector = vectors.ne(0).any(-1)  # (V_B,)
            regular = torch.arange(rows.shape[0], device=rows.device) >= self.token_special
            fit = self.token_exact & has_vector & regular
            needed = vectors.shape[1] + 1
            self.details["token_map_pairs"] = int(fit.sum())
            if int(fit.sum()) >= needed:
                solution, residual = _affine_least_squares(vectors[fit], rows[fit])
                apply = unmatched & has_vector
                design = torch.cat([vectors[apply].double(), torch.ones(int(apply.sum()), 1, dtype=torch.float64, device=rows.device)], 1)
                rows[apply] = (design @ solution).to(rows.dtype)
                unmatched = unmatched & ~apply
                counts["least_squares_map"] = int(apply.sum())
                self.details["token_map_relative_residual"] = residual
            else:
                self.details["token_map_skipped"] = f"{int(fit.sum())} matched tokens with a word vector, {needed} needed"
        count = int(unmatched.sum())
        if count:
            mean = reference.double().mean(0)
            std = reference.double().std(0, unbiased=False) if reference.shape[0] > 1 else torch.zeros_like(mean)
            noise = torch.randn(count, rows.shape[1], generator=self.generator, dtype=torch.float64).to(rows.device)
            rows[unmatched] = (mean + TOKEN_NOISE_SCALE * std * noise).to(rows.dtype)
        counts["mean_of_A_plus_noise"] = count
        return counts


def _check_old_spaces(model, old: IndexSpaces):
    config = model.config
    problems = [f"{key}: {len_} in the old index spaces, {getattr(config, key)} in the model's config"
                for key, len_ in old.sizes().items() if len_ != getattr(config, key)]
    if problems:
        raise ValueError("the old index spaces do not describe the model: " + "; ".join(problems))
    items = model.kgsf.item_entity_ids.detach().cpu()
    if not torch.equal(items, torch.tensor(old.item_entity_ids, dtype=items.dtype)):
        raise ValueError("old.item_entity_ids differ from the model's item_entity_ids buffer")
    old.names_of_entities()  # length check


def _check_new_inputs(new: IndexSpaces, kg_word_vocab_mask, item_token_vocab_mask, new_word_vectors):
    vocab = len(new.tokens)
    for name, value in (("kg_word_vocab_mask", kg_word_vocab_mask), ("item_token_vocab_mask", item_token_vocab_mask)):
        if tuple(torch.as_tensor(value).shape) != (vocab,):
            raise ValueError(f"{name}: expected shape ({vocab},) (len(new.tokens)), got {tuple(torch.as_tensor(value).shape)}")
    if new_word_vectors is not None:
        shape = tuple(torch.as_tensor(new_word_vectors).shape)
        if len(shape) != 2 or shape[0] != vocab:
            raise ValueError(f"new_word_vectors: expected shape ({vocab}, dim) (len(new.tokens), dim), got {shape}")
    if any(not 0 <= int(e) < len(new.entities) for e in new.item_entity_ids):
        raise ValueError("new.item_entity_ids: entity ids must be in [0, len(new.entities))")
    new.names_of_entities()  # length check
