"""Evaluate a trained KGSF folder on a split: recommendation (all / cold start / dedup_turns /
dedup_filtered) and conversation.

    python examples/evaluate_kgsf.py --model runs/quick/conversation/best --split test --output results.json
    python examples/evaluate_kgsf.py --model runs/quick/conversation/best --protocol reference   # the reference's decoding and counting
    accelerate launch --num_processes 2 examples/evaluate_kgsf.py --model runs/quick/conversation/best --split test
    python examples/evaluate_kgsf.py --model runs/inspired/conversation/best      # its dataset, from its model card

The evaluation follows the model: without ``--dataset_dir``, a folder trained on a dataset in the
generic CRS format is evaluated on the dataset its model card (or ``adaptation_report.json``, or
the stage's ``data_statistics.json``) names; when that folder is not on this machine the script
says in one line which flag to pass, before loading any data.

``--help`` lists every flag. The code is :func:`training_kgsf.evaluate_folder.evaluate_model`, installed with the package.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout without `pip install -e .`

from training_kgsf.evaluate_folder import evaluate_model as main  # noqa: E402

if __name__ == "__main__":
    main()
