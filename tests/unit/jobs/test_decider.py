"""The decider of a halving study (jobs/decider.py) on a hand-made rung: it reads each run's
rung evaluation, writes every decision with its evidence, submits the survivors' next rung with
the next budget; a cancelled study submits nothing; a failing decider leaves the study resumable
and says so. The report's section (text2sign/study/halving_report.py) reads the same files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs import decider, studyfile
from jobs.spec import PlannedRun, RunSpec, StudyPlan
from text2sign import atomic
from text2sign.config import SlurmConfig
from text2sign.study.halving_report import halving_section

POINTS = {"good": 0.0, "also": 0.0, "bad": 0.30}
RECS = ["s1", "s2", "s3", "s4", "s5", "s6"]


def make_study(tmp_path: Path, *, evaluated=("good", "also", "bad")) -> Path:
    study = tmp_path / "st"
    runs = []
    for point, level in POINTS.items():
        for seed in (0, 1):
            run_dir = study / point / f"seed{seed}"
            spec = RunSpec(study="st", variant="baseline", seed=seed, profile="tiny",
                           run_dir=str(run_dir.resolve()), point=point,
                           overrides=(f"x={point}", "halving.stop_at=10"))  # fmt: skip
            runs.append(PlannedRun(spec, "h", SlurmConfig()))
            run_dir.mkdir(parents=True)
            atomic.write_json(run_dir / "status.json",
                              {"state": "COMPLETED", "step": 10, "total_steps": 30})  # fmt: skip
            if point not in evaluated:
                continue
            wobble = [(0.002 if i % 2 else -0.0015) if point == "also" else 0 for i in range(6)]
            per_clip = [0.10 + (level if point == "bad" else 0) + 0.001 * i + wobble[i]
                        for i in range(6)]  # fmt: skip
            ev = {"metrics": {"dtw_mje": {"value": sum(per_clip) / 6}},
                  "clips": {"names": [f"c{i}" for i in range(6)]},
                  "audit": {"per_video": {"correct": per_clip}, "recordings": RECS}}  # fmt: skip
            atomic.write_json(run_dir / "rungs" / "step10" / "evaluation_metrics.json", ev)
    halving = {"eta": 3.0, "rungs": [10, 30], "alpha": 0.05, "metric": "dtw_mje",
               "better": "lower", "eval_clips": 6, "max_keep": None, "final_steps": 30,
               "seeds": 2, "points": list(POINTS)}  # fmt: skip
    p = StudyPlan("st", study, "slurm", "tiny", runs, {}, False, halving=halving)
    decider.write_plan(p)
    atomic.write_json(study / "study.json", {"executor": "slurm", "runs_all": [
        {"variant": r.spec.name, "seed": r.spec.seed, "job_id": f"1_{i}", "job_ids": [f"1_{i}"],
         "run_dir": f"{r.spec.name}/seed{r.spec.seed}"} for i, r in enumerate(runs)]})  # fmt: skip
    return study


def fake_submit(calls: list):
    def submit(runs, rung, last):
        for i, r in enumerate(runs):
            r.job_id = f"7_{i}"
        calls.append((runs, rung, last))
        return {"array_job_ids": ["7"], "collector_job_id": "8"}

    return submit


def test_the_decider_drops_the_worse_point_and_resumes_the_survivors(tmp_path):
    study = make_study(tmp_path)
    calls: list = []
    out = decider.run_decider(study, 0, fake_submit(calls))
    assert out["survivors"] == ["good", "also"] and out["dropped"] == ["bad"]
    bad = next(d for d in out["decisions"] if d["point"] == "bad")
    # 2 seeds × 6 recordings, every cluster worse: p = 2^-12; Holm over the 2 tested points
    assert bad["p"] == pytest.approx(2**-12) and bad["p_holm"] == pytest.approx(2 * 2**-12)
    assert bad["effect"] == pytest.approx(0.30) and bad["steps_not_spent"] == 2 * 20
    assert json.loads((study / "halving" / "rung0.json").read_text())["next"]["rung"] == 1
    runs, rung, last = calls[0]
    assert (rung, last) == (1, True)
    assert sorted((r.spec.name, r.spec.seed) for r in runs) == [
        ("also", 0), ("also", 1), ("good", 0), ("good", 1)]  # fmt: skip
    assert all(r.spec.overrides == (f"x={r.spec.name}",) for r in runs)  # the final budget
    rec = studyfile.read(study)
    assert rec["collector_job_id"] == "8" and rec["halving"]["rungs"][0]["rung"] == 1
    jobs = {(r["variant"], r["seed"]): r["job_ids"] for r in rec["runs_all"]}
    assert jobs[("good", 0)][-1].startswith("7_") and jobs[("bad", 0)] == ["1_4"]
    section = "\n".join(halving_section(study, {}, rec))
    assert "| bad | 0 (10) | dtw_mje | 0.3 [" in section and "| 40 |" in section
    assert "| run-steps | 60 | 180 | 67% |" in section  # 6 runs stopped at 10 of 30 steps


def test_a_point_without_its_rung_evaluation_is_kept_as_missing_evidence(tmp_path):
    study = make_study(tmp_path, evaluated=("good", "also"))
    out = decider.run_decider(study, 0, fake_submit([]))
    bad = next(d for d in out["decisions"] if d["point"] == "bad")
    assert bad["keep"] and bad["why"].startswith("no evidence")
    assert "no rung evaluation at step 10" in bad["why"]


def test_a_cancelled_study_gets_no_next_rung(tmp_path):
    study = make_study(tmp_path)
    (study / studyfile.CANCEL_MARKER).write_text("now\n")
    calls: list = []
    out = decider.run_decider(study, 0, fake_submit(calls))
    assert not calls and out["next"] == "not submitted: the study was cancelled"


def test_a_failing_decider_says_the_study_is_resumable(tmp_path):
    study = make_study(tmp_path)
    (study / "halving" / "plan.json").write_text("{broken")
    with pytest.raises(RuntimeError, match="resumable with --resume-study"):
        decider.run_decider(study, 0, fake_submit([]))
    failed = json.loads((study / "halving" / "rung0.json").read_text())
    assert "JSONDecodeError" in failed["error"] and "--resume-study" in failed["resumable"]
    assert studyfile.read(study)["events"][-1]["kind"] == "decider_failed"


def test_a_resubmission_decides_the_same_and_keeps_every_run_in_the_plan(tmp_path):
    """--resume-study plans only the unfinished runs: plan.json keeps the others, and a run that
    went on past the rung (a survivor at the final budget) still gives its rung evaluation."""
    study = make_study(tmp_path)
    first = decider.decide_rung(study, 0)
    for seed in (0, 1):  # "good" finished its last rung before the resubmission
        atomic.write_json(study / "good" / f"seed{seed}" / "status.json",
                          {"state": "COMPLETED", "step": 30, "total_steps": 30})  # fmt: skip
    _, runs = decider.read_plan(study)
    unfinished = [r for r in runs if r.spec.name != "good"]
    halving = json.loads((study / "halving" / "plan.json").read_text())["halving"]
    decider.write_plan(StudyPlan("st", study, "slurm", "tiny", unfinished, {}, True,
                                 halving=halving))  # fmt: skip
    assert len(decider.read_plan(study)[1]) == 6
    again = decider.decide_rung(study, 0)
    assert again["survivors"] == first["survivors"] and again["dropped"] == first["dropped"]
    good = next(d for d in again["decisions"] if d["point"] == "good")
    assert good["why"] == "best" and good["seeds_with_value"] == 2  # not "missing evidence"


def test_the_collector_shows_a_dropped_point_as_dropped_never_as_a_full_budget_run(tmp_path):
    """Before: the dropped point's runs were COMPLETED rows whose final loss (at the rung's
    budget) was compared with the survivors' (at the full one), its metrics N/A 'needs
    evaluation … --resume-study evaluates it'."""
    from text2sign.study.comparison import comparison_table, long_table
    from text2sign.study.records import load_study

    study = make_study(tmp_path)
    decider.decide_rung(study, 0)
    for point in POINTS:
        for seed in (0, 1):
            atomic.write_json(study / point / f"seed{seed}" / "summary.json", {"final_loss": 1.0})
    s = load_study(study)
    states = {(r.variant, r.seed): r.state for r in s.records}
    assert states[("bad", "seed0")] == states[("bad", "seed1")] == "DROPPED"
    assert states[("good", "seed0")] == "COMPLETED"
    bad = next(r for r in s.records if r.variant == "bad")
    assert bad.problem.startswith("dropped by successive halving after rung 0 (10 of 30 steps), "
                                  "worse than ")  # fmt: skip
    assert "(evidence: halving/rung0.json, the rung's evaluation in rungs/step10/)" in bad.problem
    rows = long_table(s)
    row = rows[(rows.point == "bad") & (rows.metric == "final_loss")].iloc[0]
    assert row.state == "DROPPED" and row.reason.startswith("run DROPPED: dropped by successive")
    table = comparison_table(s).set_index("variant")
    assert (
        table.loc["bad", "final_loss_note"]
        == "dropped by successive halving after rung 0 (10 of 30 steps)"
    )
