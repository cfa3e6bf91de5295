"""Tiny KGSF configs, random graphs and batches for the model tests (no data files needed)."""
from __future__ import annotations

import torch

from modeling_kgsf import KGSFConfig, KGSFForConversationalRecommendation

VOCAB, N_ENTITY, N_RELATION, N_CONCEPT, N_ITEM = 60, 40, 5, 30, 12
E_DB, E_CN = 150, 80


def tiny_config(**overrides) -> KGSFConfig:
    values = dict(
        vocab_size=VOCAB, d_model=16, kg_dim=8, ffn_dim=16, attention_heads=2, encoder_layers=2, decoder_layers=2,
        n_entity=N_ENTITY, n_relation=N_RELATION, num_bases=3, n_concept=N_CONCEPT, n_item=N_ITEM,
        n_dbpedia_edges=E_DB, n_conceptnet_edges=E_CN, entity_embedding_dim=6, max_response_length=8,
    )
    values.update(overrides)
    return KGSFConfig(**values)


def random_graphs(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    loops = torch.arange(N_ENTITY)
    other = torch.randint(0, N_ENTITY, (2, E_DB - N_ENTITY), generator=g)
    return dict(
        dbpedia_edge_index=torch.cat([torch.stack([loops, loops]), other], 1),
        dbpedia_edge_type=torch.cat([torch.zeros(N_ENTITY, dtype=torch.long), torch.randint(1, N_RELATION, (E_DB - N_ENTITY,), generator=g)]),
        conceptnet_edge_index=torch.randint(1, N_CONCEPT, (2, E_CN), generator=g),
        item_entity_ids=torch.randperm(N_ENTITY, generator=g)[:N_ITEM].sort().values,
    )


def vocab_masks() -> dict:
    kg = torch.zeros(VOCAB, dtype=torch.bool)
    kg[10:30] = True
    items = torch.zeros(VOCAB, dtype=torch.bool)
    items[40:52] = True
    return dict(kg_word_vocab_mask=kg, item_token_vocab_mask=items)


def tiny_model(seed: int = 0, **overrides) -> KGSFForConversationalRecommendation:
    torch.manual_seed(seed)
    model = KGSFForConversationalRecommendation(tiny_config(**overrides))
    model.set_graphs(**random_graphs(seed))
    model.set_vocab_masks(**vocab_masks())
    return model


def tiny_batch(batch_size: int = 4, seed: int = 1, empty_rows: tuple = (), conv: bool = True) -> dict:
    """A DESIGN.md batch; rows in ``empty_rows`` have no context words and no entities."""
    g = torch.Generator().manual_seed(seed)
    lc, ne, nw, lr = 7, 3, 4, 5
    input_ids = torch.randint(4, VOCAB, (batch_size, lc), generator=g)
    attention_mask = torch.ones(batch_size, lc, dtype=torch.long)
    attention_mask[0, -2:] = 0
    input_ids[0, -2:] = 0
    entity_mask = torch.ones(batch_size, ne, dtype=torch.bool)
    entity_mask[1, 1:] = False
    word_mask = torch.ones(batch_size, nw, dtype=torch.bool)
    word_mask[2, 2:] = False
    for row in empty_rows:
        entity_mask[row] = False
        word_mask[row] = False
    labels = torch.randint(4, VOCAB, (batch_size, lr), generator=g)
    labels[:, -1] = 2
    labels[0, -2:] = -100
    batch = dict(
        input_ids=input_ids,
        attention_mask=attention_mask,
        context_entity_ids=torch.randint(0, N_ENTITY, (batch_size, ne), generator=g) * entity_mask,
        context_entity_mask=entity_mask,
        context_word_ids=torch.randint(1, N_CONCEPT, (batch_size, nw), generator=g) * word_mask,
        context_word_mask=word_mask,
        rec_labels=torch.randint(0, N_ITEM, (batch_size,), generator=g),
        context_item_indices=torch.full((batch_size, 1), -1),
    )
    if conv:
        batch["labels"] = labels
    return batch
