"""Calibrate the item slot of a saved conversation folder on its dataset's validation replies.

    python examples/calibrate_item_slots.py --model runs/mine/conversation/best [--dataset_dir DATASET]

The conversation stage does this itself when it ends (``item_slot_bias`` in the folder's
``generation_config.json``); this re-runs it for a folder trained before, or after changing its
decoding: replies then name items about as often as the human validation replies do
(docs/DESIGN.md, "Replies and item slots"). Without ``--dataset_dir`` the folder's recorded dataset is used.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout without `pip install -e .`

from training_kgsf.data import DataArguments, KGSFData  # noqa: E402
from training_kgsf.evaluate_folder import follow_recorded_dataset  # noqa: E402
from training_kgsf.stages import calibrate_saved_item_slots  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a conversation stage's best/ folder")
    parser.add_argument("--dataset_dir", default=None)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--cache_dir", default=None)
    parser.add_argument("--train_source", default="recovered", help="ReDial only: validation is what is used")
    parser.add_argument("--batch_size", type=int, default=32)
    args = parser.parse_args(argv)
    data_args = DataArguments(dataset_dir=args.dataset_dir, data_dir=args.data_dir, cache_dir=args.cache_dir, train_source=args.train_source)
    follow_recorded_dataset(args.model, data_args)
    data = KGSFData(data_args, args.model)
    result = calibrate_saved_item_slots(Path(args.model), data.split("validation", "conv"), data.collator("conv"), args.batch_size)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
