"""Use a trained KGSF folder on free text: recommend with explanations and reply.

```python
from modeling_kgsf import ConversationalRecommender

crs = ConversationalRecommender.from_pretrained("runs/quick/conversation/best")
turns = ["Hi! I loved Paranormal Activity, anything scary with Tom Hanks?"]
for rec in crs.recommend(turns, k=5):
    print(rec.rank, rec.title, rec.score, rec.explanation.path)
print(crs.respond(turns))                       # greedy, 20 new tokens, @movieId shown as titles
reply = crs.respond_with_items(turns)           # .text, .tokens, .items (Recommendation with .explanation)
```

``turns`` are plain strings alternating seeker / recommender (the first is the seeker's), or
``{"role": "seeker" | "user" | "recommender" | "assistant", "text": ...}`` dicts, or
``(role, text)`` pairs. They are processed exactly as the training rows, by the folder's
:class:`~modeling_kgsf.processing_kgsf.KGSFProcessor` (KGSF tokenisation, entity linking of
``@movieId``, titles, actors, genres...; same-speaker turns merged; last 5 turns, last 256 tokens),
the same code the dataset pipeline builds its rows with.

The folder must hold the processor files (``kg_resources.json``, ``entity_linker.json``; every
training stage writes them; older folders get them with
``python -m datasets_scripts.kg_resources --data-dir ../shared/data FOLDER``), so nothing outside
the folder is read, and nothing here imports ``datasets_scripts``.

Scores: ``score`` is the softmax probability over all ``n_item`` items (before items mentioned
in the context are left out), ``logit`` the raw recommender score. Explanations: the context
concept words and entities ranked by the recommender's self-attention weights (the paper's
Figure 4; the same for every item of a turn), and the most specific DBpedia path (at most
``max_hops`` hops; starring, director, writer, genre, subject preferred, hub nodes such as a
distributor penalised by their degree, see :class:`_PathFinder`) from a context entity to the
item, or None.

Replies: :meth:`ConversationalRecommender.respond` (text) and
:meth:`~ConversationalRecommender.respond_with_items` (text, tokens, and the items the reply names
with their ranks and explanations). With the default item slots (``generation_kgsf``) the items a
reply names are the top of :meth:`~ConversationalRecommender.recommend`'s ranking.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import preferences_kgsf as prefs
from .linking_kgsf import name_from_uri
from .processing_kgsf import KGSFProcessor

SEEKER, RECOMMENDER = "seeker", "recommender"
ROLE_ALIASES = {"seeker": SEEKER, "user": SEEKER, "recommender": RECOMMENDER, "assistant": RECOMMENDER}
_MOVIE_TOKEN = re.compile(r"^@([A-Za-z0-9_]+)$")  # an item placeholder: ReDial "@<movieId>", or "@<item id>" (generic format)
_CONTEXT_KEYS = ("input_ids", "attention_mask", "context_entity_ids", "context_entity_mask", "context_word_ids", "context_word_mask")


class ModelFolderError(OSError):
    """The folder is missing, is not a KGSF model, or lacks ``kg_resources.json``."""


class ConversationError(ValueError):
    """The conversation is empty or malformed."""


@dataclass
class WeightedWord:
    word: str  # ConceptNet concept (lower case)
    concept_id: int
    weight: float  # recommender attention weight over the context words


@dataclass
class WeightedEntity:
    name: str
    entity_id: int
    weight: float  # recommender attention weight over the context entities


@dataclass
class KGPath:
    """``entity_ids[0]`` (a context entity) -> ... -> ``entity_ids[-1]`` (the item); ``relations[i]``
    joins ``entity_ids[i]`` and ``entity_ids[i + 1]`` (a DBpedia property, None where unnamed)."""

    entity_ids: list[int]
    names: list[str]
    relations: list[str | None]
    text: str = ""

    def __post_init__(self):
        if not self.text:
            parts = [self.names[0]]
            for relation, name in zip(self.relations, self.names[1:]):
                parts.append(f"-[{relation or 'related'}]- {name}")
            self.text = " ".join(parts)

    def __str__(self) -> str:
        return self.text


@dataclass
class Explanation:
    words: list[WeightedWord] = field(default_factory=list)
    entities: list[WeightedEntity] = field(default_factory=list)
    path: KGPath | None = None


@dataclass
class Recommendation:
    rank: int
    title: str
    movie_id: str | None  # ReDial movieId (the most mentioned one when several share the entity)
    entity_id: int
    item_index: int
    score: float  # softmax probability over all items
    logit: float
    explanation: Explanation | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Reply:
    """A generated recommender turn: ``text`` (items shown as titles), ``tokens`` (``@movieId`` kept)
    and ``items``, the items it names in order of first appearance, each a :class:`Recommendation`
    with its rank in the recommender's ranking for this context and its explanation."""

    text: str
    tokens: list[str]
    items: list[Recommendation] = field(default_factory=list)

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict:
        return asdict(self)


def normalize_turns(turns) -> list[tuple[str, str]]:
    """``(role, text)`` pairs with roles ``seeker`` / ``recommender``; empty texts dropped.

    Strings alternate starting with the seeker (the position counts even for an empty string).
    """
    if isinstance(turns, (str, dict)):
        turns = [turns]
    normalized = []
    for position, turn in enumerate(turns or []):
        if isinstance(turn, str):
            role, text = (SEEKER, RECOMMENDER)[position % 2], turn
        elif isinstance(turn, dict):
            role, text = turn.get("role", ""), turn.get("text", turn.get("content"))
        elif isinstance(turn, (tuple, list)) and len(turn) == 2:
            role, text = turn
        else:
            raise ConversationError(f"turn {position}: expected a string, a {{'role', 'text'}} dict or a (role, text) pair, got {turn!r}")
        if str(role).lower() not in ROLE_ALIASES:
            raise ConversationError(f"turn {position}: unknown role {role!r} (use one of {', '.join(ROLE_ALIASES)})")
        if not isinstance(text, str):
            raise ConversationError(f"turn {position}: the text must be a string, got {text!r}")
        if text.strip():
            normalized.append((ROLE_ALIASES[str(role).lower()], text.strip()))
    if not normalized:
        raise ConversationError("empty conversation: give at least one turn with some text")
    return normalized


#: Cost of one hop by relation name in explanation paths (lower = preferred): people and the
#: film's own properties first, hubs such as a distributor, a language or a country last.
RELATION_COSTS = {
    "starring": 1.0, "director": 1.0, "writer": 1.0, "genre": 1.5, "subject": 1.5, "based_on": 1.5, "series": 1.5,
    "narrator": 2.0, "musicComposer": 2.0, "producer": 2.0, "cinematography": 2.5, "editing": 2.5,
    "distributor": 4.0, "language": 4.0, "country": 4.0, "location": 4.0,
}
OTHER_RELATION_COST = 2.5  # a named relation not listed above
UNNAMED_RELATION_COST = 4.0  # a relation without a known name
DEGREE_PENALTY = 1.0  # cost per log(1 + degree) of each node a path passes through


class _PathFinder:
    """Cheapest explanation paths on the item graph (the model's ``dbpedia_edge_index`` /
    ``dbpedia_edge_type`` buffers, self-loops dropped, both directions present), as CSR arrays.

    A path's cost is the sum of its hops' relation costs (:data:`RELATION_COSTS`: starring,
    director, writer, genre, subject first; distributor, language, country last; unnamed relations
    last) plus ``DEGREE_PENALTY * log(1 + degree)`` for every node it passes through, so that "Tom
    Hanks -[starring]- X" or "A -[director]- Nolan -[director]- B" win over "A -[distributor]-
    Paramount Pictures -[distributor]- B" (a hub with thousands of films)."""

    def __init__(self, edge_index: torch.Tensor, edge_type: torch.Tensor, relation_names: list, num_nodes: int,
                 relation_costs: dict | None = None, degree_penalty: float = DEGREE_PENALTY):
        source, target, types = (t.cpu().numpy() for t in (edge_index[0], edge_index[1], edge_type))
        keep = source != target
        source, target, types = source[keep], target[keep], types[keep]
        self.relation_names = list(relation_names) + [None] * max(0, int(types.max(initial=-1)) + 1 - len(relation_names))
        costs = RELATION_COSTS if relation_costs is None else relation_costs
        relation_cost = np.array([UNNAMED_RELATION_COST if name is None else costs.get(name, OTHER_RELATION_COST)
                                  for name in self.relation_names] or [0.0], dtype=np.float64)
        order = np.lexsort((target, source))
        self.neighbors, self.types = target[order], types[order]
        self.edge_cost = relation_cost[self.types] if len(self.types) else np.zeros(0)
        self.indptr = np.searchsorted(source[order], np.arange(num_nodes + 1))
        self.num_nodes = num_nodes
        self.penalty = degree_penalty * np.log1p(np.diff(self.indptr).astype(np.float64))  # (num_nodes,)

    def _expand(self, frontier: np.ndarray):
        """All edges out of ``frontier``: (position of the origin in frontier, edge positions)."""
        starts, ends = self.indptr[frontier], self.indptr[frontier + 1]
        counts = ends - starts
        origin = np.repeat(np.arange(len(frontier)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return origin, np.repeat(starts, counts) + offsets

    def paths(self, sources: list[int], targets: list[int], max_hops: int) -> dict[int, tuple[list[int], list[int]]]:
        """target -> (nodes, relation ids) of the cheapest path of at most ``max_hops`` hops from any
        source (earlier sources win ties). Layered search for ``max_hops - 1`` hops from the
        sources (cheapest way to reach each node in exactly h hops), then the last hop from each
        target's side."""
        sources = list(dict.fromkeys(s for s in sources if 0 <= s < self.num_nodes))
        found = {t: ([t], []) for t in targets if t in set(sources)}
        if not sources or max_hops < 1:
            return found
        layers = []  # per hop h: (cost (n,), parent (n,), relation (n,)) of the cheapest h-hop walk
        cost = np.full(self.num_nodes, np.inf)
        cost[sources] = np.arange(len(sources)) * 1e-9  # earlier (more attended) sources win ties
        layers.append((cost, None, None))
        frontier = np.array(sources, dtype=np.int64)
        for hop in range(1, max_hops):
            origin, edges = self._expand(frontier)
            if not len(edges):
                break
            origins = frontier[origin]
            through = layers[-1][0][origins] + self.edge_cost[edges] + (self.penalty[origins] if hop > 1 else 0.0)
            neighbor = self.neighbors[edges]
            order = np.lexsort((through, neighbor))
            reached, first = np.unique(neighbor[order], return_index=True)
            chosen = order[first]
            cost, parent, relation = np.full(self.num_nodes, np.inf), np.full(self.num_nodes, -1), np.full(self.num_nodes, -1)
            cost[reached], parent[reached], relation[reached] = through[chosen], origins[chosen], self.types[edges[chosen]]
            layers.append((cost, parent, relation))
            frontier = reached
        for target in targets:
            if target in found or not 0 <= target < self.num_nodes:
                continue
            start, end = self.indptr[target], self.indptr[target + 1]
            if start == end:
                continue
            neighbors = self.neighbors[start:end]
            best = (np.inf, -1, -1)
            for hop, (cost, _, _) in enumerate(layers):
                total = cost[neighbors] + self.edge_cost[start:end] + (self.penalty[neighbors] if hop > 0 else 0.0)
                position = int(np.argmin(total))
                if total[position] < best[0]:
                    best = (float(total[position]), hop, position)
            if not np.isfinite(best[0]):
                continue
            _, hop, position = best
            nodes, relations = [target, int(neighbors[position])], [int(self.types[start + position])]
            while hop > 0:
                _, parent, relation = layers[hop]
                relations.append(int(relation[nodes[-1]]))
                nodes.append(int(parent[nodes[-1]]))
                hop -= 1
            found[target] = (nodes[::-1], relations[::-1])
        return found


class ConversationalRecommender:
    """KGSF on free text: :meth:`recommend` (items with scores and explanations) and :meth:`respond`.

    ``graph_encodings`` (the model's node vectors, ``model.encode_graphs()``) and ``copy_rows`` (its
    copy head's rows, ``model.copy_rows()``) are computed once here and passed to every call of the
    model, which keeps neither; after changing the model's weights, graphs or device call
    :meth:`prepare_model` again.
    """

    def __init__(self, model, processor: KGSFProcessor, folder: str | None = None):
        self.model, self.processor, self.folder = model.eval(), processor, folder
        self.tokenizer = tokenizer = processor.tokenizer
        self.resources = resources = processor  # entities, concept_vocab, relation_names
        entities = resources.entities
        self.item_index_of_entity = processor.item_index_of_entity
        self.collator = processor.collator("rec")
        self._proximity = None  # prefs.GraphProximity of the item graph, for the ranking
        # entity id -> most mentioned movieId; names for every entity that may be shown
        self.movie_of_entity: dict[int, str] = {}
        for movie_id, entity in sorted(entities.movie_id_to_entity.items(), key=lambda pair: -entities.movie_id_to_mentions.get(pair[0], 0)):
            self.movie_of_entity.setdefault(entity, movie_id)
        self.concept_of_id = {index: word for word, index in resources.concept_vocab.items()}
        config = model.config
        self.path_finder = _PathFinder(model.kgsf.dbpedia_edge_index, model.kgsf.dbpedia_edge_type, resources.relation_names, config.n_entity)
        self.graph_encodings = self.copy_rows = None
        self.prepare_model()

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> "ConversationalRecommender":
        """Load a KGSF folder (weights, tokenizer, ``kg_resources.json``) and compute the node vectors."""
        from .modeling_kgsf import KGSFForConversationalRecommendation
        from .tokenization_kgsf import KGSFTokenizer

        folder = Path(folder)
        if not folder.is_dir():
            raise ModelFolderError(f"model folder not found: {folder}")
        config_file = folder / "config.json"
        model_type = None
        if config_file.is_file():
            try:
                model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
            except (json.JSONDecodeError, AttributeError):
                model_type = None
        if model_type != "kgsf":
            found = "no config.json" if not config_file.is_file() else f"config.json has model_type {model_type!r}"
            raise ModelFolderError(f"{folder} is not a KGSF model folder ({found}; expected a save_pretrained folder of "
                                   "KGSFForConversationalRecommendation, e.g. runs/quick/conversation/best)")
        try:
            model = KGSFForConversationalRecommendation.from_pretrained(folder).to(device).eval()
            tokenizer = KGSFTokenizer.from_pretrained(folder)
        except OSError as error:
            raise ModelFolderError(f"{folder}: cannot load the KGSF model ({error})") from None
        try:
            resources = KGSFProcessor.from_pretrained(folder, tokenizer=tokenizer)
        except (FileNotFoundError, ValueError) as error:
            raise ModelFolderError(str(error)) from None
        items = model.kgsf.item_entity_ids.tolist()
        if resources.entities.num_entities != model.config.n_entity or resources.entities.item_entity_ids != items:
            raise ModelFolderError(f"{folder}: kg_resources.json does not match the model (entities {resources.entities.num_entities} vs "
                                   f"{model.config.n_entity}, or a different item list); rewrite it from the model's data")
        return cls(model, resources, folder=str(folder))

    @torch.no_grad()
    def prepare_model(self) -> None:
        """(Re)compute ``graph_encodings`` and ``copy_rows`` from the model's weights (class docstring).
        A model whose code predates them (a folder's own code, saved before) gets None: it computes its own."""
        if hasattr(self.model, "encode_graphs"):
            self.graph_encodings, self.copy_rows = self.model.encode_graphs(), self.model.copy_rows()

    # ------------------------------------------------------------------ naming
    def entity_name(self, entity_id: int) -> str:
        """The title of an item, else the entity's given name (generic datasets), else the readable DBpedia name."""
        movie_id = self.movie_of_entity.get(entity_id)
        title = self.resources.entities.movie_id_to_title.get(movie_id) if movie_id else None
        if title:
            return " ".join(title.split())
        names = self.resources.entities.entity_names.get(entity_id)
        if names:
            return names[0]
        uri = self.resources.entities.entity_to_uri[entity_id] if 0 <= entity_id < self.resources.entities.num_entities else str(entity_id)
        parsed = name_from_uri(uri)
        return parsed[0] if parsed else uri

    def render_tokens(self, tokens: list[str]) -> str:
        """Tokens as text, ``@movieId`` written as the movie title."""
        titles = self.resources.entities.movie_id_to_title
        shown = []
        for token in tokens:
            movie = _MOVIE_TOKEN.match(token)
            title = titles.get(movie.group(1)) if movie else None
            shown.append(" ".join(title.split()) if title else token)  # as entity_name: ReDial writes some titles with two spaces
        return self.tokenizer.convert_tokens_to_string(shown)

    # ------------------------------------------------------------------ inputs
    def context_row(self, turns) -> dict:
        """The processed row (DESIGN.md columns) for the recommender turn that follows ``turns``."""
        row = self.processor.context_row(normalize_turns(turns), recommender=RECOMMENDER)
        if not row["context_tokens"]:
            raise ConversationError("empty conversation: the turns hold no words")
        return row

    def _batch(self, row: dict) -> dict:
        batch = self.collator([row])
        device = self.model.device
        return {key: batch[key].to(device) for key in _CONTEXT_KEYS}

    # ------------------------------------------------------------------ recommendation
    def recommend(self, turns, k: int = 10, exclude_mentioned: bool = True, explain: bool = True,
                  top_words: int = 5, top_entities: int = 5, max_hops: int = 2, negation: bool = True,
                  proximity_weight: float | None = None, negative_weight: float | None = None,
                  candidates: int | None = None, audience: bool = True) -> list[Recommendation]:
        """The ``k`` best items for the next recommender turn.

        ``exclude_mentioned`` (default True) leaves out the items the conversation already
        mentions; ``score`` is still the softmax probability over all items.

        Preferences (:mod:`modeling_kgsf.preferences_kgsf`) re-order the recommender's own top
        ``candidates`` items (default ``DEFAULT_CANDIDATES`` = 50; 0: all items) and the films of the
        people the seeker names, never lift another item from outside them: with ``negation`` (default True) the entities the seeker rejects
        ("I hate horror", "not X", "seen it, didn't like it") are taken out of the recommender's
        context and the items one graph edge away from a rejected non-item entity lose
        ``negative_weight`` nats (default ``DEFAULT_NEGATIVE_WEIGHT`` = 20); items one edge away
        from the liked non-item context entities (actors, directors, genres...) or sharing a genre
        with the liked films gain up to ``proximity_weight`` nats (default
        ``DEFAULT_PROXIMITY_WEIGHT`` = 8; 0 turns the graph terms off), and items whose graph
        genres share none with the liked films' lose ``proximity_weight``, over
        ``log_softmax(logits)``. With ``audience`` (default True) and a folder that holds
        ``item_cues.json``, what the training conversations say about the items applies too
        (:meth:`audience`): a request about children, or like a film such conversations name, leaves
        out horror films and films they seldom name and puts the films they name first; a rejected
        horror ("I hate horror movies") leaves out the films named mostly in horror conversations.
        """
        turns = normalize_turns(turns)
        return self._rank(turns, self.context_row(turns), k=k, exclude_mentioned=exclude_mentioned, explain=explain,
                          top_words=top_words, top_entities=top_entities, max_hops=max_hops, negation=negation,
                          proximity_weight=proximity_weight, negative_weight=negative_weight, candidates=candidates,
                          audience=audience)

    def rejections(self, turns) -> tuple[set[int], set[str]]:
        """``(rejected entity ids, rejected words)`` of normalised ``turns``
        (:func:`~modeling_kgsf.preferences_kgsf.rejected_in_turns`)."""
        return prefs.rejected_in_turns(turns, self.resources.tokenizer, self.resources.linker, concept_id=self.resources.concept_id)

    def without_rejections(self, turns, row: dict, rejections=None) -> tuple[dict, set[int]]:
        """``(row, rejected entity ids)``: the processed ``row`` of normalised ``turns`` without the
        entities and concept words the seeker rejects (the same row when nothing is rejected);
        ``rejections``: :meth:`rejections` of the turns, when already known."""
        rejected, rejected_words = rejections if rejections is not None else self.rejections(turns)
        concepts = {c for c in map(self.resources.concept_id, rejected_words) if c is not None}
        if not rejected and not concepts:
            return row, rejected
        return prefs.without_rejected(row, rejected, concepts), rejected

    def audience(self, turns, row: dict, negation: bool = True, lift_weight: float = prefs.CUE_LIFT_WEIGHT,
                 rejections=None) -> dict:
        """What the training conversations say the request wants (``item_cues.json``,
        :class:`~modeling_kgsf.preferences_kgsf.ItemCues`), as :func:`adjust_scores` arguments:
        ``ruled_out`` (horror films and films seldom named with children, for a request about
        children or like a children's film; horror films when the seeker rejects horror, with
        ``negation``) and ``bonus`` (for a request about children, the films such conversations
        name, ``lift_weight`` nats per unit of log lift). Empty when the folder has no ``item_cues.json``.
        ``rejections``: :meth:`rejections` of the turns, when already known."""
        cues = self.processor.item_cues
        if cues is None:
            return {}
        rejected_words = set()
        if negation:
            _, rejected_words = rejections if rejections is not None else self.rejections(turns)
        liked = [self.item_index_of_entity[e] for e in row["context_items"] if e in self.item_index_of_entity]
        asked = prefs.request_cues(turns, self.tokenizer)
        return {"ruled_out": cues.ruled_out(asked, liked, rejected_words), "bonus": cues.bonus(asked, liked, lift_weight)}

    def _rank(self, turns, row, *, k, exclude_mentioned, explain, top_words, top_entities, max_hops, negation,
              proximity_weight, negative_weight, candidates, audience=True) -> list[Recommendation]:
        """:meth:`recommend` on normalised ``turns`` whose processed ``row`` is already built."""
        with torch.no_grad():
            out = self.model(**self._batch(row), task="rec", graph_encodings=self.graph_encodings)
        logits = out.rec_logits[0].float()
        mentioned = [self.item_index_of_entity[e] for e in row["context_items"] if e in self.item_index_of_entity]
        rejected = set()
        rejections = self.rejections(turns) if negation else None  # read once, used by the row and the audience terms
        if negation:  # the recommender reads the context without what the seeker rejects
            preferred_row, rejected = self.without_rejections(turns, row, rejections)
            if preferred_row is not row:
                row = preferred_row
                with torch.no_grad():
                    out = self.model(**self._batch(row), task="rec", graph_encodings=self.graph_encodings)
                logits = out.rec_logits[0].float()
        probabilities = torch.softmax(logits, dim=-1)
        ranking = prefs.adjust_scores(logits, self.proximity, row["context_entities"], rejected,
                                      prefs.DEFAULT_PROXIMITY_WEIGHT if proximity_weight is None else proximity_weight,
                                      prefs.DEFAULT_NEGATIVE_WEIGHT if negative_weight is None else negative_weight,
                                      candidates=prefs.DEFAULT_CANDIDATES if candidates is None else candidates,
                                      excluded=mentioned if exclude_mentioned else (),
                                      **(self.audience(turns, row, negation, rejections=rejections) if audience else {}))
        if exclude_mentioned:
            ranking[mentioned] = float("-inf")
        k = max(0, min(k, int(torch.isfinite(ranking).sum())))
        top = torch.topk(ranking, k).indices.tolist()
        item_ids = self.model.kgsf.item_entity_ids
        recommendations = [
            Recommendation(rank=rank, title=self.entity_name(int(item_ids[index])), movie_id=self.movie_of_entity.get(int(item_ids[index])),
                           entity_id=int(item_ids[index]), item_index=index, score=float(probabilities[index]), logit=float(logits[index]))
            for rank, index in enumerate(top, start=1)
        ]
        if explain and recommendations:
            self._explain(recommendations, row, out, top_words, top_entities, max_hops)
        return recommendations

    @property
    def proximity(self) -> prefs.GraphProximity:
        """The item graph's :class:`~modeling_kgsf.preferences_kgsf.GraphProximity` (genres from the
        relations named ``genre`` / ``subject``), built on first use."""
        if self._proximity is None:
            kgsf = self.model.kgsf
            self._proximity = prefs.GraphProximity.from_graph(kgsf.dbpedia_edge_index, kgsf.dbpedia_edge_type, kgsf.item_entity_ids,
                                                              self.model.config.n_entity, relation_names=self.resources.relation_names,
                                                              entity_uris=self.resources.entities.entity_to_uri)
        return self._proximity

    def _explain(self, recommendations, row, out, top_words, top_entities, max_hops):
        words = []
        if out.word_attention_weights is not None:
            weights = out.word_attention_weights[0, : len(row["context_words"])].tolist()
            words = sorted((WeightedWord(self.concept_of_id.get(c, str(c)), c, w) for c, w in zip(row["context_words"], weights)),
                           key=lambda item: -item.weight)[:top_words]
        weights = out.entity_attention_weights[0, : len(row["context_entities"])].tolist()
        entities = sorted((WeightedEntity(self.entity_name(e), e, w) for e, w in zip(row["context_entities"], weights)),
                          key=lambda item: -item.weight)
        sources = [entity.entity_id for entity in entities]  # most attended first: they win ties
        paths = self.path_finder.paths(sources, [r.entity_id for r in recommendations], max_hops) if sources and max_hops > 0 else {}
        names = self.path_finder.relation_names
        for recommendation in recommendations:
            path = None
            if recommendation.entity_id in paths:
                nodes, relations = paths[recommendation.entity_id]
                path = KGPath(nodes, [self.entity_name(n) for n in nodes], [names[r] for r in relations])
            recommendation.explanation = Explanation(words=list(words), entities=entities[:top_entities], path=path)

    # ------------------------------------------------------------------ response
    def respond(self, turns, max_new_tokens: int = 20, **generate_kwargs) -> str:
        """The model's next recommender turn as text (``@movieId`` written as titles); see
        :meth:`respond_with_items` (same arguments) for the items it names and why."""
        return self.respond_with_items(turns, max_new_tokens=max_new_tokens, explain=False, **generate_kwargs).text

    def respond_tokens(self, turns, max_new_tokens: int = 20, **generate_kwargs) -> list[str]:
        """The generated reply as vocabulary tokens (``@movieId`` kept), up to ``__end__``."""
        return self.respond_with_items(turns, max_new_tokens=max_new_tokens, explain=False, **generate_kwargs).tokens

    def respond_with_items(self, turns, max_new_tokens: int = 20, k: int = 10, explain: bool = True, max_hops: int = 2,
                           negation: bool = True, proximity_weight: float | None = None, negative_weight: float | None = None,
                           candidates: int | None = None, audience: bool = True, **generate_kwargs) -> Reply:
        """The next recommender turn (``model.generate``) and the items it names, with explanations.

        Decoding follows the folder's ``generation_config`` (item slots, no repeated 3-gram, a
        repetition penalty, beam search with 4 beams: ``generation_kgsf.KGSF_GENERATION_DEFAULTS``);
        any ``generate`` argument passes through, e.g. ``num_beams=1`` (greedy), ``do_sample=True,
        num_beams=1`` or ``**generation_kgsf.PAPER_DECODING``. With item
        slots (docs/DESIGN.md, "Replies and item slots") each item the reply names is the best item
        of :meth:`recommend`'s ranking (top ``k``, same preferences, mentioned items left out) not
        named earlier in the reply, so the reply agrees with the recommendations. Items named
        otherwise (``item_slots=False``: through the copy distribution) get their rank among all
        items by the recommender's raw score. ``negation``, ``proximity_weight``,
        ``negative_weight``, ``candidates`` and ``audience`` are :meth:`recommend`'s.
        """
        turns = normalize_turns(turns)
        row = self.context_row(turns)
        ranked = self._rank(turns, row, k=k, exclude_mentioned=True, explain=explain, top_words=5, top_entities=5, max_hops=max_hops,
                            negation=negation, proximity_weight=proximity_weight, negative_weight=negative_weight, candidates=candidates,
                            audience=audience)
        item_scores = torch.full((1, self.model.config.n_item), float("-inf"), device=self.model.device)
        for recommendation in ranked:
            item_scores[0, recommendation.item_index] = -float(recommendation.rank)
        batch = self._batch(row)
        with torch.no_grad():
            sequences = self.model.generate(**batch, max_new_tokens=max_new_tokens, item_scores=item_scores,
                                            graph_encodings=self.graph_encodings, copy_rows=self.copy_rows, **generate_kwargs)
        tokens = []
        for token_id in sequences[0, 1:].tolist():
            if token_id == self.tokenizer.eos_token_id:
                break
            if token_id != self.tokenizer.pad_token_id:
                tokens.append(self.tokenizer.convert_ids_to_tokens(token_id))
        return Reply(text=self.render_tokens(tokens), tokens=tokens, items=self._named_items(tokens, row, ranked, explain, max_hops))

    def _named_items(self, tokens: list[str], row: dict, ranked: list[Recommendation], explain: bool, max_hops: int) -> list[Recommendation]:
        by_entity = {recommendation.entity_id: recommendation for recommendation in ranked}
        named, others = [], []
        for token in tokens:
            movie = _MOVIE_TOKEN.match(token)
            entity = self.resources.entities.movie_id_to_entity.get(movie.group(1)) if movie else None
            if entity is None or entity not in self.item_index_of_entity or any(r.entity_id == entity for r in named):
                continue
            recommendation = by_entity.get(entity)
            if recommendation is None:
                recommendation = Recommendation(rank=0, title=self.entity_name(entity), movie_id=self.movie_of_entity.get(entity),
                                                entity_id=entity, item_index=self.item_index_of_entity[entity], score=0.0, logit=0.0)
                others.append(recommendation)
            named.append(recommendation)
        if others:  # named outside the ranking (copy-only decoding): rank by the recommender's raw score
            with torch.no_grad():
                out = self.model(**self._batch(row), task="rec", graph_encodings=self.graph_encodings)
            logits = out.rec_logits[0].float()
            probabilities = torch.softmax(logits, dim=-1)
            for recommendation in others:
                index = recommendation.item_index
                recommendation.rank = 1 + int((logits > logits[index]).sum())
                recommendation.score, recommendation.logit = float(probabilities[index]), float(logits[index])
            if explain:
                self._explain(others, row, out, 5, 5, max_hops)
        return named
