"""The halving simulation (bench/halving_sim.py) on hand-made curves: loading, the compute
accounting, and the case the paired rule exists for (a point behind by noise at the first rung
that wins at the final budget: ASHA drops it, the paired rule keeps it)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import halving_sim as sim

AT = [10, 30, 90]
RECS = [f"s{i % 4}" for i in range(12)]  # 12 clips from 4 recordings


def write_curves(path, per_point: dict[float, list[np.ndarray]], seeds=(0, 1, 2)):
    """per_point: lr → [values at each step, (seeds, clips)]."""
    runs = []
    for lr, by_step in per_point.items():
        for s in seeds:
            runs.append({"lr": lr, "decay": 0.9, "seed": s, "curve": [
                {"step": st, "clips": [f"c{i}" for i in range(12)], "recordings": RECS,
                 "per_clip": [float(x) for x in by_step[k][s]], "dtw_mje": float(by_step[k][s].mean())}
                for k, st in enumerate(AT)]})  # fmt: skip
    path.write_text(json.dumps({"made_by": "test", "at": AT, "clips": 12, "lrs": list(per_point),
                                "decays": [0.9], "seeds": list(seeds), "wall_s": 60, "cpus": 2,
                                "runs": runs}))  # fmt: skip
    return path


def flat(x: float, noise: float = 0.0, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    pattern = np.linspace(0, 0.05, 12)  # a per-clip difficulty every point shares
    return [x + pattern + noise * rng.standard_normal((3, 12)) for _ in AT]


def test_load_puts_every_value_in_its_cell(tmp_path):
    c = sim.load(write_curves(tmp_path / "c.json", {1e-3: flat(0.1), 3e-3: flat(0.5)}))
    assert c.values.shape == (2, 3, 3, 12) and c.steps == AT and c.recordings == RECS
    assert c.points == ["lr0.001__decay0.9", "lr0.003__decay0.9"]
    assert np.allclose(c.values[1, 2, 1], 0.5 + np.linspace(0, 0.05, 12))


def test_cost_counts_each_rung_increment_for_its_survivors():
    # 3 points to step 10, 1 on to 30, 1 on to 90, for 2 seeds: (30 + 20 + 60) * 2
    assert sim.cost([{0}, {0}], 3, 2, AT, [0, 1, 2]) == 220
    assert sim.cost([{0, 1}], 3, 2, AT, [1, 2]) == (3 * 30 + 2 * 60) * 2


def test_a_late_winner_is_kept_by_the_paired_rule_and_dropped_by_asha(tmp_path):
    early_leader = flat(0.30)
    # Behind the leader at the first rungs by its mean (+0.008), but not in every recording:
    # recordings s0, s1 worse by 0.03, s2, s3 better by 0.022; the best at the final budget.
    mixed = np.array([0.03 if i % 4 < 2 else -0.022 for i in range(12)])
    late = [early_leader[0] + mixed, early_leader[1] + mixed, np.full((3, 12), 0.10)]
    bad = flat(1.0)
    c = sim.load(write_curves(tmp_path / "c.json", {1e-3: early_leader, 2e-3: late, 3e-3: bad}))
    rules = {"asha": (sim.asha_rule(3), [0, 1, 2]), "paired": (sim.paired_rule(0.05, 3), [0, 1, 2]),
             "wilcoxon": (sim.wilcoxon_rule(), [0, 1, 2])}  # fmt: skip
    res = {r["rule"]: r for r in sim.simulate(c, rules, seeds=2, clips=12, resamples=6)}
    assert res["asha"]["winner_dropped"] == 1.0  # ASHA keeps the top 1 of 3 by the mean
    assert res["paired"]["winner_dropped"] == 0.0
    # The bad point is shown worse (8 seed × recording clusters, every one worse) and dropped at
    # the first rung; the two others go on: (3*10 + 2*20 + 2*60) / (3*90)
    assert res["paired"]["compute"] == pytest.approx(190 / 270)
    assert res["asha"]["compute"] == pytest.approx(110 / 270)


def test_the_section_reports_the_goals_from_the_replay(tmp_path):
    c = write_curves(tmp_path / "c.json", {1e-3: flat(0.1, 0.01), 2e-3: flat(0.2, 0.01, 1),
                                           3e-3: flat(0.9, 0.01, 2)})  # fmt: skip
    s = sim.run(c, resamples=4)
    assert [g["metric"] for g in s["goals"]][0].startswith("paired rule (ours), 2 seeds")
    rows = {(r[0], r[1]): r for r in s["rows"]}
    assert rows[("ASHA, eta 3, 3 rungs", "2")][4] == "0.0%"  # a clear winner: never dropped
    assert s["goals"][1]["met"] is True


def test_the_committed_recording_is_whole_and_says_how_it_was_made():
    """bench/recorded/halving_curves.json: every point with every seed at every step, the same
    clips for every run, finite values; what was planned but not recorded is named."""
    meta = json.loads(sim.RECORDED.read_text())
    c = sim.load()
    assert c.values.shape == (len(c.points), len(meta["seeds"]), len(meta["at"]), meta["clips"])
    assert np.isfinite(c.values).all() and len(c.points) >= 4 and len(meta["seeds"]) >= 3
    assert meta["how"] and meta["made_by"].startswith("python -m bench.halving_record")
    assert isinstance(meta["not_recorded"], list)
