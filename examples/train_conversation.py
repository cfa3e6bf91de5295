"""Stage 3 of KGSF (Algorithm 1): train the KG-enhanced Transformer, graphs and recommender frozen.

    python examples/train_conversation.py --output_dir runs/conv --init_from runs/rec/best
    accelerate launch --num_processes 2 examples/train_conversation.py --output_dir runs/conv --init_from runs/rec/best

``--help`` lists every flag. The code is :func:`training_kgsf.stages.train_conversation`, installed with the package.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout without `pip install -e .`

from training_kgsf.stages import train_conversation as main  # noqa: E402

if __name__ == "__main__":
    main()
