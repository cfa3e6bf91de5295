"""KGSF as a transformers model: graph encoders + MIM fusion + recommender + KG-enhanced Transformer.

``KGSFModel`` is the body (node vectors, user vector, rec scores, encoder/decoder states);
``KGSFForConversationalRecommendation`` adds the output projection, the copy head, the losses and
``generate()``. Batch keys: docs/DESIGN.md.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import nn
from torch.nn import functional as F
from transformers import GenerationConfig, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.utils import ModelOutput
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_kgsf import KGSFConfig
from .copy_head import CopyHead, CopyRows, resized_rows
from .fusion import ContrastiveMIM, ReferenceRegressionMIM, RegressionMIM, build_mim
from .generation_kgsf import (
    KGSF_GENERATION_DEFAULTS,
    ItemSlotLogitsProcessor,
    apply_generation_defaults,
    build_item_slot_processor,
    item_token_ids_from_folder,
)
from .graph_encoders import BasisRGCNConv, ItemGraphEncoder, RelationalGraph, WordGraphEncoder
from .processing_kgsf import IGNORE_INDEX
from .recommender import KGSFRecommender
from .transformer import KGSFDecoder, KGSFEncoder

TASKS = ("rec", "conv", "mim", "all")


# --------------------------------------------------------------------------- outputs
@dataclass
class KGSFGraphEncodings(ModelOutput):
    """The node vectors of both graphs (:meth:`KGSFModel.encode_graphs`), for ``forward(...,
    graph_encodings=...)`` and ``generate(..., graph_encodings=...)``.

    Computed once by a caller whose graph side does not change between its calls (inference, or
    the conversation stage with the graph side frozen) and passed to each call; without them
    ``forward`` computes the rows it needs (training). The model never keeps them: compute them
    again after the graph encoders' weights or the graphs change (training, ``set_graphs``,
    another device). Node vectors have no dropout: the same in train and eval mode.
    """

    entity_vectors: torch.FloatTensor | None = None  # (n_entity, k) R-GCN vector of every DBpedia entity
    word_vectors: torch.FloatTensor | None = None  # (n_concept, k) GCN vector of every ConceptNet concept (None without it)
    item_vectors: torch.FloatTensor | None = None  # (n_item, k) entity_vectors[item_entity_ids]

    def to(self, device, non_blocking: bool = False) -> "KGSFGraphEncodings":
        """The same vectors on ``device`` (tensors already there are not copied)."""
        return KGSFGraphEncodings(**{key: value.to(device, non_blocking=non_blocking) for key, value in self.items()})


@dataclass
class KGSFContextOutput(ModelOutput):
    """What the decoder needs from the context; the ``encoder_outputs`` of ``generate()``.

    All tensors are batch-first, so ``generate`` expands them for beams.
    """

    last_hidden_state: torch.FloatTensor | None = None  # (B, Lc, d) text encoder states
    encoder_attention_mask: torch.BoolTensor | None = None  # (B, Lc)
    word_states: torch.FloatTensor | None = None  # (B, Nw, d) context word node vectors for the decoder
    word_mask: torch.BoolTensor | None = None  # (B, Nw)
    entity_states: torch.FloatTensor | None = None  # (B, Ne, d) context entity node vectors for the decoder
    entity_mask: torch.BoolTensor | None = None  # (B, Ne)
    word_vector: torch.FloatTensor | None = None  # (B, k) pooled words (copy head)
    entity_vector: torch.FloatTensor | None = None  # (B, k) pooled entities (copy head)


@dataclass
class KGSFModelOutput(ModelOutput):
    """``KGSFModel`` outputs (fields are None when their part was not computed)."""

    rec_logits: torch.FloatTensor | None = None  # (B, n_item)
    user_embedding: torch.FloatTensor | None = None  # (B, k) p_u
    word_vector: torch.FloatTensor | None = None  # (B, k) v (None without ConceptNet)
    entity_vector: torch.FloatTensor | None = None  # (B, k) n
    word_attention_weights: torch.FloatTensor | None = None  # (B, Nw)
    entity_attention_weights: torch.FloatTensor | None = None  # (B, Ne)
    context_word_vectors: torch.FloatTensor | None = None  # (B, Nw, k)
    context_entity_vectors: torch.FloatTensor | None = None  # (B, Ne, k)
    last_hidden_state: torch.FloatTensor | None = None  # (B, Lr, d) decoder states
    encoder_last_hidden_state: torch.FloatTensor | None = None  # (B, Lc, d)
    context: KGSFContextOutput | None = None
    cache: Cache | None = None  # the decoder's key/value cache (EncoderDecoderCache), when one was used


@dataclass
class KGSFOutput(ModelOutput):
    """``KGSFForConversationalRecommendation`` outputs.

    ``loss`` = ``rec_loss + mim_weight * mim_loss`` (task "rec"), ``lm_loss`` (task "conv"),
    ``mim_loss`` (task "mim"), their sum (task "all"). ``lm_logits`` (= ``logits``) are the mixed
    vocabulary + copy logits (pad and start tokens at the dtype's minimum): ``(B, Lr, vocab)``, or
    ``(N, vocab)`` with ``logits_at_labels_only`` (the N positions where ``labels != -100``, row by row).
    """

    loss: torch.FloatTensor | None = None
    rec_loss: torch.FloatTensor | None = None
    mim_loss: torch.FloatTensor | None = None
    lm_loss: torch.FloatTensor | None = None
    rec_logits: torch.FloatTensor | None = None  # (B, n_item)
    lm_logits: torch.FloatTensor | None = None  # (B, Lr, vocab)
    logits: torch.FloatTensor | None = None  # same tensor as lm_logits (what GenerationMixin reads)
    user_embedding: torch.FloatTensor | None = None  # (B, k)
    word_attention_weights: torch.FloatTensor | None = None  # (B, Nw)
    entity_attention_weights: torch.FloatTensor | None = None  # (B, Ne)
    encoder_last_hidden_state: torch.FloatTensor | None = None  # (B, Lc, d)
    decoder_last_hidden_state: torch.FloatTensor | None = None  # (B, Lr, d)
    cache: Cache | None = None  # the decoder's key/value cache (EncoderDecoderCache), when one was used


# --------------------------------------------------------------------------- base class
class KGSFPreTrainedModel(PreTrainedModel):
    config_class = KGSFConfig
    config: KGSFConfig
    base_model_prefix = "kgsf"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    _supports_sdpa = True  # config._attn_implementation: "sdpa" (default) or "eager" (transformer.MultiHeadAttention)

    def _init_weights(self, module):
        """Xavier-uniform linears, N(0, dim^-1/2) embeddings (padding row 0), Glorot R-GCN / GCN (as PyG)."""
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=module.embedding_dim**-0.5)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, BasisRGCNConv):
            for parameter in (module.weight, module.comp, module.root):
                bound = (6.0 / (parameter.size(-2) + parameter.size(-1))) ** 0.5
                init.uniform_(parameter, -bound, bound)
            init.zeros_(module.bias)
        elif isinstance(module, WordGraphEncoder):
            init.xavier_uniform_(module.gcn.lin.weight)
            init.zeros_(module.gcn.bias)
        elif isinstance(module, KGSFRecommender):
            init.zeros_(module.item_bias)
        elif isinstance(module, KGSFModel):  # not in folders saved before it existed: "not known" until filled
            init.constant_(module.item_token_ids, -1)
        elif isinstance(module, ReferenceRegressionMIM):
            init.zeros_(module.entity_bias)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """As ``PreTrainedModel.from_pretrained``, with errors that name the file or field at fault:
        a damaged or truncated weights file, and a config whose sizes do not match the weights."""
        try:
            model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except SafetensorError as error:
            raise OSError(
                f"{_weights_file(pretrained_model_name_or_path)} is damaged or truncated ({error}); download or copy the "
                "folder again, or save the model again with save_pretrained"
            ) from None
        except RuntimeError as error:
            if "ignore_mismatched_sizes" not in str(error):
                raise
            fields = _size_fields(pretrained_model_name_or_path)
            raise OSError(
                f"{pretrained_model_name_or_path}: the weights in {_weights_file(pretrained_model_name_or_path)} do not have the "
                f"sizes that config.json gives ({fields}). The config was edited or belongs to other weights: restore it from "
                "where the weights came from (the load report above lists each tensor), or pass ignore_mismatched_sizes=True "
                "to re-initialise the mismatched tensors on purpose"
            ) from None
        model._own_loaded_tensors()
        (model.kgsf if hasattr(model, "kgsf") else model).rebuild_dbpedia_graph()
        model._upgrade_old_folder(pretrained_model_name_or_path)
        return model

    @torch.no_grad()
    def _own_loaded_tensors(self) -> None:
        """Copy CPU weights out of the memory-mapped ``model.safetensors`` into memory the model owns.

        transformers leaves CPU tensors as views into the mapped file, at offsets set by the file's
        header, so they are not 64-byte aligned. MKL's matrix products pick their summation order by
        alignment, and a reloaded model then gave logits that differ from the saved one's in the last
        bits (1.3e-6 on AVX-512 machines). Owned, allocator-aligned copies compute what the saved model
        computed, and a folder that is overwritten later (a stage saving ``best/`` again) no longer
        changes, or crashes, a model loaded from it. Tied parameters stay tied (``.data`` is replaced
        on the one shared ``Parameter``)."""
        for tensor in (*self.parameters(), *self.buffers()):
            if tensor.device.type == "cpu":
                tensor.data = tensor.data.clone()

    def _upgrade_old_folder(self, folder) -> None:
        """Folders saved before item slots: the item -> token map from the folder's ``vocab.json`` and
        ``kg_resources.json``, and the generation defaults (:mod:`.generation_kgsf`). Folders saved
        when greedy search was the default (no ``default_decoding``) get beam search (4 beams) unless
        they set a decoding of their own. Folders saved
        before the key/value cache say ``use_cache: false`` (the class required it then): it is turned
        on (the same replies, faster; ``generate(..., use_cache=False)`` still decodes without it)."""
        body = self.kgsf if hasattr(self, "kgsf") else self
        if not body.item_tokens_known() and Path(str(folder)).is_dir():
            ids = item_token_ids_from_folder(folder, body.item_entity_ids.cpu(), body.item_token_vocab_mask.cpu())
            if ids is not None:
                body.set_item_token_ids(ids)
        generation_config = getattr(self, "generation_config", None)
        if generation_config is not None and self.can_generate():
            if not hasattr(generation_config, "item_slots"):  # saved before item slots: every default where unset
                apply_generation_defaults(generation_config)
            elif not hasattr(generation_config, "default_decoding"):  # saved when greedy was the default
                if generation_config.num_beams in (None, 1) and not generation_config.do_sample:
                    generation_config.num_beams = KGSF_GENERATION_DEFAULTS["num_beams"]
                generation_config.default_decoding = KGSF_GENERATION_DEFAULTS["default_decoding"]
            for key, value in KGSF_GENERATION_DEFAULTS.items():  # our own keys added since the folder was saved
                if not hasattr(generation_config, key):  # (max_item_slots); the library's keys always exist
                    setattr(generation_config, key, value)
            generation_config.use_cache = True

    def save_pretrained(self, save_directory, *args, **kwargs):
        """As ``PreTrainedModel.save_pretrained``; ``auto_map`` names both Auto classes. A model that
        generates also gets the ``conversational-recommendation`` pipeline (:mod:`.hf_pipeline_kgsf`):
        ``custom_pipelines`` in ``config.json`` and the pipeline's code files beside the model's."""
        self.config.auto_map = {
            **(getattr(self.config, "auto_map", None) or {}),
            "AutoConfig": "configuration_kgsf.KGSFConfig",
            "AutoModel": "modeling_kgsf.KGSFModel",
            "AutoModelForSeq2SeqLM": "modeling_kgsf.KGSFForConversationalRecommendation",
        }
        pipeline_code = None
        if self.can_generate():
            # Imported by name, not by a ``from .hf_pipeline_kgsf import`` line: transformers takes such lines
            # as the model's own code files, and the model would then load only where the pipeline's do.
            # Loaded as remote code without the pipeline's files beside it: the config keeps what it has.
            import importlib

            try:
                pipeline_code = importlib.import_module(".hf_pipeline_kgsf", __package__)
            except ModuleNotFoundError as error:
                if error.name != f"{__package__}.hf_pipeline_kgsf":
                    raise
        if pipeline_code is not None:
            self.config.custom_pipelines = pipeline_code.custom_pipelines()
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if pipeline_code is not None and kwargs.get("is_main_process", True):
            pipeline_code.save_pipeline_code(save_directory)
        return result


# --------------------------------------------------------------------------- body
class KGSFModel(KGSFPreTrainedModel):
    """Graph encoders, MIM module, recommender and the text encoder/decoder (no output head).

    Persistent buffers (sized by the config, saved with the weights): ``dbpedia_edge_index (2,
    E_db)``, ``dbpedia_edge_type (E_db,)``, ``conceptnet_edge_index (2, E_cn)``, ``item_entity_ids
    (n_item,)``, ``kg_word_vocab_mask (vocab,)``, ``item_token_vocab_mask (vocab,)``, ``item_token_ids
    (n_item,)`` (each item's token, -1: none; all -1 = not known, see :meth:`item_tokens_known`).

    ``dbpedia_graph`` (a :class:`~.graph_encoders.RelationalGraph`, not saved) is the DBpedia buffers
    sorted by target for the R-GCN, built from them by :meth:`set_graphs`, at loading
    (``from_pretrained``, ``load_state_dict``) and when the model changes device; the graph buffers
    are changed only through :meth:`set_graphs`.
    """

    _keys_to_ignore_on_load_unexpected = [r"copy_head\."]  # loading a full checkpoint into the body
    _keys_to_ignore_on_load_missing = [r"item_token_ids"]  # folders saved before it existed (filled at load)

    def __init__(self, config: KGSFConfig):
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.item_graph_encoder = ItemGraphEncoder(config)
        self.word_graph_encoder = WordGraphEncoder(config) if config.use_conceptnet else None
        self.recommender = KGSFRecommender(config)
        if config.use_conceptnet:
            self.mim = build_mim(config)
        else:
            self.mim = None
        self.encoder = KGSFEncoder(config)  # the token embedding ``shared`` is passed at call time (one tensor,
        self.decoder = KGSFDecoder(config)  # no tied copies in the state dict)
        self.entity_to_decoder = nn.Linear(config.kg_dim, config.d_model) if config.use_kg_attention else None
        self.word_to_decoder = nn.Linear(config.kg_dim, config.d_model) if config.use_kg_attention and config.use_conceptnet else None

        self.register_buffer("dbpedia_edge_index", torch.zeros(2, config.n_dbpedia_edges, dtype=torch.long))
        self.register_buffer("dbpedia_edge_type", torch.zeros(config.n_dbpedia_edges, dtype=torch.long))
        self.register_buffer("conceptnet_edge_index", torch.zeros(2, config.n_conceptnet_edges, dtype=torch.long))
        self.register_buffer("item_entity_ids", torch.zeros(config.n_item, dtype=torch.long))
        self.register_buffer("kg_word_vocab_mask", torch.zeros(config.vocab_size, dtype=torch.bool))
        self.register_buffer("item_token_vocab_mask", torch.zeros(config.vocab_size, dtype=torch.bool))
        self.register_buffer("item_token_ids", torch.full((config.n_item,), -1, dtype=torch.long))
        self.dbpedia_graph: RelationalGraph | None = None  # derived from the DBpedia buffers (class docstring)
        self.register_load_state_dict_post_hook(_rebuild_graph_after_loading)
        self.post_init()

    # ------------------------------------------------------------------ setters
    def set_graphs(self, dbpedia_edge_index, dbpedia_edge_type, conceptnet_edge_index, item_entity_ids):
        """Copy the graphs into the buffers; shapes must match the config, ids must be in range."""
        c = self.config
        checks = [
            ("dbpedia_edge_index", dbpedia_edge_index, (2, c.n_dbpedia_edges), c.n_entity, "n_entity"),
            ("dbpedia_edge_type", dbpedia_edge_type, (c.n_dbpedia_edges,), c.n_relation, "n_relation"),
            ("conceptnet_edge_index", conceptnet_edge_index, (2, c.n_conceptnet_edges), c.n_concept, "n_concept"),
            ("item_entity_ids", item_entity_ids, (c.n_item,), c.n_entity, "n_entity"),
        ]
        tensors = {}
        for name, value, shape, bound, bound_name in checks:
            value = torch.as_tensor(value)
            if tuple(value.shape) != shape:
                raise ValueError(f"{name}: expected shape {shape} (from the config), got {tuple(value.shape)}")
            if value.is_floating_point() or value.dtype == torch.bool:
                raise ValueError(f"{name}: expected an integer tensor, got {value.dtype}")
            if value.numel() and (int(value.min()) < 0 or int(value.max()) >= bound):
                raise ValueError(f"{name}: ids must be in [0, {bound_name}={bound}), got [{int(value.min())}, {int(value.max())}]")
            tensors[name] = value
        with torch.no_grad():
            for name, value in tensors.items():
                getattr(self, name).copy_(value)
        self.rebuild_dbpedia_graph()

    def resize_vocab_buffers(self, vocab_size: int) -> None:
        """Pad (False) or cut the two vocabulary masks to ``vocab_size``."""
        for name in ("kg_word_vocab_mask", "item_token_vocab_mask"):
            old = getattr(self, name)
            new = torch.zeros(vocab_size, dtype=torch.bool, device=old.device)
            keep = min(vocab_size, old.numel())
            new[:keep] = old[:keep]
            setattr(self, name, new)
        self.item_token_ids.masked_fill_(self.item_token_ids >= vocab_size, -1)

    def set_vocab_masks(self, kg_word_vocab_mask, item_token_vocab_mask, item_token_ids=None):
        """Vocabulary masks (vocab,) of ConceptNet words and of item tokens (the copy targets), and
        optionally each item's token (:meth:`set_item_token_ids`)."""
        for name, value in (("kg_word_vocab_mask", kg_word_vocab_mask), ("item_token_vocab_mask", item_token_vocab_mask)):
            value = torch.as_tensor(value)
            if tuple(value.shape) != (self.config.vocab_size,):
                raise ValueError(f"{name}: expected shape ({self.config.vocab_size},) (vocab_size), got {tuple(value.shape)}")
            with torch.no_grad():
                getattr(self, name).copy_(value.bool())
        if item_token_ids is not None:
            self.set_item_token_ids(item_token_ids)

    def set_item_token_ids(self, item_token_ids):
        """``(n_item,)`` vocabulary id of each item's token (-1: the item has no token); each id must
        be marked in ``item_token_vocab_mask``. The item slots of ``generate`` name items with it
        (``generation_kgsf.item_token_ids_from_vocab`` builds it from a vocabulary and an item table)."""
        value = torch.as_tensor(item_token_ids)
        if tuple(value.shape) != (self.config.n_item,):
            raise ValueError(f"item_token_ids: expected shape ({self.config.n_item},) (n_item), got {tuple(value.shape)}")
        if value.is_floating_point() or value.dtype == torch.bool:
            raise ValueError(f"item_token_ids: expected an integer tensor, got {value.dtype}")
        value = value.long().to(self.item_token_ids.device)
        if value.numel() and (int(value.min()) < -1 or int(value.max()) >= self.config.vocab_size):
            raise ValueError(f"item_token_ids: ids must be -1 or in [0, vocab_size={self.config.vocab_size})")
        named = value[value >= 0]
        if named.numel() and not bool(self.item_token_vocab_mask[named].all()):
            raise ValueError("item_token_ids: some ids are not item tokens (not marked in item_token_vocab_mask)")
        if named.unique().numel() != named.numel():
            raise ValueError("item_token_ids: two items share a token")
        with torch.no_grad():
            self.item_token_ids.copy_(value)

    def item_tokens_known(self) -> bool:
        """Whether ``item_token_ids`` names at least one item (all -1: not set, e.g. an older folder)."""
        return bool((self.item_token_ids >= 0).any())

    def load_word_embeddings(self, weights):
        """Initialise the shared token embedding (vocab, d_model), e.g. with word2vec vectors."""
        weights = torch.as_tensor(weights)
        expected = (self.config.vocab_size, self.config.d_model)
        if tuple(weights.shape) != expected:
            raise ValueError(f"word embeddings: expected shape {expected} (vocab_size, d_model), got {tuple(weights.shape)}")
        with torch.no_grad():
            self.shared.weight.copy_(weights)

    def get_input_embeddings(self):
        return self.shared

    def set_input_embeddings(self, value):
        self.shared = value

    # ------------------------------------------------------------------ freezing
    def graph_modules(self) -> list[nn.Module]:
        """The recommendation side: graph encoders, MIM and recommender."""
        return [m for m in (self.item_graph_encoder, self.word_graph_encoder, self.mim, self.recommender) if m is not None]

    def freeze_recommender(self, frozen: bool = True):
        """Stop (or restart) training the graph encoders, MIM and recommender (Algorithm 1, stage 3).

        The node vectors then do not change: compute them once (:meth:`encode_graphs`) and pass them
        to each call (``graph_encodings=``) instead of recomputing them at every step.
        """
        for module in self.graph_modules():
            module.requires_grad_(not frozen)

    # ------------------------------------------------------------------ graph and node vectors
    def rebuild_dbpedia_graph(self) -> None:
        """Build ``dbpedia_graph`` from the DBpedia buffers (None while they are on the meta device)."""
        index, types = self.dbpedia_edge_index, self.dbpedia_edge_type
        if index.is_meta:
            self.dbpedia_graph = None
        else:
            self.dbpedia_graph = RelationalGraph.build(index, types, self.config.n_entity, self.config.n_relation)

    def _apply(self, fn, recurse=True):
        """``nn.Module._apply`` (``to``, ``cuda``, ``float``...); ``dbpedia_graph`` follows the buffers' device."""
        module = super()._apply(fn, recurse)
        graph = self.__dict__.get("dbpedia_graph")
        if graph is not None and graph.rowptr.device != self.dbpedia_edge_index.device:
            self.rebuild_dbpedia_graph()
        return module

    def _dbpedia_graph(self) -> RelationalGraph:
        """``dbpedia_graph``, or built for this call when there is none (a model never given its graphs)."""
        if self.dbpedia_graph is not None:
            return self.dbpedia_graph
        return RelationalGraph.build(self.dbpedia_edge_index, self.dbpedia_edge_type, self.config.n_entity, self.config.n_relation)

    def encode_graphs(self) -> KGSFGraphEncodings:
        """The vectors of every entity and concept (one R-GCN over DBpedia, one GCN over ConceptNet)
        and of the items: what ``forward`` / ``generate`` take as ``graph_encodings``, for a caller
        that calls the model many times while the graph side does not change (see
        :class:`KGSFGraphEncodings`). Computed in the current grad mode: call it under
        ``torch.no_grad()`` to only read them."""
        entity = self.item_graph_encoder(self._dbpedia_graph())  # (n_entity, k)
        word = self.word_graph_encoder(self.conceptnet_edge_index) if self.word_graph_encoder is not None else None
        return KGSFGraphEncodings(entity_vectors=entity, word_vectors=word, item_vectors=entity[self.item_entity_ids])

    def entity_vectors(self, *node_ids: torch.Tensor, graph_encodings: KGSFGraphEncodings | None = None) -> list[torch.Tensor]:
        """Entity vectors ``(*shape, k)`` for each id tensor: rows of ``graph_encodings``, else
        computed for the rows needed only."""
        if graph_encodings is not None:
            table = graph_encodings.entity_vectors
            return [graph_encodings.item_vectors if ids is self.item_entity_ids else table[ids] for ids in node_ids]
        flat = torch.cat([ids.reshape(-1) for ids in node_ids])
        targets, inverse = torch.unique(flat, sorted=True, return_inverse=True)
        rows = self.item_graph_encoder(self._dbpedia_graph().restrict_to(targets))[inverse]  # (sum numel, k)
        return [part.view(*ids.shape, -1) for part, ids in zip(rows.split([ids.numel() for ids in node_ids]), node_ids)]

    def word_vectors(self, graph_encodings: KGSFGraphEncodings | None = None) -> torch.Tensor | None:
        """All concept vectors ``(n_concept, k)`` (those of ``graph_encodings``, else one GCN over
        ConceptNet), or None without it."""
        if self.word_graph_encoder is None:
            return None
        if graph_encodings is not None:
            return graph_encodings.word_vectors
        return self.word_graph_encoder(self.conceptnet_edge_index)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,  # (B, Lc)
        attention_mask: torch.Tensor | None = None,  # (B, Lc)
        context_entity_ids: torch.LongTensor | None = None,  # (B, Ne)
        context_entity_mask: torch.BoolTensor | None = None,  # (B, Ne)
        context_word_ids: torch.LongTensor | None = None,  # (B, Nw)
        context_word_mask: torch.BoolTensor | None = None,  # (B, Nw)
        decoder_input_ids: torch.LongTensor | None = None,  # (B, Lr)
        encoder_outputs: KGSFContextOutput | None = None,
        compute_rec: bool = True,
        cache: Cache | None = None,
        graph_encodings: KGSFGraphEncodings | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> KGSFModelOutput:
        """Recommendation scores (``compute_rec``) and/or decoder states (``decoder_input_ids``).

        With ``encoder_outputs`` (a :class:`KGSFContextOutput`, as in ``generate``) only the
        decoder runs. With a ``cache`` (an ``EncoderDecoderCache``) ``decoder_input_ids`` are the
        tokens after the cached ones (:class:`~.transformer.KGSFDecoder`). ``graph_encodings``
        (:meth:`encode_graphs`): the node vectors are read from them, not computed.
        """
        if encoder_outputs is not None and not compute_rec:
            context = encoder_outputs
            out = KGSFModelOutput(context=context, encoder_last_hidden_state=context.last_hidden_state)
        else:
            entity_ids, entity_mask, word_ids, word_mask = _context_inputs(
                context_entity_ids, context_entity_mask, context_word_ids, context_word_mask, input_ids
            )
            needed = [entity_ids] + ([self.item_entity_ids] if compute_rec else [])
            entity_nodes, *item_nodes = self.entity_vectors(*needed, graph_encodings=graph_encodings)  # (B, Ne, k), (n_item, k)
            concept_table = self.word_vectors(graph_encodings)
            word_nodes = concept_table[word_ids] if concept_table is not None else None  # (B, Nw, k)
            word_vector, word_weights, entity_vector, entity_weights = self.recommender.pool(word_nodes, word_mask, entity_nodes, entity_mask)
            user = self.recommender.user_vector(word_vector, entity_vector)
            out = KGSFModelOutput(
                rec_logits=self.recommender(user, item_nodes[0]) if compute_rec else None,
                user_embedding=user,
                word_vector=word_vector,
                entity_vector=entity_vector,
                word_attention_weights=word_weights,
                entity_attention_weights=entity_weights,
                context_word_vectors=word_nodes,
                context_entity_vectors=entity_nodes,
            )
            if decoder_input_ids is not None or encoder_outputs is not None:
                context = encoder_outputs or self._encode_context(input_ids, attention_mask, out, word_mask, entity_mask)
                out.context, out.encoder_last_hidden_state = context, context.last_hidden_state
        if decoder_input_ids is not None:
            context = out.context
            out.last_hidden_state = self.decoder(
                decoder_input_ids, self.shared, context.last_hidden_state, context.encoder_attention_mask,
                context.word_states, context.word_mask, context.entity_states, context.entity_mask, cache,
            )
            out.cache = cache
        return _as_requested(out, self.config, return_dict)

    def _encode_context(self, input_ids, attention_mask, out: KGSFModelOutput, word_mask, entity_mask) -> KGSFContextOutput:
        if input_ids is None:
            raise ValueError("the conversation part needs input_ids (the context tokens)")
        encoder_mask = attention_mask.bool() if attention_mask is not None else input_ids.ne(self.config.pad_token_id)
        return KGSFContextOutput(
            last_hidden_state=self.encoder(input_ids, encoder_mask, self.shared),
            encoder_attention_mask=encoder_mask,
            word_states=self.word_to_decoder(out.context_word_vectors) if self.word_to_decoder is not None else None,
            word_mask=word_mask if self.word_to_decoder is not None else None,
            entity_states=self.entity_to_decoder(out.context_entity_vectors) if self.entity_to_decoder is not None else None,
            entity_mask=entity_mask if self.entity_to_decoder is not None else None,
            word_vector=out.word_vector,
            entity_vector=out.entity_vector,
        )

    def encode_context(self, input_ids, attention_mask=None, context_entity_ids=None, context_entity_mask=None,
                       context_word_ids=None, context_word_mask=None, graph_encodings: KGSFGraphEncodings | None = None,
                       **kwargs) -> KGSFContextOutput:
        """Everything the decoder needs from the context (text states, KG node states, pooled vectors)."""
        return self._context_only(input_ids, attention_mask, context_entity_ids, context_entity_mask, context_word_ids, context_word_mask,
                                  graph_encodings)

    def _context_only(self, input_ids, attention_mask, context_entity_ids, context_entity_mask, context_word_ids, context_word_mask,
                      graph_encodings: KGSFGraphEncodings | None = None):
        entity_ids, entity_mask, word_ids, word_mask = _context_inputs(
            context_entity_ids, context_entity_mask, context_word_ids, context_word_mask, input_ids
        )
        (entity_nodes,) = self.entity_vectors(entity_ids, graph_encodings=graph_encodings)
        concept_table = self.word_vectors(graph_encodings)
        word_nodes = concept_table[word_ids] if concept_table is not None else None
        word_vector, _, entity_vector, _ = self.recommender.pool(word_nodes, word_mask, entity_nodes, entity_mask)
        out = KGSFModelOutput(word_vector=word_vector, entity_vector=entity_vector, context_word_vectors=word_nodes,
                              context_entity_vectors=entity_nodes)
        return self._encode_context(input_ids, attention_mask, out, word_mask, entity_mask)


def _rebuild_graph_after_loading(module: KGSFModel, incompatible_keys) -> None:
    """``load_state_dict`` post-hook: ``dbpedia_graph`` from the loaded buffers."""
    module.rebuild_dbpedia_graph()


def _context_inputs(entity_ids, entity_mask, word_ids, word_mask, input_ids):
    """Default empty (all-False) context entities / words when they are not given."""
    batch = (input_ids if input_ids is not None else entity_ids if entity_ids is not None else word_ids).shape[0]
    device = (input_ids if input_ids is not None else entity_ids if entity_ids is not None else word_ids).device
    if entity_ids is None:
        entity_ids = torch.zeros(batch, 1, dtype=torch.long, device=device)
        entity_mask = torch.zeros(batch, 1, dtype=torch.bool, device=device)
    elif entity_mask is None:
        entity_mask = torch.ones_like(entity_ids, dtype=torch.bool)
    if word_ids is None:
        word_ids = torch.zeros(batch, 1, dtype=torch.long, device=device)
        word_mask = torch.zeros(batch, 1, dtype=torch.bool, device=device)
    elif word_mask is None:
        word_mask = word_ids.ne(0)  # concept 0 is the padding node
    return entity_ids, entity_mask.bool(), word_ids, word_mask.bool()


# --------------------------------------------------------------------------- full model
class _ContextEncoder:
    """What ``get_encoder()`` returns for ``generate``: a callable (not a registered module, to keep
    the module tree acyclic) that runs :meth:`KGSFModel._context_only` (``generate`` passes it its
    ``graph_encodings``)."""

    def __init__(self, model: KGSFModel):
        self.model = model

    def forward(self, input_ids=None, attention_mask=None, context_entity_ids=None, context_entity_mask=None,
                context_word_ids=None, context_word_mask=None, graph_encodings=None, **kwargs) -> KGSFContextOutput:
        return self.model._context_only(input_ids, attention_mask, context_entity_ids, context_entity_mask,
                                        context_word_ids, context_word_mask, graph_encodings)

    __call__ = forward


class KGSFForConversationalRecommendation(KGSFPreTrainedModel, GenerationMixin):
    """KGSF: recommendation scores, MIM, and responses with a vocabulary + copy output.

    ``forward(**batch, task=None)``: ``task`` is ``"rec"`` (rec logits; rec loss and, with
    ``use_mim``, λ·MIM when ``rec_labels`` are given), ``"conv"`` (mixed logits; LM loss with
    ``labels``), ``"mim"`` (MIM loss only), ``"all"`` (everything given) or None: ``"conv"`` when
    ``labels``/``decoder_input_ids``/``encoder_outputs`` are given (plus ``"rec"`` when
    ``rec_labels`` are too), else ``"rec"``. ``logits_to_keep=n`` computes the output logits of the
    last n positions only (generation uses 1; 0 = all). ``logits_at_labels_only`` (with ``labels``)
    computes them only where ``labels != -100``: the same loss, without the output layer at padding
    positions (training); ``lm_logits`` is then ``(N, vocab)``.

    Key/value cache: ``cache`` (an ``EncoderDecoderCache``; ``past_key_values`` is the older name),
    or ``use_cache=True`` for a new one, returned as ``out.cache``; ``decoder_input_ids`` are then
    the tokens after the cached ones. ``generate`` uses it unless ``use_cache=False``.
    """

    def __init__(self, config: KGSFConfig):
        super().__init__(config)
        self.kgsf = KGSFModel(config)
        self.copy_head = CopyHead(config) if config.use_copy else None
        # KBRD's user_representation_to_bias: a vocabulary bias from the user vector p_u (config.user_vocab_bias)
        self.user_vocab_bias = nn.Sequential(nn.Linear(config.kg_dim, 512), nn.ReLU(), nn.Linear(512, config.vocab_size)) \
            if getattr(config, "user_vocab_bias", False) else None
        self.post_init()
        self.generation_config = GenerationConfig(
            decoder_start_token_id=config.decoder_start_token_id, bos_token_id=config.bos_token_id,
            eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id,
            max_new_tokens=config.max_response_length, use_cache=True, **KGSF_GENERATION_DEFAULTS,
        )

    # delegation to the body
    def set_graphs(self, *args, **kwargs):
        return self.kgsf.set_graphs(*args, **kwargs)

    def set_vocab_masks(self, *args, **kwargs):
        return self.kgsf.set_vocab_masks(*args, **kwargs)

    def set_item_token_ids(self, item_token_ids):
        return self.kgsf.set_item_token_ids(item_token_ids)

    def load_word_embeddings(self, weights):
        return self.kgsf.load_word_embeddings(weights)

    def freeze_recommender(self, frozen: bool = True):
        """Freeze graph encoders, MIM and recommender (the conversation stage)."""
        return self.kgsf.freeze_recommender(frozen)

    def encode_graphs(self) -> KGSFGraphEncodings:
        """:meth:`KGSFModel.encode_graphs`: the node vectors to pass as ``graph_encodings``."""
        return self.kgsf.encode_graphs()

    def copy_rows(self) -> CopyRows | None:
        """The copy head's vocabulary rows of the copy targets (``copy_rows=`` of ``forward``; None
        without a copy head). ``generate`` gathers them once per call."""
        if self.copy_head is None:
            return None
        return self.copy_head.rows(self.kgsf.kg_word_vocab_mask | self.kgsf.item_token_vocab_mask)

    def get_input_embeddings(self):
        return self.kgsf.shared

    def set_input_embeddings(self, value):
        self.kgsf.shared = value

    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None,
                                mean_resizing: bool = True) -> nn.Embedding:
        """As ``PreTrainedModel.resize_token_embeddings``, keeping everything sized by the vocabulary
        in step: the tied output layer (it is the embedding), the copy head's vocabulary projection
        and KBRD's ``user_vocab_bias`` (new rows zero: no bias until trained) and the ``kg_word_vocab_mask`` /
        ``item_token_vocab_mask`` buffers (new tokens False; mark them with ``set_vocab_masks``)."""
        embeddings = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        vocab_size = embeddings.num_embeddings
        self.kgsf.resize_vocab_buffers(vocab_size)
        if self.copy_head is not None:
            self.copy_head.resize_vocab(vocab_size)
        if self.user_vocab_bias is not None:  # KBRD's bias layer: its last Linear has a row per token
            self.user_vocab_bias[-1] = resized_rows(self.user_vocab_bias[-1], vocab_size)
        self.config.vocab_size = vocab_size
        return embeddings

    def get_encoder(self, modality=None):
        return _ContextEncoder(self.kgsf)

    def get_decoder(self):
        return self.kgsf.decoder

    @torch.no_grad()
    def generate(self, *args, copy_rows: CopyRows | None = None, **kwargs):
        """``GenerationMixin.generate``, with the copy head's rows (:meth:`copy_rows`) gathered once for
        the call and passed to every step. ``graph_encodings`` (:meth:`encode_graphs`), when given,
        are read by the context encoding and the item slots; without them each computes the node
        vectors it needs, once per call (the steps read only the context encoding)."""
        return super().generate(*args, copy_rows=copy_rows if copy_rows is not None else self.copy_rows(), **kwargs)

    def prepare_inputs_for_generation(self, input_ids, encoder_outputs=None, attention_mask=None, cache=None, item_scores=None,
                                      copy_rows=None, **kwargs):
        """The decoder input of a step against the (expanded) context encoding: with a ``cache``
        (``generate``'s ``EncoderDecoderCache``) the tokens not cached yet (the last one), without one
        (``use_cache=False``) the whole prefix; ``copy_rows`` as :meth:`generate` gathered them.

        ``item_scores`` (B, n_item), a ``generate`` argument, is read by the item slots (not the model)."""
        past_length = cache.get_seq_length() if cache is not None else 0
        return {"decoder_input_ids": input_ids[:, past_length:], "encoder_outputs": encoder_outputs, "attention_mask": attention_mask,
                "cache": cache, "task": "conv", "logits_to_keep": 1, "copy_rows": copy_rows}

    def _reorder_cache(self, cache: EncoderDecoderCache, beam_idx: torch.LongTensor) -> EncoderDecoderCache:
        """Beam search: the self-attention keys/values follow the chosen beams; the cross-attention ones
        are left as they are (the beams of a context share its keys/values, and a beam is only ever
        replaced by a beam of the same context)."""
        cache.self_attention_cache.reorder_cache(beam_idx)
        return cache

    def _get_logits_processor(self, generation_config, *args, **kwargs):
        """``GenerationMixin``'s processors, with the item slots first when ``generation_config.item_slots``
        (``generation_kgsf``): they see the model's own distribution, before repetition penalties and
        sampling warpers."""
        processors = super()._get_logits_processor(generation_config, *args, **kwargs)
        if getattr(generation_config, "item_slots", False) and not any(isinstance(p, ItemSlotLogitsProcessor) for p in processors):
            model_kwargs = kwargs.get("model_kwargs") or {}
            processors.insert(0, build_item_slot_processor(self, model_kwargs, kwargs.get("encoder_input_ids"),
                                                           getattr(generation_config, "max_item_slots", None),
                                                           getattr(generation_config, "item_slot_bias", 0.0)))
        return processors

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,  # (B, Lc) context tokens
        attention_mask: torch.Tensor | None = None,  # (B, Lc)
        context_entity_ids: torch.LongTensor | None = None,  # (B, Ne)
        context_entity_mask: torch.BoolTensor | None = None,  # (B, Ne)
        context_word_ids: torch.LongTensor | None = None,  # (B, Nw)
        context_word_mask: torch.BoolTensor | None = None,  # (B, Nw)
        rec_labels: torch.LongTensor | None = None,  # (B,) item index, -100 = none
        context_item_indices: torch.LongTensor | None = None,  # (B, Ni) unused here (evaluation protocol)
        labels: torch.LongTensor | None = None,  # (B, Lr) response + __end__, -100 = pad
        decoder_input_ids: torch.LongTensor | None = None,  # (B, Lr) default: labels shifted right after __start__
        encoder_outputs: KGSFContextOutput | None = None,
        task: str | None = None,
        logits_to_keep: int = 0,
        logits_at_labels_only: bool = False,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        graph_encodings: KGSFGraphEncodings | None = None,
        copy_rows: CopyRows | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> KGSFOutput:
        if task is None:
            conv = labels is not None or decoder_input_ids is not None or encoder_outputs is not None
            task = ("all" if rec_labels is not None else "conv") if conv else "rec"
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS} or None, got {task!r}")
        do_rec, do_conv = task in ("rec", "all"), task in ("conv", "all")
        do_mim = task == "mim" or (do_rec and rec_labels is not None and self.config.use_mim)
        if logits_to_keep and labels is not None:
            raise ValueError("logits_to_keep is for generation: the LM loss needs the logits of every position")
        if logits_at_labels_only and labels is None:
            raise ValueError("logits_at_labels_only needs labels (it keeps the positions where labels != -100)")
        if do_conv and decoder_input_ids is None:
            if labels is None:
                raise ValueError("task 'conv' needs labels or decoder_input_ids")
            decoder_input_ids = self.shift_labels_right(labels)
        if do_conv and use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())

        body = self.kgsf(
            input_ids, attention_mask, context_entity_ids, context_entity_mask, context_word_ids, context_word_mask,
            decoder_input_ids=decoder_input_ids if do_conv else None,
            encoder_outputs=encoder_outputs if do_conv else None,
            compute_rec=do_rec,
            cache=cache if do_conv else None,
            graph_encodings=graph_encodings,
            return_dict=True,
        )
        out = KGSFOutput(
            rec_logits=body.rec_logits, user_embedding=body.user_embedding,
            word_attention_weights=body.word_attention_weights, entity_attention_weights=body.entity_attention_weights,
            encoder_last_hidden_state=body.encoder_last_hidden_state, decoder_last_hidden_state=body.last_hidden_state,
            cache=body.cache,
        )
        losses = []
        if do_rec and rec_labels is not None:
            if self.config.rec_loss_reduction == "sum":  # the reference: summed over the batch's labelled rows
                out.rec_loss = F.cross_entropy(body.rec_logits.float(), rec_labels, ignore_index=IGNORE_INDEX, reduction="sum")
            else:
                out.rec_loss = _cross_entropy(body.rec_logits, rec_labels)
            losses.append(out.rec_loss)
        if do_mim:
            out.mim_loss = self.mim_loss(body, context_entity_ids, context_entity_mask, context_word_mask, graph_encodings)
            if out.mim_loss is None and task == "mim":  # no (entity, words) pair in the batch: a zero loss
                if self.kgsf.mim is None:
                    raise ValueError("task 'mim' needs the word side (config.use_conceptnet=True)")
                out.mim_loss = body.user_embedding.sum() * 0.0
            if out.mim_loss is not None:
                losses.append(out.mim_loss if task == "mim" else self.config.mim_weight * out.mim_loss)
        if do_conv:
            if logits_at_labels_only:
                keep = labels != IGNORE_INDEX  # (B, Lr)
                out.lm_logits = out.logits = self.output_logits_at(body.last_hidden_state, body.context, keep, copy_rows)
                labels = labels[keep]  # (N,)
            else:
                states = body.last_hidden_state[:, -logits_to_keep:] if logits_to_keep else body.last_hidden_state
                out.lm_logits = out.logits = self.output_logits(states, body.context, copy_rows)
            if labels is not None:
                out.lm_loss = _cross_entropy(out.lm_logits.reshape(-1, out.lm_logits.shape[-1]), labels.reshape(-1))
                losses.append(out.lm_loss)
        if losses:
            out.loss = sum(losses[1:], losses[0])
        return _as_requested(out, self.config, return_dict)

    def shift_labels_right(self, labels: torch.LongTensor) -> torch.LongTensor:
        """``[start] + labels[:, :-1]`` with -100 replaced by pad: the teacher-forced decoder input."""
        shifted = torch.cat([torch.full_like(labels[:, :1], self.config.decoder_start_token_id), labels[:, :-1]], dim=1)
        return shifted.masked_fill(shifted == IGNORE_INDEX, self.config.pad_token_id)

    def output_logits(self, decoder_states, context: KGSFContextOutput, copy_rows: CopyRows | None = None) -> torch.Tensor:
        """Vocabulary logits (tied to the token embedding) + copy logits; pad/start never predicted.
        ``copy_rows``: :meth:`copy_rows` (gathered here when not given)."""
        logits = F.linear(decoder_states, self.kgsf.shared.weight)  # (B, Lr, V)
        if self.copy_head is not None:
            copy_mask = self.kgsf.kg_word_vocab_mask | self.kgsf.item_token_vocab_mask
            logits = self.copy_head(decoder_states, context.entity_vector, context.word_vector, copy_mask, logits, copy_rows)
        else:
            logits = logits.clone()  # masked in place below
        if self.user_vocab_bias is not None:  # KBRD: + bias(p_u) at every position
            user = self.kgsf.recommender.user_vector(context.word_vector, context.entity_vector)  # (B, k)
            logits = logits + self.user_vocab_bias(user).unsqueeze(1).to(logits.dtype)
        never = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        never[[self.config.pad_token_id, self.config.decoder_start_token_id]] = True
        return logits.masked_fill_(never, torch.finfo(logits.dtype).min)

    def output_logits_at(self, decoder_states, context: KGSFContextOutput, keep: torch.BoolTensor,
                         copy_rows: CopyRows | None = None) -> torch.Tensor:
        """:meth:`output_logits` at the positions ``keep (B, Lr)`` only: ``(N, V)``, row by row, each
        position with its own row's context vectors (the same values as those positions of the full
        logits)."""
        rows = keep.nonzero()[:, 0]  # (N,) the batch row of each kept position
        kept = KGSFContextOutput(word_vector=context.word_vector[rows] if context.word_vector is not None else None,
                                 entity_vector=context.entity_vector[rows] if context.entity_vector is not None else None)
        return self.output_logits(decoder_states[keep][:, None], kept, copy_rows)[:, 0]  # (N, 1, d) -> (N, V)

    def mim_loss(self, body: KGSFModelOutput, entity_ids, entity_mask, word_mask, graph_encodings: KGSFGraphEncodings | None = None):
        """The MIM loss of the batch (None when the model has no word side or no pair exists)."""
        mim = self.kgsf.mim
        if mim is None or entity_ids is None:
            return None
        entity_mask = entity_mask if entity_mask is not None else torch.ones_like(entity_ids, dtype=torch.bool)
        if isinstance(mim, RegressionMIM):
            return mim(body.word_vector, entity_ids, entity_mask)
        if isinstance(mim, ReferenceRegressionMIM):  # scores against every entity's R-GCN vector
            (all_entities,) = self.kgsf.entity_vectors(torch.arange(self.config.n_entity, device=entity_ids.device),
                                                       graph_encodings=graph_encodings)
            return mim(body.word_vector, all_entities, entity_ids, entity_mask, self.kgsf.item_entity_ids)
        assert isinstance(mim, ContrastiveMIM)
        word_mask = word_mask if word_mask is not None else torch.zeros(entity_ids.shape[0], 1, dtype=torch.bool, device=entity_ids.device)
        return mim(body.context_entity_vectors, entity_ids, entity_mask, body.word_vector, word_mask)


def _weights_file(folder) -> str:
    path = Path(str(folder))
    return str(path / "model.safetensors") if path.is_dir() else f"the weights of {folder}"


_SIZE_FIELDS = ("vocab_size", "d_model", "ffn_dim", "kg_dim", "n_entity", "n_relation", "num_bases", "n_concept", "n_item",
                "entity_embedding_dim", "encoder_layers", "decoder_layers")


def _size_fields(folder) -> str:
    """The size fields of a folder's config.json, for the mismatch message."""
    try:
        config = json.loads((Path(str(folder)) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "config.json unreadable"
    return ", ".join(f"{key}={config[key]}" for key in _SIZE_FIELDS if key in config)


def _as_requested(out: ModelOutput, config, return_dict: bool | None):
    """``out``, or with ``return_dict=False`` (as given, else the config's) the tuple of its non-None
    fields in declaration order (loss first), as transformers models return it."""
    if return_dict if return_dict is not None else getattr(config, "return_dict", True):
        return out
    return tuple(getattr(out, field.name) for field in fields(out) if getattr(out, field.name) is not None)


def _cross_entropy(logits, labels):
    """Mean CE over labels != -100 (0 with a graph, not NaN, when there is none)."""
    if not (labels != IGNORE_INDEX).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)


KGSFConfig.register_for_auto_class()
KGSFModel.register_for_auto_class("AutoModel")
KGSFForConversationalRecommendation.register_for_auto_class("AutoModelForSeq2SeqLM")
