"""KGSF configuration."""
from __future__ import annotations

import difflib
import inspect

from transformers import PretrainedConfig

MIM_FORMS = ("contrastive", "regression", "regression_reference")
ITEM_GRAPH_ENCODERS = ("featureless", "embedding")
RGCN_AGGREGATIONS = ("mean", "add")
REC_LOSS_REDUCTIONS = ("mean", "sum")


class KGSFConfig(PretrainedConfig):
    r"""Configuration of :class:`KGSFForConversationalRecommendation` (Zhou et al., KDD 2020).

    Defaults reproduce the reference code (RUCAIBox/KGSF) on ReDial.

    Vocabulary and text Transformer:
        vocab_size (int, 23929): word vocabulary (0 pad, 1 start, 2 end, 3 unk, then KGSF's words).
        d_model (int, 300): token embedding and Transformer width (word2vec size).
        encoder_layers / decoder_layers (int, 2): Transformer layers.
        attention_heads (int, 2): heads of every multi-head attention.
        ffn_dim (int, 300): inner size of the position-wise feed-forward network.
        dropout (float, 0.1): dropout after embeddings, attention and FFN blocks.
        attention_dropout (float, 0.0): dropout on attention probabilities.
        relu_dropout (float, 0.1): dropout inside the FFN, after the ReLU.
        scale_embedding (bool, True): multiply token embeddings by sqrt(d_model) (ParlAI default).
        max_context_length (int, 256): context tokens the data keeps (positions are sinusoidal,
            so this is informative only).
        max_response_length (int, 30): response tokens; the default ``max_new_tokens``.
        pad_token_id / bos_token_id (= decoder_start_token_id) / eos_token_id / unk_token_id
            (int, 0 / 1 / 2 / 3).

    Knowledge graphs:
        kg_dim (int, 128): node vector size of both graph encoders (the recommender's space).
        n_entity (int, 64362): DBpedia nodes (entity ids 0..n_entity-1).
        n_relation (int, 46): DBpedia relations (self-loop included).
        num_bases (int, 8): R-GCN basis decomposition size.
        n_concept (int, 29309): ConceptNet nodes (0 = padding concept).
        n_dbpedia_edges (int, 365022): columns of the ``dbpedia_edge_index`` buffer.
        n_conceptnet_edges (int, 43486): columns of the ``conceptnet_edge_index`` buffer.
        n_item (int, 6924): recommendable items (``item_entity_ids`` buffer).
        item_graph_encoder (str, "featureless"): ``"featureless"`` = the reference's
            ``RGCNConv(n_entity, kg_dim, R, num_bases)`` on one-hot input (~74M parameters);
            ``"embedding"`` = a learned ``(n_entity, entity_embedding_dim)`` table fed to the R-GCN.
        entity_embedding_dim (int, 32): input size of the R-GCN in the ``"embedding"`` form.
        rgcn_aggregation (str, "mean"): how the R-GCN combines each relation's neighbours:
            ``"mean"`` = ``1/|N_r(i)|`` (PyG >= 2's ``RGCNConv`` default); ``"add"`` = a sum
            (``Z_{e,r} = 1``: the paper's setting and PyG 1.3's ``RGCNConv``, which the reference
            ran). A fidelity switch; "mean" stays the default: on 9,095 training conversations
            "add" gave the same test recall within seed noise (docs/RESULTS.md, "Fidelity
            switches"). A config without the key means "mean".

    Fusion and recommendation:
        mim_form (str, "contrastive"): ``"contrastive"`` = the paper's MIM: a self-attentive
            "super token" over the context words, discriminator ``g(e, w) = σ(n_eᵀ T v_w)``,
            positives = (context entity, own super token), negatives = (entity of another
            conversation of the batch, super token), binary cross-entropy.
            ``"regression"`` = the reference code: the word-side user vector is mapped to
            ``n_entity`` scores and regressed (MSE) onto the multi-hot vector of the context
            entities.
            ``"regression_reference"`` = the regression as the reference code computes it: scores
            ``(W_n v + b_n)ᵀ n_e + c_e`` against the R-GCN's own entity vectors (so the MIM also
            trains the item-graph encoder, which ``"regression"`` does not reach), target = the
            multi-hot of the context's items (movies), squared error summed over all entities per
            example, rows without context entities masked, mean over the batch
            (:class:`~modeling_kgsf.fusion.ReferenceRegressionMIM`). It runs the R-GCN over every
            entity at each step. Measured on 9,095 training conversations it lowers test R@10 and
            R@50 by about .03 and .05 against "contrastive" (docs/RESULTS.md), so it is not the default.
        mim_weight (float, 0.025): λ of ``L_rec + λ L_MIM``.
        rec_loss_reduction (str, "mean"): the recommendation cross-entropy over the batch's
            labelled rows: ``"mean"`` or ``"sum"`` (the reference code; this scales L_rec, and so
            its gradient, by the number of labelled rows, which shrinks λ's relative effect by the
            same factor and interacts with gradient clipping). A fidelity switch; "mean" stays the
            default: "sum" gave the same test recall within seed noise (docs/RESULTS.md). A config
            without the key means "mean".

    Ablation switches (all True = KGSF):
        use_mim: add λ·L_MIM to the recommendation loss.
        use_dbpedia: R-GCN message passing over DBpedia (False: entity vectors are the R-GCN's
            root term only, i.e. free embeddings).
        use_conceptnet: the word side (ConceptNet GCN) in user vector, decoder and copy (False:
            KBRD-like, entities only; also disables MIM).
        use_kg_attention: the decoder's attention over context words and entities.
        use_copy: the copy head over KG words and item tokens.

    KBRD (Chen et al., EMNLP 2019), off by default:
        user_vocab_bias (bool, False): add to the output logits a vocabulary bias computed from
            the user vector, ``Linear(512, vocab)(ReLU(Linear(kg_dim, 512)(p_u)))`` (KBRD's
            ``user_representation_to_bias``). KBRD = ``use_conceptnet=false, use_mim=false,
            use_kg_attention=false, use_copy=false, user_vocab_bias=true`` (examples/train_kbrd.py).

    Attention kernel: transformers' ``attn_implementation`` (``KGSFConfig(attn_implementation=...)``,
    ``from_pretrained(..., attn_implementation=...)`` or ``model.set_attn_implementation(...)``; not
    saved): ``"sdpa"`` (``torch.nn.functional.scaled_dot_product_attention``, the default) or
    ``"eager"`` (the matmuls written out, the original code). Both give the same outputs up to float
    rounding (``tests/test_throughput.py``).

    The usual transformers names are aliases (``attribute_map``): ``hidden_size`` = ``d_model``,
    ``num_attention_heads`` = ``attention_heads``, ``num_hidden_layers`` = ``encoder_layers``,
    ``intermediate_size`` = ``ffn_dim``, ``encoder_attention_heads`` / ``decoder_attention_heads``
    = ``attention_heads``, ``max_position_embeddings`` = ``max_context_length``.
    """

    model_type = "kgsf"
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "attention_heads",
        "encoder_attention_heads": "attention_heads",
        "decoder_attention_heads": "attention_heads",
        "num_hidden_layers": "encoder_layers",
        "intermediate_size": "ffn_dim",
        "encoder_ffn_dim": "ffn_dim",
        "decoder_ffn_dim": "ffn_dim",
        "max_position_embeddings": "max_context_length",
    }

    def __init__(
        self,
        vocab_size: int = 23929,
        d_model: int = 300,
        encoder_layers: int = 2,
        decoder_layers: int = 2,
        attention_heads: int = 2,
        ffn_dim: int = 300,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        relu_dropout: float = 0.1,
        scale_embedding: bool = True,
        max_context_length: int = 256,
        max_response_length: int = 30,
        kg_dim: int = 128,
        n_entity: int = 64362,
        n_relation: int = 46,
        num_bases: int = 8,
        n_concept: int = 29309,
        n_dbpedia_edges: int = 365022,
        n_conceptnet_edges: int = 43486,
        n_item: int = 6924,
        item_graph_encoder: str = "featureless",
        entity_embedding_dim: int = 32,
        rgcn_aggregation: str = "mean",
        mim_form: str = "contrastive",
        mim_weight: float = 0.025,
        rec_loss_reduction: str = "mean",
        use_mim: bool = True,
        use_dbpedia: bool = True,
        use_conceptnet: bool = True,
        use_kg_attention: bool = True,
        use_copy: bool = True,
        user_vocab_bias: bool = False,
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        unk_token_id: int = 3,
        decoder_start_token_id: int = 1,
        is_encoder_decoder: bool = True,
        **kwargs,
    ):
        self._check_arguments(d_model, attention_heads, mim_form=mim_form, item_graph_encoder=item_graph_encoder,
                              rgcn_aggregation=rgcn_aggregation, rec_loss_reduction=rec_loss_reduction)
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.encoder_layers = encoder_layers
        self.decoder_layers = decoder_layers
        self.attention_heads = attention_heads
        self.ffn_dim = ffn_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.relu_dropout = relu_dropout
        self.scale_embedding = scale_embedding
        self.max_context_length = max_context_length
        self.max_response_length = max_response_length
        self.kg_dim = kg_dim
        self.n_entity = n_entity
        self.n_relation = n_relation
        self.num_bases = num_bases
        self.n_concept = n_concept
        self.n_dbpedia_edges = n_dbpedia_edges
        self.n_conceptnet_edges = n_conceptnet_edges
        self.n_item = n_item
        self.item_graph_encoder = item_graph_encoder
        self.entity_embedding_dim = entity_embedding_dim
        self.rgcn_aggregation = rgcn_aggregation
        self.mim_form = mim_form
        self.mim_weight = mim_weight
        self.rec_loss_reduction = rec_loss_reduction
        self.use_mim = use_mim
        self.use_dbpedia = use_dbpedia
        self.use_conceptnet = use_conceptnet
        self.use_kg_attention = use_kg_attention
        self.use_copy = use_copy
        self.user_vocab_bias = user_vocab_bias
        self.unk_token_id = unk_token_id
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            decoder_start_token_id=decoder_start_token_id,
            is_encoder_decoder=is_encoder_decoder,
            **kwargs,
        )

    _CHOICES = {"mim_form": MIM_FORMS, "item_graph_encoder": ITEM_GRAPH_ENCODERS, "rgcn_aggregation": RGCN_AGGREGATIONS,
                "rec_loss_reduction": REC_LOSS_REDUCTIONS}

    @classmethod
    def _check_arguments(cls, d_model: int, attention_heads: int, **switches: str) -> None:
        """Raise ``ValueError`` on a switch outside its choices (:attr:`_CHOICES`) or heads that do not divide ``d_model``."""
        for name, value in switches.items():
            if value not in cls._CHOICES[name]:
                raise ValueError(f"{name} must be one of {cls._CHOICES[name]}, got {value!r}")
        if d_model % attention_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by attention_heads ({attention_heads})")

    # ------------------------------------------------------------------ strict overrides
    @classmethod
    def known_keys(cls) -> set[str]:
        """Every name a KGSF configuration understands: its own arguments, their aliases
        (``attribute_map``) and the arguments of ``PretrainedConfig``."""
        own = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
        base = set(PretrainedConfig().to_dict()) | {"attn_implementation"}
        return own | set(cls.attribute_map) | base

    @classmethod
    def check_keys(cls, keys, source: str = "config override") -> None:
        """Raise ``ValueError`` naming any key that is not a configuration field (a typo such as
        ``use_kg_atention`` would otherwise be stored silently and change nothing)."""
        known = cls.known_keys()
        unknown = [key for key in keys if key not in known]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(f"unknown {source} key{'s' if len(unknown) > 1 else ''}: {', '.join(hints)}; "
                             f"KGSFConfig's fields are listed in its docstring (modeling_kgsf/configuration_kgsf.py)")
