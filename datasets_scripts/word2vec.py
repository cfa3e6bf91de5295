"""Word2Vec word embeddings for KGSF's vocabulary, trained on the training split (as the reference).

The reference trains gensim ``Word2Vec(corpus, size=300, min_count=1)`` on its tokenised turns.
Here the corpus is the distinct turns of the training rows (each ``context_tokens`` split at
``_split_``, plus each ``response_tokens``). The result is a ``(vocab_size, 300)`` float tensor
aligned with :class:`KGSFTokenizer`: row 0 (``__pad__``) is zero; the other special tokens and
vocabulary words absent from the corpus get small random vectors ``N(0, 0.1^2)`` (seeded), so
they are distinct but near the origin. Cached as ``.npy`` in the cache directory.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from modeling_kgsf.tokenization_kgsf import TURN_SEPARATOR

from . import paths

EMBEDDING_DIM = 300
UNSEEN_STD = 0.1


def training_sentences(rows) -> list[list[str]]:
    """Distinct turns (token lists) of processed rows, in first-seen order."""
    seen, sentences = set(), []

    def add(tokens):
        key = tuple(tokens)
        if key and key not in seen:
            seen.add(key)
            sentences.append(list(tokens))

    for context_tokens, response_tokens in zip(rows["context_tokens"], rows["response_tokens"]):
        turn: list[str] = []
        for token in context_tokens:
            if token == TURN_SEPARATOR:
                add(turn)
                turn = []
            else:
                turn.append(token)
        add(turn)
        add(response_tokens)
    return sentences


def stable_hash(text: str) -> int:
    """A string hash that is the same in every process (unlike ``hash``), for gensim's ``hashfxn``."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def train_word2vec(
    train_rows,
    tokenizer,
    cache_dir: str | os.PathLike | None = None,
    dim: int = EMBEDDING_DIM,
    epochs: int = 5,
    seed: int = 42,
    overwrite: bool = False,
) -> torch.Tensor:
    """``(len(tokenizer), dim)`` float32 embeddings trained on ``train_rows`` (a Dataset or dict of columns)."""
    sentences = training_sentences(train_rows[:] if hasattr(train_rows, "column_names") else train_rows)
    digest = hashlib.sha256(repr((dim, epochs, seed, len(tokenizer), "stable-hash")).encode())
    for sentence in sentences:
        digest.update(" ".join(sentence).encode())
        digest.update(b"\n")
    target = paths.resolve_cache_dir(cache_dir) / "word2vec" / f"{digest.hexdigest()[:16]}.npy"
    if target.exists() and not overwrite:
        return torch.from_numpy(np.load(target, allow_pickle=False))

    from gensim.models import Word2Vec  # only to train: a cached run needs no gensim

    # one worker thread and a hash of our own: gensim seeds each word's initial vector with
    # hash(word + str(seed)), and Python's str hash changes from process to process (PYTHONHASHSEED)
    model = Word2Vec(sentences, vector_size=dim, min_count=1, workers=1, seed=seed, epochs=epochs, hashfxn=stable_hash)
    rng = np.random.default_rng(seed)
    vocab = tokenizer.get_vocab()
    embeddings = rng.normal(0.0, UNSEEN_STD, size=(len(tokenizer), dim)).astype(np.float32)
    embeddings[tokenizer.pad_token_id] = 0.0
    for token, index in vocab.items():
        if token in model.wv.key_to_index and index not in tokenizer.all_special_ids:
            embeddings[index] = model.wv[token]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.npy")
    np.save(tmp, embeddings, allow_pickle=False)
    tmp.replace(target)
    return torch.from_numpy(embeddings)
