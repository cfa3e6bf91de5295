"""Rebuild whole ReDial conversations from UniCRS turn-level samples.

Our training split only holds the first 500 conversations of ReDial train. UniCRS ships
``src/data/redial/valid_data_processed.jsonl``: 6,253 turn-level samples cut from about 1,000
other ReDial *train* conversations (CRSLab's validation split). This module turns those samples
back into conversations in the raw ReDial jsonl format (the format of KGSF's
``test_data.jsonl``) so that the rest of the pipeline can read them like any other split.

How UniCRS wrote the samples (``UniCRS/src/data/redial/process_mask.py``)
------------------------------------------------------------------------
For each ReDial conversation, consecutive messages of the same worker are merged into one
*turn* (texts joined by a space). ``@movieId`` mentions listed in the conversation's
``movieMentions`` are replaced by the movie's title, then whitespace is collapsed and HTML
entities are unescaped. Every time the *recommender* (the respondent) speaks, one sample is
written::

    {"context": [all earlier turns, titles written out],
     "resp": this recommender turn with every mention replaced by "<movie>",
     "rec": UniCRS entity ids of the movies DBpedia-linked in this turn (mention order),
     "entity": UniCRS entity ids linked anywhere in the context (a set, no order)}

If the recommender speaks first, the context is ``[""]`` (an empty string standing for the
seeker). Seeker turns after the last recommender turn produce no sample and are lost.

Speaker assignment
------------------
Because consecutive messages of one worker were merged, turns strictly alternate. The context
of a sample always starts with a seeker turn (a real one, or the ``""`` placeholder when the
recommender opened the conversation) and the resp is a recommender turn, so in
``context + [resp]`` even positions are seeker turns and odd positions are recommender turns.
The ``""`` placeholder is dropped, so such conversations start with a recommender message.
(Measured on the official test split, 891 of 1,342 conversations open with the recommender,
exactly the number of test samples whose first context is ``[""]``.)

Recovery steps
--------------
1. *Grouping.* Sample ``k+1`` of a conversation has the context of sample ``k`` plus two turns
   (the filled-in resp of sample ``k`` and the next seeker turn). Any sample whose context is
   not such an extension starts a new dialogue. The last sample of a dialogue has the longest
   context, and its context plus its resp gives every turn.
2. *Recommender turns.* The masked resp of sample ``k`` and the same turn written with titles
   (position ``len(context_k)`` of the next sample's context) are aligned: the text between
   the ``<movie>`` placeholders is literal, so the titles are exactly the spans in between
   (when a literal also occurs inside a title, the split whose titles are known wins). Each
   title becomes a ReDial ``movieId`` by preferring the sample's ``rec`` ids (UniCRS id -> URI
   via ``entity2id.json`` -> ReDial movieId via the inverse of KGSF's ``id2entity``; the KGSF
   entity id of that URI is ``entity2entityId[URI]``), then the movies known for this
   dialogue, then ``movies_with_mentions.csv`` (most mentioned movie when a title is shared).
   About a quarter of the ``rec`` URIs have no movie in KGSF's ``id2entity`` (mostly
   2017-2018 films): for them, :func:`learn_uri_movies` reads the URI -> movie pairs off the
   single-placeholder turns of the same file. The last resp of a dialogue has no titled copy:
   its placeholders are filled in ``rec`` order when every placeholder has a mappable ``rec``
   id, otherwise the turn is dropped (counted in the stats). ``rec`` order is the mention
   order for about 85% of placeholders, so with two or more movies in a last resp the set is
   right but their order may not be (``last_resp_order_uncertain``).
3. *Seeker turns.* Titles are searched in the text: titles of the movies known for this
   dialogue (``rec`` and ``entity`` ids, and titles read off the recommender turns) anywhere,
   any ``movies_with_mentions.csv`` title that ends with a year such as ``(2014)``, and csv
   titles without a year of at least ``MIN_WORDS_UNDATED_TITLE`` (2) words ("Hot Tub Time
   Machine"; case-sensitive, whole words). One-word undated titles ("Predator", "Zootopia")
   are only matched when known for the dialogue, since as plain words they would give false
   mentions. Dated titles win over undated ones, then the longest; mentions become
   ``@movieId``. ``@123`` tokens that UniCRS left in place (ids not in movieMentions) are kept.
4. *Overlap removal.* Turns are compared after :func:`normalise_utterance` (whitespace
   collapsed, HTML unescaped, lower-cased), both sides in the title notation UniCRS used
   (``@movieId`` of the excluded files written as the title, as UniCRS did), so the test does
   not depend on how well titles were mapped back. Same-speaker runs of the excluded files are
   indexed both whole and message by message. A recovered conversation overlaps a split when
   it shares with it at least one turn of ``LONG_OVERLAP_CHARS`` (50) normalised characters,
   or at least two distinct turns of ``MIN_OVERLAP_CHARS`` (30). Greetings such as "Hi, what
   kind of movies do you like?" are shorter than 50 characters and occur in hundreds of
   unrelated conversations, so one of them alone does not count; conversations that really
   are the same share many turns.

:func:`evaluate_on_test_split` runs the same recovery on ``test_data_processed.jsonl`` and
compares it with the real ReDial test conversations to measure the accuracy of the method.

Nothing is unpickled here: KGSF's pickles are read from the JSON files written by
:func:`datasets_scripts.convert_pickles.convert_kgsf_pickles`.
"""
from __future__ import annotations

import argparse
import csv
import html
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from . import paths

# Paths inside the shared data folder (see ../shared/data/SOURCES.md).
UNICRS_VALID_SAMPLES = "ShupeiLi-UniCRS/src/data/redial/valid_data_processed.jsonl"
UNICRS_TEST_SAMPLES = "ShupeiLi-UniCRS/src/data/redial/test_data_processed.jsonl"
UNICRS_ENTITY2ID = "ShupeiLi-UniCRS/data/redial/entity2id.json"
REDIAL_MOVIES_CSV = "ReDialData-website/movies_with_mentions.csv"
KGSF_PICKLE_DIR = "RUCAIBox-KGSF/data"
DEFAULT_EXCLUDE_FILES = {
    "validation": "RUCAIBox-KGSF/data/valid_data.jsonl",
    "test": "RUCAIBox-KGSF/data/test_data.jsonl",
    "train": "baazouziwiem-Kepler-aSI-CRS/train_data.jsonl",
}
DEFAULT_CONVERTED_DIR = Path.home() / ".cache" / "kgsf" / "converted"

PLACEHOLDER = "<movie>"
MOVIE_TOKEN = re.compile(r"@(\d+)")
YEAR = re.compile(r"\(\d{4}\)")
#: Overlap rule (see the module docstring): one shared turn of at least LONG_OVERLAP_CHARS
#: normalised characters, or two distinct shared turns of at least MIN_OVERLAP_CHARS.
MIN_OVERLAP_CHARS = 30
LONG_OVERLAP_CHARS = 50
#: Titles without a "(year)" that are not known for the dialogue are matched in seeker turns
#: only if they have at least this many words (None: never).
MIN_WORDS_UNDATED_TITLE: int | None = 2
#: Longest title, in characters, looked for before a "(year)" in seeker turns.
_MAX_TITLE_CHARS = 200

# Worker ids of recovered conversations: far above ReDial's (at most 1,111 in the shared files).
_WORKER_ID_BASE = 10_000_000


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------
def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} '{path.name}' not found; looked for it at {path}")
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a jsonl file; a malformed line raises ``ValueError`` naming the file and line."""
    return [record for _, record in paths.iter_jsonl(_require(Path(path), "jsonl file"))]


def _read_json(path: Path, what: str):
    _require(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}, line {err.lineno}: malformed JSON ({err.msg})") from None


def read_unicrs_samples(path: str | Path) -> list[dict]:
    """Read UniCRS samples and check that each has ``context`` (list), ``resp`` and ``rec``."""
    samples = read_jsonl(path)
    for index, sample in enumerate(samples, start=1):
        if not isinstance(sample.get("context"), list) or "resp" not in sample or "rec" not in sample:
            raise ValueError(f"{path}, sample {index}: expected keys 'context' (a list), 'resp' and 'rec'")
    return samples


def _norm_title(title: str) -> str:
    """A title as UniCRS wrote it into text: whitespace collapsed, HTML entities unescaped."""
    return html.unescape(" ".join(title.split()))


@dataclass
class MovieMaps:
    """Id and title maps needed to turn UniCRS ids and titles into ReDial movieIds."""

    unicrs_id_to_uri: dict[int, str]
    uri_to_movie: dict[str, str]  # DBpedia URI -> ReDial movieId (inverse of KGSF id2entity)
    uri_to_kgsf_entity: dict[str, int]  # DBpedia URI -> KGSF entity id (entity2entityId)
    movie_titles: dict[str, str]  # ReDial movieId -> title as in movies_with_mentions.csv
    movie_mentions: dict[str, int]  # ReDial movieId -> nbMentions
    title_to_movies: dict[str, list[str]] = field(default_factory=dict)  # normalised title -> ids
    # URI -> movieId read off the data itself (see learn_uri_movies), for URIs id2entity lacks
    learned_uri_to_movie: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not self.title_to_movies:
            index = defaultdict(list)
            for movie_id, title in self.movie_titles.items():
                index[_norm_title(title)].append(movie_id)
            # most mentioned first, so index[...][0] is the default reading of a shared title
            self.title_to_movies = {
                title: sorted(ids, key=lambda m: (-self.movie_mentions.get(m, 0), int(m)))
                for title, ids in index.items()
            }

    def undated_title_pattern(self) -> re.Pattern | None:
        """Regex of the csv titles without a "(year)" that have at least
        ``MIN_WORDS_UNDATED_TITLE`` words (case-sensitive, whole words, longest first)."""
        if MIN_WORDS_UNDATED_TITLE is None:
            return None
        if getattr(self, "_undated", None) is None:
            titles = sorted(
                (t for t in self.title_to_movies if t and not YEAR.search(t) and len(t.split()) >= MIN_WORDS_UNDATED_TITLE),
                key=len,
                reverse=True,
            )
            alternatives = "|".join(re.escape(t) for t in titles) or r"(?!x)x"
            self._undated = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
        return self._undated

    def unicrs_to_movie(self, unicrs_id: int) -> str | None:
        """UniCRS entity id -> ReDial movieId, or None when it is not a ReDial movie.

        First through the DBpedia URI (KGSF's id2entity); for URIs KGSF does not link to a
        movie (about a quarter of the ``rec`` ids, mostly 2017-2018 films that have no link in
        id2entity), through :attr:`learned_uri_to_movie`.
        """
        uri = self.unicrs_id_to_uri.get(int(unicrs_id))
        if uri is None:
            return None
        return self.uri_to_movie.get(uri) or self.learned_uri_to_movie.get(uri)

    def title_of(self, movie_id: str) -> str:
        return _norm_title(self.movie_titles.get(movie_id, ""))


def load_movie_maps(data_dir: str | Path, converted_dir: str | Path | None = None) -> MovieMaps:
    """Load the UniCRS, KGSF and ReDial maps. Converts KGSF's pickles once if needed."""
    data_dir = Path(data_dir)
    converted_dir = Path(converted_dir) if converted_dir is not None else DEFAULT_CONVERTED_DIR
    id2entity_path = converted_dir / "id2entity.json"
    entity2entityid_path = converted_dir / "entity2entityId.json"
    if not (id2entity_path.is_file() and entity2entityid_path.is_file()):
        from .convert_pickles import convert_kgsf_pickles  # restricted unpickler, writes JSON

        convert_kgsf_pickles(data_dir / KGSF_PICKLE_DIR, converted_dir)
    entity2id = _read_json(data_dir / UNICRS_ENTITY2ID, "UniCRS entity map")
    id2entity = _read_json(id2entity_path, "converted KGSF id2entity")
    entity2entityid = _read_json(entity2entityid_path, "converted KGSF entity2entityId")
    csv_path = _require(data_dir / REDIAL_MOVIES_CSV, "ReDial movie list")
    titles, mentions = {}, {}
    with csv_path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            titles[row["movieId"]] = row["movieName"]
            mentions[row["movieId"]] = int(row.get("nbMentions") or 0)
    return MovieMaps(
        unicrs_id_to_uri={int(i): uri for uri, i in entity2id.items()},
        uri_to_movie={uri: movie for movie, uri in id2entity.items() if uri},
        uri_to_kgsf_entity=dict(entity2entityid),
        movie_titles=titles,
        movie_mentions=mentions,
    )


# --------------------------------------------------------------------------------------------
# Step 1: grouping samples into dialogues
# --------------------------------------------------------------------------------------------
def group_dialogues(samples: Iterable[dict]) -> list[list[dict]]:
    """Split the sample stream into dialogues.

    A sample continues the current dialogue when its context is the previous context plus
    exactly two turns; anything else starts a new dialogue.
    """
    dialogues: list[list[dict]] = []
    previous = None
    for sample in samples:
        context = sample["context"]
        continues = (
            previous is not None
            and len(context) == len(previous) + 2
            and context[: len(previous)] == previous
        )
        if continues:
            dialogues[-1].append(sample)
        else:
            dialogues.append([sample])
        previous = context
    return dialogues


# --------------------------------------------------------------------------------------------
# Step 2: recommender turns (placeholders) and seeker turns (titles)
# --------------------------------------------------------------------------------------------
def align_placeholders(masked: str, titled: str, is_known=lambda title: True, max_steps: int = 10_000):
    """Titles that turn ``masked`` (with ``<movie>`` placeholders) into ``titled``.

    The text around the placeholders must match literally. When a literal piece also occurs
    inside a title the split is ambiguous; the first split whose titles all pass ``is_known``
    is preferred, else the first split found (shortest titles first). Returns None when the
    two texts do not align.
    """
    pieces = masked.split(PLACEHOLDER)
    if len(pieces) == 1:
        return [] if masked == titled else None
    head, tail = pieces[0], pieces[-1]
    if not (titled.startswith(head) and titled.endswith(tail)) or len(titled) <= len(head) + len(tail):
        return None
    end_limit = len(titled) - len(tail)
    if len(pieces) == 2:
        return [titled[len(head):end_limit]]
    first_solution = None
    steps = 0

    def search(pos: int, index: int, found: list[str]):
        nonlocal first_solution, steps
        steps += 1
        if steps > max_steps:
            return None
        if index == len(pieces) - 1:  # the last title runs up to the tail
            if end_limit <= pos:
                return None
            candidate = found + [titled[pos:end_limit]]
            if all(is_known(t) for t in candidate):
                return candidate
            if first_solution is None:
                first_solution = candidate
            return None
        literal = pieces[index]
        start = titled.find(literal, pos + 1) if literal else pos + 1
        while start != -1 and start + len(literal) <= end_limit:
            result = search(start + len(literal), index + 1, found + [titled[pos:start]])
            if result is not None:
                return result
            if not literal:
                break  # two adjacent placeholders: cannot be split, take the first reading
            start = titled.find(literal, start + 1)
        return None

    # pieces[0] is the head; title i sits between pieces[i] and pieces[i+1]
    result = search(len(head), 1, [])
    return result if result is not None else first_solution


def learn_uri_movies(dialogues: list[list[dict]], maps: MovieMaps) -> dict[str, str]:
    """URI -> ReDial movieId learnt from recommender turns with exactly one placeholder.

    Such a turn has one ``rec`` id and its titled copy in the next context names the movie,
    so the pair (URI, title) is certain. Only URIs that KGSF's id2entity does not map are
    learnt; the title must be in ``movies_with_mentions.csv``; the most frequent reading wins.
    """
    votes: dict[str, Counter] = defaultdict(Counter)
    for dialogue in dialogues:
        for k, sample in enumerate(dialogue[:-1]):
            rec = sample.get("rec", [])
            if sample["resp"].count(PLACEHOLDER) != 1 or len(rec) != 1:
                continue
            uri = maps.unicrs_id_to_uri.get(int(rec[0]))
            if uri is None or uri in maps.uri_to_movie:
                continue
            titles = align_placeholders(sample["resp"], dialogue[k + 1]["context"][len(sample["context"])])
            ids = maps.title_to_movies.get(titles[0].strip()) if titles else None
            if ids:
                votes[uri][ids[0]] += 1
    return {uri: counter.most_common(1)[0][0] for uri, counter in votes.items()}


def _choose_movie(title: str, rec_movies: list[str], known: dict[str, str], maps: MovieMaps) -> str | None:
    """movieId for a title: a rec movie with that title, else a dialogue movie, else the csv."""
    for movie_id in rec_movies:
        if maps.title_of(movie_id) == title:
            return movie_id
    if title in known:
        return known[title]
    ids = maps.title_to_movies.get(title)
    return ids[0] if ids else None


def find_titles(text: str, known: dict[str, str], maps: MovieMaps) -> list[tuple[int, int, str]]:
    """Spans ``(start, end, movieId)`` of movie titles in a seeker turn (longest match wins).

    Candidates are every title in ``known`` (title -> movieId of this dialogue) and every
    csv title ending in a "(year)". A span must start and end at a word boundary.
    """
    candidates = []  # (start, end, movieId, dated)

    def boundary_ok(start: int, end: int) -> bool:
        before = text[start - 1] if start > 0 else " "
        after = text[end] if end < len(text) else " "
        return not before.isalnum() and not after.isalnum()

    for title, movie_id in known.items():
        if not title:
            continue
        start = text.find(title)
        while start != -1:
            if boundary_ok(start, start + len(title)):
                candidates.append((start, start + len(title), movie_id, bool(YEAR.search(title))))
            start = text.find(title, start + 1)
    for match in YEAR.finditer(text):
        end = match.end()
        lowest = max(0, end - _MAX_TITLE_CHARS)
        for start in range(lowest, match.start()):  # earliest start = longest title first
            if start > 0 and text[start - 1].isalnum():
                continue
            title = text[start:end]
            if title in known:
                candidates.append((start, end, known[title], True))
                break
            ids = maps.title_to_movies.get(title)
            if ids and boundary_ok(start, end):
                candidates.append((start, end, ids[0], True))
                break
    undated = maps.undated_title_pattern()
    if undated is not None:
        for match in undated.finditer(text):
            title = match.group(0)
            movie_id = known.get(title) or maps.title_to_movies[title][0]
            candidates.append((match.start(), match.end(), movie_id, False))
    # Titles ending in "(year)" first (they are unambiguous), then longest first; a span is
    # kept when it overlaps none kept before. E.g. in "The Hangover (2010)" the csv title
    # "Hangover (2010)" wins over the undated "The Hangover".
    candidates.sort(key=lambda c: (not c[3], -(c[1] - c[0]), c[0]))
    chosen: list[tuple[int, int, str]] = []
    for start, end, movie_id, _ in candidates:
        if all(end <= s or start >= e for s, e, _ in chosen):
            chosen.append((start, end, movie_id))
    return sorted(chosen)


def _replace_spans(text: str, spans: list[tuple[int, int, str]]) -> str:
    out, pos = [], 0
    for start, end, movie_id in spans:
        out.append(text[pos:start])
        out.append(f"@{movie_id}")
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _fill_placeholders(masked: str, movie_ids: list[str]) -> str:
    pieces = masked.split(PLACEHOLDER)
    out = [pieces[0]]
    for movie_id, piece in zip(movie_ids, pieces[1:]):
        out.append(f"@{movie_id}")
        out.append(piece)
    return "".join(out)


# --------------------------------------------------------------------------------------------
# One dialogue -> one ReDial conversation
# --------------------------------------------------------------------------------------------
def rebuild_dialogue(dialogue: list[dict], maps: MovieMaps, stats: Counter) -> list[dict]:
    """Turns of one dialogue as ``{"role", "text", "titled"}`` dicts.

    ``text`` uses ``@movieId`` mentions; ``titled`` is the turn in UniCRS's title notation
    (used for the overlap test; for a last recommender turn, filled with csv titles).
    """
    titled_turns = list(dialogue[-1]["context"])
    n_turns = len(titled_turns) + 1  # + the last resp
    roles = ["seeker" if i % 2 == 0 else "recommender" for i in range(n_turns)]
    known = _known_movies(dialogue, maps)

    texts: list[str | None] = [None] * n_turns
    needs_search = {turn for turn in range(n_turns) if roles[turn] == "seeker"}
    # recommender turns: sample k's resp is turn index len(context_k)
    for k, sample in enumerate(dialogue):
        turn = len(sample["context"])
        masked = sample["resp"]
        rec_movies = [maps.unicrs_to_movie(i) for i in sample.get("rec", [])]
        stats["resp_placeholders"] += masked.count(PLACEHOLDER)
        if k + 1 < len(dialogue):  # titled copy in the next sample's context
            titled = dialogue[k + 1]["context"][turn]
            texts[turn] = _recover_resp(masked, titled, rec_movies, known, maps, stats)
            if texts[turn] is None:
                texts[turn] = titled  # keep the titled text; seeker-style search below
                needs_search.add(turn)
        else:  # the last resp: fill from rec in order, or drop the turn
            filled = _fill_last_resp(masked, rec_movies, maps, stats)
            if filled is None:
                n_turns -= 1
            else:
                texts[turn], titled_last = filled
                titled_turns.append(titled_last)

    # seeker turns (and recommender turns whose alignment failed): search titles
    for turn in sorted(needs_search):
        if turn >= n_turns:
            continue
        source = titled_turns[turn]
        spans = find_titles(source, known, maps)
        stats["context_titles_mapped"] += len(spans)
        texts[turn] = _replace_spans(source, spans)
        stats["context_year_spans_unmapped"] += len(YEAR.findall(texts[turn]))
    turns = []
    for turn in range(n_turns):
        if turn == 0 and titled_turns[0] == "" and roles[0] == "seeker":
            continue  # UniCRS's placeholder for "the recommender spoke first"
        turns.append({"role": roles[turn], "text": texts[turn], "titled": titled_turns[turn]})
    return turns


def _known_movies(dialogue: list[dict], maps: MovieMaps) -> dict[str, str]:
    """Title -> movieId for the movies of one dialogue: its rec ids, then its last context's entity ids."""
    known: dict[str, str] = {}
    all_ids = [i for sample in dialogue for i in sample.get("rec", [])] + list(dialogue[-1].get("entity", []))
    for unicrs_id in all_ids:
        movie_id = maps.unicrs_to_movie(unicrs_id)
        if movie_id is not None and maps.title_of(movie_id):
            known.setdefault(maps.title_of(movie_id), movie_id)
    return known


def _recover_resp(masked: str, titled: str, rec_movies: list[str | None], known: dict[str, str], maps: MovieMaps,
                  stats: Counter) -> str | None:
    """A recommender turn with ``@movieId`` mentions from its masked and titled copies; None when they do not align.

    A placeholder whose movie is not found keeps its title; a found one is added to ``known``.
    """
    n_placeholders = masked.count(PLACEHOLDER)
    titles = align_placeholders(
        masked, titled, is_known=lambda t: t.strip() in known or t.strip() in maps.title_to_movies
    )
    if titles is None or len(titles) != n_placeholders:
        stats["resp_alignment_failed"] += 1
        stats["resp_placeholders_unmapped"] += n_placeholders
        return None
    movie_ids = []
    for position, span in enumerate(titles):
        # a csv title with a trailing space ("Barbershop ") leaves it before punctuation
        title = span.strip()
        in_order = rec_movies[position] if len(rec_movies) == n_placeholders else None
        movie_id = in_order if in_order and maps.title_of(in_order) == title else None
        movie_id = movie_id or _choose_movie(title, [m for m in rec_movies if m], known, maps)
        if in_order is not None:  # how often rec order is mention order
            stats["rec_order_checked"] += 1
            stats["rec_order_agrees"] += int(maps.title_of(in_order) == title)
        if movie_id is None:
            stats["resp_placeholders_unmapped"] += 1
            movie_ids.append(None)
        else:
            stats["resp_placeholders_mapped"] += 1
            known.setdefault(title, movie_id)
            movie_ids.append(movie_id)
    pieces = masked.split(PLACEHOLDER)
    out = [pieces[0]]
    for span, movie_id, piece in zip(titles, movie_ids, pieces[1:]):
        out.append(span if movie_id is None else f"@{movie_id}")
        out.append(piece)
    return "".join(out)


def _fill_last_resp(masked: str, rec_movies: list[str | None], maps: MovieMaps, stats: Counter) -> tuple[str, str] | None:
    """The last recommender turn (``@movieId`` text, titled text) filled from rec in order; None to drop it."""
    n_placeholders = masked.count(PLACEHOLDER)
    if n_placeholders and (len(rec_movies) != n_placeholders or not all(rec_movies)):
        stats["last_resp_dropped_unfillable"] += 1
        stats["resp_placeholders_unmapped"] += n_placeholders
        stats["resp_placeholders_in_dropped_last_resp"] += n_placeholders
        return None
    stats["resp_placeholders_mapped"] += n_placeholders
    stats["last_resp_filled_from_rec"] += int(n_placeholders > 0)
    # rec order is mention order for ~85% of placeholders (rec_order_agrees), so the
    # order of 2+ movies in a last resp is uncertain (the set of movies is right)
    stats["last_resp_order_uncertain"] += int(n_placeholders > 1)
    titled = "".join(
        piece if i == 0 else maps.title_of(rec_movies[i - 1]) + piece
        for i, piece in enumerate(masked.split(PLACEHOLDER))
    )
    return _fill_placeholders(masked, rec_movies), titled


def to_redial_conversation(turns: list[dict], number: int, maps: MovieMaps) -> dict:
    """A recovered dialogue in the raw ReDial jsonl format (keys as in test_data.jsonl)."""
    seeker_id = _WORKER_ID_BASE + 2 * number
    recommender_id = seeker_id + 1
    messages, mentions = [], {}
    for index, turn in enumerate(turns):
        for movie_id in MOVIE_TOKEN.findall(turn["text"]):
            if movie_id in maps.movie_titles:
                mentions.setdefault(movie_id, maps.movie_titles[movie_id])
        messages.append(
            {
                "timeOffset": index,
                "text": turn["text"],
                "senderWorkerId": seeker_id if turn["role"] == "seeker" else recommender_id,
                "messageId": index,
            }
        )
    return {
        "movieMentions": mentions,
        "respondentQuestions": {},
        "messages": messages,
        "conversationId": f"unicrs-{number}",
        "respondentWorkerId": recommender_id,
        "initiatorWorkerId": seeker_id,
        "initiatorQuestions": {},
    }


# --------------------------------------------------------------------------------------------
# Step 4: overlap with other splits
# --------------------------------------------------------------------------------------------
def normalise_utterance(text: str) -> str:
    """Lower-case, whitespace-collapsed text; the key of the overlap test.

    Callers first write movie mentions as titles (UniCRS's notation), so that an utterance
    compares equal whatever notation it came from.
    """
    return " ".join(html.unescape(" ".join(text.split())).lower().split())


def _titled_message(text: str, movie_mentions: dict, maps: MovieMaps) -> str:
    """A raw ReDial message in UniCRS's title notation (as process_mask.py wrote it)."""

    def convert(match):
        movie_id = match.group(1)
        title = movie_mentions.get(movie_id)
        return " ".join(title.split()) if title else match.group(0)

    return html.unescape(" ".join(MOVIE_TOKEN.sub(convert, text).split()))


def merged_turns(conversation: dict) -> list[tuple[int, list[str]]]:
    """Consecutive messages of one sender, as ``(senderWorkerId, [texts])`` runs."""
    runs: list[tuple[int, list[str]]] = []
    for message in conversation.get("messages", []):
        sender = message["senderWorkerId"]
        if runs and runs[-1][0] == sender:
            runs[-1][1].append(message["text"])
        else:
            runs.append((sender, [message["text"]]))
    return runs


def utterance_keys(conversations: Iterable[dict], maps: MovieMaps) -> set[str]:
    """Normalised keys of every message and every same-sender run of ``conversations``."""
    keys = set()
    for conversation in conversations:
        mentions = conversation.get("movieMentions") or {}
        for _, texts in merged_turns(conversation):
            titled = [_titled_message(t, mentions, maps) for t in texts]
            keys.update(normalise_utterance(t) for t in titled)
            keys.add(normalise_utterance(" ".join(titled)))
    return {key for key in keys if len(key) >= MIN_OVERLAP_CHARS}


def overlapping_turns(turns: list[dict], keys: set[str]) -> list[str]:
    """Distinct normalised turns (at least MIN_OVERLAP_CHARS characters) found in ``keys``."""
    shared = []
    for turn in turns:
        key = normalise_utterance(turn["titled"])
        if len(key) >= MIN_OVERLAP_CHARS and key in keys and key not in shared:
            shared.append(key)
    return shared


def overlaps(turns: list[dict], keys: set[str]) -> bool:
    """The overlap rule: one shared long turn, or two shared turns of medium length."""
    shared = overlapping_turns(turns, keys)
    return len(shared) >= 2 or any(len(key) >= LONG_OVERLAP_CHARS for key in shared)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def _recover_turns(samples_path: Path, maps: MovieMaps, stats: Counter) -> list[list[dict]]:
    samples = read_unicrs_samples(samples_path)
    stats["samples_read"] = len(samples)
    dialogues = group_dialogues(samples)
    stats["dialogues_found"] = len(dialogues)
    maps.learned_uri_to_movie = learn_uri_movies(dialogues, maps)
    stats["uris_learnt_from_data"] = len(maps.learned_uri_to_movie)
    recovered = []
    for dialogue in dialogues:
        turns = rebuild_dialogue(dialogue, maps, stats)
        if turns:
            recovered.append(turns)
        else:
            stats["dialogues_empty"] += 1
    return recovered


def recover_conversations(
    data_dir: str | Path,
    converted_dir: str | Path | None = None,
    exclude_files: dict[str, str | Path] | list[str | Path] | None = None,
    samples_file: str | Path | None = None,
) -> tuple[list[dict], dict]:
    """Rebuild ReDial conversations from UniCRS samples and drop those overlapping other splits.

    Args:
        data_dir: the shared data folder (``../shared/data``, layout as in its SOURCES.md).
        converted_dir: folder with KGSF's pickles converted to JSON (``id2entity.json``,
            ``entity2entityId.json``); default ``~/.cache/kgsf/converted``, filled on first use.
        exclude_files: ReDial jsonl files whose conversations must not be duplicated, as
            ``{split_name: path}`` or a list of paths (named by file stem). Relative paths are
            taken inside ``data_dir``. Default: KGSF valid, ReDial test and the 500 train
            conversations. ``{}`` disables the overlap test.
        samples_file: UniCRS samples to rebuild; default ``valid_data_processed.jsonl``.

    Returns:
        ``(conversations, stats)``: conversations in the raw ReDial jsonl format with ids
        ``unicrs-<n>`` (n = dialogue number in the sample file), and counts (samples read,
        dialogues found, conversations kept, dropped per excluded split, mentions mapped...).
    """
    data_dir = Path(data_dir)
    samples_path = Path(samples_file) if samples_file is not None else data_dir / UNICRS_VALID_SAMPLES
    _require(samples_path, "UniCRS samples file")
    if exclude_files is None:
        exclude_files = dict(DEFAULT_EXCLUDE_FILES)
    elif not isinstance(exclude_files, dict):
        exclude_files = {Path(p).stem: p for p in exclude_files}
    exclude_paths = {name: (data_dir / p if not Path(p).is_absolute() else Path(p)) for name, p in exclude_files.items()}
    for name, path in exclude_paths.items():
        _require(path, f"excluded split '{name}' file")

    maps = load_movie_maps(data_dir, converted_dir)
    stats: Counter = Counter()
    recovered = _recover_turns(samples_path, maps, stats)
    split_keys = {name: utterance_keys(read_jsonl(path), maps) for name, path in exclude_paths.items()}

    conversations = []
    for number, turns in enumerate(recovered):
        overlapping = [name for name, keys in split_keys.items() if overlaps(turns, keys)]
        for name in overlapping:
            stats[f"dropped_overlap_{name}"] += 1
        if overlapping:
            stats["dropped_overlap_total"] += 1
            continue
        conversations.append(to_redial_conversation(turns, number, maps))
    stats["conversations_kept"] = len(conversations)
    stats["messages_kept"] = sum(len(c["messages"]) for c in conversations)
    stats["movie_mentions_kept"] = sum(
        len(MOVIE_TOKEN.findall(m["text"])) for c in conversations for m in c["messages"]
    )
    placeholders = stats["resp_placeholders"]
    stats["resp_placeholder_mapping_rate"] = round(stats["resp_placeholders_mapped"] / placeholders, 4) if placeholders else 0.0
    return conversations, dict(stats)


def evaluate_on_test_split(
    data_dir: str | Path, converted_dir: str | Path | None = None, mostly: float = 0.8
) -> dict:
    """Measure the recovery on the official test split, where the real conversations are known.

    ``test_data_processed.jsonl`` holds UniCRS samples of ReDial test in the order of
    ``test_data.jsonl``, so dialogue ``i`` is compared with real conversation ``i`` (checked:
    the order is confirmed when the turns match). The real conversation is cut to what UniCRS
    kept (same-speaker messages merged, seeker turns after the last recommender turn dropped)
    and written like the recovery (whitespace collapsed, HTML unescaped).

    Returns counts of dialogues matching exactly / on at least ``mostly`` of their turns, and
    per-mention accuracy (a recovered ``@movieId`` counts as right when the same turn of the
    real conversation mentions that movie).
    """
    data_dir = Path(data_dir)
    maps = load_movie_maps(data_dir, converted_dir)
    stats: Counter = Counter()
    recovered = _recover_turns(data_dir / UNICRS_TEST_SAMPLES, maps, stats)
    real = read_jsonl(data_dir / DEFAULT_EXCLUDE_FILES["test"])
    result = Counter(recovered_dialogues=len(recovered), real_conversations=len(real))
    result["real_turns_total"] = sum(len(merged_turns(c)) for c in real)
    for turns, conversation in zip(recovered, real):
        runs = merged_turns(conversation)
        respondent = conversation["respondentWorkerId"]
        while runs and runs[-1][0] != respondent:
            runs.pop()  # UniCRS writes no sample after the last recommender turn
            result["real_turns_lost_after_last_recommender_turn"] += 1
        expected = [html.unescape(" ".join(" ".join(texts).split())) for _, texts in runs]
        got = [turn["text"] for turn in turns]
        if len(got) < len(expected):  # last turn dropped (unfillable placeholders)
            result["real_turns_lost_unfillable_last_resp"] += len(expected) - len(got)
            expected = expected[: len(got)]
        same = sum(g == e for g, e in zip(got, expected))
        result["turns_compared"] += len(expected)
        result["turns_identical"] += same
        if len(got) == len(expected) and same == len(expected):
            result["dialogues_exact"] += 1
        if len(expected) and same >= mostly * len(expected):
            result["dialogues_mostly"] += 1
        for g, e in zip(got, expected):
            real_ids = Counter(MOVIE_TOKEN.findall(e))
            got_ids = Counter(MOVIE_TOKEN.findall(g))
            result["real_mentions"] += sum(real_ids.values())
            result["recovered_mentions"] += sum(got_ids.values())
            result["mentions_right"] += sum((real_ids & got_ids).values())
    result = dict(result)
    result["mention_recall"] = round(result["mentions_right"] / max(1, result["real_mentions"]), 4)
    result["mention_precision"] = round(result["mentions_right"] / max(1, result["recovered_mentions"]), 4)
    result["recovery_stats"] = dict(stats)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="the shared data folder (see its SOURCES.md)")
    parser.add_argument("--out", help="jsonl file to write the conversations to (outside the repository)")
    parser.add_argument("--converted-dir", default=None, help=f"converted KGSF pickles (default {DEFAULT_CONVERTED_DIR})")
    parser.add_argument("--check-test", action="store_true", help="also measure accuracy on the test split")
    args = parser.parse_args(argv)
    if args.out is None and not args.check_test:
        parser.error("give --out FILE.jsonl and/or --check-test")
    if args.out is not None:
        out = Path(args.out).resolve()
        repo = Path(__file__).resolve().parents[1]
        if out == repo or repo in out.parents:
            parser.error(f"--out {out} is inside the repository {repo}; write it to a cache folder instead")
        conversations, stats = recover_conversations(args.data_dir, args.converted_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for conversation in conversations:
                handle.write(json.dumps(conversation, ensure_ascii=False) + "\n")
        tmp.replace(out)
        print(f"wrote {len(conversations)} conversations to {out}")
        print(json.dumps(stats, indent=2, sort_keys=True))
    if args.check_test:
        print(json.dumps(evaluate_on_test_split(args.data_dir, args.converted_dir), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
