"""Evaluate a trained KGSF folder on a split: recommendation (all / cold start / dedup_turns /
dedup_filtered) and conversation.

    python examples/evaluate_kgsf.py --model runs/quick/conversation/best --split test --output results.json
    accelerate launch --num_processes 2 examples/evaluate_kgsf.py --model runs/quick/conversation/best --split test
    python examples/evaluate_kgsf.py --model runs/inspired/conversation/best      # its dataset, from its model card

The evaluation follows the model: without ``--dataset_dir``, a folder trained on a dataset in the
generic CRS format is evaluated on the dataset its model card (or ``adaptation_report.json``, or
the stage's ``data_statistics.json``) names; when that folder is not on this machine the script
says in one line which flag to pass, before loading any data. ``--protocol reference`` without
``--decoding`` uses the paper's decoding (the reference's protocol is its decoding and its counting).

``--help`` lists every flag. The code is :func:`modeling_kgsf.training.evaluate_model`, installed with the package.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout without `pip install -e .`

from modeling_kgsf.training import evaluate_model  # noqa: E402
from modeling_kgsf.training.evaluation import PROTOCOL_CELLS, recorded_dataset  # noqa: E402


def _flag(argv: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``argv`` ("" when given without a value)."""
    for index, arg in enumerate(argv):
        if arg == name:
            return argv[index + 1] if index + 1 < len(argv) else ""
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def follow_model(argv: list[str]) -> list[str]:
    """``argv`` with what the model folder implies: ``--dataset_dir`` of the dataset it was trained
    on (:func:`recorded_dataset`) when none is given and it is not ReDial, and ``--decoding paper``
    for ``--protocol reference`` without ``--decoding``. Exits with one line when the recorded
    dataset folder is missing."""
    if len(argv) == 1 and argv[0].endswith(".json"):  # all flags in a JSON file: taken as written
        return argv
    argv = list(argv)
    protocol = _flag(argv, "--protocol")
    if protocol in PROTOCOL_CELLS and _flag(argv, "--decoding") is None:
        argv += ["--decoding", PROTOCOL_CELLS[protocol][0]]
    model = _flag(argv, "--model")
    if not model or _flag(argv, "--dataset_dir") is not None:
        return argv
    record = recorded_dataset(model)
    if not record or record["dataset"] == "ReDial":
        return argv
    dataset_dir = record.get("dataset_dir")
    if dataset_dir and Path(dataset_dir).is_dir():
        print(f"[evaluate] {model} was trained on {record['dataset']} ({Path(record['source']).name}): "
              f"evaluating on --dataset_dir {dataset_dir}", file=sys.stderr)
        return argv + ["--dataset_dir", dataset_dir]
    where = f" (recorded as {dataset_dir}, not found here)" if dataset_dir else ""
    sys.exit(f"error: {model} was trained on {record['dataset']}, not ReDial: pass --dataset_dir with that dataset's folder{where}")


def main(argv: list[str] | None = None):
    return evaluate_model(follow_model(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
