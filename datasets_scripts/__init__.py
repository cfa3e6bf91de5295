"""The data side of kgsf: raw files -> processed ``datasets`` splits -> batches.

Public API (imported on first use, so ``python -m datasets_scripts.<tool>`` stays light)::

    from datasets_scripts import load_redial, load_resources        # ReDial + KGSF's two graphs
    from datasets_scripts import load_crs_dataset, validate_dataset  # your own dataset (docs/CRS_FORMAT.md)
    from datasets_scripts import expand_for_recommendation, train_word2vec

Modules: ``redial`` (ReDial loader), ``crs_format`` (generic format loader and check),
``convert_crs`` / ``convert_unicrs`` (converters), ``turn_order`` (ReDial train turn-order
reconstruction), ``recover_unicrs`` (conversations rebuilt from UniCRS samples), ``kg`` (graphs),
``kg_resources`` (a model folder's processor files), ``word2vec``, ``collator`` (the per-item
expansion; the collator itself is ``modeling_kgsf.processing_kgsf.KGSFDataCollator``), ``paths``,
``convert_pickles`` (the one-time restricted pickle conversion).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "load_redial": "redial",
    "load_resources": "redial",
    "read_conversations": "redial",
    "KGSFResources": "redial",
    "TRAIN_SOURCES": "redial",
    "load_crs_dataset": "crs_format",
    "validate_dataset": "crs_format",
    "CRSFormatError": "crs_format",
    "expand_for_recommendation": "collator",
    "train_word2vec": "word2vec",
    "load_dbpedia": "kg",
    "load_item_graph": "kg",
    "load_word_graph": "kg",
    "save_kg_resources": "kg_resources",
    "load_kg_resources": "kg_resources",
    "convert_kgsf_pickles": "convert_pickles",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
