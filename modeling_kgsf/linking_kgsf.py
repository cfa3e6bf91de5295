"""Entity linking of utterances onto the item graph's entities (replaces KGSF's missing ``text_dict.pkl``).

Part of the model package (the processor, :mod:`modeling_kgsf.processing_kgsf`, links free text
with it at inference) and used by the dataset processing (``datasets_scripts``) through the same
class, so training rows and chat inputs are linked by one piece of code. The index is saved in a
model folder (:meth:`EntityLinker.to_dict`) so that loading does not rebuild it.

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

Chat rules (``chat_rules=True``, the default; ``False`` gives the plain dictionary linker above):

* **film contexts**: a title made of ordinary words may be written in lower case when the context
  says it is a film: right after a cue word (:data:`FILM_CUES`: "like", "seen", "watch", "movie",
  "how about", ...; a one-word title needs a strong cue, :data:`STRONG_FILM_CUES`), between quotes,
  before a year ("die hard 1988", "(1988)"; a title written with its year, "click (2006)", needs
  nothing more), or in a list right after another title ("die hard and terminator");
* **titles made of stopwords** ("Get Out", "It", "Us") are indexed too, but link only written
  capitalised and in a film context ("I liked Get Out and Us");
* **titles without their article** ("terminator" for "The Terminator") are indexed at the lowest
  priority;
* **misspellings**: a token that is neither a dictionary word (``common_words`` + stopwords) nor
  a word of any name is corrected by one edit (deletion, transposition, substitution, insertion)
  towards the words of the names, and spaces are ignored ("Robert Deniro" = "Robert De Niro");
  the span is kept when its similarity ``1 - edits / characters`` is at least
  ``fuzzy_min_similarity`` (default 0.8) and the token has ``fuzzy_min_chars`` (default 4)
  characters or more. One-word fuzzy hits must be names that are not ordinary words.
"""
from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from .tokenization_kgsf import word_tokenize

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
    score: float = 1.0  # 1 for exact matches, ``1 - edits / characters`` for corrected ones


# Words after which a title in lower case (or made of ordinary words) is taken as a film.
STRONG_FILM_CUES = frozenset(
    "seen saw watch watched watching rewatch rewatched movie movies film films called titled named "
    "flick recommend recommended suggest suggested".split()
)
FILM_CUES = STRONG_FILM_CUES | frozenset(
    "like liked likes love loved loves enjoy enjoyed enjoys adore adored favorite favourite "
    "including especially except than as hate hated dislike disliked".split()
)
# One of these may stand between a cue and the title.
_FILLERS = frozenset({"the", "a", "an", "also", "you", "too", "just", "again"})
# A judgement after the title ("X was great") says it is a film too.
_COPULAS = frozenset({"is", "was", "'s"})
_FILM_JUDGEMENTS = frozenset(
    "good great awesome amazing funny hilarious scary creepy classic excellent fantastic brilliant terrific "
    "terrible awful boring movie film one favorite favourite best worst underrated overrated".split()
)
_LIST_CONNECTORS = frozenset({",", "and", "or", "&", "/", "+", "plus"})
_OPENING_QUOTES = frozenset({"``", '"', "'", "`", "\u201c", "\u2018"})
_CLOSING_QUOTES = frozenset({"''", '"', "'", "\u201d", "\u2019"})
_YEAR = re.compile(r"^(19|20)\d\d$")
_ARTICLES = ("the", "a", "an")


def _with_year(key: tuple[str, ...]) -> bool:
    """A name key ending in a year in brackets: ``("get", "out", "(", "2017", ")")``."""
    return len(key) >= 4 and key[-1] == ")" and key[-3] == "(" and _YEAR.match(key[-2]) is not None
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"
_ALPHA_WORD = re.compile(r"^[a-z]+$")


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



def _edits1(word: str) -> set[str]:
    """Every string one deletion, transposition, substitution or insertion (a-z) away from ``word``."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = [left + right[1:] for left, right in splits if right]
    transposes = [left + right[1] + right[0] + right[2:] for left, right in splits if len(right) > 1]
    replaces = [left + c + right[1:] for left, right in splits if right for c in _ALPHABET]
    inserts = [left + c + right for left, right in splits for c in _ALPHABET]
    return set(deletes + transposes + replaces + inserts)


class _NameCandidates:
    """The best-ranked ``(priority, -mentions, entity, kind)`` per name key while :meth:`EntityLinker.from_kg`
    adds names; the first added wins a tie."""

    def __init__(self, stopwords: set[str], max_ngram: int, min_name_chars: int):
        self.stopwords = stopwords
        self.max_ngram = max_ngram
        self.min_name_chars = min_name_chars
        self.best: dict[tuple[str, ...], tuple[int, int, int, str]] = {}  # key -> (priority, -mentions, entity, kind)
        self.stopword_titles: set[tuple[str, ...]] = set()  # keys whose best name is made of stopwords
        self.derived: set[tuple[str, ...]] = set()  # keys whose best name is a title without its article

    def add(self, name: str, entity: int, priority: int, kind: str, mentions: int = 0, variant: bool = False) -> None:
        """Offer ``name`` for ``entity``; too short, too long, generic or stopword-only non-titles are skipped."""
        key = tuple(token.lower() for token in word_tokenize(name))
        if not key or len(key) > self.max_ngram or key in _GENERIC_NAMES:
            return
        only_stopwords = all(token in self.stopwords or _NUMERIC.match(token) for token in key)
        if only_stopwords:
            # titles made of stopwords ("It", "Get Out"): kept for the chat rules only
            if kind != "title" or all(_NUMERIC.match(token) for token in key) or len("".join(key)) < 2:
                return
        elif len("".join(key)) < self.min_name_chars:
            return
        candidate = (priority + (10 if only_stopwords else 0), -mentions, entity, kind)
        if key not in self.best or candidate < self.best[key]:
            self.best[key] = candidate
            (self.stopword_titles.add if only_stopwords else self.stopword_titles.discard)(key)
            (self.derived.add if variant else self.derived.discard)(key)

    def add_entity_names(self, entities) -> None:
        """Offer the movie titles (and their forms without year or article), then the URI names, then ``entity_names``."""
        add = self.add
        items = set(entities.item_entity_ids)
        for movie_id, title in entities.movie_id_to_title.items():
            entity = entities.movie_id_to_entity.get(movie_id)
            if entity is not None:
                mentions = entities.movie_id_to_mentions.get(movie_id, 0)
                for variant in title_variants(title):
                    add(variant, entity, _PRIORITY_TITLE, "title", mentions)
                    first, _, rest = variant.partition(" ")
                    if first.lower() in _ARTICLES and rest:  # "The Terminator" -> "Terminator"
                        add(rest, entity, _PRIORITY_DISAMBIGUATED_URI + 1, "title", mentions, variant=True)
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


class EntityLinker:
    """Dictionary n-gram linker. Build it with :meth:`from_kg`; call :meth:`link` per utterance."""

    def __init__(
        self,
        movie_id_to_entity: dict[str, int],
        names: dict[tuple[str, ...], tuple[int, str]],
        capitalised_only: set[tuple[str, ...]],
        max_ngram: int,
        context_only: set[tuple[str, ...]] = frozenset(),
        derived: set[tuple[str, ...]] = frozenset(),
        dictionary: set[str] = frozenset(),
        chat_rules: bool = True,
        fuzzy: bool = True,
        fuzzy_min_chars: int = 4,
        fuzzy_min_similarity: float = 0.8,
    ):
        """Prefer :meth:`from_kg`. ``names``: lower-cased token tuple -> (entity id, kind);
        ``capitalised_only``: names made of ordinary words (see the module docstring);
        ``context_only``: titles made of stopwords (capitals and a film context needed);
        ``derived``: titles without their article; ``dictionary``: ordinary lower-case words
        (never corrected). ``chat_rules``/``fuzzy`` and the thresholds: see the module docstring."""
        self.movie_id_to_entity = movie_id_to_entity
        self.names = names  # lower-cased token tuple -> (entity id, kind)
        self.capitalised_only = capitalised_only
        self.max_ngram = max_ngram
        self.context_only = set(context_only)
        self.derived = set(derived)
        self.dictionary = set(dictionary)
        self.chat_rules = chat_rules
        self.fuzzy = fuzzy
        self.fuzzy_min_chars = fuzzy_min_chars
        self.fuzzy_min_similarity = fuzzy_min_similarity
        self._name_words: set[str] | None = None  # built on the first correction
        self._squashed: dict[str, tuple[str, ...]] | None = None

    @classmethod
    def from_kg(
        cls,
        entities,
        stopwords: set[str] = frozenset(),
        common_words: set[str] = frozenset(),
        case_free_entities: set[int] = frozenset(),
        max_ngram: int = 8,
        min_name_chars: int = 3,
        **options,
    ) -> "EntityLinker":
        """Index every DBpedia entity name, every ReDial movie title and ``entities.entity_names``.

        ``entities``: the entity table (``datasets_scripts.kg.DBpediaEntities`` or any object with
        ``item_entity_ids``, ``entity_to_uri``, ``movie_id_to_entity``, ``movie_id_to_title``,
        ``movie_id_to_mentions`` and ``entity_names``).

        ``stopwords``: names made only of these are skipped (titles made of them are kept for the
        chat rules). ``common_words``: lower-case ordinary words (e.g. the ConceptNet concept
        vocabulary); names made only of them and of stopwords need capitals or a film context.
        ``case_free_entities``: entity ids exempt from that rule (genres). ``options``: the
        keyword arguments of :class:`EntityLinker` (``chat_rules``, ``fuzzy``, thresholds).
        """
        candidates = _NameCandidates(stopwords, max_ngram, min_name_chars)
        candidates.add_entity_names(entities)
        names = {key: (entity, kind) for key, (_, _, entity, kind) in candidates.best.items()}
        ordinary = set(common_words) | set(stopwords)
        capitalised_only = {
            key
            for key, (entity, _) in names.items()
            if key not in candidates.stopword_titles and entity not in case_free_entities
            and all(token in ordinary or not token.isalnum() for token in key)
        }
        dictionary = {word for word in ordinary if _ALPHA_WORD.match(word)}
        return cls(dict(entities.movie_id_to_entity), names, capitalised_only, max_ngram,
                   context_only=candidates.stopword_titles, derived=candidates.derived, dictionary=dictionary, **options)

    # ------------------------------------------------------------------ saving
    INDEX_FORMAT = "kgsf-entity-linker"
    INDEX_VERSION = 2
    _OPTIONS = ("chat_rules", "fuzzy", "fuzzy_min_chars", "fuzzy_min_similarity")

    def to_dict(self) -> dict:
        """The built index as plain JSON (names joined by spaces: tokens never contain one), so that
        :meth:`from_dict` restores it without re-tokenising every entity name."""
        return {
            "format": self.INDEX_FORMAT,
            "version": self.INDEX_VERSION,
            "max_ngram": self.max_ngram,
            "movie_id_to_entity": self.movie_id_to_entity,
            "names": {" ".join(key): [entity, kind] for key, (entity, kind) in self.names.items()},
            "capitalised_only": sorted(" ".join(key) for key in self.capitalised_only),
            "context_only": sorted(" ".join(key) for key in self.context_only),
            "derived": sorted(" ".join(key) for key in self.derived),
            "dictionary": " ".join(sorted(self.dictionary)),
            "options": {name: getattr(self, name) for name in self._OPTIONS},
        }

    @classmethod
    def from_dict(cls, data: dict, **options) -> "EntityLinker":
        """Restore :meth:`to_dict`'s index; ``options`` override the saved ones. Another version
        raises ``ValueError`` (the caller rebuilds the index with :meth:`from_kg`)."""
        if data.get("format") != cls.INDEX_FORMAT or data.get("version") != cls.INDEX_VERSION:
            raise ValueError(f"not a {cls.INDEX_FORMAT} index of version {cls.INDEX_VERSION} "
                             f"(format={data.get('format')!r}, version={data.get('version')!r})")
        names = {tuple(key.split(" ")): (int(entity), kind) for key, (entity, kind) in data["names"].items()}
        sets = {name: {tuple(key.split(" ")) for key in data.get(name, ())} for name in ("capitalised_only", "context_only", "derived")}
        return cls(dict(data["movie_id_to_entity"]), names, sets["capitalised_only"], int(data["max_ngram"]),
                   context_only=sets["context_only"], derived=sets["derived"], dictionary=set(data.get("dictionary", "").split()),
                   **{**data.get("options", {}), **options})

    # ------------------------------------------------------------------ rules
    @staticmethod
    def _capitalised_mention(tokens: list[str], position: int, length: int) -> bool:
        """Capitalised, and for one word not merely because it starts a sentence."""
        if not tokens[position][:1].isupper():
            return False
        sentence_start = position == 0 or tokens[position - 1] in _SENTENCE_ENDS
        return length > 1 or not sentence_start

    @staticmethod
    def film_context(lowered: list[str], position: int, length: int, title_ends: set[int], strong: bool = False,
                     after: bool = True) -> bool:
        """Does the context say that ``lowered[position:position + length]`` is a film? A cue word
        right before it, or a strong cue before one filler word ("watch the X", :data:`_FILLERS`) (``strong``: only :data:`STRONG_FILM_CUES`), quotes around it, a year after
        it, with ``after`` a judgement after it ("was great", :data:`_FILM_JUDGEMENTS`; the callers allow it
        only for capitalised titles not made of stopwords: "It was great" is no film), or a list connector right after another title (``title_ends``: end
        positions of the titles already linked in the utterance)."""
        before = lowered[position - 1] if position > 0 else ""
        following = lowered[position + length] if position + length < len(lowered) else ""
        cues = STRONG_FILM_CUES if strong else FILM_CUES
        if before in cues or (before in _FILLERS and position > 1 and lowered[position - 2] in STRONG_FILM_CUES):
            return True  # "watched Up", "watch the Avengers", "recommend you Click" (not "like a good time")
        if not strong and before == "about" and position > 1 and lowered[position - 2] in ("how", "what"):
            return True  # "how about die hard" (not "a film about the president")
        if before in _OPENING_QUOTES and following in _CLOSING_QUOTES:
            return True
        if _YEAR.match(following) or (following == "(" and position + length + 1 < len(lowered)
                                      and _YEAR.match(lowered[position + length + 1])):
            return True
        if after and following in _COPULAS and any(w in _FILM_JUDGEMENTS for w in lowered[position + length + 1 : position + length + 4]):
            return True  # "Spotlight was awesome", "The Others is pretty creepy"
        back = position
        while back > 0 and lowered[back - 1] in _LIST_CONNECTORS:
            back -= 1
        return back < position and back in title_ends

    def _accept(self, key, kind, tokens, lowered, position, length, title_ends) -> bool:
        if self.chat_rules and kind == "title" and _with_year(key):  # "get out (2017)": the year says it is a film
            return True
        if key in self.context_only or key in self.derived:
            if not self.chat_rules:
                return False
            if key in self.context_only:  # stopword titles: capitals and a film context before them ("It was great" is no film)
                return tokens[position][:1].isupper() and self.film_context(lowered, position, length, title_ends, after=False)
        if key in self.capitalised_only and not self._capitalised_mention(tokens, position, length):
            # a judgement after it counts only for a capitalised title at a sentence start ("Creed was great", not "the bunny was great")
            return self.chat_rules and kind == "title" and self.film_context(lowered, position, length, title_ends, strong=length == 1,
                                                                             after=tokens[position][:1].isupper())
        return True

    # ------------------------------------------------------------------ misspellings
    def _unknown(self, word: str) -> bool:
        """A word worth correcting: letters only, long enough, not a dictionary word nor a word of a name."""
        if self._name_words is None:
            self._name_words = {token for key in self.names for token in key}
        return (len(word) >= self.fuzzy_min_chars and _ALPHA_WORD.match(word) is not None
                and word not in self.dictionary and word not in self._name_words)

    def _squashed_names(self) -> dict[str, tuple[str, ...]]:
        """Names of two or more words without their spaces ("robertdeniro"), built on first use."""
        if self._squashed is None:
            self._squashed = {}
            for key in self.names:
                if len(key) > 1 and key not in self.context_only and key not in self.derived:
                    self._squashed.setdefault("".join(key), key)
        return self._squashed

    def _correct(self, tokens: list[str], lowered: list[str], position: int) -> tuple[int, int, tuple[str, ...], float] | None:
        """The best corrected name around the unknown word at ``position``:
        ``(start, end, name key, similarity)`` or None."""
        word = lowered[position]
        squashed = self._squashed_names()
        options = [(word, 0)] + [(fixed, 1) for fixed in _edits1(word) if fixed in self._name_words]
        best = None
        for start in range(max(0, position - self.max_ngram + 1), position + 1):
            for end in range(position + 1, min(len(lowered), start + self.max_ngram) + 1):
                if end - start > self.max_ngram:
                    continue
                left, right = lowered[start:position], lowered[position + 1 : end]
                for fixed, edits in options:
                    key = (*left, fixed, *right)
                    if key not in self.names:
                        key = squashed.get("".join(key))
                        if key is None:
                            continue
                    if len(key) == 1 and (key in self.capitalised_only or edits == 0):
                        continue
                    if key in self.context_only or key in self.derived:
                        continue
                    similarity = 1.0 - edits / len("".join(key))
                    if similarity < self.fuzzy_min_similarity or (edits == 0 and end - start == 1):
                        continue
                    candidate = (end - start, similarity, -start)
                    if best is None or candidate > best[0]:
                        best = (candidate, (start, end, key, similarity))
        return best[1] if best else None

    # ------------------------------------------------------------------ linking
    def movie_entity(self, movie_id: str) -> int | None:
        """Entity id of a ReDial movieId, or None if the release does not know it."""
        return self.movie_id_to_entity.get(movie_id)

    def link(self, text_or_tokens: str | list[str]) -> list[Mention]:
        """Mentions in an utterance (a string, or tokens from ``KGSFTokenizer.tokenize``), in order."""
        tokens = word_tokenize(text_or_tokens) if isinstance(text_or_tokens, str) else list(text_or_tokens)
        lowered = [token.lower() for token in tokens]
        corrections: dict[int, tuple[int, tuple[str, ...], float]] = {}  # start -> (end, key, similarity)
        if self.fuzzy and self.chat_rules:
            for position, word in enumerate(lowered):
                if self._unknown(word):
                    found = self._correct(tokens, lowered, position)
                    if found and found[0] not in corrections:
                        corrections[found[0]] = found[1:]
        mentions: list[Mention] = []
        title_ends: set[int] = set()
        position = 0
        while position < len(tokens):
            movie = _MOVIE_TOKEN.match(tokens[position])
            if movie:
                entity = self.movie_id_to_entity.get(movie.group(1))
                if entity is not None:
                    mentions.append(Mention((position, position + 1), entity, tokens[position], "movie_id"))
                    title_ends.add(position + 1)
                position += 1
                continue
            correction = corrections.get(position)
            for length in range(min(self.max_ngram, len(tokens) - position), 0, -1):
                if correction and correction[0] - position > length:  # a longer corrected name wins
                    end, key, similarity = correction
                    entity, kind = self.names[key]
                    mentions.append(Mention((position, end), entity, " ".join(tokens[position:end]), kind, round(similarity, 3)))
                    length = end - position
                    break
                key = tuple(lowered[position : position + length])
                found = self.names.get(key)
                if found is None or not self._accept(key, found[1], tokens, lowered, position, length, title_ends):
                    continue
                entity, kind = found
                mentions.append(Mention((position, position + length), entity, " ".join(tokens[position : position + length]), kind))
                break
            else:
                if correction:
                    end, key, similarity = correction
                    entity, kind = self.names[key]
                    mentions.append(Mention((position, end), entity, " ".join(tokens[position:end]), kind, round(similarity, 3)))
                    length = end - position
                else:
                    position += 1
                    continue
            if mentions[-1].kind == "title":
                title_ends.add(position + length)
            position += length
        return mentions
