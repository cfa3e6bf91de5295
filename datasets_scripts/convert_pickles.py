"""One-time conversion of the KGSF release's Python pickles to JSON.

The official KGSF release ships its DBpedia maps and graph as pickles. Unpickling runs
arbitrary code, so nothing in this package unpickles at run time: this converter is run once
(``python -m datasets_scripts.convert_pickles --data-dir ... --out-dir ...``) with a restricted
unpickler that only rebuilds plain containers and scalars, and every other module reads the
JSON it writes.

Allowed: ``dict``, ``list``, ``tuple``, ``set``, ``frozenset``, ``str``, ``bytes``, ``int``,
``float``, ``bool``, ``None`` and ``collections.defaultdict`` of one of those factories.
Any other global (a class, a function such as ``os.system``) is refused with
:class:`UnsafePickleError`.
"""
from __future__ import annotations

import argparse
import collections
import io
import json
import pickle
from pathlib import Path
from typing import Any

# (module, name) pairs a pickle may reference. Everything else is refused.
_ALLOWED_GLOBALS = {
    ("collections", "defaultdict"): collections.defaultdict,
    ("builtins", "list"): list,
    ("builtins", "dict"): dict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "tuple"): tuple,
    ("builtins", "int"): int,
    ("builtins", "float"): float,
    ("builtins", "str"): str,
    ("builtins", "bool"): bool,
}

# The pickles of the KGSF release and the JSON file each becomes.
KGSF_PICKLES = {
    "entity2entityId.pkl": "entity2entityId.json",
    "id2entity.pkl": "id2entity.json",
    "movie_ids.pkl": "movie_ids.json",
    "subkg.pkl": "subkg.json",
}


class UnsafePickleError(pickle.UnpicklingError):
    """Raised when a pickle references anything but plain containers and scalars."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in ``_ALLOWED_GLOBALS``."""

    def __init__(self, file, *, source: str = "<pickle>"):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refusing to load global '{module}.{name}'; only plain containers "
                "and scalars are allowed in the KGSF data pickles"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: persistent ids are not allowed")


def restricted_load(path: str | Path) -> Any:
    """Load a pickle file with :class:`RestrictedUnpickler`."""
    path = Path(path)
    with path.open("rb") as handle:
        return RestrictedUnpickler(handle, source=str(path)).load()


def restricted_loads(data: bytes) -> Any:
    """Load pickle bytes with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(io.BytesIO(data), source="<bytes>").load()


def _to_json_compatible(obj: Any) -> Any:
    """Turn containers into JSON-friendly ones (dict keys become strings, tuples/sets lists)."""
    if isinstance(obj, dict):
        return {("null" if key is None else str(key)): _to_json_compatible(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json_compatible(value) for value in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(_to_json_compatible(value) for value in obj)
    return obj


def convert_kgsf_pickles(pickle_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> dict[str, Path]:
    """Convert the release's pickles in ``pickle_dir`` to JSON files in ``out_dir``.

    Returns a mapping from pickle name to the JSON path written (or already present).
    Raises ``FileNotFoundError`` naming the pickle and the folder it was looked for in.
    """
    pickle_dir, out_dir = Path(pickle_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for pickle_name, json_name in KGSF_PICKLES.items():
        target = out_dir / json_name
        written[pickle_name] = target
        if target.exists() and not overwrite:
            continue
        source = pickle_dir / pickle_name
        if not source.exists():
            raise FileNotFoundError(f"KGSF pickle '{pickle_name}' not found; looked for it at {source}")
        data = _to_json_compatible(restricted_load(source))
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(target)  # atomic: a crash never leaves a half-written file behind
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pickle-dir", required=True, help="folder with entity2entityId.pkl, id2entity.pkl, movie_ids.pkl, subkg.pkl")
    parser.add_argument("--out-dir", required=True, help="where the JSON files are written")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    for name, path in convert_kgsf_pickles(args.pickle_dir, args.out_dir, overwrite=args.overwrite).items():
        print(f"{name} -> {path}")


if __name__ == "__main__":
    main()
