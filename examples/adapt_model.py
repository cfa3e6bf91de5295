"""Move a trained KGSF model (e.g. a ReDial one) to another dataset's vocabulary and graphs.

    python examples/adapt_model.py --model runs/quick/conversation/best \\
        --dataset_dir ~/.cache/kgsf/datasets/redial-unikg --output_dir runs/ft/adapted

The dataset folder is in the generic CRS format (docs/CRS_FORMAT.md). The vocabulary becomes the
model's plus the dataset's new training words (old ids kept); entities, items, relations and
concepts become the dataset's, with every row that has a counterpart (same URI / name / word)
copied from the model and the others initialised as :mod:`modeling_kgsf.adaptation` documents
(new words through a linear map from the dataset's word2vec vectors, new nodes as the mean of their
known neighbours). The folder written is a normal model folder (weights, tokenizer,
``kg_resources.json``, model card) plus ``adaptation_report.json``; fine-tune it with the stage
scripts (``--init_from``), or let ``run_pipeline.py --init_from`` do both.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout without `pip install -e .`

from datasets_scripts.kg_resources import save_kg_resources  # noqa: E402
from modeling_kgsf import KGSFForConversationalRecommendation  # noqa: E402
from modeling_kgsf.adaptation import adapt_model, index_spaces_from_folder  # noqa: E402
from training_kgsf.data import DataArguments, KGSFData  # noqa: E402
from training_kgsf.model_card import config_summary, write_model_card  # noqa: E402

REPORT_FILE = "adaptation_report.json"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a trained model folder (save_pretrained + kg_resources.json)")
    parser.add_argument("--dataset_dir", required=True, help="the new dataset, generic CRS format")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--data_dir", default=None, help="KGSF data, read only for \"word_graph\": \"conceptnet\"")
    parser.add_argument("--cache_dir", default=None)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    data = KGSFData(DataArguments(data_dir=args.data_dir, dataset_dir=args.dataset_dir, cache_dir=args.cache_dir), model_folder=args.model)
    model = KGSFForConversationalRecommendation.from_pretrained(args.model)
    resources = data.resources
    # the new folder's vocabulary and kg_resources.json say what each id means, as the old folder's do
    output = Path(args.output_dir)
    data.tokenizer.save_pretrained(output)
    save_kg_resources(resources, output)
    old = index_spaces_from_folder(args.model)
    new = index_spaces_from_folder(output, n_concept=resources.word_graph.num_nodes)  # not sized by a config.json left there
    adapted, report = adapt_model(
        model, old, new,
        dbpedia_edge_index=resources.item_graph.edge_index,
        dbpedia_edge_type=resources.item_graph.edge_type,
        conceptnet_edge_index=resources.word_graph.edge_index,
        kg_word_vocab_mask=resources.kg_word_vocab_mask,
        item_token_vocab_mask=resources.item_token_vocab_mask,
        new_word_vectors=data.word_embeddings(model.config.d_model),
        seed=args.seed,
    )
    adapted.save_pretrained(output)
    report_dict = {"adapted_from": str(args.model), "dataset": data.dataset_name, "dataset_dir": str(args.dataset_dir), **report.to_dict()}
    (output / REPORT_FILE).write_text(json.dumps(report_dict, indent=2, default=str), encoding="utf-8")
    write_model_card(output, "adapted", {}, data.statistics(), {"adapted_from": str(args.model), "seed": args.seed}, config_summary(adapted.config))
    print(report)
    print(f"wrote {output}")
    return report_dict


if __name__ == "__main__":
    main()
