"""The plain-sbatch door's decider (jobs/sbatch_decider.py) on the hand-made rung of
test_decider: the survivors' next rung is a slurm/train.sbatch array whose tasks resume at the
next budget, then slurm/decide.sbatch or slurm/collect.sbatch after it, and study.json records
them; a refused array is recorded with what did reach SLURM, and the study stays resumable.
``sbatch`` itself is replaced by a recorder (tests/cluster/test_halving.py runs the real one)."""

from __future__ import annotations

import json

import pytest

from jobs import sbatch_decider, sbatch_study
from jobs.decider import write_plan
from jobs.spec import StudyPlan
from tests.unit.jobs.test_decider import make_study
from text2sign.errors import UsageError
from text2sign.study import slurm_query


@pytest.fixture
def sbatch_calls(monkeypatch):
    calls: list[list[str]] = []

    def fake(argv):
        calls.append(argv)
        if any("nosuch" in a for a in argv):
            raise UsageError("sbatch refused the job: invalid partition specified: nosuch")
        return str(100 + len(calls))

    monkeypatch.setattr(sbatch_study, "sbatch", fake)
    monkeypatch.setattr(sbatch_decider, "sbatch", fake)
    monkeypatch.setattr(slurm_query, "max_array_size", lambda: 1001)
    return calls


def _three_rungs(study):
    plan = json.loads((study / "halving" / "plan.json").read_text())
    plan["halving"]["rungs"] = [10, 20, 30]
    plan["sbatch"] = {"runtime": "runtime none (RUNTIME=none)"}
    (study / "halving" / "plan.json").write_text(json.dumps(plan))


def test_the_decider_queues_the_survivors_rung_and_then_the_next_decider(tmp_path, sbatch_calls):
    study = make_study(tmp_path)
    _three_rungs(study)
    assert sbatch_decider.main([str(study), "0"]) == 0
    array, decide = sbatch_calls
    assert "--array=0-3%16" in array and any(a.endswith("slurm/train.sbatch") for a in array)
    tasks = json.loads((study / ".sbatch" / "rung1" / "g0.json").read_text())
    assert [(t["point"], t["seed"]) for t in tasks["tasks"]] == [
        ("good", 0), ("good", 1), ("also", 0), ("also", 1)]  # fmt: skip
    assert all("halving.stop_at=20" in t["overrides"] for t in tasks["tasks"])
    assert (study / ".sbatch" / "rung1" / "g0" / "0").resolve() == (
        study / "good" / "seed0"
    ).resolve()
    assert "--dependency=afterany:101" in decide and decide[-2:] == [str(study.resolve()), "1"]
    assert decide[-3].endswith("slurm/decide.sbatch")
    rec = json.loads((study / "study.json").read_text())
    assert rec["halving"]["rungs"] == [{"rung": 1, "points": ["also", "good"],
                                        "array_job_ids": ["101"], "decider_job_id": "102"}]  # fmt: skip
    by = {(r["variant"], r["seed"]): r for r in rec["runs_all"]}
    assert by[("good", 1)]["job_ids"] == ["1_1", "101_1"] and by[("bad", 0)]["job_id"] == "1_4"


def test_after_the_last_rung_the_collector_is_queued(tmp_path, sbatch_calls):
    study = make_study(tmp_path)  # rungs [10, 30]: rung 1 is the last
    assert sbatch_decider.main([str(study), "0"]) == 0
    array, collect = sbatch_calls
    tasks = json.loads((study / ".sbatch" / "rung1" / "g0.json").read_text())
    assert not any(o.startswith("halving.stop_at") for t in tasks["tasks"] for o in t["overrides"])
    assert collect[-2].endswith("slurm/collect.sbatch") and "--dependency=afterany:101" in collect
    rec = json.loads((study / "study.json").read_text())
    assert rec["collector_job_id"] == "102"


def test_a_refused_rung_is_recorded_and_the_study_stays_resumable(tmp_path, sbatch_calls, capsys):
    study = make_study(tmp_path)
    plan = json.loads((study / "halving" / "plan.json").read_text())
    for r in plan["runs"]:
        r["slurm"]["partition"] = "nosuch"
    (study / "halving" / "plan.json").write_text(json.dumps(plan))
    assert sbatch_decider.main([str(study), "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sbatch refused rung 1" in err[0] and "--resume-study" in err[0]
    d = json.loads((study / "halving" / "rung0.json").read_text())
    assert d["dropped"] == ["bad"] and "invalid partition" in d["next"]["error"]
    rec = json.loads((study / "study.json").read_text())
    assert rec["events"][-1]["kind"] == "decider_failed"


def test_a_rerun_decider_never_overwrites_the_tasks_an_earlier_one_queued(tmp_path, sbatch_calls):
    study = make_study(tmp_path)
    assert sbatch_decider.main([str(study), "0"]) == 0
    assert sbatch_decider.main([str(study), "0"]) == 0
    assert (study / ".sbatch" / "rung1" / "g0.json").exists()
    assert (study / ".sbatch" / "rung1.1" / "g0.json").exists()


def test_bad_arguments_are_one_line_exit_2(capsys):
    assert sbatch_decider.main(["only-one"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_plan_keeps_how_the_sbatch_door_runs_its_jobs(tmp_path):
    p = StudyPlan("st", tmp_path / "st", "slurm", "tiny", [], {}, False,
                  halving={"rungs": [1, 2]})  # fmt: skip
    write_plan(p, sbatch={"runtime": "runtime none"})
    assert json.loads((tmp_path / "st" / "halving" / "plan.json").read_text())["sbatch"] == {
        "runtime": "runtime none"}  # fmt: skip
