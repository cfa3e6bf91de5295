"""Stage 2 of KGSF (Algorithm 1): train the recommender with L_rec + λ·L_MIM.

    python examples/train_recommender.py --output_dir runs/rec --init_from runs/mim/best
    accelerate launch --num_processes 2 examples/train_recommender.py --output_dir runs/rec --init_from runs/mim/best

``--help`` lists every flag. The code is :func:`training_kgsf.stages.train_recommender`, installed with the package.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout without `pip install -e .`

from training_kgsf.stages import train_recommender as main  # noqa: E402

if __name__ == "__main__":
    main()
