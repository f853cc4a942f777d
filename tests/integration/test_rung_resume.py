"""Exact resume across rungs (issue 24): a run stopped at a rung's budget (``halving.stop_at``)
and resumed from its checkpoint with a larger budget ends with the weights, EMA and loss
sequence of an uninterrupted run of the same total steps, bit for bit on the CPU.

Why it holds: ``halving`` is outside the config hash (the rung may resume), and the rung only
moves where the loop stops; the LR schedule (linear warm-up, then constant: it has no total
steps), the data order (seeded by step) and the noise (seeded by step) are functions of the step
and of the final budget, never of the rung's (the warm-up here spans the rung boundary).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import read_metrics, run_train
from text2sign.run.weights import fp32_weights, read_ema

pytestmark = pytest.mark.integration

SETS = ("train.max_steps=14", "train.checkpoint_every=100", "train.num_samples=0",
        "train.zero_stage=2", "train.precision=fp32", "train.warmup_steps=8", "train.lr=2e-3",
        "halving.eval_clips=2")  # fmt: skip


def _ok(proc) -> None:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )


def _status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def test_a_survivor_resumed_across_rungs_equals_the_uninterrupted_run(synth_data, tmp_path):
    ref = tmp_path / "ref"
    _ok(run_train(ref, synth_data, *SETS, "eval.enabled=false"))  # its weights only

    run_dir = tmp_path / "rungs"
    _ok(run_train(run_dir, synth_data, *SETS, "halving.stop_at=5"))  # rung 0
    st = _status(run_dir)
    assert (st["state"], st["step"], st["total_steps"]) == ("COMPLETED", 5, 14)
    assert "rung budget reached" in st["reason"]
    rung0 = json.loads((run_dir / "rungs" / "step5" / "evaluation_metrics.json").read_text())
    assert rung0["num_videos"] == 2  # the rung's cheaper evaluation
    assert not (run_dir / "evaluation_metrics.json").exists()  # the run's own: final weights only

    _ok(run_train(run_dir, synth_data, *SETS, "halving.stop_at=5"))  # the same rung again: no-op
    assert _status(run_dir)["attempts"] == 1

    _ok(run_train(run_dir, synth_data, *SETS, "halving.stop_at=10"))  # rung 1
    assert _status(run_dir)["step"] == 10
    _ok(run_train(run_dir, synth_data, *SETS))  # the last rung: the final budget
    st = _status(run_dir)
    assert (st["state"], st["step"], st["attempts"], st["reason"]) == ("COMPLETED", 14, 3, "")
    assert (run_dir / "evaluation_metrics.json").exists()

    got, want = read_metrics(run_dir), read_metrics(ref)
    assert [r["step"] for r in got] == [str(s) for s in range(1, 15)]  # each step exactly once
    assert [r["lr"] for r in got] == [r["lr"] for r in want]  # the warm-up crosses the rung
    assert [r["loss"] for r in got] == [r["loss"] for r in want]  # bit-identical
    tag = "step00000014"
    a = fp32_weights(run_dir / "checkpoints", tag, zero_stage=2)
    b = fp32_weights(ref / "checkpoints", tag, zero_stage=2)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    ea, eb = read_ema(run_dir / "checkpoints", tag), read_ema(ref / "checkpoints", tag)
    assert ea.keys() == eb.keys() and all(torch.equal(ea[n], eb[n]) for n in ea)
