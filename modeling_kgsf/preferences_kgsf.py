"""What the seeker rejects, and the item graph's say in the ranking.

Two pieces the pipeline (:meth:`modeling_kgsf.ConversationalRecommender.recommend`) mixes into the
recommender's scores, both plain functions of tokens, linked mentions and the item graph (no
model weights, nothing trained):

* :func:`rejected_entities`: the entities the seeker turns reject ("I hate horror", "not X",
  "no horror", "seen it, didn't like it", "X was boring"), by rules over the tokens of each turn
  (see :func:`negated_mentions`). The latest statement about an entity wins.
* :class:`GraphProximity`: for entities of the context that are not items (actors, directors,
  genres...), the items joined to them by one edge of the item graph; for items, their genres
  (objects of the :data:`GENRE_RELATIONS`, where the graph has them).
* :class:`ItemCues`: what the training conversations say about each item (``item_cues.json``,
  counts, nothing trained): which items seekers who talk about their children, or about horror,
  get. A request about children (:func:`request_cues`) or like a film such conversations name
  rules out horror films and films they seldom name and puts the films they name first; a rejected
  "horror" rules out the films named mostly in horror conversations.

:func:`adjust_scores` re-orders the recommender's own top ``candidates`` items, those at least
:data:`POOL_RATIO` times as likely as its first choice (the pool), by
``log_softmax(logits) + proximity_weight * (boost - mismatch) - negative_weight * (penalty +
unsuitable)`` and ranks every other item after the pool in the recommender's order, so no item
enters the top k through graph proximity alone. ``boost`` is the share of the liked non-item
context entities, and of the genres of the liked films ("something like X"), an item is joined to;
``mismatch`` is 1 for an item whose genres are known and share none with the liked films' (a horror
film for "like Frozen" where the graph gives both genres); ``penalty`` is 1 for the items joined to
a rejected non-item entity; ``unsuitable`` is 1 for an item the graph gives an adult genre
(:data:`ADULT_GENRES`) when a liked film has a family genre (:data:`FAMILY_GENRES`). One exception
to the pool: the films of a person the seeker names ("something by <director>", "with <actor>",
joined by a :data:`PERSON_RELATIONS` edge) are what was asked for, not a neighbour of it, and join
the pool whatever their probability (the quick model's recommender puts most of a person's films
below chance).

Defaults (:data:`DEFAULT_PROXIMITY_WEIGHT`, :data:`DEFAULT_NEGATIVE_WEIGHT`,
:data:`DEFAULT_CANDIDATES`, :data:`DEFAULT_NEGATION_WINDOW`) were chosen on the validation split
and on synthetic requests built from the graph (``benchmarks/bench_understanding.py``), never on
the test split.
"""
from __future__ import annotations

import json
import math

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

DEFAULT_PROXIMITY_WEIGHT = 8.0  # nats added to an item joined to every liked non-item context entity
DEFAULT_NEGATIVE_WEIGHT = 20.0  # nats removed from an item joined to a rejected entity (about: excluded)
DEFAULT_NEGATION_WINDOW = 6  # tokens a negative cue reaches forward, within its clause
# The pool the graph terms may re-order: the recommender's own top N (the deepest cut the official
# protocol scores, recall@50). The former pool also took every item at least as likely as chance
# (1 / n_item): it let The Vampire Diaries (.0002 against .03 for the recommender's first choice)
# to rank 1 for "a fantasy movie, like The Lord of the Rings" through its Fantasy genre edge
# (docs/RESULTS.md); ``pool_floor`` keeps that form available, off by default.
DEFAULT_CANDIDATES = 50
POOL_FLOOR = None
# ... and among those only the items at least POOL_RATIO times as likely as the recommender's first
# choice (4.6 nats below it at most): a very sure recommender (.3 for its first) has items 1,000
# times less likely in its top 50, which a boost of proximity_weight would otherwise lift.
POOL_RATIO = 0.01
GENRE_RELATIONS = frozenset({"genre", "subject"})  # relation names (last part of a URI) whose objects are a film's genres
# Relations from a film to the people who made it or are in it: a named person's films join the pool.
PERSON_RELATIONS = frozenset({"director", "starring", "writer", "producer", "narrator"})
# Genre objects (last part of the URI, lower case) that say who a film is for. The ReDial item graph gives
# genres to 55 of 6,924 items (97 edges, mostly series and soundtracks): these apply where it does.
FAMILY_GENRES = frozenset({"family_film", "children's_film", "children's_television_series", "children's_literature",
                           "children's_music", "fairy_tale"})  # not "animation": South Park is an animated sitcom
ADULT_GENRES = frozenset({"horror_film", "horror_fiction", "horror_and_terror", "slasher_film", "splatter_film",
                          "erotic_thriller", "erotica", "pornographic_film", "exploitation_film", "gangsta_rap",
                          "hardcore_hip_hop", "dark_fantasy", "supernatural_horror"})

# A cue before a mention ("I hate horror", "not Adam Sandler", "no horror", "don't like horror").
NEGATIVE_CUES = frozenset(
    "hate hated hates hating dislike disliked dislikes not no never n't without except avoid detest detested "
    "loathe loathed nothing none neither nor".split()
)
# After a negator these words make a fact, not a rejection ("I haven't seen Up", "never heard of it").
NEUTRAL_AFTER_NEGATOR = frozenset("seen see saw watched watch heard read sure know knew".split())
# A liking verb not preceded by a negator ends the negation ("not horror, I like comedy").
POSITIVE_CUES = frozenset("like likes liked love loves loved want wanted enjoy enjoyed prefer adore something".split())
# A judgement after a mention ("Up was boring", "Cats is awful", "seen it, didn't like it").
NEGATIVE_AFTER = frozenset(
    "boring awful terrible horrible bad worst sucked sucks overrated meh disliked hated stupid lame dumb".split()
)
CLAUSE_ENDS = frozenset({".", "!", "?", ";", "_split_", "but", "however", "though", "although", "instead", "rather"})
REFERRING = frozenset({"it", "that", "this", "one", "them", "those"})
_NEGATORS = frozenset({"not", "n't", "never", "no"})
_CUE_WORDS = NEGATIVE_CUES | NEUTRAL_AFTER_NEGATOR | POSITIVE_CUES | NEGATIVE_AFTER | REFERRING


def _clauses(tokens: list[str]) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for position, token in enumerate(tokens):
        if token.lower() in CLAUSE_ENDS:
            bounds.append((start, position))
            start = position + 1
    bounds.append((start, len(tokens)))
    return [(a, b) for a, b in bounds if b > a]


def _negated_after(lowered: list[str], start: int, end: int) -> bool:
    """A negative judgement in ``lowered[start:end]``: a :data:`NEGATIVE_AFTER` word, or a negator
    followed by a liking verb ("didn't like", "not a fan", "not for me")."""
    for position in range(start, end):
        word = lowered[position]
        if word in NEGATIVE_AFTER:
            return True
        if word in _NEGATORS:
            following = lowered[position + 1 : min(end, position + 4)]
            if any(w in POSITIVE_CUES or w in ("fan", "for", "into", "good", "great", "my") for w in following):
                return True
    return False


def negated_mentions(tokens: list[str], mentions, window: int = DEFAULT_NEGATION_WINDOW) -> tuple[list, bool]:
    """``(negated, rejects_reference)`` for one seeker turn.

    ``negated``: the mentions (objects with ``span`` and ``entity_id``, e.g. linker
    :class:`~modeling_kgsf.linking_kgsf.Mention`) the turn rejects: a :data:`NEGATIVE_CUES` word at
    most ``window`` tokens before the mention in its clause (clauses end at ``.``, ``!``, ``?``,
    ``;``, ``but``...), unless the negator is about having seen it ("haven't seen X") or a liking
    verb comes in between ("no, I like X"); or a negative judgement after the mention in its
    clause ("X was boring", "X, didn't like it").
    ``rejects_reference``: the turn names nothing but rejects "it"/"that (one)" ("seen it, didn't
    like it"): the caller applies it to the items of the previous turn.
    """
    lowered = [token.lower() for token in tokens]
    negated = []
    clauses = _clauses(lowered)
    for start, end in clauses:
        inside = [m for m in mentions if start <= m.span[0] < end]
        active_until = -1
        cursor = start
        inside = sorted(inside, key=lambda m: m.span[0])
        for index, mention in enumerate(inside):
            stop = inside[index + 1].span[0] if index + 1 < len(inside) else end
            for position in range(cursor, mention.span[0]):
                word = lowered[position]
                if word in NEGATIVE_CUES:
                    following = lowered[position + 1 : position + 3]
                    if not any(w in NEUTRAL_AFTER_NEGATOR for w in following):
                        active_until = position + window
                elif word in POSITIVE_CUES and not any(w in _NEGATORS for w in lowered[max(start, position - 2) : position]):
                    active_until = -1
            cursor = mention.span[1]
            if mention.span[0] <= active_until or _negated_after(lowered, mention.span[1], stop):
                negated.append(mention)
    rejects_reference = not [m for m in mentions if getattr(m, "kind", None) != "word"] and any(
        _negated_after(lowered, start, end) and any(w in REFERRING for w in lowered[start:end]) for start, end in clauses
    )
    return negated, rejects_reference


def rejected_entities(turns, window: int = DEFAULT_NEGATION_WINDOW) -> set[int]:
    """Entity ids the seeker rejects over a conversation.

    ``turns``: ``(is_seeker, tokens, mentions)`` per turn, in order. An entity counts as rejected
    when the latest seeker statement about it is negative; a referring rejection ("didn't like
    it") applies to the items (``kind`` "movie_id"/"title") of the turn before.
    """
    status: dict[int, bool] = {}
    previous_items: list[int] = []
    for is_seeker, tokens, mentions in turns:
        if is_seeker:
            negated, rejects_reference = negated_mentions(tokens, mentions, window)
            negated_ids = {m.entity_id for m in negated}
            for mention in mentions:
                status[mention.entity_id] = mention.entity_id in negated_ids
            if rejects_reference:
                for entity in previous_items:
                    status[entity] = True
        previous_items = [m.entity_id for m in mentions if getattr(m, "kind", "title") in ("movie_id", "title")]
    return {entity for entity, rejected in status.items() if rejected}


def _short_name(name) -> str:
    return str(name).strip("<>").rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1].rsplit(":", 1)[-1].lower()


def relation_ids(relation_names, wanted) -> set[int]:
    """Ids of the relations whose short name (last part of a URI, lower case) is in ``wanted``."""
    return {index for index, name in enumerate(relation_names or ()) if name and _short_name(name) in wanted}


def genre_relation_ids(relation_names) -> set[int]:
    """Ids of the relations named in :data:`GENRE_RELATIONS` (``genre``, ``dbo:genre``,
    ``<http://purl.org/dc/terms/subject>``...)."""
    return relation_ids(relation_names, GENRE_RELATIONS)


def audience_genre_ids(entity_uris) -> tuple[set[int], set[int]]:
    """``(family, adult)`` entity ids: the genre objects named in :data:`FAMILY_GENRES` /
    :data:`ADULT_GENRES` (by the last part of their URI)."""
    family, adult = set(), set()
    for entity, uri in enumerate(entity_uris or ()):
        if uri:
            name = _short_name(uri)
            if name in FAMILY_GENRES:
                family.add(entity)
            elif name in ADULT_GENRES:
                adult.add(entity)
    return family, adult


@dataclass
class GraphProximity:
    """Items one edge away from each entity of the item graph (self-loops dropped), as CSR arrays,
    and each item's genres (non-item objects of the genre relations), where the graph has them.

    ``edge_index`` / ``edge_type``: the model's ``dbpedia_edge_index`` / ``dbpedia_edge_type``
    buffers (both directions present); ``item_entity_ids``: the model's item list (item index =
    position). ``relations``: relation ids to use (None: all). ``genre_relations``: relation ids
    whose objects are genres (None: :func:`genre_relation_ids` of ``relation_names``; empty: no
    genres). ``relation_names`` (relation id -> name): the :data:`PERSON_RELATIONS` edges give
    each person's films (:meth:`films_of`); ``entity_uris``: the family and adult genres
    (:func:`audience_genre_ids`).
    """

    indptr: np.ndarray
    item_indices: np.ndarray
    n_item: int
    item_index_of_entity: np.ndarray
    genre_indptr: np.ndarray | None = None  # (n_item + 1,) CSR over genre_ids
    genre_ids: np.ndarray | None = None
    person_indptr: np.ndarray | None = None  # (num_nodes + 1,) CSR over person_items: a person's films
    person_items: np.ndarray | None = None
    family_genres: frozenset = frozenset()
    adult_genres: frozenset = frozenset()

    @staticmethod
    def _csr(heads: np.ndarray, tails: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = np.unique(np.stack([heads, tails], axis=1), axis=0).reshape(-1, 2)
        return np.searchsorted(pairs[:, 0], np.arange(size + 1)), pairs[:, 1].copy()

    @classmethod
    def from_graph(cls, edge_index: torch.Tensor, edge_type: torch.Tensor, item_entity_ids, num_nodes: int,
                   relations: set[int] | None = None, genre_relations: set[int] | None = None,
                   relation_names=None, entity_uris=None) -> "GraphProximity":
        if genre_relations is None:  # the GENRE_RELATIONS among the relation names, when given
            genre_relations = genre_relation_ids(relation_names)
        source, target = (t.cpu().numpy().astype(np.int64) for t in (edge_index[0], edge_index[1]))
        types = edge_type.cpu().numpy()
        items = np.asarray(item_entity_ids.tolist() if torch.is_tensor(item_entity_ids) else list(item_entity_ids), dtype=np.int64)
        item_index = np.full(num_nodes, -1, dtype=np.int64)
        item_index[items] = np.arange(len(items))
        to_item = (source != target) & (item_index[target] >= 0)
        keep = to_item & np.isin(types, sorted(relations)) if relations is not None else to_item
        indptr, item_indices = cls._csr(source[keep], item_index[target[keep]], num_nodes)
        genre_indptr = genre_ids = None
        if genre_relations:
            keep = (source != target) & (item_index[source] >= 0) & (item_index[target] < 0) & np.isin(types, sorted(genre_relations))
            genre_indptr, genre_ids = cls._csr(item_index[source[keep]], target[keep], len(items))
        person_indptr = person_items = None
        people = relation_ids(relation_names, PERSON_RELATIONS)
        if people:
            keep = to_item & (item_index[source] < 0) & np.isin(types, sorted(people))
            person_indptr, person_items = cls._csr(source[keep], item_index[target[keep]], num_nodes)
        family, adult = audience_genre_ids(entity_uris)
        return cls(indptr, item_indices, len(items), item_index, genre_indptr, genre_ids, person_indptr, person_items,
                   frozenset(family), frozenset(adult))

    def items_of(self, entity: int) -> np.ndarray:
        """Item indices joined to ``entity`` by one edge."""
        if not 0 <= entity < len(self.indptr) - 1:
            return np.zeros(0, dtype=np.int64)
        return self.item_indices[self.indptr[entity] : self.indptr[entity + 1]]

    def films_of(self, entity: int) -> np.ndarray:
        """Item indices joined to the non-item ``entity`` by a :data:`PERSON_RELATIONS` edge (its
        films, when it is a person); empty without relation names."""
        if self.person_indptr is None or not 0 <= entity < len(self.person_indptr) - 1:
            return np.zeros(0, dtype=np.int64)
        return self.person_items[self.person_indptr[entity] : self.person_indptr[entity + 1]]

    def is_item(self, entity: int) -> bool:
        return 0 <= entity < len(self.item_index_of_entity) and self.item_index_of_entity[entity] >= 0

    def genres_of(self, entity: int) -> np.ndarray:
        """Genre entity ids of an item (given by its entity id); empty for a non-item or without genres."""
        if self.genre_ids is None or not self.is_item(entity):
            return np.zeros(0, dtype=np.int64)
        index = self.item_index_of_entity[entity]
        return self.genre_ids[self.genre_indptr[index] : self.genre_indptr[index + 1]]

    def has_genres(self) -> np.ndarray:
        """(n_item,) bool: the graph gives the item at least one genre."""
        if self.genre_ids is None:
            return np.zeros(self.n_item, dtype=bool)
        return np.diff(self.genre_indptr) > 0

    def boost(self, entities) -> torch.Tensor:
        """(n_item,) share of the non-item ``entities`` (those with at least one item neighbour)
        each item is joined to; zeros when there are none."""
        scores = np.zeros(self.n_item, dtype=np.float32)
        counted = 0
        for entity in dict.fromkeys(entities):
            if self.is_item(entity):
                continue
            neighbours = self.items_of(entity)
            if len(neighbours):
                scores[neighbours] += 1.0
                counted += 1
        return torch.from_numpy(scores / max(1, counted))

    def penalty(self, entities) -> torch.Tensor:
        """(n_item,) 1 for the items joined to any non-item entity of ``entities``, else 0."""
        scores = np.zeros(self.n_item, dtype=np.float32)
        for entity in entities:
            if not self.is_item(entity):
                scores[self.items_of(entity)] = 1.0
        return torch.from_numpy(scores)

    def unsuitable(self, genres) -> torch.Tensor:
        """(n_item,) 1 for the items the graph gives an adult genre when ``genres`` (the liked films')
        hold a family genre, else 0."""
        scores = np.zeros(self.n_item, dtype=np.float32)
        if self.adult_genres and any(int(g) in self.family_genres for g in genres):
            for genre in self.adult_genres:
                scores[self.items_of(genre)] = 1.0
        return torch.from_numpy(scores)

    def mismatch(self, genres) -> torch.Tensor:
        """(n_item,) 1 for the items with known genres of which none is in ``genres``, else 0
        (zeros when ``genres`` is empty: nothing to disagree with)."""
        genres = list(genres)
        if not genres or self.genre_ids is None:
            return torch.zeros(self.n_item)
        agree = np.zeros(self.n_item, dtype=bool)
        for genre in genres:
            agree[self.items_of(genre)] = True
        return torch.from_numpy((self.has_genres() & ~agree).astype(np.float32))


# Words of a request that say who the film is for or what it must not be; :class:`ItemCues` counts,
# for each item, the training conversations that use them.
CUE_WORDS = {
    "children": frozenset("kid kids kiddo kiddos child children son sons daughter daughters toddler toddlers "
                          "grandkids grandchildren grandson granddaughter nephew nephews niece nieces family".split()),
    "horror": frozenset("horror horrors scary scariest creepy gore gory slasher slashers".split()),
}
CUE_LEVEL = 0.01  # one-sided binomial test level of ItemCues.goes_with / avoids
CUE_PRIOR = 10.0  # pseudo-conversations at the base rate in ItemCues.lift (an item named once says little)
CUE_LIFT_WEIGHT = 1.0  # nats per unit of log lift added for a request about children (ItemCues.bonus)
ITEM_CUES_FILE = "item_cues.json"


@dataclass
class ItemCues:
    """What the training conversations say about each item: in how many of them it is named
    (``item_conversations``), and in how many of those the words of each :data:`CUE_WORDS` group
    appear (``item_cue_conversations[cue]``), with the totals over all training conversations.

    The item graph rarely says who a film is for (ReDial's gives genres to 55 of 6,924 items); the
    conversations do: seekers who mention their kids get Coco, Moana and Toy Story, not Get Out.
    For a cue with base rate ``b = cue_conversations[cue] / conversations`` and an item named in
    ``n`` conversations, ``k`` of them with the cue, ``X ~ Binomial(n, b)``:

    * :meth:`goes_with`: ``P(X >= k) < level`` and ``k / n >= 1/2`` (named with the cue far more
      than chance, in most of its conversations: a horror film for ``"horror"``);
    * :meth:`avoids`: ``P(X <= k) < level`` (named with the cue far less than chance: Deadpool for
      ``"children"``, 15 of 203 conversations against 31 expected).

    Counted from the train split only (:func:`datasets_scripts.kg_resources.count_item_cues`) and
    saved beside the weights as :data:`ITEM_CUES_FILE`.
    """

    conversations: int
    item_conversations: np.ndarray  # (n_item,)
    cue_conversations: dict[str, int]
    item_cue_conversations: dict[str, np.ndarray]  # cue -> (n_item,)
    # the binomial tails of each cue, computed on first use (the counts never change): a request
    # then costs array lookups, not a test over every item
    _tails_of: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def share(self, cue: str) -> np.ndarray:
        """(n_item,) share of each item's conversations that use the cue (0 where it is never named)."""
        return self.item_cue_conversations[cue] / np.maximum(self.item_conversations, 1)

    def _tails(self, cue: str) -> tuple[np.ndarray, np.ndarray]:
        if cue not in self._tails_of:
            from scipy.stats import binom

            n, k = self.item_conversations, self.item_cue_conversations[cue]
            rate = self.cue_conversations[cue] / max(1, self.conversations)
            self._tails_of[cue] = binom.sf(k - 1, n, rate), binom.cdf(k, n, rate)  # P(X >= k), P(X <= k)
        return self._tails_of[cue]

    def goes_with(self, cue: str, level: float = CUE_LEVEL) -> np.ndarray:
        """(n_item,) bool: named with the cue far more often than chance, in at least half its conversations."""
        if cue not in self.item_cue_conversations:
            return np.zeros(len(self.item_conversations), dtype=bool)
        upper, _ = self._tails(cue)
        return (upper < level) & (self.share(cue) >= 0.5)

    def avoids(self, cue: str, level: float = CUE_LEVEL) -> np.ndarray:
        """(n_item,) bool: named with the cue far less often than chance."""
        if cue not in self.item_cue_conversations:
            return np.zeros(len(self.item_conversations), dtype=bool)
        _, lower = self._tails(cue)
        return lower < level

    def lift(self, cue: str, prior: float = CUE_PRIOR) -> np.ndarray:
        """(n_item,) ``log(share / base rate)`` with the share smoothed by ``prior`` conversations at
        the base rate: > 0 for items named with the cue more often than chance, 0 for unnamed ones."""
        rate = self.cue_conversations[cue] / max(1, self.conversations)
        if rate <= 0:
            return np.zeros(len(self.item_conversations))
        share = (self.item_cue_conversations[cue] + prior * rate) / (self.item_conversations + prior)
        return np.log(share / rate)

    def for_children(self, request_cues, liked_items=()) -> bool:
        """The request is about children: its seeker turns use a ``"children"`` word
        (``request_cues``, :func:`request_cues`) or a liked item (item indices) goes with them."""
        liked = [int(i) for i in liked_items]
        return "children" in request_cues or bool(liked and self.goes_with("children")[liked].any())

    def bonus(self, request_cues, liked_items=(), weight: float = CUE_LIFT_WEIGHT) -> torch.Tensor | None:
        """(n_item,) nats for a request about children (:meth:`for_children`): ``weight`` times the
        items' :meth:`lift` for ``"children"``, so that among the recommender's own candidates the
        films that such conversations name come first; None for any other request."""
        if not weight or "children" not in self.item_cue_conversations or not self.for_children(request_cues, liked_items):
            return None
        return torch.from_numpy((weight * self.lift("children")).astype(np.float32))

    def ruled_out(self, request_cues, liked_items=(), rejected_words=()) -> torch.Tensor:
        """(n_item,) 1 for the items the request rules out, else 0. A request is for children when
        its seeker turns use a ``"children"`` word (``request_cues``) or a liked item (item indices)
        :meth:`goes_with` ``"children"``: then the items that go with ``"horror"`` or avoid
        ``"children"`` are out. A rejected ``"horror"`` word ("I hate horror") rules out the items
        that go with ``"horror"``."""
        out = np.zeros(len(self.item_conversations), dtype=bool)
        if self.for_children(request_cues, liked_items):
            out |= self.goes_with("horror") | self.avoids("children")
        if CUE_WORDS["horror"] & set(rejected_words):
            out |= self.goes_with("horror")
        return torch.from_numpy(out.astype(np.float32))

    @classmethod
    def count(cls, conversations, n_item: int, cue_words: dict = CUE_WORDS) -> "ItemCues":
        """From ``(words, item indices)`` per training conversation (lower-case words)."""
        items_total = np.zeros(n_item, dtype=np.int64)
        with_cue = {cue: np.zeros(n_item, dtype=np.int64) for cue in cue_words}
        totals = dict.fromkeys(cue_words, 0)
        count = 0
        for words, items in conversations:
            count += 1
            items = np.asarray(sorted(set(items)), dtype=np.int64)
            items_total[items] += 1
            for cue, vocabulary in cue_words.items():
                if vocabulary & words:
                    totals[cue] += 1
                    with_cue[cue][items] += 1
        return cls(count, items_total, totals, with_cue)

    def to_dict(self) -> dict:
        return {"format": "kgsf-item-cues", "version": 1, "cue_words": {cue: sorted(CUE_WORDS[cue]) for cue in self.cue_conversations},
                "conversations": self.conversations, "cue_conversations": self.cue_conversations,
                "item_conversations": self.item_conversations.tolist(),
                "item_cue_conversations": {cue: counts.tolist() for cue, counts in self.item_cue_conversations.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "ItemCues":
        return cls(int(data["conversations"]), np.asarray(data["item_conversations"], dtype=np.int64), dict(data["cue_conversations"]),
                   {cue: np.asarray(counts, dtype=np.int64) for cue, counts in data["item_cue_conversations"].items()})

    def save(self, folder) -> Path:
        path = Path(folder) / ITEM_CUES_FILE
        tmp = path.with_name(path.name + ".tmp")  # written whole, then moved in place
        tmp.write_text(json.dumps(self.to_dict(), separators=(",", ":")), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, folder, n_item: int | None = None) -> "ItemCues | None":
        """The folder's :data:`ITEM_CUES_FILE`, or None when it has none (folders saved before it
        existed) or its item count is not ``n_item``."""
        path = Path(folder) / ITEM_CUES_FILE
        if not path.exists():
            return None
        cues = cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        return cues if n_item is None or len(cues.item_conversations) == n_item else None


def request_cues(turns, tokenizer) -> set[str]:
    """The :data:`CUE_WORDS` groups the seeker turns (``(role, text)``, role ``seeker``) use."""
    words = {token.lower() for role, text in turns if role == "seeker" for token in tokenizer.tokenize(text)}
    return {cue for cue, vocabulary in CUE_WORDS.items() if vocabulary & words}


def adjust_scores(logits: torch.Tensor, proximity: GraphProximity, liked_entities, rejected: set[int] = frozenset(),
                  proximity_weight: float = DEFAULT_PROXIMITY_WEIGHT, negative_weight: float = DEFAULT_NEGATIVE_WEIGHT,
                  candidates: int | None = DEFAULT_CANDIDATES, excluded=(), pool_floor: float | None = POOL_FLOOR,
                  ruled_out: torch.Tensor | None = None, bonus: torch.Tensor | None = None) -> torch.Tensor:
    """Ranking scores for one context (the same order as ``logits`` when nothing applies).

    The pool is the recommender's top ``candidates`` items by ``logits`` leaving out ``excluded``
    item indices (the mentioned items the caller removes) that are at least :data:`POOL_RATIO` times
    as likely as the first of them, with, when ``proximity_weight`` is on,
    the films of the liked people (:meth:`GraphProximity.films_of`) and, with ``pool_floor``, every
    item whose recommender probability is at least ``pool_floor / n_item``; ``candidates`` None or
    0: every item (the graph terms then act on all items, the former additive ranking). Pool items
    score ``log_softmax(logits) + proximity_weight * (boost - mismatch) - negative_weight * (penalty
    + unsuitable)``: ``boost`` over the liked non-item entities and the genres of the liked items
    (:meth:`GraphProximity.boost`), ``mismatch`` against those genres
    (:meth:`GraphProximity.mismatch`), ``penalty`` over the rejected non-item entities,
    ``unsuitable`` for adult genres when a liked film is a family film
    (:meth:`GraphProximity.unsuitable`) and for the items of ``ruled_out`` ((n_item,) 1/0, what the
    training conversations say the request excludes: :meth:`ItemCues.ruled_out`; applied whenever
    ``negative_weight`` is), plus ``bonus`` ((n_item,) nats, :meth:`ItemCues.bonus`). Every other item ranks after the pool, in the recommender's
    order. Rejected items themselves are not touched here (the pipeline leaves mentioned items out)."""
    base = torch.log_softmax(logits.float(), dim=-1)
    ranking = base
    liked = [e for e in liked_entities if e not in rejected]
    genres = list(dict.fromkeys(int(g) for e in liked if proximity.is_item(e) for g in proximity.genres_of(e)))
    named = [int(i) for e in liked if not proximity.is_item(e) for i in proximity.films_of(e)] if proximity_weight else []
    if proximity_weight and (liked or genres):
        ranking = ranking + proximity_weight * proximity.boost([*liked, *genres]).to(ranking.device)
        if genres:
            ranking = ranking - proximity_weight * proximity.mismatch(genres).to(ranking.device)
    unsuitable = proximity.unsuitable(genres) if proximity_weight and genres else None  # the graph's say: off with proximity_weight 0
    if ruled_out is not None:
        unsuitable = ruled_out if unsuitable is None else torch.maximum(unsuitable, ruled_out)
    if negative_weight and unsuitable is not None and unsuitable.any():
        ranking = ranking - negative_weight * unsuitable.to(ranking.device)
    if negative_weight and rejected:
        ranking = ranking - negative_weight * proximity.penalty(rejected).to(ranking.device)
    if bonus is not None:
        ranking = ranking + bonus.to(ranking.device)
    if candidates and candidates < len(base) and ranking is not base:
        eligible = base.clone()
        excluded = list(excluded)
        if excluded:
            eligible[excluded] = float("-inf")
        pool = torch.zeros(len(base), dtype=torch.bool, device=base.device)
        pool[torch.topk(eligible, min(candidates, len(base))).indices] = True
        pool &= eligible >= eligible.max() + math.log(POOL_RATIO)
        if named:
            pool[named] = True
        if pool_floor:
            pool |= eligible >= math.log(pool_floor / len(base))
        floor = ranking[pool].min() - 1.0  # every item outside the pool ranks below the pool
        ranking = torch.where(pool, ranking, floor + base - base.max())
    return ranking


@dataclass(frozen=True)
class WordMention:
    """A context word that is a word-graph concept ("romance", "war"), negated like an entity mention."""

    span: tuple[int, int]
    word: str
    kind: str = "word"

    @property
    def entity_id(self) -> tuple[str, str]:  # a key that never equals an entity id
        return ("word", self.word)


def word_mentions(tokens: list[str], mentions, concept_id) -> list[WordMention]:
    """The tokens outside entity mentions that ``concept_id`` maps to a concept, except the cue words
    of the rules themselves ("hate", "love", "boring"...)."""
    covered = {position for mention in mentions for position in range(*mention.span)}
    return [WordMention((position, position + 1), token.lower()) for position, token in enumerate(tokens)
            if position not in covered and token.lower() not in _CUE_WORDS and concept_id(token) is not None]


def rejected_in_turns(turns, tokenizer, linker, window: int = DEFAULT_NEGATION_WINDOW, concept_id=None) -> tuple[set[int], set[str]]:
    """``(rejected entity ids, lower-cased rejected words)`` of ``(role, text)`` turns (roles
    ``seeker`` / ``recommender``), tokenised and linked as the processing does. The words are those
    of the rejected entity mentions and, with ``concept_id`` (token -> concept id or None), the
    concept words the same rules negate ("no romance please": "romance" has no entity, but is a
    word-graph concept the recommender reads)."""
    linked = []
    words: dict[int, set[str]] = {}
    for role, text in turns:
        tokens = tokenizer.tokenize(text)
        mentions = linker.link(tokens)
        for mention in mentions:
            words.setdefault(mention.entity_id, set()).update(t.lower() for t in tokens[mention.span[0] : mention.span[1]])
        if concept_id is not None:
            mentions = [*mentions, *word_mentions(tokens, mentions, concept_id)]
        linked.append((role == "seeker", tokens, mentions))
    rejected = rejected_entities(linked, window)
    entities = {entity for entity in rejected if not isinstance(entity, tuple)}
    rejected_words = {word for entity in entities for word in words.get(entity, ())}
    return entities, rejected_words | {entity[1] for entity in rejected if isinstance(entity, tuple)}


def without_rejected(row: dict, rejected: set[int], rejected_concepts: set[int] = frozenset()) -> dict:
    """A copy of a processed row without the rejected entities (and their concept words), so that
    the recommender does not read "I hate horror" as a wish for horror."""
    row = dict(row)
    row["context_entities"] = [e for e in row["context_entities"] if e not in rejected]
    row["context_items"] = [e for e in row["context_items"] if e not in rejected]
    row["context_words"] = [c for c in row["context_words"] if c not in rejected_concepts]
    return row
