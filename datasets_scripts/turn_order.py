"""Rebuild the turn order of the ReDial train conversations that survive only as two message lists.

``MarkystarkDotCO-Redial-QA-System/src/download_data/precessed.json.zip`` (SOURCES.md section 6) holds
every conversation of the original ReDial train file as ``questions`` (the messages of whoever sent
the first message, in order) and ``answers`` (the other worker's messages, in order). Lost: ids,
roles and how the two lists interleave. This module

1. reads that file in place (:func:`read_split_conversations`, no unpacking);
2. builds *ordered* training examples (the two lists plus the true interleaving and the seeker
   list) from the conversations whose order is known: the release's 500 (message level), the
   CFCRS conversations (turns already merged; each turn is matched to a run of messages of one
   list) and the lmh85 UniCRS samples (:func:`ordered_examples`);
3. learns two small logistic regressions on those examples only (never on validation or test):
   :class:`RoleModel` (which list is the seeker) and :class:`MergeModel` (at each step of the merge,
   does the next message come from the other list?);
4. merges the lists of every other entry by dynamic programming over the ``(i, j)`` grid
   (:meth:`MergeModel.merge`): the path maximising the summed log-probabilities of its steps, with
   the first message fixed (it is the first sender's) and the speaker's current run length
   (1, 2, 3+) in the state;
5. writes the result as raw ReDial conversations (:func:`train_sources`) for
   :func:`datasets_scripts.redial.load_redial`, after removing every entry that matches a KGSF
   validation or ReDial test conversation (same text, or a near-duplicate) and every entry that is
   already an ordered conversation.

Features (all computed from the message text; ``@123`` is a movie mention)
--------------------------------------------------------------------------
Per message (:func:`message_features`): question mark, movie mention, "have you seen"-type
question, recommendation phrase ("you might like", "I recommend", "check out"), preference
statement ("I like", "looking for"), "what kind of movies" question, greeting, goodbye/thanks,
answer opening ("yes", "no", "I haven't", "sure"), continuation opening (lower-case start, "and",
"also", "lol"), short message (<= 3 words), log length.

Merge step at state ``(i, j, last list, run)`` with the previous message ``p`` (last message of the
last list), the *stay* candidate ``s`` (next message of the same list) and the *switch* candidate
``w`` (next message of the other list); the model gives ``P(switch)``: bias; relative-position gap
(progress of the stay list minus progress of the other list, ``(i+0.5)/n``); the per-message
features of ``p``, ``s`` and ``w``; interactions question(p) x answer(w), question(p) x answer(s),
movie(p) x answer(w), seen-question(p) x answer(w), greeting(p) x greeting(w), what-kind(p) x
preference(w), question(p) x continuation(s); the same movie in ``p`` and ``w`` / ``p`` and ``s``;
content-word overlap of ``p`` with ``w`` minus with ``s``; run length one-hot. The seeker list
matters to the samples; the merge model does not use it.

Role model (``P(first list is the seeker)``): for each list the mean of the per-message features,
the share of messages with a movie, movies per message, number of messages, and the relative
frequencies of the 300 most frequent training words; the feature vector is the difference
first - other, plus a bias.

Both are L2-regularised logistic regressions fitted with L-BFGS (scipy) from zero: deterministic,
a few seconds on one CPU; :func:`fit_models` is called at load time, nothing is stored.
"""
from __future__ import annotations

import csv
import html
import json
import math
import re
import time
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

ZIP_FILE = "MarkystarkDotCO-Redial-QA-System/src/download_data/precessed.json.zip"
ZIP_MEMBER = "precessed.json"
CFCRS_FILE = "wxl1999-CFCRS/data/redial/valid_data.jsonl"
LMH85_FILE = "lmh85-research1/src/data/redial_gen/train_data_augmented_rest.jsonl"
MOVIES_CSV_FILE = "ReDialData-website/movies_with_mentions.csv"
#: Ids of reconstructed conversations: ``redial-train-<index in the zip>``.
ID_PREFIX = "redial-train-"
#: Worker ids of reconstructed conversations (far above ReDial's and the recovered ones').
_WORKER_ID_BASE = 20_000_000
#: Near-duplicate rule: an entry shares at least this many distinct normalised messages of at least
#: ``NEAR_DUPLICATE_CHARS`` characters with one conversation of a held-out split, or at least half
#: of its such messages (and two).
NEAR_DUPLICATE_MESSAGES = 3
NEAR_DUPLICATE_CHARS = 25
#: Characters of the first list's text an incomplete conversation must have to be matched by prefix.
PREFIX_CHARS = 40
ROLE_VOCABULARY = 300
L2 = 1.0
#: L2 weight of :class:`NextMessageModel` (one fold, step accuracy: .751 / .754 / .754 for 0.3 / 3 / 10).
NEXT_MESSAGE_L2 = 3.0

_MOVIE = re.compile(r"@(\d+)")
_WORD = re.compile(r"[a-z']+")
_ALNUM = re.compile(r"[^a-z0-9]")
_PATTERNS = {
    "seen_question": r"\b(have|had|did) you (ever )?(seen|see|watched|watch|heard)\b|\bseen (it|that|this)\b|\bheard of\b",
    "recommend": r"\b(recommend|suggest|suggestion|you might|you may|you should|you would|you'd|you will|try|check out|how about|what about|maybe)\b",
    "preference": r"\b(i like|i love|i enjoy|i'm looking|i am looking|looking for|i want|in the mood|i prefer|my favorite|i'm into|i am into)\b",
    "what_kind": r"\bwhat (kind|type|sort|genre|genres|kinds|types)\b|\bwhat (do|would) you (like|enjoy|want)\b|\bwhat are you (looking|in the mood)\b",
    "greeting": r"^\W*(hi|hello|hey|hiya|howdy|good (morning|afternoon|evening)|greetings)\b",
    "goodbye": r"\b(bye|goodbye|good bye|thanks|thank you|thx|have a (good|great|nice)|you too|take care|enjoy)\b",
    "answer": r"^\W*(yes|no|yeah|yep|yup|nope|nah|i have|i haven't|i havent|i have not|not yet|sure|ok|okay|i did|i didn't|never|i do|i don't|of course|absolutely|definitely|i agree|maybe)\b",
    "continuation": r"^\W*(and|also|or|but|plus|lol|haha|too|so|because|as well|which|it's|its)\b",
}
_COMPILED = {name: re.compile(pattern) for name, pattern in _PATTERNS.items()}
MESSAGE_FEATURES = ("question", "movie", *_PATTERNS, "lower_start", "short", "log_length")
_F = {name: index for index, name in enumerate(MESSAGE_FEATURES)}
_STOP = set("the a an i you it is was to and of in that this for my me your have do be are with on but so just not what like".split())


# ------------------------------------------------------------------------------------------------
# Reading the sources
# ------------------------------------------------------------------------------------------------
@dataclass
class SplitConversation:
    """One entry of the zip: the first sender's messages and the other worker's, each in order."""

    index: int
    lists: tuple[list[str], list[str]]


def read_split_conversations(data_dir: str | Path) -> list[SplitConversation]:
    """The 10,006 entries of ``precessed.json.zip``, read from the zip in place."""
    path = Path(data_dir) / ZIP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"ReDial train text file '{ZIP_FILE}' not found; looked for it at {path}")
    with zipfile.ZipFile(path) as archive:
        entries = json.loads(archive.read(ZIP_MEMBER).decode("utf-8"))
    return [SplitConversation(index, ([str(t) for t in e["questions"]], [str(t) for t in e["answers"]])) for index, e in enumerate(entries)]


def read_jsonl(path: str | Path) -> list[dict]:
    from .paths import iter_jsonl

    return [record for _, record in iter_jsonl(path)]


def movie_titles(data_dir: str | Path) -> dict[str, str]:
    """ReDial movieId -> title (``movies_with_mentions.csv``)."""
    with (Path(data_dir) / MOVIES_CSV_FILE).open(encoding="utf-8", newline="") as handle:
        return {row["movieId"]: row["movieName"] for row in csv.DictReader(handle)}


def text_key(text: str, titles: dict[str, str] | None = None) -> str:
    """Matching key of a text: ``@id`` written as its title (when ``titles``), HTML unescaped,
    lower-cased, only letters and digits kept (so joining messages with spaces does not change it)."""
    if titles is not None:
        text = _MOVIE.sub(lambda m: titles.get(m.group(1), m.group(0)), text)
    return _ALNUM.sub("", html.unescape(text).lower())


def sender_lists(messages: list[tuple[object, str]]) -> tuple[tuple[list[str], list[str]], list[int], object]:
    """``(sender, text)`` messages -> the two lists as the zip writes them, the list index of each
    message in order, and the first sender."""
    first = messages[0][0]
    lists: tuple[list[str], list[str]] = ([], [])
    order = []
    for sender, text in messages:
        side = 0 if sender == first else 1
        lists[side].append(text)
        order.append(side)
    return lists, order, first


def conversation_messages(conversation: dict) -> list[tuple[object, str]]:
    return [(m.get("senderWorkerId"), m.get("text")) for m in conversation.get("messages", []) if isinstance(m.get("text"), str) and m.get("senderWorkerId") is not None]


class EntryIndex:
    """Finds the zip entry of a conversation from its text."""

    def __init__(self, entries: list[SplitConversation], titles: dict[str, str]):
        self.titles = titles
        self.signature: dict[tuple[str, str], int] = {}
        self.keys: dict[int, tuple[str, str]] = {}
        self.prefix: dict[str, list[int]] = defaultdict(list)
        for entry in entries:
            keys = self.keys[entry.index] = self._signature(entry.lists)
            self.signature.setdefault(keys, entry.index)
            self.prefix[keys[0][:PREFIX_CHARS]].append(entry.index)

    def _signature(self, lists) -> tuple[str, str]:
        return tuple(text_key(" ".join(texts), self.titles) for texts in lists)

    def match(self, messages: list[tuple[object, str]]) -> int | None:
        """The entry holding exactly these ``(sender, text)`` messages (same texts per sender)."""
        if not messages:
            return None
        lists, _, _ = sender_lists(messages)
        return self.signature.get(self._signature(lists))

    def match_prefix(self, lists: tuple[list[str], list[str]]) -> list[int]:
        """Entries whose two lists start with these texts (a conversation that lacks its last
        messages; compared after :func:`text_key`, so merged runs match their messages)."""
        keys = self._signature(lists)
        if len(keys[0]) < PREFIX_CHARS:
            return []
        return [k for k in self.prefix.get(keys[0][:PREFIX_CHARS], ()) if all(full.startswith(key) for full, key in zip(self.keys[k], keys))]


# ------------------------------------------------------------------------------------------------
# Ordered examples (ground truth)
# ------------------------------------------------------------------------------------------------
@dataclass
class OrderedExample:
    """Two message lists with their true interleaving (``order[k]`` = list of the k-th message) and
    the seeker list (0 = the first sender's)."""

    lists: tuple[list[str], list[str]]
    order: list[int]
    seeker: int
    conversation_id: str = ""
    source: str = ""
    entry_index: int | None = None

    def sequence(self, order: list[int] | None = None) -> list[tuple[int, int]]:
        """``(list, position in list)`` of each message in ``order`` (default: the true one)."""
        counters = [0, 0]
        out = []
        for side in self.order if order is None else order:
            out.append((side, counters[side]))
            counters[side] += 1
        return out


def order_from_turns(lists: tuple[list[str], list[str]], turns: list[tuple[int, str | None]], titles: dict[str, str] | None) -> list[int] | None:
    """Message-level order of ``lists`` from merged turns ``(list, text)`` in order: each turn takes
    the run of next messages of its list whose joined text equals it (``text=None``: the rest of
    that list). Messages left over after the last turn must all be in one list (they end the
    conversation). None when the texts do not line up."""
    position = [0, 0]
    order: list[int] = []
    for side, text in turns:
        messages = lists[side]
        if position[side] >= len(messages):
            return None
        if text is None:
            take = len(messages) - position[side]
        else:
            target, joined, take = text_key(text, titles), "", 0
            while position[side] + take < len(messages) and len(joined) < len(target):
                joined += text_key(messages[position[side] + take], titles)
                take += 1
            if joined != target:
                return None
        order += [side] * take
        position[side] += take
    left = [len(lists[side]) - position[side] for side in (0, 1)]
    if left[0] and left[1]:
        return None
    return order + [0] * left[0] + [1] * left[1]


def _unicrs_turns(samples: list[dict]) -> tuple[list[str | None], bool] | None:
    """Turns of one conversation from its UniCRS samples (the longest context plus the masked last
    response, ``None``) and whether the seeker spoke first."""
    last = max(samples, key=lambda s: len(s.get("context") or []))
    context = list(last.get("context") or [])
    seeker_first = not (context and context[0] == "")
    if not seeker_first:
        context = context[1:]
    return context + [None], seeker_first


@dataclass
class OrderedSources:
    """The ordered training conversations, as raw ReDial conversations and as examples."""

    examples: list[OrderedExample] = field(default_factory=list)
    conversations: dict[str, list[dict]] = field(default_factory=dict)  # source -> raw conversations
    used_entries: set[int] = field(default_factory=set)  # zip entries they cover
    stats: dict = field(default_factory=dict)


def ordered_examples(data_dir: str | Path, train: list[dict], held_out: dict[str, list[dict]], entries: list[SplitConversation] | None = None,
                     titles: dict[str, str] | None = None, index: EntryIndex | None = None, use_lmh85: bool = True) -> OrderedSources:
    """Ordered training conversations: ``train`` (raw, e.g. the release's 500), CFCRS and lmh85,
    without any whose id or text is in ``held_out`` (split name -> raw conversations) or already
    taken (by id, the first source wins). Examples are built for those that match a zip entry."""
    data_dir = Path(data_dir)
    entries = entries if entries is not None else read_split_conversations(data_dir)
    titles = titles if titles is not None else movie_titles(data_dir)
    index = index or EntryIndex(entries, titles)
    held_ids = {str(c.get("conversationId")) for convs in held_out.values() for c in convs}
    held_keys = HeldOutTexts(held_out, titles)
    out = OrderedSources()
    taken: set[str] = set()
    stats = out.stats

    def add(source: str, conversation: dict, example_lists_order) -> None:
        cid = str(conversation.get("conversationId"))
        messages = conversation_messages(conversation)
        source_stats = stats.setdefault(source, Counter())
        source_stats["read"] += 1
        if cid in held_ids:
            source_stats["dropped_id_in_validation_or_test"] += 1
            return
        if source != "release" and held_keys.overlapping([text for _, text in messages]):
            source_stats["dropped_text_in_validation_or_test"] += 1
            return
        entry = index.match(messages)
        if cid in taken or (entry is not None and entry in out.used_entries):
            source_stats["dropped_already_ordered"] += 1
            return
        taken.add(cid)
        out.conversations.setdefault(source, []).append(conversation)
        source_stats["kept"] += 1
        if entry is None:
            source_stats["kept_without_zip_entry"] += 1
            return
        out.used_entries.add(entry)
        lists = entries[entry].lists
        order, seeker = example_lists_order(lists) if example_lists_order else (None, None)
        if order is None:
            source_stats["kept_order_not_aligned"] += 1
            return
        out.examples.append(OrderedExample(lists, order, seeker, cid, source, entry))
        source_stats["examples"] += 1

    def raw_example(conversation: dict):
        messages = conversation_messages(conversation)
        first = messages[0][0]
        seeker = 0 if str(first) != str(conversation.get("respondentWorkerId")) else 1
        turns = [(0 if sender == first else 1, text) for sender, text in messages]
        return lambda lists: (order_from_turns(lists, turns, None), seeker)

    for conversation in train:
        add("release", conversation, raw_example(conversation))
    cfcrs_path = data_dir / CFCRS_FILE
    if cfcrs_path.is_file():
        for conversation in read_jsonl(cfcrs_path):
            conversation = {key: value for key, value in conversation.items()}
            conversation["messages"] = [{"text": m["text"], "senderWorkerId": m["senderWorkerId"], "messageId": k, "timeOffset": k} for k, m in enumerate(conversation["messages"])]
            add("cfcrs", conversation, raw_example(conversation))
    lmh85_path = data_dir / LMH85_FILE
    if use_lmh85 and lmh85_path.is_file():
        for conversation, turns, seeker in lmh85_conversations(read_jsonl(lmh85_path)):
            known = ([t for side, t in turns if side == 0 and t is not None], [t for side, t in turns if side == 1 and t is not None])
            aligned = [(k, order_from_turns(entries[k].lists, turns, titles)) for k in index.match_prefix(known)]
            aligned = [(k, order) for k, order in aligned if order is not None]
            if len(aligned) != 1:
                stats.setdefault("lmh85", Counter())["no_single_zip_entry" if not aligned else "several_zip_entries"] += 1
                continue
            entry, order = aligned[0]
            # the conversation itself is rebuilt from the zip entry's original text (``@movieId`` kept)
            rebuilt = to_redial_conversation(entries[entry].lists, order, seeker, str(conversation["conversationId"]), entry)
            add("lmh85", rebuilt, lambda lists, order=order, seeker=seeker: (order, seeker))
    out.stats = {source: dict(counts) for source, counts in stats.items()}
    return out


def lmh85_conversations(samples: list[dict]):
    """``(conversation in titled text, turns, seeker list)`` per ``conv_id`` of lmh85's samples."""
    by_conversation: dict[str, list[dict]] = defaultdict(list)
    for sample in samples:
        by_conversation[str(sample.get("conv_id"))].append(sample)
    for cid, group in by_conversation.items():
        texts, seeker_first = _unicrs_turns(group)
        turns = [(position % 2, text) for position, text in enumerate(texts)]
        messages = [{"text": text, "senderWorkerId": side} for side, text in turns if text is not None]
        yield {"conversationId": cid, "messages": messages}, turns, 0 if seeker_first else 1


class HeldOutTexts:
    """Normalised messages (and same-speaker runs) of the held-out splits, per conversation."""

    def __init__(self, held_out: dict[str, list[dict]], titles: dict[str, str] | None):
        self.titles = titles
        self.owner: dict[str, set[tuple[str, int]]] = defaultdict(set)
        for split, conversations in held_out.items():
            for number, conversation in enumerate(conversations):
                messages = conversation_messages(conversation)
                runs: list[list[str]] = []
                previous = object()
                for sender, text in messages:
                    if sender == previous:
                        runs[-1].append(text)
                    else:
                        runs.append([text])
                    previous = sender
                for text in [t for _, t in messages] + [" ".join(run) for run in runs]:
                    key = text_key(text, titles)
                    if len(key) >= NEAR_DUPLICATE_CHARS:
                        self.owner[key].add((split, number))
        self.common = {key for key, owners in self.owner.items() if len(owners) > 5}  # stock phrases

    def overlapping(self, texts: list[str]) -> list[tuple[str, int]]:
        """Held-out conversations this one duplicates (same text or a near-duplicate)."""
        keys = {text_key(text, self.titles) for text in texts}
        keys = {key for key in keys if len(key) >= NEAR_DUPLICATE_CHARS and key not in self.common}
        shared: Counter = Counter()
        for key in keys:
            shared.update(self.owner.get(key, ()))
        return [owner for owner, count in shared.items() if count >= NEAR_DUPLICATE_MESSAGES or (count >= 2 and count >= len(keys) / 2)]


# ------------------------------------------------------------------------------------------------
# Features
# ------------------------------------------------------------------------------------------------
def message_features(text: str) -> np.ndarray:
    lowered = " ".join(text.lower().split())
    words = lowered.split()
    values = [float("?" in text), float(bool(_MOVIE.search(text)))]
    values += [float(bool(_COMPILED[name].search(lowered))) for name in _PATTERNS]
    stripped = text.lstrip()
    values += [float(bool(stripped) and stripped[0].islower()), float(len(words) <= 3), math.log1p(len(words)) / 3.0]
    return np.array(values, dtype=np.float64)


def _content(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2} | set(_MOVIE.findall(text))


#: First words whose presence at the start of the stay / switch candidate are features of the merge.
CUE_WORDS = ("yes", "no", "yeah", "i", "i'm", "oh", "ok", "okay", "that", "have", "what", "how", "do", "did", "is", "it", "thanks", "thank",
             "lol", "haha", "sure", "hi", "hello", "and", "also", "or", "but", "so", "well", "great", "awesome", "cool", "sounds", "you", "the", "@")
_CUE = {word: k for k, word in enumerate(CUE_WORDS)}


def _first_word(text: str) -> np.ndarray:
    vector = np.zeros(len(CUE_WORDS))
    words = text.lower().split()
    if words:
        word = "@" if words[0].startswith("@") else words[0].strip(",.!?")
        if word in _CUE:
            vector[_CUE[word]] = 1.0
    return vector


_PAIR_NAMES = ("q_p*answer_w", "q_p*answer_s", "movie_p*answer_w", "seen_p*answer_w", "greet_p*greet_w", "whatkind_p*pref_w",
               "q_p*cont_s", "same_movie_pw", "same_movie_ps", "overlap_pw-ps")


def merge_feature_names() -> list[str]:
    names = ["bias", "position_gap", "count_gap", "remaining_gap"] + [f"{role}:{name}" for role in ("prev", "stay", "switch") for name in MESSAGE_FEATURES]
    names += [f"{role}_starts:{word}" for role in ("stay", "switch") for word in CUE_WORDS]
    return names + list(_PAIR_NAMES) + ["run=2", "run>=3"]


class _ConversationFeatures:
    """Everything the merge needs about one pair of lists, computed once."""

    def __init__(self, lists: tuple[list[str], list[str]]):
        self.lists = lists
        self.n = (len(lists[0]), len(lists[1]))
        zero = np.zeros(len(MESSAGE_FEATURES))
        # row k = features of message k; the extra last row (zeros) stands for "no message"
        self.m = [np.vstack([message_features(t) for t in texts] + [zero]) for texts in lists]
        self.content = [[_content(t) for t in texts] + [set()] for texts in lists]
        self.movies = [[set(_MOVIE.findall(t)) for t in texts] + [set()] for texts in lists]
        self.first_words = [np.vstack([_first_word(t) for t in texts] + [np.zeros(len(CUE_WORDS))]) for texts in lists]

    def features(self, last: int, i_last: int, i_other: int) -> np.ndarray:
        """Features (without run) at a step where list ``last`` spoke last and its next message is
        ``i_last``; the other list's next message is ``i_other``."""
        other = 1 - last
        p, s, w = self.m[last][i_last - 1], self.m[last][i_last], self.m[other][i_other]
        gap = (i_last + 0.5) / self.n[last] - (i_other + 0.5) / max(1, self.n[other])
        count_gap = (i_last - i_other) / 5.0
        remaining_gap = ((self.n[last] - i_last) - (self.n[other] - i_other)) / 5.0
        cp, cs, cw = self.content[last][i_last - 1], self.content[last][i_last], self.content[other][i_other]
        mp = self.movies[last][i_last - 1]
        F = _F
        pairs = [
            p[F["question"]] * w[F["answer"]], p[F["question"]] * s[F["answer"]], p[F["movie"]] * w[F["answer"]],
            p[F["seen_question"]] * w[F["answer"]], p[F["greeting"]] * w[F["greeting"]], p[F["what_kind"]] * w[F["preference"]],
            p[F["question"]] * s[F["continuation"]], float(bool(mp & self.movies[other][i_other])), float(bool(mp & self.movies[last][i_last])),
            len(cp & cw) / (1 + len(cw)) - len(cp & cs) / (1 + len(cs)),
        ]
        return np.concatenate([[1.0, gap, count_gap, remaining_gap], p, s, w, self.first_words[last][i_last], self.first_words[other][i_other], pairs])


def _run_features(run: int) -> np.ndarray:
    return np.array([float(run == 2), float(run >= 3)])


def _true_steps(example: OrderedExample, features: _ConversationFeatures):
    """``(feature vector, switched)`` for each step of the true order where both lists have a message left."""
    position, last, run = [0, 0], None, 0
    for side in example.order:
        if last is not None and position[0] < features.n[0] and position[1] < features.n[1]:
            x = np.concatenate([features.features(last, position[last], position[1 - last]), _run_features(run)])
            yield x, float(side != last)
        run = run + 1 if side == last else 1
        last = side
        position[side] += 1


def _fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = L2) -> np.ndarray:
    """L2-regularised logistic regression (the bias, column 0, is not penalised), L-BFGS from zero."""
    penalty = np.full(X.shape[1], l2)
    penalty[0] = 0.0

    def loss(theta):
        z = X @ theta
        value = np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * theta * theta)
        grad = X.T @ (1.0 / (1.0 + np.exp(-z)) - y) + penalty * theta
        return value, grad

    result = minimize(loss, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return result.x


def _log_sigmoid(z: float) -> float:
    return -math.log1p(math.exp(-z)) if z > -30 else z


# ------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------
class MergeModel:
    """``P(the next message comes from the other list)`` and the best monotone merge."""

    def __init__(self, theta: np.ndarray):
        self.theta = theta

    @classmethod
    def fit(cls, examples: list[OrderedExample]) -> "MergeModel":
        X, y = [], []
        for example in examples:
            for x, label in _true_steps(example, _ConversationFeatures(example.lists)):
                X.append(x)
                y.append(label)
        return cls(_fit_logistic(np.array(X), np.array(y)))

    def merge(self, lists: tuple[list[str], list[str]]) -> list[int]:
        """The order (list of each message) maximising the sum of the steps' log-probabilities;
        the first message is the first list's."""
        features = _ConversationFeatures(lists)
        n, m = features.n
        if n == 0 or m == 0:
            return [0] * n + [1] * m
        run_scores = [float(_run_features(r) @ self.theta[-2:]) for r in (0, 1, 2, 3)]
        base = self.theta[:-2]
        logits: dict[tuple[int, int, int], float] = {}

        def logit(i, j, last):
            if (i, j, last) not in logits:
                position = (i, j)
                logits[i, j, last] = float(features.features(last, position[last], position[1 - last]) @ base)
            return logits[i, j, last]

        return _best_path((n, m), logit, run_scores)


class _Grid:
    """Features of every merge decision of one pair of lists, computed at once (numpy).

    A decision is the state where list ``last`` spoke last and its next message is ``a`` (``a >= 1``),
    the other list's next is ``b``: ``features(last)[a, b]``. With ``p`` = message ``a - 1`` of
    ``last``, ``s`` = message ``a`` (stay) and ``w`` = message ``b`` of the other list (switch),
    ``q`` = message ``b - 1`` of the other list, ``s2``/``w2`` the messages after ``s``/``w``:
    bias; relative-position gap, count gap, remaining-messages gap; the gap in 11 bins, the count
    gap ``a - b`` one-hot in [-4, 4], last message of either list, first message of the other;
    per-message features and first cue word of p, s, w; every product of the binary message
    features (:data:`MESSAGE_FEATURES` but length) of p x s, p x w, s x w, q x p; those of s2, w2,
    q; content-word overlap p-w, s-w, p-s; same movie p-w, s-w, p-s; w (s) names a movie the
    other list already named (a reaction) or one only the other list's later messages name (the
    first mention), or a new one; first mention / reaction x the binary features of w (s)."""

    _EDGES = np.array([-0.3, -0.2, -0.12, -0.06, -0.02, 0.02, 0.06, 0.12, 0.2, 0.3])

    def __init__(self, lists: tuple[list[str], list[str]]):
        self.n = (len(lists[0]), len(lists[1]))
        width = len(MESSAGE_FEATURES) + len(CUE_WORDS)
        self.messages = [np.array([np.concatenate([message_features(t), _first_word(t)]) for t in texts]).reshape(len(texts), width) for texts in lists]
        words = [[{w for w in _content(t) if not w.isdigit()} for t in texts] for texts in lists]
        movies = [[set(_MOVIE.findall(t)) for t in texts] for texts in lists]
        self.words = [self._indicator(words, side) for side in (0, 1)]
        self.movies = [self._indicator(movies, side) for side in (0, 1)]
        self._features: dict[int, np.ndarray] = {}

    @staticmethod
    def _indicator(sets: list[list[set]], side: int) -> np.ndarray:
        vocabulary: dict[str, int] = {}
        for per_list in sets:
            for members in per_list:
                for member in sorted(members):
                    vocabulary.setdefault(member, len(vocabulary))
        matrix = np.zeros((len(sets[side]), max(1, len(vocabulary))))
        for k, members in enumerate(sets[side]):
            for member in members:
                matrix[k, vocabulary[member]] = 1.0
        return matrix

    def features(self, last: int) -> np.ndarray:
        if last in self._features:
            return self._features[last]
        other = 1 - last
        nA, nB = self.n[last], self.n[other]
        shape = (nA, nB)
        a, b = np.arange(nA)[:, None], np.arange(nB)[None, :]
        MA, MB = self.messages[last], self.messages[other]
        acts = [k for k, name in enumerate(MESSAGE_FEATURES) if name != "log_length"]

        def shift_down(matrix):  # row r -> row r - 1 (zeros first)
            return np.vstack([np.zeros((1, matrix.shape[1])), matrix[:-1]])

        def shift_up(matrix):  # row r -> row r + 1 (zeros last)
            return np.vstack([matrix[1:], np.zeros((1, matrix.shape[1]))])

        def rows(matrix):  # depends on a
            return np.broadcast_to(matrix[:, None, :], (nA, nB, matrix.shape[1]))

        def columns(matrix):  # depends on b
            return np.broadcast_to(matrix[None, :, :], (nA, nB, matrix.shape[1]))

        def outer(x, y):  # (nA|1, nB|1, k) x (nA|1, nB|1, k) -> (nA, nB, k * k)
            return np.broadcast_to(x[..., :, None] * y[..., None, :], (nA, nB, x.shape[-1], y.shape[-1])).reshape(nA, nB, -1)

        P, S, W = shift_down(MA), MA, MB
        pa, sa, wa, qa = P[:, acts], S[:, acts], W[:, acts], shift_down(MB)[:, acts]
        gap = (a + 0.5) / nA - (b + 0.5) / max(1, nB)
        blocks = [np.ones(shape + (1,)), np.stack([gap, np.broadcast_to((a - b) / 5.0, shape), np.broadcast_to(((nA - a) - (nB - b)) / 5.0, shape)], -1)]
        blocks.append((np.digitize(gap, self._EDGES)[..., None] == np.arange(len(self._EDGES) + 1)).astype(float))
        blocks.append((np.clip(a - b, -4, 4)[..., None] == np.arange(-4, 5)).astype(float))
        blocks.append(np.stack([np.broadcast_to(a == nA - 1, shape), np.broadcast_to(b == nB - 1, shape), np.broadcast_to(b == 0, shape), np.broadcast_to(a == 1, shape)], -1).astype(float))
        blocks += [rows(P), rows(S), columns(W)]
        blocks += [outer(pa[:, None], sa[:, None]), outer(pa[:, None], wa[None]), outer(sa[:, None], wa[None]), outer(qa[None], pa[:, None])]
        blocks += [rows(shift_up(MA)[:, acts]), columns(shift_up(MB)[:, acts]), columns(qa)]
        # lexical and movie links
        WA, WB = self.words[last], self.words[other]
        WP = shift_down(WA)
        size_a, size_b = WA.sum(1), WB.sum(1)
        overlap_pw = (WP @ WB.T) / (1 + size_b[None, :])
        overlap_sw = (WA @ WB.T) / (1 + np.sqrt(size_a[:, None] * size_b[None, :]))
        overlap_ps = np.broadcast_to(((WP * WA).sum(1) / (1 + size_a))[:, None], shape)
        XA, XB = self.movies[last], self.movies[other]
        XP = shift_down(XA)
        said_a = np.vstack([np.zeros((1, XA.shape[1])), np.cumsum(XA, 0)])[:nA] > 0  # named in A[:a]
        said_b = np.vstack([np.zeros((1, XB.shape[1])), np.cumsum(XB, 0)])[:nB] > 0
        later_a = XA[::-1].cumsum(0)[::-1] > 0  # named in A[a:]
        later_b = XB[::-1].cumsum(0)[::-1] > 0
        unsaid = ~said_a[:, None, :] & ~said_b[None, :, :]

        def any_(x):
            return (x.sum(-1) > 0).astype(float)

        w_reacts = any_(XB[None, :, :] * said_a[:, None, :])
        s_reacts = any_(XA[:, None, :] * said_b[None, :, :])
        w_first = any_(XB[None, :, :] * later_a[:, None, :] * unsaid)
        s_first = any_(XA[:, None, :] * later_b[None, :, :] * unsaid)
        links = [overlap_pw, overlap_sw, overlap_ps, (XP @ XB.T > 0).astype(float), (XA @ XB.T > 0).astype(float),
                 np.broadcast_to(((XP * XA).sum(1) > 0).astype(float)[:, None], shape), w_reacts, w_first, s_reacts, s_first,
                 any_(XB[None, :, :] * unsaid), any_(XA[:, None, :] * unsaid)]
        blocks.append(np.stack(links, -1))
        blocks += [w_first[..., None] * wa[None], s_first[..., None] * sa[:, None], w_reacts[..., None] * wa[None], s_reacts[..., None] * sa[:, None]]
        features = np.concatenate([np.asarray(block, dtype=np.float64) for block in blocks], -1)
        self._features[last] = features
        return features

    def logits(self, theta: np.ndarray) -> list[np.ndarray]:
        """``z[last][i, j]``: the switch logit (run term excluded) at ``i`` messages of list 0 and ``j``
        of list 1 placed, ``last`` spoke last (both lists non-empty)."""
        out = []
        for last in (0, 1):
            z = self.features(last) @ theta
            out.append(z if last == 0 else z.T)
        return out


def _best_path(n: tuple[int, int], logit, run_scores: list[float]) -> list[int]:
    """Best monotone merge (Viterbi over states ``(i, j, last, run)``, the first message list 0's):
    each decision adds ``log P(stay)`` or ``log P(switch)``, ``P(switch) = sigmoid(logit(i, j, last)
    + run_scores[run])``."""
    N0, N1 = n
    best: dict[tuple, tuple[float, tuple | None]] = {(1, 0, 0, 1): (0.0, None)}
    for total in range(1, N0 + N1):
        for i in range(max(0, total - N1), min(N0, total) + 1):
            j = total - i
            for last in (0, 1):
                for run in (1, 2, 3):
                    state = (i, j, last, run)
                    if state not in best:
                        continue
                    score = best[state][0]
                    if i < N0 and j < N1:
                        z = logit(i, j, last) + run_scores[run]
                        nexts = [(last, _log_sigmoid(-z)), (1 - last, _log_sigmoid(z))]
                    else:
                        nexts = [(0 if i < N0 else 1, 0.0)]
                    for side, step in nexts:
                        new = (i + (side == 0), j + (side == 1), side, min(3, run + 1) if side == last else 1)
                        if new not in best or best[new][0] < score + step:
                            best[new] = (score + step, state)
    state = max((s for s in best if s[0] == N0 and s[1] == N1), key=lambda s: best[s][0])
    order = []
    while state is not None:
        order.append(state[2])
        state = best[state][1]
    return order[::-1]


def _run_probabilities(n: tuple[int, int], switch: dict, side: int) -> dict[tuple[int, int, int], float]:
    """Under the path distribution of a step model (``switch[(i, j, last, run)]`` = P(switch) at each
    decision), ``P[(a, b, c)]``: messages ``a..b`` of list ``side`` form one turn (a maximal run) with
    ``c`` messages of the other list before it. Forward probabilities only: the steps are locally
    normalised, so every state's backward probability is 1."""
    N0, N1 = n

    def step(i, j, last, run, to):
        if i < N0 and j < N1:
            p = switch[i, j, last, run]
            return p if to != last else 1.0 - p
        return float((to == 0 and i < N0) or (to == 1 and j < N1))

    alpha: dict[tuple, float] = {(1, 0, 0, 1): 1.0}
    for total in range(1, N0 + N1):
        for i in range(max(0, total - N1), min(N0, total) + 1):
            j = total - i
            for last in (0, 1):
                for run in (1, 2, 3):
                    p = alpha.get((i, j, last, run))
                    if p:
                        for to in (0, 1):
                            q = step(i, j, last, run, to)
                            if q:
                                new = (i + (to == 0), j + (to == 1), to, min(3, run + 1) if to == last else 1)
                                alpha[new] = alpha.get(new, 0.0) + p * q
    other = 1 - side
    n_side, n_other = n[side], n[other]

    def at(own, others):
        return (own, others) if side == 0 else (others, own)

    out = {}
    for c in range(n_other + 1):
        for a in range(n_side):
            if a == 0 and c == 0:
                mass = 1.0 if side == 0 else 0.0
            elif c == 0:
                continue  # list ``side`` is still in its first turn
            else:
                mass = sum(alpha.get(at(a, c) + (other, run), 0.0) * step(*at(a, c), other, run, side) for run in (1, 2, 3))
            for b in range(a, n_side):
                if not mass:
                    break
                run = min(3, b - a + 1)
                position = at(b + 1, c)
                end = 1.0 if b + 1 == n_side else step(*position, side, run, other) if c < n_other else 0.0
                if end:
                    out[a, b, c] = mass * end
                if b + 1 < n_side:
                    mass *= step(*position, side, run, side)
    return out


class NextMessageModel:
    """``P(the next message comes from the other list)`` from :class:`_Grid` features and the run
    length; decoded as the best path (:meth:`merge`) or for the samples (:meth:`merge_for_samples`)."""

    def __init__(self, theta: np.ndarray, l2: float = NEXT_MESSAGE_L2):
        self.theta = theta
        self.l2 = l2

    @classmethod
    def fit(cls, examples: list[OrderedExample], l2: float = NEXT_MESSAGE_L2) -> "NextMessageModel":
        X, y = [], []
        for example in examples:
            grid, position, last, run = _Grid(example.lists), [0, 0], None, 0
            for side in example.order:
                if last is not None and position[0] < grid.n[0] and position[1] < grid.n[1]:
                    X.append(np.concatenate([grid.features(last)[position[last], position[1 - last]], _run_features(run)]))
                    y.append(float(side != last))
                run = run + 1 if side == last else 1
                last = side
                position[side] += 1
        return cls(_fit_logistic(np.array(X), np.array(y), l2), l2)

    def _steps(self, lists):
        grid = _Grid(lists)
        z = grid.logits(self.theta[:-2])
        run_scores = [float(_run_features(r) @ self.theta[-2:]) for r in (0, 1, 2, 3)]
        return grid.n, z, run_scores

    def merge(self, lists) -> list[int]:
        """The most probable order (the first message is the first list's)."""
        n, z, run_scores = self._steps(lists)
        if not n[0] or not n[1]:
            return [0] * n[0] + [1] * n[1]
        return _best_path(n, lambda i, j, last: float(z[last][i, j]), run_scores)

    def merge_for_samples(self, lists, recommender: int, other_weight: float = 0.1) -> list[int]:
        """The order with the most expected recommender turns (list ``recommender``) that have the
        true messages and the true context and target ``@`` sets (the training samples' item sets),
        plus ``other_weight`` x the expected right other turns (a tie-break): minimum Bayes risk
        decoding over the model's path distribution, exact by dynamic programming over runs."""
        n, z, run_scores = self._steps(lists)
        if not n[0] or not n[1]:
            return [0] * n[0] + [1] * n[1]
        switch = {}
        for i in range(n[0]):
            for j in range(n[1]):
                for last in (0, 1):
                    for run in (1, 2, 3):
                        switch[i, j, last, run] = 1.0 / (1.0 + math.exp(-(z[last][i, j] + run_scores[run])))
        runs = {side: _run_probabilities(n, switch, side) for side in (0, 1)}
        said = []  # said[side][k] = the @ ids of the list's first k messages
        for texts in lists:
            sets, seen = [frozenset()], set()
            for text in texts:
                seen |= set(_MOVIE.findall(text))
                sets.append(frozenset(seen))
            said.append(sets)
        seeker = 1 - recommender
        expected: dict[tuple, float] = defaultdict(float)  # (a, b, context @ set) -> P(right)
        for (a, b, c), p in runs[recommender].items():
            if a or c:
                expected[a, b, said[recommender][a] | said[seeker][c]] += p

        def gain(side, start, end, others):
            if side == recommender:
                return expected.get((start, end, said[recommender][start] | said[seeker][others]), 0.0) if start or others else 0.0
            return other_weight * runs[side].get((start, end, others), 0.0)

        # best[(i, j, last)]: runs alternate, the first one is list 0's
        best: dict[tuple, tuple[float, tuple | None]] = {(0, 0, 1): (0.0, None)}
        for total in range(n[0] + n[1]):
            for i in range(max(0, total - n[1]), min(n[0], total) + 1):
                j = total - i
                for last in (0, 1):
                    if (i, j, last) not in best:
                        continue
                    score, side = best[i, j, last][0], 1 - last
                    start, others = (i, j) if side == 0 else (j, i)
                    for end in range(start, n[side]):
                        new = (end + 1, j, 0) if side == 0 else (i, end + 1, 1)
                        value = score + gain(side, start, end, others)
                        if new not in best or best[new][0] < value:
                            best[new] = (value, (i, j, last))
        state = max((s for s in ((n[0], n[1], 0), (n[0], n[1], 1)) if s in best), key=lambda s: best[s][0])
        order: list[int] = []
        while best[state][1] is not None:
            previous = best[state][1]
            side = state[2]
            order = [side] * (state[side] - previous[side]) + order
            state = previous
        return order


class RoleModel:
    """``P(the first list is the seeker's)`` from the difference of per-list features."""

    def __init__(self, theta: np.ndarray, vocabulary: list[str]):
        self.theta = theta
        self.vocabulary = vocabulary
        self._word_index = {word: k for k, word in enumerate(vocabulary)}

    def _list_features(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(len(MESSAGE_FEATURES) + 3 + len(self.vocabulary))
        per_message = np.vstack([message_features(t) for t in texts])
        movies = sum(len(_MOVIE.findall(t)) for t in texts)
        counts = np.zeros(len(self.vocabulary))
        words = [w for t in texts for w in _WORD.findall(t.lower())]
        for word in words:
            k = self._word_index.get(word)
            if k is not None:
                counts[k] += 1
        counts /= max(1, len(words))
        return np.concatenate([per_message.mean(0), [movies / len(texts), math.log1p(len(texts)), float(bool(_MOVIE.search(texts[0])))], counts * 10])

    def features(self, lists) -> np.ndarray:
        return np.concatenate([[1.0], self._list_features(lists[0]) - self._list_features(lists[1])])

    @classmethod
    def fit(cls, examples: list[OrderedExample]) -> "RoleModel":
        words = Counter(w for e in examples for texts in e.lists for t in texts for w in set(_WORD.findall(t.lower())))
        vocabulary = sorted(words, key=lambda w: (-words[w], w))[:ROLE_VOCABULARY]
        model = cls(np.zeros(0), vocabulary)
        X = np.array([model.features(e.lists) for e in examples])
        y = np.array([float(e.seeker == 0) for e in examples])
        model.theta = _fit_logistic(X, y)
        return model

    def seeker(self, lists) -> int:
        """0 when the first list is the seeker's, else 1."""
        return 0 if float(self.features(lists) @ self.theta) >= 0 else 1


#: Merge methods of :meth:`TurnOrderModel.reconstruct` (all with the learned roles):
#: ``"learned_merge"`` (:class:`MergeModel`, the best path), ``"next_message"``
#: (:class:`NextMessageModel`, the best path) and ``"next_message_mbr"`` (:class:`NextMessageModel`,
#: the merge with the most expected right recommender samples, :meth:`NextMessageModel.merge_for_samples`).
MERGE_METHODS = ("learned_merge", "next_message", "next_message_mbr")
#: The loader's method (:func:`train_sources`); chosen by cross-validation (DATA.md). The processed-data
#: cache key covers this file, so changing it rebuilds the training split.
DEFAULT_METHOD = "next_message_mbr"


@dataclass
class TurnOrderModel:
    role: RoleModel
    merge: MergeModel | None = None
    next_message: "NextMessageModel | None" = None

    def reconstruct(self, lists, method: str = DEFAULT_METHOD, seeker: int | None = None) -> tuple[list[int], int]:
        """``(order, seeker list)`` of an entry by ``method`` (:data:`MERGE_METHODS`); ``seeker``
        overrides the role model's choice."""
        seeker = self.role.seeker(lists) if seeker is None else seeker
        if method == "learned_merge":
            return self.merge.merge(lists), seeker
        if method == "next_message":
            return self.next_message.merge(lists), seeker
        if method == "next_message_mbr":
            return self.next_message.merge_for_samples(lists, 1 - seeker), seeker
        raise ValueError(f"unknown turn-order method {method!r}; expected one of {', '.join(MERGE_METHODS)}")


def fit_models(examples: list[OrderedExample], methods: tuple[str, ...] = MERGE_METHODS) -> TurnOrderModel:
    """The role model and the merge models ``methods`` need, fitted on ordered *training* examples
    (deterministic)."""
    unknown = set(methods) - set(MERGE_METHODS)
    if unknown:
        raise ValueError(f"unknown turn-order method {sorted(unknown)[0]!r}; expected one of {', '.join(MERGE_METHODS)}")
    return TurnOrderModel(
        RoleModel.fit(examples),
        MergeModel.fit(examples) if "learned_merge" in methods else None,
        NextMessageModel.fit(examples) if {"next_message", "next_message_mbr"} & set(methods) else None,
    )


# ------------------------------------------------------------------------------------------------
# Baselines
# ------------------------------------------------------------------------------------------------
def alternation_order(lists) -> list[int]:
    """Strict alternation starting with the first list, the rest of the longer list at the end."""
    n, m = len(lists[0]), len(lists[1])
    return [side for k in range(max(n, m)) for side, size in ((0, n), (1, m)) if k < size]


def relative_position_order(lists) -> list[int]:
    """Messages sorted by relative position ``(k + 0.5) / len`` (ties: first list first)."""
    keyed = [((k + 0.5) / len(texts), side) for side, texts in enumerate(lists) for k in range(len(texts))]
    order = [side for _, side in sorted(keyed)]
    if order and lists[0] and order[0] != 0:  # the first message is the first list's
        order.remove(0)
        order.insert(0, 0)
    return order


def keyword_seeker(lists) -> int:
    """Baseline role rule: the recommender is the list with more "have you seen" / recommendation
    phrases and ``@`` mentions (ties: the first sender is the seeker)."""
    def score(texts):
        return sum(2 * bool(_COMPILED["seen_question"].search(t.lower())) + bool(_COMPILED["recommend"].search(t.lower())) + len(_MOVIE.findall(t)) for t in texts)

    return 1 if score(lists[0]) > score(lists[1]) else 0


# ------------------------------------------------------------------------------------------------
# Output: raw ReDial conversations, and the train sources for the loader
# ------------------------------------------------------------------------------------------------
def to_redial_conversation(lists, order: list[int], seeker: int, conversation_id: str, entry_index: int) -> dict:
    """Raw ReDial conversation (the keys :func:`datasets_scripts.redial.read_conversations` needs)."""
    workers = [_WORKER_ID_BASE + 2 * entry_index + side for side in (0, 1)]
    position = [0, 0]
    messages = []
    for k, side in enumerate(order):
        messages.append({"messageId": k, "timeOffset": k, "text": lists[side][position[side]], "senderWorkerId": workers[side]})
        position[side] += 1
    return {
        "conversationId": conversation_id,
        "messages": messages,
        "initiatorWorkerId": workers[seeker],
        "respondentWorkerId": workers[1 - seeker],
        "movieMentions": {},
        "initiatorQuestions": {},
        "respondentQuestions": {},
    }


def train_sources(data_dir: str | Path, train: list[dict], validation: list[dict], test: list[dict], reconstruct: bool = True,
                  method: str = DEFAULT_METHOD) -> tuple[dict[str, list[dict]], dict]:
    """The extra training conversations per source (``cfcrs``, ``lmh85``, ``reconstructed``) and
    statistics. ``train``: the raw training conversations already in the split (they win over
    CFCRS/lmh85 copies). Nothing that matches ``validation``/``test`` by id or text is returned.
    ``method``: the merge of the reconstructed ones (:data:`MERGE_METHODS`)."""
    data_dir = Path(data_dir)
    entries = read_split_conversations(data_dir)
    titles = movie_titles(data_dir)
    index = EntryIndex(entries, titles)
    held_out = {"validation": validation, "test": test}
    ordered = ordered_examples(data_dir, train, held_out, entries, titles, index)
    sources = {source: convs for source, convs in ordered.conversations.items() if source != "release"}
    stats = {"ordered": ordered.stats, "ordered_examples": len(ordered.examples)}
    if reconstruct:
        started = time.perf_counter()
        held_keys = HeldOutTexts(held_out, titles)
        held_entries = {split: {index.match(conversation_messages(c)) for c in convs} - {None} for split, convs in held_out.items()}
        model = fit_models(ordered.examples, (method,))
        reconstructed, counts = [], Counter(entries=len(entries))
        for entry in entries:
            if entry.index in held_entries["validation"] or entry.index in held_entries["test"]:
                counts["dropped_same_text_as_validation_or_test"] += 1
            elif entry.index in ordered.used_entries:
                counts["dropped_already_ordered"] += 1
            elif held_keys.overlapping(entry.lists[0] + entry.lists[1]):
                counts["dropped_near_duplicate_of_validation_or_test"] += 1
            elif not entry.lists[0] or not entry.lists[1]:
                counts["dropped_one_sided"] += 1
            else:
                order, seeker = model.reconstruct(entry.lists, method)
                reconstructed.append(to_redial_conversation(entry.lists, order, seeker, f"{ID_PREFIX}{entry.index}", entry.index))
        counts["kept"] = len(reconstructed)
        sources["reconstructed"] = reconstructed
        stats["reconstructed"] = dict(counts)
        stats["method"] = method
        stats["reconstruction_seconds"] = round(time.perf_counter() - started, 1)  # fitting + merging, one process
    return sources, stats


# ------------------------------------------------------------------------------------------------
# Measurement
# ------------------------------------------------------------------------------------------------
def _turns(example: OrderedExample, order: list[int]) -> list[tuple[int, list[tuple[int, int]]]]:
    """Same-sender runs of an order: ``(list, messages as (list, position))``."""
    turns: list[tuple[int, list[tuple[int, int]]]] = []
    for message in example.sequence(order):
        if turns and turns[-1][0] == message[0]:
            turns[-1][1].append(message)
        else:
            turns.append((message[0], [message]))
    return turns


def rec_samples(example: OrderedExample, order: list[int], seeker: int, link) -> dict:
    """What KGSF training sees of one ordering: per recommender turn with an earlier turn, keyed by
    its messages, ``(context items, context entities, target items)`` as the loader builds them.
    ``link(text)`` gives a message's ``(entities, items)``: its linked entities in order and the
    items it mentions as ``@movieId`` (the targets when a recommender sends it)."""
    samples, entities = {}, []
    for number, (side, messages) in enumerate(_turns(example, order)):
        linked = [link(example.lists[s][k]) for s, k in messages]
        if side != seeker and number > 0:
            context = tuple(dict.fromkeys(entities))
            targets = tuple(dict.fromkeys(i for _, its in linked for i in its))
            samples[tuple(messages)] = (tuple(e for e in context if e in link.items), context, targets)
        for ents, _ in linked:
            entities += ents
    return samples


def evaluate(examples: list[OrderedExample], predictions: list[tuple[list[int], int]], link=None) -> dict:
    """Metrics of predicted ``(order, seeker)`` against the examples' truth (DATA.md defines them)."""
    counts = Counter()
    for example, (order, seeker) in zip(examples, predictions):
        counts["conversations"] += 1
        counts["role_right"] += seeker == example.seeker
        counts["order_exact"] += order == example.order
        true_sequence, predicted_sequence = example.sequence(), example.sequence(order)
        counts["messages"] += len(true_sequence)
        counts["positions_right"] += sum(a == b for a, b in zip(true_sequence, predicted_sequence))
        true_ends = {messages[-1] for _, messages in _turns(example, example.order)[:-1]}
        predicted_ends = {messages[-1] for _, messages in _turns(example, order)[:-1]}
        counts["boundaries_true"] += len(true_ends)
        counts["boundaries_predicted"] += len(predicted_ends)
        counts["boundaries_right"] += len(true_ends & predicted_ends)
        if link is None:
            continue
        truth = rec_samples(example, example.order, example.seeker, link)
        predicted = rec_samples(example, order, seeker, link)
        for key, (context_items, _, targets) in truth.items():
            same = predicted.get(key) == truth[key]
            counts["samples_true"] += 1
            counts["samples_exact"] += same
            counts["item_sets_exact"] += key in predicted and set(predicted[key][0]) == set(context_items) and set(predicted[key][2]) == set(targets)
            counts["rec_samples_true"] += len(targets)
            counts["rec_samples_exact"] += len(targets) * same
            counts["rec_samples_leaking_true"] += sum(t in context_items for t in targets)
        for key, (context_items, _, targets) in predicted.items():
            counts["samples_predicted"] += 1
            counts["samples_predicted_exact"] += truth.get(key) == predicted[key]
            counts["rec_samples_predicted"] += len(targets)
            counts["rec_samples_leaking_predicted"] += sum(t in context_items for t in targets)
    return metrics_from_counts(counts)


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def metrics_from_counts(counts: Counter) -> dict:
    precision = _ratio(counts["boundaries_right"], counts["boundaries_predicted"])
    recall = _ratio(counts["boundaries_right"], counts["boundaries_true"])
    metrics = {
        "conversations": counts["conversations"],
        "role_accuracy": _ratio(counts["role_right"], counts["conversations"]),
        "order_exact": _ratio(counts["order_exact"], counts["conversations"]),
        "message_position_accuracy": _ratio(counts["positions_right"], counts["messages"]),
        "turn_boundary_precision": precision,
        "turn_boundary_recall": recall,
        "turn_boundary_f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
    }
    if counts["samples_true"]:
        metrics.update({
            "rec_turn_item_sets_exact": _ratio(counts["item_sets_exact"], counts["samples_true"]),
            "rec_turn_samples_exact": _ratio(counts["samples_exact"], counts["samples_true"]),
            "rec_turn_samples_exact_of_predicted": _ratio(counts["samples_predicted_exact"], counts["samples_predicted"]),
            "rec_samples_exact": _ratio(counts["rec_samples_exact"], counts["rec_samples_true"]),
            "target_in_context_true": _ratio(counts["rec_samples_leaking_true"], counts["rec_samples_true"]),
            "target_in_context_predicted": _ratio(counts["rec_samples_leaking_predicted"], counts["rec_samples_predicted"]),
        })
    metrics["counts"] = dict(counts)
    return metrics


def folds(n: int, k: int, seed: int = 0) -> list[np.ndarray]:
    """``k`` disjoint index sets covering ``range(n)`` (a seeded permutation)."""
    return [np.sort(part) for part in np.array_split(np.random.default_rng(seed).permutation(n), k)]


def cross_validate(examples: list[OrderedExample], k: int = 5, link=None, seed: int = 0) -> dict:
    """k-fold cross-validation of the methods and the baselines (each example predicted once, by
    models fitted on the other folds; :func:`fit_models` never sees the held-out fold). Methods:
    ``<merge>+<roles>``, merges ``alternation``, ``relative_position`` and :data:`MERGE_METHODS`,
    roles ``keyword_role`` (:func:`keyword_seeker`), ``learned_role`` or ``true_role``."""
    methods = ["alternation+keyword_role", "relative_position+keyword_role", "relative_position+learned_role"]
    methods += [f"{merge}+{role}" for merge in MERGE_METHODS for role in ("learned_role", "true_role")]
    predictions: dict[str, list] = {name: [None] * len(examples) for name in methods}
    for held in folds(len(examples), k, seed):
        held_set = set(held.tolist())
        model = fit_models([e for n, e in enumerate(examples) if n not in held_set])
        for n in held:
            example = examples[n]
            learned = model.role.seeker(example.lists)
            keyword = keyword_seeker(example.lists)
            predictions["alternation+keyword_role"][n] = (alternation_order(example.lists), keyword)
            predictions["relative_position+keyword_role"][n] = (relative_position_order(example.lists), keyword)
            predictions["relative_position+learned_role"][n] = (relative_position_order(example.lists), learned)
            for merge in MERGE_METHODS:
                for role, seeker in (("learned_role", learned), ("true_role", example.seeker)):
                    predictions[f"{merge}+{role}"][n] = model.reconstruct(example.lists, merge, seeker)
    return {name: evaluate(examples, predicted, link) for name, predicted in predictions.items()}


class MessageLinker:
    """``link(text) -> (entities, items)`` for :func:`rec_samples`, processed exactly as the loader
    processes a message (:func:`modeling_kgsf.processing_kgsf.merged_turns`), cached per text."""

    def __init__(self, resources):
        self.resources = resources
        self.items = set(resources.entities.item_entity_ids)
        self._cache: dict[str, tuple[list[int], list[int]]] = {}

    def __call__(self, text: str) -> tuple[list[int], list[int]]:
        if text not in self._cache:
            from modeling_kgsf.processing_kgsf import merged_turns

            turns = merged_turns({"messages": [{"text": text, "senderWorkerId": 0}]}, self.resources)
            self._cache[text] = (list(turns[0]["entities"]), list(turns[0]["movies"])) if turns else ([], [])
        return self._cache[text]


def check_lmh85(data_dir: str | Path, reference: list[dict], entries: list[SplitConversation] | None = None, titles: dict[str, str] | None = None) -> dict:
    """lmh85's file is called "augmented": on its conversations whose original is in ``reference``
    (raw conversations with order, e.g. the release's 500 and KGSF validation), check that its turn
    texts equal the originals (every turn aligns with the original messages, titles for ``@id``) and
    that the order and seeker read off it are the true ones."""
    data_dir = Path(data_dir)
    entries = entries if entries is not None else read_split_conversations(data_dir)
    titles = titles if titles is not None else movie_titles(data_dir)
    index = EntryIndex(entries, titles)
    originals = {str(c.get("conversationId")): c for c in reference}
    counts = Counter()
    for conversation, turns, seeker in lmh85_conversations(read_jsonl(data_dir / LMH85_FILE)):
        original = originals.get(conversation["conversationId"])
        if original is None:
            continue
        counts["shared_conversations"] += 1
        messages = conversation_messages(original)
        lists, true_order, first = sender_lists(messages)
        true_seeker = 0 if str(first) != str(original.get("respondentWorkerId")) else 1
        counts["zip_entry_found"] += index.match(messages) is not None
        order = order_from_turns(lists, turns, titles)
        counts["turn_texts_identical"] += order is not None
        counts["order_identical"] += order == true_order
        counts["seeker_identical"] += seeker == true_seeker
    return dict(counts)
