"""The KBRD baseline (Chen et al., 2019) as a configuration of KGSF: the recommender stage with
``use_conceptnet=false,use_mim=false`` (R-GCN over DBpedia + self-attention over the context
entities), then the conversation stage with ``use_kg_attention=false,use_copy=false,
user_vocab_bias=true`` (a Transformer whose logits get a vocabulary bias from the user vector),
then the test evaluation of examples/evaluate_kgsf.py.

    python examples/train_kbrd.py --output_dir runs/kbrd --model_config configuration/kgsf_reference.json

``--help`` shows the exact stage commands it runs. The code is :func:`training_kgsf.baselines.train_kbrd`.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout without `pip install -e .`

from training_kgsf.baselines import train_kbrd as main  # noqa: E402

if __name__ == "__main__":
    main()
