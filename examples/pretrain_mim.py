"""Stage 1 of KGSF (Algorithm 1): pre-train the two graph encoders with Mutual Information Maximization.

    python examples/pretrain_mim.py --output_dir runs/mim --num_epochs 3
    accelerate launch --num_processes 2 examples/pretrain_mim.py --output_dir runs/mim

``--help`` lists every flag. The code is :func:`training_kgsf.stages.pretrain_mim`, installed with the package.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout without `pip install -e .`

from training_kgsf.stages import pretrain_mim as main  # noqa: E402

if __name__ == "__main__":
    main()
