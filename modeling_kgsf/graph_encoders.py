"""Graph encoders: GCN over the ConceptNet word graph, basis-decomposed R-GCN over the DBpedia item graph.

The R-GCN computes exactly what torch_geometric's ``RGCNConv(in, out, R, num_bases=B, aggr=...)``
(root weight, bias; ``aggr="mean"``, today's PyG default, or ``"add"``, what PyG 1.3's RGCNConv
did in the reference code and the paper's ``Z_{e,r} = 1``) computes, with the same parameter names
and shapes, so a state dict moves between the two. It is fast because of three choices:

1. **Bases, not relations.** With ``W_r = sum_b comp[r, b] V_b`` the relational sum becomes
   ``sum_r A_r X W_r = sum_b A_b (X V_b)`` (featureless: ``sum_b A_b V_b``) where ``A_b`` is one
   sparse matrix with the value ``comp[r_e, b] / deg_{r_e}(dst_e)`` (``"add"``: ``comp[r_e, b]``) on edge ``e``: B sparse-dense
   products (CSR) instead of R, and no per-edge (E, C) message tensor.
2. **Only the rows that are needed.** A recommender step needs the items and the batch's context
   entities, not all 64k nodes: :meth:`RelationalGraph.restrict_to` keeps the edges whose target
   is needed (about 1/5 of DBpedia for the items), and the conv is computed on those rows only.
3. **A hand-written backward** (:class:`BasisAggregation`) that gives ``comp`` its gradient by
   one per-edge dot product per basis and ``V`` its gradient by the transposed CSR product.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

try:  # the word graph uses PyG's GCNConv; the item graph needs no PyG at all
    from torch_geometric.nn import GCNConv
except ImportError:  # pragma: no cover - torch_geometric is a hard requirement of the package
    GCNConv = None

RGCN_AGGREGATIONS = ("mean", "add")  # per relation: 1 / |N_r(i)| (PyG >= 2 default) or 1 (PyG 1.3, the reference)


# --------------------------------------------------------------------------- graph structure
@dataclass
class RelationalGraph:
    """Edges of a relational graph sorted by target (CSR over targets), with mean normalisation.

    ``rowptr (T+1,)``: edges of target row ``t`` are ``rowptr[t]:rowptr[t+1]``; ``source (E,)``,
    ``relation (E,)``: per edge; ``norm (E,)``: ``1 / deg_r(target)``, the number of edges of the
    same relation into the same target (RGCNConv's ``aggr="mean"`` is per relation;
    :meth:`with_aggregation` gives the ``"add"`` form, ``norm = 1``); ``targets (T,)``: the node id of each row; ``num_nodes``: size of the source space.
    """

    rowptr: torch.Tensor
    source: torch.Tensor
    relation: torch.Tensor
    norm: torch.Tensor
    targets: torch.Tensor
    num_nodes: int

    @classmethod
    def build(cls, edge_index: torch.Tensor, edge_type: torch.Tensor, num_nodes: int, num_relations: int) -> "RelationalGraph":
        """From PyG's ``edge_index (2, E)`` (row 0 source, row 1 target) and ``edge_type (E,)``."""
        source, target = edge_index[0].long(), edge_index[1].long()
        relation = edge_type.long()
        order = torch.argsort(target * num_nodes + source, stable=True)
        source, target, relation = source[order], target[order], relation[order]
        degree = torch.bincount(target * num_relations + relation, minlength=num_nodes * num_relations)
        norm = 1.0 / degree[target * num_relations + relation].clamp(min=1).double()  # cast at use
        rowptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=source.device)
        rowptr[1:] = torch.cumsum(torch.bincount(target, minlength=num_nodes), 0)
        targets = torch.arange(num_nodes, device=source.device)
        return cls(rowptr, source, relation, norm, targets, num_nodes)

    def restrict_to(self, targets: torch.Tensor) -> "RelationalGraph":
        """The rows of ``targets`` (sorted unique node ids of a full graph): their incoming edges only."""
        start, end = self.rowptr[targets], self.rowptr[targets + 1]
        counts = end - start  # (T,)
        rowptr = torch.zeros(targets.numel() + 1, dtype=torch.long, device=targets.device)
        rowptr[1:] = torch.cumsum(counts, 0)
        # edge positions: start[t] + 0..counts[t]-1 for every row t
        offsets = torch.arange(int(rowptr[-1]), device=targets.device) - torch.repeat_interleave(rowptr[:-1], counts)
        edges = torch.repeat_interleave(start, counts) + offsets
        return RelationalGraph(rowptr, self.source[edges], self.relation[edges], self.norm[edges], targets, self.num_nodes)

    def with_aggregation(self, aggr: str) -> "RelationalGraph":
        """The graph as aggregation ``aggr`` sees it: ``"mean"`` = ``self`` (``norm = 1 / deg_r``),
        ``"add"`` = the same edges with ``norm = 1`` (a sum over each relation's neighbours)."""
        if aggr == "mean":
            return self
        if aggr == "add":
            return RelationalGraph(self.rowptr, self.source, self.relation, torch.ones_like(self.norm), self.targets, self.num_nodes)
        raise ValueError(f"R-GCN aggregation must be one of {RGCN_AGGREGATIONS}, got {aggr!r}")

    @property
    def num_edges(self) -> int:
        return self.source.numel()

    def row_of_edge(self) -> torch.Tensor:
        """(E,) target row of each edge."""
        counts = self.rowptr[1:] - self.rowptr[:-1]
        return torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)

    def source_relation_pairs(self, num_relations: int):
        """Edges grouped by (source, relation) pair, for the backward pass.

        Returns ``pair_rowptr (P+1,)``, ``edge_rows (E,)`` (target row of each edge, in pair
        order), ``perm (E,)`` (edge order), ``pair_source (P,)``, ``pair_relation (P,)``,
        ``source_rowptr (U+1,)`` (pairs of each distinct source, pairs are sorted by source) and
        ``sources (U,)``.
        """
        keys = self.source * num_relations + self.relation
        pair_keys, inverse, pair_counts = torch.unique(keys, sorted=True, return_inverse=True, return_counts=True)
        perm = torch.argsort(inverse, stable=True)
        pair_rowptr = torch.zeros(pair_keys.numel() + 1, dtype=torch.long, device=keys.device)
        pair_rowptr[1:] = torch.cumsum(pair_counts, 0)
        pair_source, pair_relation = pair_keys // num_relations, pair_keys % num_relations
        sources, source_counts = torch.unique_consecutive(pair_source, return_counts=True)
        source_rowptr = torch.zeros(sources.numel() + 1, dtype=torch.long, device=keys.device)
        source_rowptr[1:] = torch.cumsum(source_counts, 0)
        return pair_rowptr, self.row_of_edge()[perm], perm, pair_source, pair_relation, source_rowptr, sources


def _csr(rowptr, col, values, size) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(rowptr, col, values, size=size, check_invariants=False)


# --------------------------------------------------------------------------- autograd kernel
class BasisAggregation(torch.autograd.Function):
    r"""``Z_b = A_b X_b`` for every basis b, with ``A_b[t, s] = sum_{e: s -> t} comp[r_e, b] norm_e``
    (``norm_e = 1 / deg_{r_e}(t)``, or 1 for sum aggregation).

    ``features`` is ``(N, d)`` (shared by all bases: R-GCN over node features) or ``(B, N, d)``
    (one per basis: featureless R-GCN, ``X_b = V_b``). With ``sum_bases`` the result is
    ``sum_b Z_b`` of shape ``(T, d)``, else ``(B, T, d)``.

    Backward, over the P distinct (source, relation) pairs of the edges:
    ``H_p = sum_{e in p} norm_e dZ[t_e]`` (one CSR product, per basis if dZ is per basis),
    ``dcomp[r, b] = sum_{p in r} <H_p, X_b[s_p]>``, ``dX_b[s] = sum_{p: s_p = s} comp[r_p, b] H_p``.
    """

    @staticmethod
    def forward(ctx, comp, features, graph: RelationalGraph, sum_bases: bool):
        num_bases = comp.shape[1]
        shared = features.dim() == 2
        edge_values = comp[graph.relation] * graph.norm.to(comp.dtype)[:, None]  # (E, B)
        size = (graph.targets.numel(), graph.num_nodes)
        outputs = [
            _csr(graph.rowptr, graph.source, edge_values[:, b].contiguous(), size) @ (features if shared else features[b])
            for b in range(num_bases)
        ]  # B x (T, d)
        ctx.save_for_backward(comp, features)
        ctx.graph, ctx.sum_bases, ctx.shared = graph, sum_bases, shared
        return sum(outputs[1:], outputs[0]) if sum_bases else torch.stack(outputs)

    @staticmethod
    def backward(ctx, grad_output):
        comp, features = ctx.saved_tensors
        graph, shared = ctx.graph, ctx.shared
        num_relations, num_bases = comp.shape
        pair_rowptr, edge_rows, perm, pair_source, pair_relation, source_rowptr, sources = graph.source_relation_pairs(num_relations)
        pair_matrix = _csr(pair_rowptr, edge_rows, graph.norm[perm].to(comp.dtype), (pair_source.numel(), graph.targets.numel()))
        if ctx.sum_bases:  # one dZ for all bases
            pair_grad = pair_matrix @ grad_output  # (P, d)
            pair_grad_of = lambda b: pair_grad  # noqa: E731
        else:
            pair_grads = [pair_matrix @ grad_output[b] for b in range(num_bases)]  # B x (P, d)
            pair_grad_of = pair_grads.__getitem__
        # Large temporaries are allocated once and reused across bases: fresh (P, d) tensors cost
        # page faults on every allocation (they are above glibc's mmap threshold).
        grad_comp = grad_features = None
        if ctx.needs_input_grad[0]:
            dots = torch.empty(num_bases, pair_source.numel(), dtype=comp.dtype, device=comp.device)  # (B, P)
            gathered = torch.empty(pair_source.numel(), features.shape[-1], dtype=features.dtype, device=features.device)
            for b in range(num_bases):
                if b == 0 or not shared:
                    torch.index_select(features if shared else features[b], 0, pair_source, out=gathered)
                    source_features = gathered if shared else None
                if shared:
                    torch.linalg.vecdot(pair_grad_of(b), source_features, out=dots[b])
                else:
                    gathered.mul_(pair_grad_of(b))
                    torch.sum(gathered, -1, out=dots[b])
            grad_comp = torch.zeros_like(comp.T).index_add_(1, pair_relation, dots).T.contiguous()  # (R, B)
        if ctx.needs_input_grad[1]:
            pair_columns = torch.arange(pair_source.numel(), device=comp.device)
            pair_weights = comp[pair_relation]  # (P, B)
            size = (sources.numel(), pair_source.numel())
            grad_features = torch.zeros_like(features)  # (N, d) or (B, N, d)
            source_grad = torch.empty(sources.numel(), features.shape[-1], dtype=features.dtype, device=features.device)  # (U, d)
            for b in range(num_bases):
                torch.mm(_csr(source_rowptr, pair_columns, pair_weights[:, b].contiguous(), size), pair_grad_of(b), out=source_grad)
                if shared:
                    grad_features.index_add_(0, sources, source_grad)
                else:
                    grad_features[b].index_copy_(0, sources, source_grad)
        return grad_comp, grad_features, None, None


# --------------------------------------------------------------------------- R-GCN layer
class BasisRGCNConv(nn.Module):
    r"""R-GCN layer with basis decomposition, mean or sum aggregation per relation, root weight and bias.

    .. math::
        h_i = \sum_r \frac{1}{Z_{i,r}} \sum_{j \in N_r(i)} x_j W_r + x_i W_0 + b,
        \qquad W_r = \sum_b a_{rb} V_b

    with ``Z_{i,r} = |N_r(i)|`` for ``aggr="mean"`` (PyG >= 2's ``RGCNConv`` default) and
    ``Z_{i,r} = 1`` for ``aggr="add"`` (PyG 1.3's ``RGCNConv``, which the reference code ran, and
    the paper's setting). Same parameters as ``torch_geometric.nn.RGCNConv(in_channels,
    out_channels, num_relations, num_bases, aggr=aggr)``: ``weight (B, in, out)`` = V, ``comp (R,
    B)`` = a, ``root (in, out)`` = W_0, ``bias (out,)``. ``x=None`` is the featureless form (x =
    one-hot node ids: ``x_j W_r`` is row j of ``W_r``).
    """

    def __init__(self, in_channels: int, out_channels: int, num_relations: int, num_bases: int, aggr: str = "mean"):
        super().__init__()
        if aggr not in RGCN_AGGREGATIONS:
            raise ValueError(f"R-GCN aggregation must be one of {RGCN_AGGREGATIONS}, got {aggr!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_relations, self.num_bases = num_relations, num_bases
        self.aggr = aggr
        self.weight = nn.Parameter(torch.empty(num_bases, in_channels, out_channels))
        self.comp = nn.Parameter(torch.empty(num_relations, num_bases))
        self.root = nn.Parameter(torch.empty(in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.reset_parameters()

    def reset_parameters(self):
        """Glorot uniform as PyG (fan-in/out of the last two dimensions), zero bias."""
        for parameter in (self.weight, self.comp, self.root):
            bound = math.sqrt(6.0 / (parameter.size(-2) + parameter.size(-1)))
            nn.init.uniform_(parameter, -bound, bound)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor | None, graph: RelationalGraph, use_edges: bool = True) -> torch.Tensor:
        """``x (N, in)`` or None (featureless) -> ``(T, out)`` for the rows ``graph.targets``."""
        targets = graph.targets
        out = (self.root[targets] if x is None else x[targets] @ self.root) + self.bias  # (T, out)
        if not use_edges:
            return out
        graph = graph.with_aggregation(self.aggr)
        if x is None:
            messages = BasisAggregation.apply(self.comp, self.weight, graph, True)  # (T, out)
        else:
            aggregated = BasisAggregation.apply(self.comp, x, graph, False)  # (B, T, in)
            messages = torch.einsum("btd,bdo->to", aggregated, self.weight)
        return out + messages


# --------------------------------------------------------------------------- encoders
class ItemGraphEncoder(nn.Module):
    """DBpedia entities -> kg vectors by one R-GCN layer (no activation, as the reference).

    ``config.item_graph_encoder``: ``"featureless"`` (reference: one-hot input, ``weight`` is
    ``(num_bases, n_entity, kg_dim)``, ~74M parameters) or ``"embedding"`` (a learned
    ``(n_entity, entity_embedding_dim)`` table fed to the R-GCN: ~20x fewer parameters).
    ``config.use_dbpedia=False`` drops the edges (each entity keeps its own root term).
    ``config.rgcn_aggregation``: ``"mean"`` or ``"add"`` over each relation's neighbours (see
    :class:`BasisRGCNConv`).
    """

    def __init__(self, config):
        super().__init__()
        self.featureless = config.item_graph_encoder == "featureless"
        if config.item_graph_encoder not in ("featureless", "embedding"):
            raise ValueError(f"item_graph_encoder must be 'featureless' or 'embedding', got {config.item_graph_encoder!r}")
        in_channels = config.n_entity if self.featureless else config.entity_embedding_dim
        self.entity_embedding = None if self.featureless else nn.Embedding(config.n_entity, config.entity_embedding_dim)
        aggr = getattr(config, "rgcn_aggregation", "mean")  # a config object from before the switch: today's mean
        self.rgcn = BasisRGCNConv(in_channels, config.kg_dim, config.n_relation, config.num_bases, aggr=aggr)
        self.use_edges = config.use_dbpedia

    def forward(self, graph: RelationalGraph) -> torch.Tensor:
        """-> ``(T, kg_dim)`` vectors of the nodes ``graph.targets`` (float32, also under autocast:
        the sparse kernels have no bfloat16 form)."""
        x = None if self.featureless else self.entity_embedding.weight
        with torch.autocast(self.rgcn.weight.device.type, enabled=False):
            return self.rgcn(x, graph, use_edges=self.use_edges)


class WordGraphEncoder(nn.Module):
    r"""ConceptNet concepts -> kg vectors: ``V = \hat D^{-1/2} \hat A \hat D^{-1/2} E W + b`` (PyG GCNConv).

    ``E`` is a learned ``(n_concept, kg_dim)`` node embedding (row 0 = padding concept); no
    activation, as the reference. ``config.use_conceptnet=False`` skips the GCN (the embedding
    alone; the model then does not use the word side at all).
    """

    def __init__(self, config):
        super().__init__()
        self.concept_embedding = nn.Embedding(config.n_concept, config.kg_dim)
        self.gcn = GCNConv(config.kg_dim, config.kg_dim)

    def forward(self, edge_index: torch.Tensor) -> torch.Tensor:
        """-> ``(n_concept, kg_dim)`` (float32, also under autocast, as the item graph)."""
        with torch.autocast(edge_index.device.type, enabled=False):
            return self.gcn(self.concept_embedding.weight, edge_index)
