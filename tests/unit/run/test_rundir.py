"""The run-dir contract: atomic status, config hash guard, the stream and the metric writers."""

from __future__ import annotations

import json

import pytest

from text2sign.config import load_config
from text2sign.data.stream import MicroBatchSampler, step_generator
from text2sign.errors import DataError, RunDirError
from text2sign.run.rundir import RunDir
from text2sign.run.runlock import RunLock
from text2sign.run.writers import CSVWriter, JSONLWriter


def test_prepare_refuses_a_different_config(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.prepare(load_config()) is False
    assert run.prepare(load_config()) is True  # same config: a resume
    with pytest.raises(RunDirError, match="holds a run with config hash"):
        run.prepare(load_config(overrides=["train.lr=0.5"]))
    assert (tmp_path / "run" / "config_hash").read_text().strip() == load_config().hash()


def test_prepare_refuses_a_foreign_non_empty_dir(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(RunDirError, match="not empty"):
        RunDir(tmp_path).prepare(load_config())
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_status_transitions_keep_history(tmp_path):
    run = RunDir(tmp_path / "r")
    run.prepare(load_config())
    assert run.read_status()["state"] == "PENDING"
    run.write_status("RUNNING", step=0, total=10, start=True, job_id="7_0", node="n1")
    first = run.read_status()
    run.write_status("PREEMPTED", step=4, total=10, reason="SIGUSR2")
    run.write_status("RUNNING", step=4, total=10, start=True, job_id="7_0", node="n2")
    run.write_status(
        "RUNNING", step=6, total=10, start=True, job_id="7_0", node="n1"
    )  # after a kill
    run.write_status("COMPLETED", step=10, total=10)
    st = json.loads((tmp_path / "r" / "status.json").read_text())
    assert st["state"] == "COMPLETED" and st["attempts"] == 3 and st["ended_at"]
    assert st["started_at"] == first["started_at"]
    assert [(h["attempt"], h["node"], h["state"]) for h in st["history"]] == [
        (1, "n1", "PREEMPTED"), (2, "n2", "LOST"), (3, "n1", "COMPLETED")
    ]  # fmt: skip
    assert "SIGKILL" in st["history"][1]["reason"] and st["history"][0]["reason"] == "SIGUSR2"
    assert not list((tmp_path / "r").glob(".status.json.*"))  # no temp files left behind
    assert run.completed


def test_a_pending_retry_does_not_rewrite_how_the_attempt_ended(tmp_path):
    run = RunDir(tmp_path / "r")
    run.prepare(load_config())
    run.write_status("RUNNING", step=0, total=10, start=True)
    run.write_status("FAILED", reason="trainer killed by SIGKILL", cause="crash")
    run.write_status("PENDING", reason="retry 1 of 1", cause="crash", retries=1, excluded=["n1"])
    st = run.read_status()
    assert st["history"][-1]["state"] == "FAILED" and st["retries"] == 1
    assert st["excluded"] == ["n1"] and st["state"] == "PENDING" and st["step"] == 0


def test_a_run_dir_holding_only_job_layer_files_can_still_be_prepared(tmp_path):
    run = RunDir(tmp_path / "r")
    run.write_status("FAILED", reason="trainer killed by SIGKILL", cause="crash")
    (tmp_path / "r" / ".lock").write_text("")
    (tmp_path / "r" / "slurm-12.out").write_text("log")
    assert run.prepare(load_config()) is False
    assert run.read_status()["state"] == "FAILED"  # the job layer's word is kept


def test_the_run_lock_names_its_holder_and_is_freed_on_release(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    monkeypatch.setenv("SLURMD_NODENAME", "n2")
    first = RunLock(tmp_path).acquire(since="2026-01-01T00:00:00")
    with pytest.raises(RunDirError, match=r"held by another trainer \(job 41 on n2, pid \d+"):
        RunLock(tmp_path).acquire()
    assert not RunLock(tmp_path).try_acquire()
    first.release()
    assert RunLock(tmp_path).try_acquire()


def test_micro_batches_are_deterministic_disjoint_and_resumable():
    def stream(rank, start=0):
        s = MicroBatchSampler(40, batch_size=4, rank=rank, world_size=2, seed=3, start=start)
        it = iter(s)
        return [next(it) for _ in range(12)]

    r0, r1 = stream(0), stream(1)
    assert r0 == stream(0)
    for a, b in zip(r0[:5], r1[:5], strict=True):  # one epoch = 5 global batches
        assert not set(a) & set(b)
    assert sorted(i for b in r0[:5] + r1[:5] for i in b) == list(range(40))
    assert stream(0, start=7)[:5] == r0[7:12]  # resuming at micro-batch 7 continues exactly
    assert r0[:5] != r0[5:10]  # each epoch reshuffles


def test_stream_too_small_for_one_batch_is_a_data_error():
    with pytest.raises(DataError, match="fewer than one global batch"):
        MicroBatchSampler(5, batch_size=4, rank=0, world_size=2, seed=0)


def test_step_generator_is_stateless():
    import torch

    a = torch.randn(3, generator=step_generator(1, 0, 5, 0))
    assert torch.equal(a, torch.randn(3, generator=step_generator(1, 0, 5, 0)))
    assert not torch.equal(a, torch.randn(3, generator=step_generator(1, 1, 5, 0)))
    assert not torch.equal(a, torch.randn(3, generator=step_generator(1, 0, 6, 0)))


def test_writers_drop_rows_after_the_resumed_step(tmp_path):
    csv_path, jl = tmp_path / "m.csv", tmp_path / "m.jsonl"
    w, j = CSVWriter(csv_path), JSONLWriter(jl)
    for step in range(1, 8):
        w.log(step, {"loss": step / 10})
        j.log(step, {"loss": step / 10})
    w.close()
    j.close()
    # The run crashed after step 7 but its last checkpoint is step 5: steps 6, 7 are redone.
    w, j = CSVWriter(csv_path, resume_step=5), JSONLWriter(jl, resume_step=5)
    for step in (6, 7):
        w.log(step, {"loss": 1.0})
        j.log(step, {"loss": 1.0})
    w.close()
    j.close()
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("step,epoch,loss") and len(lines) == 8
    assert [ln.split(",")[0] for ln in lines[1:]] == [str(s) for s in range(1, 8)]
    assert [json.loads(x)["step"] for x in jl.read_text().splitlines()] == list(range(1, 8))
