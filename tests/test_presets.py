"""Every pipeline preset in configuration/ parses into the arguments of the stages it names, so a
mistyped key fails here and not an hour into a run; the model configurations it names exist and are
valid KGSFConfig arguments."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from modeling_kgsf import KGSFConfig
from training_kgsf import building, data, evaluate_folder, stages, trainer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from run_pipeline import as_flags  # noqa: E402

STAGE_ARGUMENTS = {
    "mim": (trainer.TrainingArguments, data.DataArguments, building.ModelArguments),
    "recommender": (trainer.TrainingArguments, data.DataArguments, building.ModelArguments),
    "conversation": (trainer.TrainingArguments, data.DataArguments, building.ModelArguments, stages.ConversationArguments),
    "evaluation": (evaluate_folder.EvaluationArguments, data.DataArguments),
}
SCHEDULE_KEYS = {"deadline_seconds", "evaluation_reserve_seconds", "protocols"}
PRESETS = sorted(path for path in (ROOT / "configuration").glob("*.json") if "data" in json.loads(path.read_text()))


def test_the_presets_are_found():
    assert {"quick.json", "full.json", "full_2cpu.json", "new_dataset.json"} <= {path.name for path in PRESETS}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda path: path.name)
def test_preset_parses_into_stage_arguments(preset):
    settings = json.loads(preset.read_text())
    assert set(settings) <= {"data", "model", "schedule", *STAGE_ARGUMENTS}, f"unknown sections in {preset.name}"
    # the section examples/run_gpu_schedule.py reads (run_pipeline.py ignores it)
    assert set(settings.get("schedule", {})) <= SCHEDULE_KEYS, f"unknown schedule keys in {preset.name}"
    model = settings.get("model", {})
    if "model_config" in model:
        config_file = ROOT / model["model_config"]
        KGSFConfig.check_keys(json.loads(config_file.read_text()), source=str(config_file))
    for name, arguments in STAGE_ARGUMENTS.items():
        if name not in settings:
            continue
        extra = {"model": "unused"} if name == "evaluation" else {**model, "output_dir": "unused"}
        options = {**settings["data"], **settings[name], **extra}
        parsed = building.parse_arguments(*arguments, argv=as_flags(options))
        values = {key: value for part in parsed for key, value in vars(part).items()}
        for key, value in settings[name].items():
            assert values[key] == value, (preset.name, name, key)


def test_full_2cpu_is_full_cut_by_steps():
    full = json.loads((ROOT / "configuration/full.json").read_text())
    cut = json.loads((ROOT / "configuration/full_2cpu.json").read_text())
    assert cut["model"] == full["model"] and cut["data"] == full["data"] and cut["evaluation"] == full["evaluation"]
    for stage in ("mim", "recommender", "conversation"):
        assert cut[stage]["max_steps"] > 0 and "time_budget" not in cut[stage]
