"""Seeds and learning-curve bookkeeping of the table scripts (examples/run_tables.py,
examples/learning_curve.py) and the nested training subsets, on fixtures built in code (no training)."""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pytest
from datasets import Dataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))
import learning_curve  # noqa: E402
import run_tables  # noqa: E402

from training_kgsf.data import subset_conversations  # noqa: E402


def _write_run(folder: Path, seed: int, recall: float, train_conversations: int | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {"seed": seed, "wall_seconds": 60.0,
               "recommendation": {"recall@1": recall, "recall@10": 2 * recall, "recall@50": 3 * recall, "count": 10}}
    for key in ("cold_start_recall@1", "cold_start_recall@10", "cold_start_recall@50", "dedup_recall@1", "dedup_recall@10",
                "dedup_recall@50"):
        metrics["recommendation"][key] = recall
    if train_conversations is not None:
        metrics["train_conversations"] = train_conversations
    (folder / "test_metrics.json").write_text(json.dumps(metrics))


def test_seed_folders_and_mean_std_rows(tmp_path):
    root = tmp_path / "tables"
    assert run_tables.run_directory(root, "rec", "kgsf", 42, 42) == root / "rec" / "kgsf"
    assert run_tables.run_directory(root, "rec", "kgsf", 43, 42) == root / "rec" / "kgsf_seed43"
    for seed, recall in ((42, 0.03), (43, 0.04), (44, 0.05)):
        _write_run(run_tables.run_directory(root, "rec", "kgsf", seed, 42), seed, recall, train_conversations=9095)
    _write_run(root / "rec" / "kgsf_no_mim", 42, 0.02)  # one seed; "kgsf_no_mim" must not count as a seed of "kgsf"
    path = run_tables.write_results_json(root, "rec", run_tables.REC_VARIANTS, tmp_path / "results")
    table = json.loads(path.read_text())
    assert table["train_conversations"] == 9095
    kgsf = table["models"]["kgsf"]["recall@1"]
    assert kgsf["seeds"] == [0.03, 0.04, 0.05] and kgsf["seed_ids"] == [42, 43, 44]
    assert kgsf["mean"] == pytest.approx(0.04) and kgsf["std"] == pytest.approx(statistics.stdev([0.03, 0.04, 0.05]))
    single = table["models"]["kgsf_no_mim"]["recall@10"]
    assert single["seeds"] == [0.04] and single["std"] is None
    assert "count" in table["models"]["kgsf"]  # every number is aggregated
    named = run_tables.write_results_json(root, "rec", run_tables.REC_VARIANTS, tmp_path / "results", "rec_table_cpu.json", command="python x")
    assert named.name == "rec_table_cpu.json" and json.loads(named.read_text())["last_written_by"]["command"] == "python x"
    assert "last_written_by" not in json.loads(path.read_text())  # the default file is untouched
    run_tables.write_summary(root, "rec", run_tables.REC_VARIANTS)
    summary = (root / "summary_rec.md").read_text()
    assert "| KGSF | 3 | 0.040 ± 0.010 |" in summary and "| KGSF -MIM | 1 | 0.020 |" in summary


def test_conv_table_refuses_several_seeds(tmp_path):
    with pytest.raises(SystemExit, match="rec table"):
        run_tables.main(["conv", "--output_dir", str(tmp_path), "--only", "kgsf", "--seeds", "1", "2"])


def test_training_subsets_nest_and_keep_whole_conversations():
    conversation_ids = [f"c{index // 3}" for index in range(60)]  # 20 conversations of 3 rows each
    rows = Dataset.from_dict({"conversation_id": conversation_ids, "turn_index": list(range(60))})
    small, large = subset_conversations(rows, 5), subset_conversations(rows, 12)
    assert len(set(small["conversation_id"])) == 5 and len(small) == 15  # every row of a kept conversation
    assert set(small["conversation_id"]) <= set(large["conversation_id"])  # nested
    assert subset_conversations(rows, 5)["turn_index"] == small["turn_index"]  # same draw every time
    assert subset_conversations(rows, 100) is rows


def test_learning_curve_collects_points_and_draws_them(tmp_path):
    output = tmp_path / "curve"
    for point, conversations, recall in (("release", 500, 0.02), ("reconstructed:2500", 2500, 0.03)):
        source, count = learning_curve.parse_point(point)
        _write_run(output / learning_curve.point_name(source, count) / "rec" / "kgsf", 42, recall, conversations)
    rows = learning_curve.collect(["reconstructed:2500", "release", "ordered"], output)  # "ordered" not run: left out
    assert [row["train_conversations"] for row in rows] == [500, 2500]
    assert [row["ordered_only"] for row in rows] == [True, False]
    assert rows[1]["recall@50"] == pytest.approx(0.09)
    learning_curve.plot(rows, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_the_recommender_starts_from_mims_last_weights(tmp_path):
    from training_kgsf.stages import hand_over_folder, hand_over_options

    assert hand_over_options("mim") == {"save_last": True} and hand_over_options("recommender") == {}
    (tmp_path / "mim" / "best").mkdir(parents=True)
    (tmp_path / "mim" / "best" / "config.json").write_text("{}")
    assert hand_over_folder("mim", tmp_path / "mim") == tmp_path / "mim" / "best"  # a stage run before last/ was kept
    (tmp_path / "mim" / "last").mkdir()
    (tmp_path / "mim" / "last" / "config.json").write_text("{}")
    assert hand_over_folder("mim", tmp_path / "mim") == tmp_path / "mim" / "last"
    assert hand_over_folder("recommender", tmp_path / "mim") == tmp_path / "mim" / "best"
