"""A run's life through the real trainer CLI (DeepSpeed on CPU), whatever ends an attempt.

Guarantees shown here:
* a trainer killed with SIGKILL before its first checkpoint and then restarted starts clean:
  exactly one row per step in training_metrics.csv/.jsonl and one TensorBoard point per step;
* a run dir is held by one trainer: a second one exits 2 naming the holder, the first completes;
* resuming a checkpoint with another number of ranks is refused with one line naming both;
* a checkpoint file holding a pickled object that would run code is refused, nothing executed.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, read_metrics, run_train, train_cmd, train_env
from text2sign.errors import EXIT_USAGE

pytestmark = pytest.mark.integration


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )


def _start(run_dir: Path, data: Path, *sets: str) -> subprocess.Popen:
    return subprocess.Popen(train_cmd(run_dir, data, *sets), cwd=REPO, env=train_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait_rows(proc: subprocess.Popen, run_dir: Path, n: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    csv_path = run_dir / "training_metrics.csv"
    while time.monotonic() < deadline and proc.poll() is None:
        if csv_path.exists() and len(csv_path.read_text().splitlines()) > n:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {n} metric rows (exit {proc.poll()}): {proc.stderr.read()[-2000:]}")


def _tb_steps(run_dir: Path, tag: str = "train/loss") -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def test_sigkill_before_the_first_checkpoint_then_restart_logs_each_step_once(synth_data, tmp_path):
    run_dir = tmp_path / "run"
    sets = ("train.max_steps=12", "train.checkpoint_every=100", "train.num_samples=0",
            "train.log_every=1", "eval.enabled=false")  # fmt: skip
    proc = _start(run_dir, synth_data, *sets)
    _wait_rows(proc, run_dir, 5)
    proc.kill()  # SIGKILL: no handler runs, nothing is checkpointed (the first one is at step 12)
    proc.communicate(timeout=60)
    assert json.loads((run_dir / "status.json").read_text())["state"] == "RUNNING"  # nobody said
    killed_rows = len(read_metrics(run_dir))
    assert killed_rows >= 5 and not (run_dir / "checkpoints" / "latest").exists()

    _ok(run_train(run_dir, synth_data, *sets))  # the same command: no checkpoint, so from step 0
    steps = [int(r["step"]) for r in read_metrics(run_dir)]
    assert steps == list(range(1, 13))
    jsonl = [json.loads(line)["step"] for line in (run_dir / "training_metrics.jsonl").open()]
    assert jsonl == list(range(1, 13))
    assert _tb_steps(run_dir) == list(range(1, 13))
    gpu = (run_dir / "gpu_memory.csv").read_text().splitlines()
    assert gpu[0].startswith("time,") and sum(line.startswith("time,") for line in gpu) == 1
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "COMPLETED" and status["attempts"] == 2
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 12


def test_a_second_trainer_on_a_held_run_dir_exits_2_and_the_first_completes(synth_data, tmp_path):
    run_dir = tmp_path / "run"
    sets = ("train.max_steps=200", "train.num_samples=0", "eval.enabled=false")
    first = _start(run_dir, synth_data, *sets)
    _wait_rows(first, run_dir, 2)
    second = run_train(run_dir, synth_data, *sets, timeout=120)
    assert second.returncode == EXIT_USAGE, second.stderr[-2000:]
    line = second.stderr.strip().splitlines()[-1]
    assert "held by another trainer" in line and f"pid {first.pid}" in line, line
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "COMPLETED" and status["attempts"] == 1
    assert [int(r["step"]) for r in read_metrics(run_dir)] == list(range(1, 201))


def test_resuming_with_another_world_size_is_refused_in_one_line(synth_data, tmp_path):
    run_dir = tmp_path / "run"
    # 2 ranks checkpoint at step 2, then a NaN at step 3 ends the attempt (exit 1).
    sets = ("train.max_steps=10", "train.checkpoint_every=2", "train.nan_at_step=3",
            "train.num_samples=0", "train.zero_stage=2")  # fmt: skip
    proc = run_train(run_dir, synth_data, *sets, nproc=2)
    assert proc.returncode == 1, proc.stderr[-2000:]
    proc = run_train(run_dir, synth_data, *sets, nproc=1)
    assert proc.returncode == EXIT_USAGE, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert "written by 2 ranks, this job has 1" in line and "Traceback" not in proc.stderr, line
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "FAILED" and status["cause"] == "usage"
    assert "written by 2 ranks" in status["reason"]


class _RunsCode:
    """Unpickling this runs ``touch MARKER``: what a hostile checkpoint file could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(synth_data, tmp_path):
    run_dir = tmp_path / "run"
    sets = ("train.max_steps=6", "train.checkpoint_every=2", "train.nan_at_step=3",
            "train.num_samples=0", "eval.enabled=false")  # fmt: skip
    assert run_train(run_dir, synth_data, *sets).returncode == 1  # checkpoint at step 2, FAILED
    tag_dir = run_dir / "checkpoints" / "step00000002"
    marker = tmp_path / "pwned"
    for name in ("rng_rank0.pt", "mp_rank_00_model_states.pt"):
        victim = tmp_path / "victim" / name
        victim.parent.mkdir(exist_ok=True)
        (tag_dir / name).replace(victim)
        torch.save({"step": 2, "payload": _RunsCode(marker)}, tag_dir / name)

    proc = run_train(run_dir, synth_data, *sets)  # resume: DeepSpeed loads the model states
    assert proc.returncode == EXIT_USAGE, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert "refused to load" in line and "posix.system" in line, line
    proc = subprocess.run(
        [*train_cmd(run_dir, synth_data)[:3], "sample", "--run-dir", str(run_dir), "--caption", "hello"],
        cwd=REPO, env=train_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == EXIT_USAGE and "refused to load" in proc.stderr, proc.stderr[-2000:]
    assert not marker.exists()
