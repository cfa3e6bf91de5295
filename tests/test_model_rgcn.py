"""The fast basis R-GCN computes what PyG's RGCNConv computes (outputs and gradients, within 1e-5)."""
import pytest
import torch
from torch_geometric.nn import RGCNConv

from modeling_kgsf.graph_encoders import BasisRGCNConv, RelationalGraph

N, R, B, C = 60, 6, 4, 16


def random_graph(seed=0, edges=400):
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, N, (2, edges), generator=g)
    edge_index[1, edge_index[1] == 5] = 6  # node 5 has no incoming edge (root + bias only)
    return edge_index, torch.randint(0, R, (edges,), generator=g)


def pair(in_channels, seed=0):
    torch.manual_seed(seed)
    reference = RGCNConv(in_channels, C, R, num_bases=B)  # aggr="mean", root weight, bias: the defaults
    with torch.no_grad():
        reference.bias.normal_()
    ours = BasisRGCNConv(in_channels, C, R, B)
    ours.load_state_dict(reference.state_dict())  # same parameter names and shapes
    return reference, ours


@pytest.mark.parametrize("featureless", [True, False])
@pytest.mark.parametrize("rows", ["all", "subset"])
def test_matches_pyg_rgcnconv(featureless, rows):
    edge_index, edge_type = random_graph()
    reference, ours = pair(N if featureless else 7)
    x = None if featureless else torch.randn(N, 7, requires_grad=True)
    graph = RelationalGraph.build(edge_index, edge_type, N, R)
    targets = torch.arange(N) if rows == "all" else torch.tensor([0, 5, 6, 11, 30, 59])
    expected = reference(x, edge_index, edge_type)[targets]
    actual = ours(x, graph if rows == "all" else graph.restrict_to(targets))
    assert actual.shape == (targets.numel(), C)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)

    weight = torch.randn_like(expected)
    grads_expected = torch.autograd.grad((expected * weight).sum(), list(reference.parameters()) + ([x] if x is not None else []))
    grads_actual = torch.autograd.grad((actual * weight).sum(), list(ours.parameters()) + ([x] if x is not None else []))
    for expected_grad, actual_grad in zip(grads_expected, grads_actual):
        torch.testing.assert_close(actual_grad, expected_grad, atol=1e-5, rtol=1e-5)


def test_restricted_rows_equal_full_rows():
    edge_index, edge_type = random_graph(seed=3, edges=1000)
    _, ours = pair(N)
    graph = RelationalGraph.build(edge_index, edge_type, N, R)
    full = ours(None, graph)
    targets = torch.tensor([2, 3, 40])
    torch.testing.assert_close(ours(None, graph.restrict_to(targets)), full[targets], atol=1e-6, rtol=1e-6)


def test_mean_normalisation_is_per_relation():
    # node 0 receives two edges of relation 0 and one of relation 1: 1/2, 1/2 and 1
    edge_index = torch.tensor([[1, 2, 3], [0, 0, 0]])
    edge_type = torch.tensor([0, 0, 1])
    graph = RelationalGraph.build(edge_index, edge_type, 4, 2)
    assert graph.norm[graph.rowptr[0]:graph.rowptr[1]].tolist() == [0.5, 0.5, 1.0]
