"""The entity linker lives in the model package (:mod:`modeling_kgsf.linking_kgsf`), so that training
data and chat inputs are linked by the same code; this name is kept for existing imports."""
from modeling_kgsf.linking_kgsf import DBPEDIA_RESOURCE_PREFIX, EntityLinker, Mention, name_from_uri, title_variants

__all__ = ["DBPEDIA_RESOURCE_PREFIX", "EntityLinker", "Mention", "name_from_uri", "title_variants"]
