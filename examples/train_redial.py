"""The REDIAL baseline (Li et al., 2018): HRED dialogue model + autoencoder recommender over the
mentioned items + the switch that puts a recommended item into a reply; trained on our data with
KGSF's loop (recommender stage, then conversation stage with the recommender frozen) and
evaluated like KGSF (recall all / cold start / dedup; perplexity, Distinct-n, item ratio, BLEU).

    python examples/train_redial.py --output_dir runs/redial                                   # both stages + test
    python examples/train_redial.py --stage recommender --output_dir runs/redial                # Table 2 row
    python examples/train_redial.py --stage conversation --init_from runs/redial/rec/best --output_dir runs/redial

``--help`` lists every flag. The code is :func:`training_kgsf.baselines.train_redial`; the
model (and what was kept / left out of REDIAL) is ``modeling_kgsf/baselines/redial_baseline.py``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout without `pip install -e .`

from training_kgsf.baselines import train_redial as main  # noqa: E402

if __name__ == "__main__":
    main()
