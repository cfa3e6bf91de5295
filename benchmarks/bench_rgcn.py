"""Item-graph encoder speed: PyG ``RGCNConv`` (the reference) vs kgsf's basis R-GCN, and full steps.

    python benchmarks/bench_rgcn.py                       # synthetic graph of the real size (needs nothing)
    python benchmarks/bench_rgcn.py --data-dir ../shared/data   # the real DBpedia graph (needs datasets_scripts)
    python benchmarks/bench_rgcn.py --skip-reference      # without the slow PyG runs

Prints, side by side, the time of one step (forward + backward, and a full recommender step with
the Adam update) of the reference featureless ``RGCNConv(n_entity, 128, R, num_bases=8)`` and of
ours, then the full KGSF recommender training step (batch 32: graph encoders, pooling, gate, rec
loss + λ·MIM, backward, Adam) for each Adam implementation, and the inference latency of one
recommendation with cached node vectors. Median of ``--repeats`` timed runs after one warm-up.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_kgsf import KGSFConfig, KGSFForConversationalRecommendation  # noqa: E402
from modeling_kgsf.graph_encoders import BasisRGCNConv, RelationalGraph  # noqa: E402

N_ENTITY, N_RELATION, N_EDGES, N_ITEM, N_CONCEPT, N_CONCEPT_EDGES = 64362, 46, 733428, 6924, 29309, 43486


def synthetic_graphs(seed: int = 0) -> dict:
    """Real sizes: 64,362 nodes with self-loops (relation 0) + random typed edges up to 733,428 edges."""
    g = torch.Generator().manual_seed(seed)
    loops = torch.arange(N_ENTITY)
    other = N_EDGES - N_ENTITY
    return dict(
        dbpedia_edge_index=torch.cat([torch.stack([loops, loops]), torch.randint(0, N_ENTITY, (2, other), generator=g)], 1),
        dbpedia_edge_type=torch.cat([torch.zeros(N_ENTITY, dtype=torch.long), torch.randint(1, N_RELATION, (other,), generator=g)]),
        conceptnet_edge_index=torch.randint(1, N_CONCEPT, (2, N_CONCEPT_EDGES), generator=g),
        item_entity_ids=torch.randperm(N_ENTITY, generator=g)[:N_ITEM].sort().values,
        n_concept=N_CONCEPT, n_relation=N_RELATION, n_entity=N_ENTITY,
    )


def real_graphs(data_dir: str) -> dict:
    from datasets_scripts.kg import load_dbpedia, load_item_graph, load_word_graph

    entities = load_dbpedia(data_dir)
    item_graph, word_graph = load_item_graph(data_dir, entities=entities), load_word_graph(data_dir)
    return dict(
        dbpedia_edge_index=item_graph.edge_index, dbpedia_edge_type=item_graph.edge_type,
        conceptnet_edge_index=word_graph.edge_index, item_entity_ids=torch.as_tensor(entities.item_entity_ids),
        n_concept=word_graph.num_nodes, n_relation=item_graph.num_relations, n_entity=item_graph.num_nodes,
    )


def rec_batch(graphs: dict, batch_size: int, seed: int = 1) -> dict:
    """A recommendation batch: 1-10 context entities and 5-30 context words per row."""
    g = torch.Generator().manual_seed(seed)
    ne, nw = 10, 30
    n_entities = torch.randint(1, ne + 1, (batch_size, 1), generator=g)
    n_words = torch.randint(5, nw + 1, (batch_size, 1), generator=g)
    entity_mask = torch.arange(ne)[None] < n_entities
    word_mask = torch.arange(nw)[None] < n_words
    return dict(
        input_ids=torch.randint(4, 1000, (batch_size, 50), generator=g),
        attention_mask=torch.ones(batch_size, 50, dtype=torch.long),
        context_entity_ids=torch.randint(0, graphs["n_entity"], (batch_size, ne), generator=g) * entity_mask,
        context_entity_mask=entity_mask,
        context_word_ids=torch.randint(1, graphs["n_concept"], (batch_size, nw), generator=g) * word_mask,
        context_word_mask=word_mask,
        rec_labels=torch.randint(0, graphs["item_entity_ids"].numel(), (batch_size,), generator=g),
    )


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_convs(graphs: dict, batch: dict, repeats: int, skip_reference: bool) -> list[tuple[str, float]]:
    """Reference RGCNConv vs ours, same parameters, featureless, full graph and item+batch rows."""
    n, r = graphs["n_entity"], graphs["n_relation"]
    edge_index, edge_type = graphs["dbpedia_edge_index"], graphs["dbpedia_edge_type"]
    ours = BasisRGCNConv(n, 128, r, 8)
    graph = RelationalGraph.build(edge_index, edge_type, n, r)
    needed = torch.unique(torch.cat([graphs["item_entity_ids"], batch["context_entity_ids"][batch["context_entity_mask"]]]))
    rows = []

    def step(forward, optimizer=None):
        def run():
            out = forward()
            loss = out.pow(2).mean()
            if optimizer is not None:
                optimizer.zero_grad()
            loss.backward()
            if optimizer is not None:
                optimizer.step()
            else:
                ours.zero_grad(set_to_none=True)
        return run

    if not skip_reference:
        from torch_geometric.nn import RGCNConv

        reference = RGCNConv(n, 128, r, num_bases=8)
        reference.load_state_dict(ours.state_dict())
        rows.append(("PyG RGCNConv, all rows: fwd+bwd", timed(step(lambda: reference(None, edge_index, edge_type)), max(1, repeats // 3))))
        rows.append(("PyG RGCNConv, all rows: fwd+bwd+Adam", timed(step(lambda: reference(None, edge_index, edge_type), torch.optim.Adam(reference.parameters(), lr=1e-3)), max(1, repeats // 3))))
        del reference
    rows.append(("ours, all rows: fwd+bwd", timed(step(lambda: ours(None, graph)), repeats)))
    rows.append((f"ours, item+batch rows ({needed.numel()}): fwd+bwd", timed(step(lambda: ours(None, graph.restrict_to(needed))), repeats)))
    for name, kwargs in (("Adam", {}), ("Adam foreach", {"foreach": True}), ("Adam fused", {"fused": True})):
        optimizer = torch.optim.Adam(ours.parameters(), lr=1e-3, **kwargs)
        rows.append((f"ours, item+batch rows: fwd+bwd+{name}", timed(step(lambda: ours(None, graph.restrict_to(needed)), optimizer), repeats)))
    return rows


def bench_model(graphs: dict, batch: dict, repeats: int, item_graph_encoder: str) -> list[tuple[str, float]]:
    """Full KGSF recommender training step (rec loss + λ·MIM) and inference latency."""
    config = KGSFConfig(
        n_entity=graphs["n_entity"], n_relation=graphs["n_relation"], n_concept=graphs["n_concept"],
        n_dbpedia_edges=graphs["dbpedia_edge_index"].shape[1], n_conceptnet_edges=graphs["conceptnet_edge_index"].shape[1],
        n_item=graphs["item_entity_ids"].numel(), item_graph_encoder=item_graph_encoder,
    )
    model = KGSFForConversationalRecommendation(config)
    model.set_graphs(**{key: graphs[key] for key in ("dbpedia_edge_index", "dbpedia_edge_type", "conceptnet_edge_index", "item_entity_ids")})
    params = sum(p.numel() for p in model.parameters())
    rows = []
    for name, kwargs in (("Adam", {}), ("Adam fused", {"fused": True})):
        model.train()
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3, **kwargs)

        def train_step():
            loss = model(**batch, task="rec").loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
            optimizer.step()

        rows.append((f"KGSF rec step [{item_graph_encoder}, {params / 1e6:.1f}M params], batch {batch['rec_labels'].numel()}, {name} (+clip)", timed(train_step, repeats)))
        del optimizer
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        encodings = model.encode_graphs()
    rows.append((f"KGSF [{item_graph_encoder}] build node cache (all nodes, no grad)", time.perf_counter() - start))
    one = {key: value[:1] for key, value in batch.items() if key != "rec_labels"}

    def recommend():
        with torch.no_grad():
            model(**one, graph_encodings=encodings).rec_logits.topk(50)

    rows.append((f"KGSF [{item_graph_encoder}] one recommendation (cached nodes, top-50)", timed(recommend, repeats * 5)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="use the real graphs (needs the data and datasets_scripts)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-reference", action="store_true", help="skip the slow PyG RGCNConv runs")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    graphs = real_graphs(args.data_dir) if args.data_dir else synthetic_graphs()
    batch = rec_batch(graphs, args.batch_size)
    print(f"graph: {'real (' + args.data_dir + ')' if args.data_dir else 'synthetic'}, {graphs['n_entity']} nodes, "
          f"{graphs['dbpedia_edge_index'].shape[1]} edges, {graphs['n_relation']} relations, {graphs['item_entity_ids'].numel()} items; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, nproc {os.cpu_count()}, load {os.getloadavg()}")
    rows = bench_convs(graphs, batch, args.repeats, args.skip_reference)
    rows += bench_model(graphs, batch, args.repeats, "featureless")
    rows += bench_model(graphs, batch, args.repeats, "embedding")
    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds * 1000:9.1f} ms")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
