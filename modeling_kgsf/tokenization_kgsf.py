"""Word-level tokenizer over KGSF's ReDial vocabulary.

Ids: 0 ``__pad__``, 1 ``__start__``, 2 ``__end__``, 3 ``__unk__``, then the 23,925 words of KGSF's
``word2index_redial.json`` (ids 4..23928). ``_split_`` (a word of that vocabulary) separates
turns; a ReDial movie mention ``@<movieId>`` is one token.

Word splitting follows the reference (``nltk.word_tokenize``: sentence split, then NLTK's
Treebank-style word tokenizer, then ``@`` merged with the following id). This module lives in
``modeling_kgsf`` and travels with saved models, so it uses only the standard library and
transformers: the NLTK word tokenizer's regular expressions are ported below (NLTK, Apache 2.0),
and Punkt sentence splitting (which needs downloaded data) is approximated by splitting after
``.``, ``!`` or ``?`` followed by white space. The test suite checks agreement with
``nltk.tokenize.NLTKWordTokenizer``.
"""
from __future__ import annotations

import json
import os
import re

from transformers import PreTrainedTokenizer

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json"}

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN = "__pad__", "__start__", "__end__", "__unk__"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)  # ids 0..3
TURN_SEPARATOR = "_split_"

# ---------------------------------------------------------------------------------------------
# Port of nltk.tokenize.destructive.NLTKWordTokenizer (the tokenizer behind nltk.word_tokenize).
# ---------------------------------------------------------------------------------------------
_STARTING_QUOTES = [
    (re.compile("([«“‘„]|[`]+)"), r" \1 "),
    (re.compile(r"^\""), r"``"),
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r"([ \(\[{<])(\"|\'{2})"), r"\1 `` "),
    (re.compile(r"(?i)(?<!\w)(\')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)"), r"\1 "),
]
_PUNCTUATION = [
    (re.compile(r'([^\.])(\.)([\]\)}>"\'' "»”’ " r"]*+)\s*$"), r"\1 \2 \3 "),
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.{2,}"), r" \g<0> "),
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    (re.compile(r"[\u2012-\u2015]"), r" \g<0> "),
    (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$'), r"\1 \2\3 "),
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
    (re.compile(r"[*]"), r" \g<0> "),
]
_PARENS_BRACKETS = (re.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> ")
_DOUBLE_DASHES = (re.compile(r"--"), r" -- ")
_ENDING_QUOTES = [
    (re.compile("([»”’])"), r" \1 "),
    (re.compile(r"''"), " '' "),
    (re.compile(r'"'), " '' "),
    (re.compile(r"\s+"), " "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
]
_CONTRACTIONS = [
    re.compile(pattern)
    for pattern in (
        r"(?i)\b(can)(?#X)(not)\b",
        r"(?i)\b(d)(?#X)('ye)\b",
        r"(?i)\b(gim)(?#X)(me)\b",
        r"(?i)\b(gon)(?#X)(na)\b",
        r"(?i)\b(got)(?#X)(ta)\b",
        r"(?i)\b(lem)(?#X)(me)\b",
        r"(?i)\b(more)(?#X)('n)\b",
        r"(?i)\b(wan)(?#X)(na)(?=\s)",
        r"(?i) ('t)(?#X)(is)\b",
        r"(?i) ('t)(?#X)(was)\b",
    )
]
# Punkt approximation: a sentence ends at . ! ? (possibly followed by closing quotes/brackets)
# followed by white space.
_SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])(?<!\.\.\.)[\"')\]]*\s+")
_MOVIE_ID_WITH_TAIL = re.compile(r"^(\d+)(\D.*)$")


def treebank_word_tokenize(sentence: str) -> list[str]:
    """Split one sentence like ``nltk.tokenize.NLTKWordTokenizer().tokenize``."""
    text = sentence
    for regexp, substitution in _STARTING_QUOTES:
        text = regexp.sub(substitution, text)
    for regexp, substitution in _PUNCTUATION:
        text = regexp.sub(substitution, text)
    text = _PARENS_BRACKETS[0].sub(_PARENS_BRACKETS[1], text)
    text = _DOUBLE_DASHES[0].sub(_DOUBLE_DASHES[1], text)
    text = " " + text + " "
    for regexp, substitution in _ENDING_QUOTES:
        text = regexp.sub(substitution, text)
    for regexp in _CONTRACTIONS:
        text = regexp.sub(r" \1 \2 ", text)
    return text.split()


def split_sentences(text: str) -> list[str]:
    """Cheap stand-in for Punkt sentence splitting (no downloaded model needed)."""
    pieces, start = [], 0
    for match in _SENTENCE_BOUNDARY.finditer(text):
        pieces.append(text[start : match.start() + len(match.group(0).rstrip())])
        start = match.end()
    pieces.append(text[start:])
    return [piece for piece in pieces if piece.strip()]


def merge_movie_mentions(tokens: list[str]) -> list[str]:
    """Merge ``@`` with the following token into one ``@<movieId>`` token, as the reference does.

    If the following token is digits glued to trailing punctuation (``123.``), the digits are
    merged and the rest is kept as its own token.
    """
    merged, position = [], 0
    while position < len(tokens):
        token = tokens[position]
        if token == "@" and position + 1 < len(tokens):
            following = tokens[position + 1]
            tail = _MOVIE_ID_WITH_TAIL.match(following)
            if tail:
                merged.extend(["@" + tail.group(1), tail.group(2)])
            else:
                merged.append("@" + following)
            position += 2
        else:
            merged.append(token)
            position += 1
    return merged


def word_tokenize(text: str) -> list[str]:
    """KGSF word tokenisation of one utterance (case kept)."""
    tokens: list[str] = []
    for sentence in split_sentences(text):
        tokens.extend(treebank_word_tokenize(sentence))
    return merge_movie_mentions(tokens)


_NO_SPACE_BEFORE = {".", ",", "!", "?", ":", ";", "%", ")", "]", "}", "''", "...", "n't", "'s", "'m", "'d", "'ll", "'re", "'ve", "'S", "'M", "'D", "'LL", "'RE", "'VE", "N'T"}
_NO_SPACE_AFTER = {"(", "[", "{", "``", "$", "#"}


def detokenize(tokens: list[str]) -> str:
    """Join word tokens into readable text (no space before punctuation and clitics)."""
    pieces: list[str] = []
    previous = None
    for token in tokens:
        text = {"``": '"', "''": '"'}.get(token, token)
        if pieces and token not in _NO_SPACE_BEFORE and previous not in _NO_SPACE_AFTER:
            pieces.append(" ")
        pieces.append(text)
        previous = token
    return "".join(pieces)


class KGSFTokenizer(PreTrainedTokenizer):
    """Word-level tokenizer with KGSF's vocabulary (see the module docstring for the id table).

    ``KGSFTokenizer(vocab_file)`` reads a JSON ``{token: id}`` map. It either holds the four
    special tokens at ids 0..3 (a saved ``vocab.json``) or is KGSF's ``word2index_redial.json``
    (words from id 4, specials added). ``KGSFTokenizer.from_word2index(path)`` is an alias that
    documents the second case.
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str,
        pad_token: str = PAD_TOKEN,
        bos_token: str = BOS_TOKEN,
        eos_token: str = EOS_TOKEN,
        unk_token: str = UNK_TOKEN,
        **kwargs,
    ):
        with open(vocab_file, encoding="utf-8") as handle:
            vocab = json.load(handle)
        if not all(token in vocab for token in SPECIAL_TOKENS):
            vocab = {**{token: index for index, token in enumerate(SPECIAL_TOKENS)}, **vocab}
        for index, token in enumerate(SPECIAL_TOKENS):
            if vocab[token] != index:
                raise ValueError(f"{vocab_file}: special token {token!r} must have id {index}, found {vocab[token]}")
        self.vocab: dict[str, int] = vocab
        self.ids_to_tokens: dict[int, str] = {index: token for token, index in vocab.items()}
        if len(self.ids_to_tokens) != len(vocab) or set(self.ids_to_tokens) != set(range(len(vocab))):
            raise ValueError(f"{vocab_file}: token ids must be unique and contiguous from 0")
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(pad_token=pad_token, bos_token=bos_token, eos_token=eos_token, unk_token=unk_token, **kwargs)

    @classmethod
    def from_word2index(cls, word2index_file: str | os.PathLike, **kwargs) -> "KGSFTokenizer":
        """Build the tokenizer from KGSF's ``word2index_redial.json`` (ids 4..)."""
        return cls(vocab_file=str(word2index_file), **kwargs)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab, **self.added_tokens_encoder)

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return word_tokenize(text)

    def _convert_token_to_id(self, token: str) -> int:
        return self.vocab.get(token, self.vocab[UNK_TOKEN])

    def _convert_id_to_token(self, index: int) -> str:
        return self.ids_to_tokens.get(index, UNK_TOKEN)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return detokenize(tokens)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        if not os.path.isdir(save_directory):
            raise NotADirectoryError(f"vocabulary path {save_directory} should be a directory")
        name = (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILES_NAMES["vocab_file"]
        path = os.path.join(save_directory, name)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.vocab, handle, ensure_ascii=False)
        return (path,)


# save_pretrained writes an ``auto_map`` and copies this file, so a saved folder loads with
# ``AutoTokenizer.from_pretrained(folder, trust_remote_code=True)`` without this package.
KGSFTokenizer.register_for_auto_class("AutoTokenizer")
