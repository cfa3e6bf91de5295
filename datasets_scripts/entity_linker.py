"""Entity linking of utterances onto KGSF's DBpedia entities (replaces the missing ``text_dict.pkl``).

Three kinds of mentions, see :class:`Mention`:

* ``"movie_id"``: a ReDial ``@<movieId>`` token, resolved through the release's id maps;
* ``"title"``: a movie title written as text ("Paranormal Activity", "paranormal activity (2007)");
* ``"entity"``: any other DBpedia entity (actor, director, genre...) whose name, taken from its URI
  (``<http://dbpedia.org/resource/Tom_Hanks>`` -> "tom hanks", disambiguation suffixes such as
  ``_(2009_film)`` or ``_(actor)`` removed), occurs as a token n-gram.

Matching is case-insensitive on word tokens, greedy left to right, longest n-gram first, with
one dictionary lookup per (position, length) and lengths bounded by ``max_ngram``. Names made only
of stopwords, numbers or fewer than ``min_name_chars`` characters are not indexed. Names made only
of ordinary words (``common_words``, e.g. the ConceptNet concepts, plus stopwords: "Frozen",
"The Family", "Nice") are matched only when the text writes them capitalised, and a one-word one
not at the start of a sentence: this removes most false hits of titles that are common words.
Entities in ``case_free_entities`` (e.g. genres, "horror") are exempt.

When several entities share a name, the first of these wins: a movie title from the ReDial movie
table (most mentioned first), a movie named by its URI, an entity whose URI has no
disambiguation suffix, any other entity (lowest id first).
"""
from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from modeling_kgsf.tokenization_kgsf import word_tokenize

from .kg import DBpediaEntities

DBPEDIA_RESOURCE_PREFIX = "<http://dbpedia.org/resource/"
_DISAMBIGUATION = re.compile(r"\s*\([^()]*\)\s*$")
_YEAR_SUFFIX = re.compile(r"\s*\(\s*\d{4}\s*\)\s*$")
_MOVIE_TOKEN = re.compile(r"^@([A-Za-z0-9_]+)$")  # an item placeholder: ReDial "@<movieId>", or "@<item id>" (generic format)
_NUMERIC = re.compile(r"^[\d\W_]+$")
# Entities named like this ("Film", "Movies") are DBpedia genres but not informative mentions.
_GENERIC_NAMES = {("film",), ("films",), ("movie",), ("movies",)}
_SENTENCE_ENDS = {".", "!", "?", "...", "_split_", "``", "''", ":", ";"}

# Priority of a name source when several entities share a name (lower wins).
_PRIORITY_TITLE, _PRIORITY_MOVIE_URI, _PRIORITY_PLAIN_URI, _PRIORITY_DISAMBIGUATED_URI = range(4)


@dataclass(frozen=True)
class Mention:
    """One linked mention: tokens ``span[0]:span[1]`` of the tokenised utterance."""

    span: tuple[int, int]
    entity_id: int
    surface: str
    kind: str  # "movie_id" | "title" | "entity"


def name_from_uri(uri: str) -> tuple[str, bool] | None:
    """Readable name of a DBpedia resource URI and whether a disambiguation suffix was removed.

    ``<http://dbpedia.org/resource/Up_(2009_film)>`` -> ``("Up", True)``; None for other URIs.
    """
    if not uri.startswith(DBPEDIA_RESOURCE_PREFIX):
        return None
    name = urllib.parse.unquote(uri[len(DBPEDIA_RESOURCE_PREFIX) : -1]).replace("_", " ").strip()
    stripped = _DISAMBIGUATION.sub("", name).strip()
    return (stripped or name), stripped != name


def title_variants(title: str) -> list[str]:
    """A ReDial movie title and its form without the year: "Up (2009)" -> ["Up (2009)", "Up"]."""
    title = " ".join(title.split())
    without_year = _YEAR_SUFFIX.sub("", title).strip()
    return [title, without_year] if without_year and without_year != title else [title]


class EntityLinker:
    """Dictionary n-gram linker. Build it with :meth:`from_kg`; call :meth:`link` per utterance."""

    def __init__(
        self,
        movie_id_to_entity: dict[str, int],
        names: dict[tuple[str, ...], tuple[int, str]],
        capitalised_only: set[tuple[str, ...]],
        max_ngram: int,
    ):
        """Prefer :meth:`from_kg`. ``names``: lower-cased token tuple -> (entity id, kind);
        ``capitalised_only``: names made of ordinary words (see the module docstring)."""
        self.movie_id_to_entity = movie_id_to_entity
        self.names = names  # lower-cased token tuple -> (entity id, kind)
        self.capitalised_only = capitalised_only
        self.max_ngram = max_ngram

    @classmethod
    def from_kg(
        cls,
        entities: DBpediaEntities,
        stopwords: set[str] = frozenset(),
        common_words: set[str] = frozenset(),
        case_free_entities: set[int] = frozenset(),
        max_ngram: int = 8,
        min_name_chars: int = 3,
    ) -> "EntityLinker":
        """Index every DBpedia entity name, every ReDial movie title and ``entities.entity_names``.

        ``stopwords``: names made only of these are skipped. ``common_words``: lower-case ordinary
        words (e.g. the ConceptNet concept vocabulary); names made only of them and of stopwords
        need capitals. ``case_free_entities``: entity ids exempt from that rule (genres).
        """
        items = set(entities.item_entity_ids)
        candidates: dict[tuple[str, ...], tuple[int, int, int, str]] = {}  # key -> (priority, -mentions, entity, kind)

        def add(name: str, entity: int, priority: int, kind: str, mentions: int = 0) -> None:
            key = tuple(token.lower() for token in word_tokenize(name))
            if not key or len(key) > max_ngram or len("".join(key)) < min_name_chars:
                return
            if key in _GENERIC_NAMES or all(token in stopwords or _NUMERIC.match(token) for token in key):
                return
            candidate = (priority, -mentions, entity, kind)
            if key not in candidates or candidate < candidates[key]:
                candidates[key] = candidate

        for movie_id, title in entities.movie_id_to_title.items():
            entity = entities.movie_id_to_entity.get(movie_id)
            if entity is not None:
                for variant in title_variants(title):
                    add(variant, entity, _PRIORITY_TITLE, "title", entities.movie_id_to_mentions.get(movie_id, 0))
        for entity, uri in enumerate(entities.entity_to_uri):
            parsed = name_from_uri(uri)
            if parsed is None:
                continue
            name, disambiguated = parsed
            if entity in items:
                add(name, entity, _PRIORITY_MOVIE_URI, "title")
            else:
                add(name, entity, _PRIORITY_DISAMBIGUATED_URI if disambiguated else _PRIORITY_PLAIN_URI, "entity")
                if name.lower().endswith(" film"):  # genres: "Horror film" is also "horror"
                    add(name[: -len(" film")], entity, _PRIORITY_DISAMBIGUATED_URI, "entity")
        for entity, extra_names in entities.entity_names.items():
            for name in extra_names:
                if entity in items:
                    add(name, entity, _PRIORITY_MOVIE_URI, "title")
                else:
                    add(name, entity, _PRIORITY_PLAIN_URI, "entity")
        names = {key: (entity, kind) for key, (_, _, entity, kind) in candidates.items()}
        ordinary = set(common_words) | set(stopwords)
        capitalised_only = {
            key
            for key, (entity, _) in names.items()
            if entity not in case_free_entities and all(token in ordinary or not token.isalnum() for token in key)
        }
        return cls(dict(entities.movie_id_to_entity), names, capitalised_only, max_ngram)

    @staticmethod
    def _capitalised_mention(tokens: list[str], position: int, length: int) -> bool:
        """Capitalised, and for one word not merely because it starts a sentence."""
        if not tokens[position][:1].isupper():
            return False
        sentence_start = position == 0 or tokens[position - 1] in _SENTENCE_ENDS
        return length > 1 or not sentence_start

    def movie_entity(self, movie_id: str) -> int | None:
        """Entity id of a ReDial movieId, or None if the release does not know it."""
        return self.movie_id_to_entity.get(movie_id)

    def link(self, text_or_tokens: str | list[str]) -> list[Mention]:
        """Mentions in an utterance (a string, or tokens from ``KGSFTokenizer.tokenize``), in order."""
        tokens = word_tokenize(text_or_tokens) if isinstance(text_or_tokens, str) else list(text_or_tokens)
        lowered = [token.lower() for token in tokens]
        mentions: list[Mention] = []
        position = 0
        while position < len(tokens):
            movie = _MOVIE_TOKEN.match(tokens[position])
            if movie:
                entity = self.movie_id_to_entity.get(movie.group(1))
                if entity is not None:
                    mentions.append(Mention((position, position + 1), entity, tokens[position], "movie_id"))
                position += 1
                continue
            for length in range(min(self.max_ngram, len(tokens) - position), 0, -1):
                key = tuple(lowered[position : position + length])
                found = self.names.get(key)
                if found is None:
                    continue
                if key in self.capitalised_only and not self._capitalised_mention(tokens, position, length):
                    continue
                entity, kind = found
                mentions.append(Mention((position, position + length), entity, " ".join(tokens[position : position + length]), kind))
                position += length
                break
            else:
                position += 1
        return mentions
