"""The ``perf.*`` switches through the real trainer CLI: a run with them on repeats the losses of a
run without them (float tolerance), samples and evaluates with them, and its run dir accepts the
same config with other values (they are not in the config hash). ``perf.fused_adaln`` (an inductor compile per shape) is shown
equal in tests/unit/models/test_levers.py; speed is ``make gpu-check``'s business."""

from __future__ import annotations

import json

import pytest

from tests.conftest import read_metrics, run_train

pytestmark = pytest.mark.integration

SETS = ("train.max_steps=3", "train.log_every=1", "train.zero_stage=2", "train.num_samples=1",
        "diffusion.guidance_scale=2.0", "eval.num_videos=2")  # fmt: skip
SWITCHES = ("perf.attention_backend=math", "perf.cross_attention=grouped", "perf.cfg_batch=true",
            "perf.pin_memory=true", "model.grad_checkpointing=true", "perf.checkpoint_blocks=2")  # fmt: skip


def test_a_run_with_every_switch_repeats_the_plain_losses_and_its_run_dir_takes_others(
    synth_data, tmp_path
):
    plain = run_train(tmp_path / "plain", synth_data, *SETS)
    switched = run_train(tmp_path / "switched", synth_data, *SETS, *SWITCHES, timeout=600)
    for proc in (plain, switched):
        assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    want = [float(r["loss"]) for r in read_metrics(tmp_path / "plain")]
    got = [float(r["loss"]) for r in read_metrics(tmp_path / "switched")]
    assert len(got) == len(want) == 3 and got == pytest.approx(want, rel=1e-4, abs=1e-6)
    for run in ("plain", "switched"):  # sampled and evaluated with guidance (batched when switched)
        result = json.loads((tmp_path / run / "evaluation_metrics.json").read_text())
        assert result["guidance_scale"] == 2.0 and result["num_videos"] == 2
    # The run dir accepts the same config with the perf switches off (perf is not in the hash):
    # the trainer finds it COMPLETED; a hashed key changed instead is refused.
    off = run_train(tmp_path / "switched", synth_data, *SETS, "model.grad_checkpointing=true")
    assert off.returncode == 0 and "already COMPLETED" in off.stdout, off.stderr[-3000:]
    lr = run_train(tmp_path / "switched", synth_data, *SETS, "model.grad_checkpointing=true",
                   "train.lr=0.5")  # fmt: skip
    assert lr.returncode == 2 and "config hash" in lr.stderr
