"""Model cards (README.md with Hub metadata) for the folders the training stages write."""
from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

_STAGES = {
    "mim": "graph encoders pre-trained with Mutual Information Maximization (stage 1 of Algorithm 1)",
    "recommender": "recommender trained with L_rec + λ·L_MIM (stage 2 of Algorithm 1)",
    "conversation": "full model: recommender frozen, KG-enhanced Transformer trained for replies (stage 3)",
    "adapted": "a trained model moved to this dataset's vocabulary and graphs by examples/adapt_model.py, not yet fine-tuned",
}


def _format_metrics(metrics: dict) -> str:
    rows = [f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |" for name, value in metrics.items()]
    return "\n".join(["| metric | value |", "|---|---|", *rows]) if rows else "(not evaluated)"


def config_summary(config) -> dict:
    """The scalar entries of a model config, sorted (the card's configuration excerpt)."""
    values = config.to_dict()
    return {key: values[key] for key in sorted(values) if not key.startswith("_") and not isinstance(values[key], (dict, list))}


def write_model_card(folder: str | Path, stage: str, metrics: dict, data_statistics: dict, training_arguments: dict,
                     config_summary: dict) -> Path:
    """Write ``folder/README.md`` describing the data, protocol, metrics and how to load the model."""
    folder = Path(folder)
    dataset = data_statistics.get("dataset", "ReDial")
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["kgsf", "conversational-recommendation", "knowledge-graph", dataset.lower()],
        license="cc-by-sa-4.0",
        datasets=[dataset],
    )
    if dataset == "ReDial":
        data_text = """ReDial movie dialogues with the DBpedia item graph and the ConceptNet word graph of the KGSF
release; which training conversations (the release's, recovered, or the whole train split with its
turn order rebuilt, about as many as the paper's) is in the statistics below and `docs/DATA.md` in
the kgsf repository."""
    else:
        data_text = f"""**{dataset}**, a dataset in kgsf's generic CRS format (`docs/CRS_FORMAT.md`), from
`{data_statistics.get("dataset_dir")}`: {data_statistics.get("description") or "no description given"}.
Its item list, item graph and vocabulary define this model's index spaces; a model adapted from
another dataset (`examples/adapt_model.py`) records how its rows were carried over in
`adaptation_report.json` when that file is present."""
    example = "Hi! I loved Paranormal Activity, anything scary?" if dataset == "ReDial" else "Hi! What would you recommend?"
    content = f"""---
{card_data.to_yaml()}
---

# KGSF ({stage})

KGSF (Zhou et al., KDD 2020, "Improving Conversational Recommender Systems via Knowledge Graph
based Semantic Fusion"): {_STAGES.get(stage, stage)}.

## How to load

```python
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
model = AutoModelForSeq2SeqLM.from_pretrained("{folder.name}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{folder.name}", trust_remote_code=True)
# or, with the kgsf package installed:
from modeling_kgsf import KGSFForConversationalRecommendation, KGSFTokenizer
model = KGSFForConversationalRecommendation.from_pretrained("{folder.name}")
```

Recommendations with scores and explanations, and the next reply with the items it names (the
folder carries the pipeline's code; a Hub id works as well as a folder):

```python
from transformers import pipeline
crs = pipeline("conversational-recommendation", model="{folder.name}", trust_remote_code=True)
out = crs([{json.dumps(example)}], k=5)   # seeker and recommender turns alternating, or role dicts
out["reply"], out["reply_items"], out["recommendations"]
```

The folder is self-contained: weights (safetensors) hold the DBpedia and ConceptNet graphs as
buffers, the vocabulary is in `vocab.json`, the processor's entity linking, concept lookup and
titles in `kg_resources.json` and `entity_linker.json`.

## Data

{data_text}

```json
{json.dumps(data_statistics, indent=2, default=str)}
```

## Evaluation protocol

Recommendation: Recall@k over the item set, one example per (recommender turn, mentioned
item) as in the reference code; "cold start" keeps examples whose context mentions no item;
"dedup_turns" drops the examples whose target was already mentioned in the context (the
ranking unchanged); "dedup_filtered" also removes the context's items from the ranking.
Conversation: perplexity of the reference replies; greedy replies scored with Distinct-n
(`distinct-n`: unique/all n-grams; `distinct-n_per_sentence`: unique n-grams per reply, the
reference code's form), item ratio (share of replies with an item token) and BLEU.

## Metrics (validation, best checkpoint of this stage)

{_format_metrics(metrics)}

## Training

Model configuration (excerpt):

```json
{json.dumps(config_summary, indent=2, default=str)}
```

Training arguments:

```json
{json.dumps(training_arguments, indent=2, default=str)}
```

## Licence

ReDial is CC BY 4.0; the DBpedia-derived graph is CC BY-SA 3.0; the ConceptNet-derived graph is
CC BY-SA 4.0.
"""
    path = folder / "README.md"
    ModelCard(content).save(path)
    return path
