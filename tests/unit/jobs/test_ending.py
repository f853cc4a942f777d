"""How a run's ending is decided on the host (jobs/ending.py), the study record, sacct polling,
array splitting, and weights-only loading: the parts of the lifecycle that need no cluster.

The same decisions run on the real cluster in tests/cluster/test_faults.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from jobs import ending, studyfile
from jobs.sbatch_params import groups
from jobs.spec import JobContext, PlannedRun, RunSpec
from text2sign.config import SlurmConfig, load_config
from text2sign.errors import EXIT_REQUEUE, EXIT_USAGE, RunDirError
from text2sign.run import safeload
from text2sign.run.rundir import RunDir
from text2sign.run.runlock import RunLock
from text2sign.run.writers import truncate_csv
from text2sign.study import slurm_query
from text2sign.training.checkpoint import rng_state, set_rng_state

NO_SLURM = JobContext(job_id=None, node="n1", log="/logs/7_0_log.err")


@pytest.fixture(autouse=True)
def scontrol(monkeypatch) -> list[tuple[str, ...]]:
    """``scontrol`` as a cluster that accepts every requeue (the real one: tests/cluster)."""
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(ending, "scontrol", lambda *args: calls.append(args))
    return calls


def _run(tmp_path: Path, state: str = "RUNNING", **status) -> tuple[RunSpec, RunDir]:
    cfg = load_config()
    run = RunDir(tmp_path / "study" / "baseline" / "seed0")
    run.prepare(cfg)
    run.write_status("RUNNING", step=5, total=10, start=True)
    if state != "RUNNING":
        run.write_status(state, **status)
    spec = RunSpec(study="study", variant="baseline", seed=0, profile="tiny",
                   run_dir=str(run.path), config_hash=cfg.hash(), max_requeues=1, max_retries=1)  # fmt: skip
    return spec, run


def test_a_trainer_killed_without_a_word_is_failed_with_signal_node_and_log(tmp_path):
    spec, run = _run(tmp_path)
    end = ending.after_exit(spec, -9, NO_SLURM)
    st = run.read_status()
    assert end.action == "none" and st["state"] == "FAILED" and st["cause"] == "crash"
    assert st["reason"].startswith("trainer killed by SIGKILL (the OOM killer")
    assert "on n1, attempt 1; log: /logs/7_0_log.err" in st["reason"]


def test_an_exception_keeps_the_trainers_last_line_and_gains_the_log(tmp_path):
    spec, run = _run(tmp_path, "FAILED", reason="RuntimeError: boom", cause="crash")
    ending.after_exit(spec, 1, NO_SLURM)
    assert run.read_status()["reason"].startswith("RuntimeError: boom; on n1, attempt 1; log: ")


def test_exit_2_before_the_trainer_could_say_is_failed_with_its_message(tmp_path):
    spec, run = _run(tmp_path, "PENDING")
    ctx = JobContext(None, "n1", "log", ["text2sign: error: train: unrecognized arguments: --x"])
    assert ending.after_exit(spec, EXIT_USAGE, ctx).action == "none"
    st = run.read_status()
    assert st["state"] == "FAILED" and st["cause"] == "usage"
    assert st["reason"] == "trainer exited with 2: train: unrecognized arguments: --x"


def test_a_nan_run_is_neither_rewritten_nor_retried(tmp_path):
    spec, run = _run(tmp_path, "FAILED", reason="non-finite loss at step 3", cause="nonfinite")
    ctx = JobContext("999999_0", "n1", "log")
    assert ending.after_exit(spec, 1, ctx).action == "none"
    assert run.read_status()["reason"] == "non-finite loss at step 3"


def test_a_crash_is_retried_once_on_another_node_then_fails(tmp_path, scontrol):
    spec, run = _run(tmp_path)
    ctx = JobContext("999999_0", "n1", "log")  # a job id the controller does not know
    end = ending.after_exit(spec, -11, ctx)
    st = run.read_status()
    assert end.action == "retry" and end.exclude == ("n1",)
    assert st["state"] == "PENDING" and st["retries"] == 1 and st["excluded"] == ["n1"]
    assert st["reason"].startswith("retry 1 of 1 excluding n1, after: trainer killed by SIGSEGV")
    assert st["history"][-1]["state"] == "FAILED"
    events = studyfile.read(spec.study_dir)["events"]
    assert [(e["kind"], e["node"], e["job_id"]) for e in events] == [("retry", "n1", "999999_0")]
    assert scontrol == [("requeue", "999999_0"), ("update", "JobId=999999_0", "ExcNodeList=n1")]

    run.write_status("RUNNING", start=True, node="n2")  # the retry, on the other node
    end = ending.after_exit(spec, -11, JobContext("999999_0", "n2", "log"))
    st = run.read_status()
    assert end.action == "none" and st["state"] == "FAILED" and st["attempts"] == 2
    assert st["reason"].endswith("no retry left (slurm.max_retries=1)")


def test_after_make_cancel_nothing_is_retried_or_requeued(tmp_path):
    spec, run = _run(tmp_path)
    (spec.study_dir / studyfile.CANCEL_MARKER).write_text("now")
    assert ending.after_exit(spec, -9, JobContext("999999_0", "n1", "log")).action == "none"
    assert run.read_status()["state"] == "CANCELLED"
    assert not ending.after_signal(spec, EXIT_REQUEUE, "999999_0")


def test_make_cancel_during_the_evaluation_of_a_completed_rung_is_not_a_crash(tmp_path):
    """A halving rung ends COMPLETED at its budget, then evaluates; scancel kills it there (-15):
    the run stays COMPLETED for its rung, and is never retried."""
    spec, run = _run(tmp_path, "COMPLETED", step=5, reason="rung budget reached")
    (spec.study_dir / studyfile.CANCEL_MARKER).write_text("now")
    assert ending.after_exit(spec, -15, NO_SLURM).action == "none"
    st = run.read_status()
    assert (st["state"], st["step"]) == ("COMPLETED", 5) and "retries" not in st


def test_usr2_requeues_up_to_max_requeues_then_times_out(tmp_path):
    spec, run = _run(tmp_path, "PREEMPTED", reason="SIGUSR2 at step 5", cause="signal")
    assert ending.after_signal(spec, EXIT_REQUEUE, "999999_0")
    st = run.read_status()
    assert st["state"] == "PREEMPTED" and st["requeues"] == 1 and "requeue 1 of 1" in st["reason"]
    run.write_status("RUNNING", start=True)
    run.write_status("PREEMPTED", reason="SIGUSR2 at step 8", cause="signal")
    assert not ending.after_signal(spec, EXIT_REQUEUE, "999999_0")
    st = run.read_status()
    assert st["state"] == "TIMEOUT" and "after 1 requeues (slurm.max_requeues=1)" in st["reason"]


def test_a_run_dir_of_another_config_or_trainer_is_never_written(tmp_path):
    spec, run = _run(tmp_path, "COMPLETED")
    other = RunSpec(**{**spec.__dict__, "config_hash": "0" * 16})
    assert ending.after_exit(other, -9, NO_SLURM).action == "none"
    assert run.read_status()["state"] == "COMPLETED"
    spec, run = _run(tmp_path / "b")
    holder = RunLock(run.path).acquire()
    try:
        end = ending.after_exit(spec, EXIT_USAGE, NO_SLURM)
    finally:
        holder.release()
    assert "held by another trainer" in end.reason and run.read_status()["state"] == "RUNNING"


def test_study_json_updates_under_the_lock_keep_every_writer(tmp_path):
    studyfile.update(tmp_path, lambda r: r.update(study="s"))
    for i in range(3):
        studyfile.add_event(tmp_path, kind="retry", n=i)
    rec = studyfile.read(tmp_path)
    assert rec["study"] == "s" and [e["n"] for e in rec["events"]] == [0, 1, 2]


def test_sacct_is_asked_once_per_30_s_and_less_while_nothing_changes(tmp_path, monkeypatch):
    calls = []
    answer = {"1_0": [{"JobID": "1_0", "State": "RUNNING", "Elapsed": "00:01", "NodeList": "n1",
                       "ExitCode": "0:0", "Start": "", "End": ""}]}  # fmt: skip
    monkeypatch.setattr(slurm_query, "job_records", lambda ids: calls.append(ids) or answer)
    poller = slurm_query.SacctPoller(tmp_path)
    for _ in range(5):
        assert poller.get(["1_0"])["1_0"]["state"] == "RUNNING"
    assert len(calls) == 1  # one call for the whole study, then the cache
    cache = json.loads((tmp_path / ".sacct.json").read_text())
    cache["time"] -= 31
    (tmp_path / ".sacct.json").write_text(json.dumps(cache))
    poller.get(["1_0"])
    assert len(calls) == 2 and json.loads((tmp_path / ".sacct.json").read_text())["interval"] == 60


def test_arrays_are_split_at_max_array_size():
    runs = [PlannedRun(spec=None, config_hash="h", slurm=SlurmConfig()) for _ in range(10)]  # type: ignore[arg-type]
    sizes = [len(g) for g in groups(runs, max_array=4)]
    assert sizes == [4, 4, 2]
    other = [PlannedRun(spec=None, config_hash="h", slurm=SlurmConfig(nodes=2))]  # type: ignore[arg-type]
    assert [len(g) for g in groups(runs[:3] + other, max_array=4)] == [3, 1]


def test_truncate_csv_keeps_rows_up_to_a_step_in_any_column(tmp_path):
    p = tmp_path / "gpu.csv"
    p.write_text("time,elapsed_s,step\n1,0.1,0\n2,0.2,3\n3,0.3,4\n4,0.4,5\n5,0.5,")
    truncate_csv(p, 4)
    assert p.read_text() == "time,elapsed_s,step\n1,0.1,0\n2,0.2,3\n3,0.3,4\n"


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_weights_only_loads_refuse_code_and_take_our_rng_files(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"rng": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(RunDirError, match=r"refused to load.*posix\.system"):
        safeload.load(tmp_path / "evil.pt")
    assert not marker.exists()
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = torch.rand(3)
    set_rng_state(safeload.load(tmp_path / "rng.pt"))
    assert torch.equal(torch.rand(3), expected)


def test_a_second_sigterm_after_the_trainer_said_cancelled_is_not_a_crash(tmp_path):
    """scancel of the array and of its task: the trainer checkpoints on the first SIGTERM, says
    CANCELLED, and the second one ends it on its way out (-15): cancelled, never retried."""
    spec, run = _run(tmp_path, "CANCELLED", reason="SIGTERM at step 5", cause="cancel")
    for rc in (-15, 128 + 15):
        assert ending.after_exit(spec, rc, NO_SLURM).action == "none"
        st = run.read_status()
        assert st["state"] == "CANCELLED" and st["cause"] == "cancel" and "retries" not in st


class _EnumByName:
    """How Debian's Python 3.11 (the CPU image) pickles an enum member: getattr(cls, name)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self):
        from deepspeed.runtime.zero.config import ZeroStageEnum

        return (getattr, (ZeroStageEnum, self.name))


def test_enum_members_pickled_by_name_load_and_nothing_else_does(tmp_path):
    from deepspeed.runtime.zero.config import ZeroStageEnum

    torch.save({"zero_stage": _EnumByName("gradients")}, tmp_path / "ok.pt")
    assert safeload.load(tmp_path / "ok.pt")["zero_stage"] is ZeroStageEnum.gradients
    torch.save({"x": _EnumByName("__init__")}, tmp_path / "bad.pt")
    with pytest.raises(RunDirError, match="refused to load"):
        safeload.load(tmp_path / "bad.pt")
