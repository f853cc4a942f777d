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
