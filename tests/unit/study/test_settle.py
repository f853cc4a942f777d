"""The collector's settle step writes only into run dirs of the study it collects (review item 11:
a study.json naming ``../../x`` made ``make collect`` create files anywhere one could write)."""

from __future__ import annotations

import json

from text2sign.study import slurm_query
from text2sign.study.settle import settle


def test_settle_writes_only_inside_the_study(tmp_path, monkeypatch):
    study = tmp_path / "someone" / "study"
    (study / "baseline" / "seed0").mkdir(parents=True)
    monkeypatch.setattr(slurm_query, "available", lambda: True)
    ended = {"state": "CANCELLED", "nodes": ["n1"]}
    plan = {"executor": "slurm", "runs": [
        {"variant": "baseline", "seed": 0, "run_dir": "baseline/seed0", "job_id": "1_0"},
        {"variant": "x", "seed": 0, "run_dir": "../../elsewhere/seed0", "job_id": "1_1"},
        {"variant": "y", "seed": 0, "run_dir": str(tmp_path / "abs" / "seed0"), "job_id": "1_2"},
    ]}  # fmt: skip
    assert settle(study, plan, {"1_0": ended, "1_1": ended, "1_2": ended}) == 1
    assert json.loads((study / "baseline" / "seed0" / "status.json").read_text())["state"] == (
        "CANCELLED"
    )
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "abs").exists()


def test_a_completed_run_without_its_evaluation_says_it_needs_one(tmp_path):
    """Review item 2: the seed no longer drops out silently; the N/A reason says what to do."""
    from tests.unit.study.test_collect import fake_run
    from text2sign.study.records import NEEDS_EVALUATION, discover

    fake_run(tmp_path, "baseline", 0, final_loss=0.2)
    (tmp_path / "baseline" / "seed0" / "config.yaml").write_text("eval:\n  enabled: true\n")
    assert discover(tmp_path)[0].eval_problem == NEEDS_EVALUATION
    (tmp_path / "baseline" / "seed0" / "config.yaml").write_text("eval:\n  enabled: false\n")
    assert discover(tmp_path)[0].eval_problem == "no evaluation_metrics.json"
