"""Where the raw data and the cache live.

Data directory, first match wins: the explicit ``data_dir`` argument, the environment variable
``KGSF_DATA_DIR``, then ``../shared/data`` next to the repository root (the folder holding
``setup.py``). Cache directory: the ``cache_dir`` argument, ``KGSF_CACHE_DIR``, then
``~/.cache/kgsf``. The cache is never allowed inside the repository.

Every file of the data directory is named by its path relative to the data directory as laid out
in ``SOURCES.md`` (for example ``RUCAIBox-KGSF/key2index_3rd.json``).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

DATA_DIR_ENV = "KGSF_DATA_DIR"
CACHE_DIR_ENV = "KGSF_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/kgsf")

# Relative paths of the raw files, as laid out by SOURCES.md.
KGSF_PICKLE_DIR = "RUCAIBox-KGSF/data"
TEST_FILE = "RUCAIBox-KGSF/data/test_data.jsonl"
VALID_FILE = "RUCAIBox-KGSF/data/valid_data.jsonl"
TRAIN_FILE = "baazouziwiem-Kepler-aSI-CRS/train_data.jsonl"
WORD2INDEX_FILE = "RUCAIBox-KGSF/word2index_redial.json"
CONCEPT2INDEX_FILE = "RUCAIBox-KGSF/key2index_3rd.json"
STOPWORDS_FILE = "RUCAIBox-KGSF/stopwords.txt"
MASK4KEY_FILE = "RUCAIBox-KGSF/mask4key.npy"
MASK4MOVIE_FILE = "RUCAIBox-KGSF/mask4movie.npy"
CONCEPTNET_EDGES_FILE = "ShupeiLi-KGSF/conceptnet_one_hop_edges.txt"
MOVIES_CSV_FILE = "ReDialData-website/movies_with_mentions.csv"
UNICRS_KG_FILE = "ShupeiLi-UniCRS/data/redial/dbpedia_subkg.json"
UNICRS_ENTITY2ID_FILE = "ShupeiLi-UniCRS/data/redial/entity2id.json"
UNICRS_RELATION2ID_FILE = "ShupeiLi-UniCRS/data/redial/relation2id.json"


def repository_root() -> Path | None:
    """The folder holding ``setup.py`` above this file, or None for an installed package."""
    for folder in Path(__file__).resolve().parents:
        if (folder / "setup.py").is_file():
            return folder
    return None


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory (argument, then ``$KGSF_DATA_DIR``, then ``<repo>/../shared/data``)."""
    candidates = []
    if data_dir is not None:
        candidates.append(("argument data_dir", Path(data_dir)))
    elif os.environ.get(DATA_DIR_ENV):
        candidates.append((f"${DATA_DIR_ENV}", Path(os.environ[DATA_DIR_ENV])))
    else:
        root = repository_root()
        if root is not None:
            candidates.append(("default <repository>/../shared/data", root.parent / "shared" / "data"))
    for origin, path in candidates:
        path = path.expanduser()
        if path.is_dir():
            return path.resolve()
        raise FileNotFoundError(f"KGSF data directory not found: {path} (from {origin})")
    raise FileNotFoundError(
        f"no KGSF data directory: pass data_dir/--data-dir or set ${DATA_DIR_ENV} "
        "(no repository checkout to take the default ../shared/data from)"
    )


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory (argument, then ``$KGSF_CACHE_DIR``, then ``~/.cache/kgsf``), created."""
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR
    path = Path(cache_dir).expanduser().resolve()
    root = repository_root()
    if root is not None and (path == root or root in path.parents):
        raise ValueError(f"cache directory {path} is inside the repository {root}; choose a folder outside it")
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_file(relative_path: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Absolute path of a raw data file; ``FileNotFoundError`` names the file and the folder searched."""
    root = resolve_data_dir(data_dir)
    path = root / relative_path
    if not path.exists():
        raise FileNotFoundError(f"data file '{relative_path}' not found; looked for it at {path} (data directory {root})")
    return path


def fingerprint_files(paths, *extra: str) -> str:
    """A short hash of file paths, sizes and modification times plus extra strings (cache keys)."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    for value in extra:
        digest.update(f"{value}\n".encode())
    return digest.hexdigest()[:16]


def converted_pickles_dir(data_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """JSON versions of the release's pickles, converted once into the cache (restricted unpickler)."""
    from .convert_pickles import KGSF_PICKLES, convert_kgsf_pickles

    pickle_dir = data_file(KGSF_PICKLE_DIR, data_dir)
    pickle_paths = []
    for name in KGSF_PICKLES:
        pickle_paths.append(data_file(f"{KGSF_PICKLE_DIR}/{name}", data_dir))
    out_dir = resolve_cache_dir(cache_dir) / "converted" / fingerprint_files(pickle_paths)
    convert_kgsf_pickles(pickle_dir, out_dir)
    return out_dir


def iter_jsonl(path: str | os.PathLike):
    """``(line_number, record)`` for every non-blank line of a jsonl file.

    A malformed line raises ``ValueError`` naming the file and the line.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield line_number, json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {line_number}: malformed JSON ({error.msg} at column {error.colno})") from None
