"""Evaluate a trained KGSF folder on a split: recommendation (all / cold start / dedup) and conversation.

    python examples/evaluate_kgsf.py --model runs/quick/conversation/best --split test --output results.json
    accelerate launch --num_processes 2 examples/evaluate_kgsf.py --model runs/quick/conversation/best --split test

``--help`` lists every flag. The code is :func:`modeling_kgsf.training.evaluate_model`, installed with the package.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout without `pip install -e .`

from modeling_kgsf.training import evaluate_model as main  # noqa: E402

if __name__ == "__main__":
    main()
