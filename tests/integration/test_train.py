"""Real DeepSpeed training on CPU (gloo), tiny profile, through the real CLI.

Guarantees shown here:
* 2 ranks, ZeRO-2, bf16: the loss goes down, and every per-run output exists and reads back
  (CSV, JSONL, TensorBoard scalars/images/text, GIFs, status, metadata, summary);
* DeepSpeed's own zero_to_fp32 turns the checkpoint into weights that load into the model;
* ZeRO-3 + EMA: every parameter's EMA follows the fp32 masters and is saved as one shard per rank;
* SIGUSR2 → checkpoint → exit 75 → rerun resumes with exactly the uninterrupted loss sequence
  (bit-identical on CPU, which these tests use; on CUDA that needs train.deterministic=true, see
  tests/gpu/test_gpu.py);
* a NaN loss stops the run as FAILED at that step and keeps the last good checkpoint.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch

from tests.conftest import REPO, read_metrics, run_train, train_cmd, train_env
from text2sign.config import load_resolved
from text2sign.errors import EXIT_REQUEUE
from text2sign.models.build import build_model
from text2sign.run.weights import fp32_weights, read_client_state, read_ema

pytestmark = pytest.mark.integration


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )


@pytest.fixture(scope="module")
def zero2_run(synth_data, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("zero2") / "run"
    proc = run_train(
        run_dir, synth_data, "train.max_steps=30", "train.checkpoint_every=15",
        "train.zero_stage=2", "train.precision=bf16", "train.lr=2e-3", nproc=2,
    )  # fmt: skip
    _ok(proc)
    return run_dir


def test_two_rank_zero2_bf16_lowers_the_loss(zero2_run):
    rows = read_metrics(zero2_run)
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    losses = [float(r["loss"]) for r in rows]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.7 * first, (first, last)
    meta = json.loads((zero2_run / "metadata.json").read_text())
    assert meta["world_size"] == 2 and meta["backend"] == "gloo"
    assert meta["versions"]["deepspeed"] == "0.19.8" and meta["wall_time_s"] > 0
    status = json.loads((zero2_run / "status.json").read_text())
    assert status["state"] == "COMPLETED" and status["step"] == status["total_steps"] == 30
    summary = json.loads((zero2_run / "summary.json").read_text())
    assert summary["final_loss"] == pytest.approx(sum(losses[-3:]) / 3)
    assert summary["params_trainable"] == summary["params_dit"] > 500_000
    assert summary["params_text_encoder_trainable"] == 0  # frozen in the baseline
    assert summary["samples_per_s_median"] > 0 and summary["peak_memory_bytes"] > 10**7


def test_outputs_read_back(zero2_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(zero2_run / "tb"), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(2, 31, 2))
    assert "samples/00" in acc.Tags()["images"]
    video = acc.Images("samples/00")[-1]  # a video: an animated GIF of every frame
    assert video.encoded_image_string[:4] == b"GIF8" and video.step == 30
    assert iio.imread(video.encoded_image_string, extension=".gif", index=None).shape[0] == 8
    # the evaluation's clips, reference | sample | shuffled caption, as in report.html
    evals = [t for t in acc.Tags()["images"] if t.startswith("eval/clip")]
    videos = json.loads((zero2_run / "eval_videos" / "index.json").read_text())
    assert len(evals) == len(videos["clips"]) == 4 and videos["step"] == 30
    caption = acc.Tensors("samples/00/caption/text_summary")[0].tensor_proto.string_val[0].decode()
    index = json.loads((zero2_run / "samples" / "index.json").read_text())
    assert caption == index["captions"][0] and index["weights"] == "ema"
    for name in index["files"]:
        frames = iio.imread(zero2_run / "samples" / name, index=None)
        assert frames.shape[0] == 8 and frames.shape[1:3] == (16, 16)
    assert (zero2_run / "gpu_memory.csv").stat().st_size > 0
    assert (zero2_run / "gpu_memory.rank1.csv").stat().st_size > 0


def test_evaluation_at_the_end_is_measured_or_na_with_reason(zero2_run):
    result = json.loads((zero2_run / "evaluation_metrics.json").read_text())
    m = result["metrics"]
    assert result["weights"] == "ema" and result["num_videos"] == 4
    assert m["fvd"] == {"value": None, "reason": "no I3D weights"}  # never a substitute number
    assert m["lpips"]["value"] is None and m["lpips"]["reason"]
    for key in ("psnr", "ssim", "temporal_cos", "dtw_mje", "dtw_mje_shuffled", "audit_gap",
                "inference_s_per_video", "inference_peak_memory_bytes"):  # fmt: skip
        assert isinstance(m[key]["value"], float), key
    assert 0.0 < m["ssim"]["value"] <= 1.0 and m["inference_s_per_video"]["value"] > 0
    assert result["parameters"]["params_dit"] > 500_000
    assert (zero2_run / "evaluation_metrics.csv").read_text().startswith("metric,value,reason")


def test_hparams_with_final_metrics_read_back(zero2_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    acc = EventAccumulator(str(zero2_run / "tb" / "hparams"))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["variant"].string_value == "baseline"
    assert start.hparams["text_finetune"].string_value == "false"
    assert start.hparams["ema"].string_value == "true"
    summary = json.loads((zero2_run / "summary.json").read_text())
    assert acc.Scalars("eval/final_loss")[0].value == pytest.approx(summary["final_loss"], rel=1e-5)
    assert "eval/dtw_mje" in acc.Tags()["scalars"] and "eval/fvd" not in acc.Tags()["scalars"]


def test_zero_to_fp32_checkpoint_loads_into_the_model(zero2_run, tmp_path):
    ckpt = zero2_run / "checkpoints"
    script = ckpt / "zero_to_fp32.py"  # DeepSpeed's own converter, copied next to its checkpoints
    out = tmp_path / "fp32"
    proc = subprocess.run([sys.executable, str(script), str(ckpt), str(out)], env=train_env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    _ok(proc)
    files = list(out.glob("*.safetensors")) + list(out.glob("*.bin"))
    assert files, list(out.iterdir())
    if files[0].suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(files[0])
    else:
        state = torch.load(files[0], weights_only=True)
    cfg = load_resolved(zero2_run / "config.yaml")
    built = build_model(cfg, zero2_run, None)
    built.model.load_state_dict(state, strict=True)
    # ... and they are the trained weights, not the initial ones.
    fresh = build_model(cfg, zero2_run, None).model.state_dict()
    assert any(not torch.equal(state[k], fresh[k]) for k in state)


def test_sample_cli_writes_a_gif(zero2_run, tmp_path):
    out = tmp_path / "s.gif"
    cmd = [sys.executable, "-m", "text2sign", "sample", "--run-dir", str(zero2_run),
           "--caption", "hello thanks", "--steps", "3", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, env=train_env(), capture_output=True, text=True, timeout=300)
    _ok(proc)
    assert "ema weights" in proc.stdout
    assert iio.imread(out, index=None).shape == (8, 16, 16, 3)


def test_rerunning_a_completed_run_is_a_noop_and_other_configs_are_refused(zero2_run, synth_data):
    before = (zero2_run / "training_metrics.csv").read_text()
    proc = run_train(zero2_run, synth_data, "train.max_steps=30", "train.checkpoint_every=15",
                     "train.zero_stage=2", "train.precision=bf16", "train.lr=2e-3")  # fmt: skip
    _ok(proc)
    assert "already COMPLETED" in proc.stdout
    assert (zero2_run / "training_metrics.csv").read_text() == before
    proc = run_train(zero2_run, synth_data, "train.max_steps=31")
    assert proc.returncode == 2 and "holds a run with config hash" in proc.stderr
    assert (
        proc.stderr.count("\n") == 1 and (zero2_run / "training_metrics.csv").read_text() == before
    )


def test_zero3_ema_follows_the_fp32_masters_and_is_saved_in_shards(synth_data, tmp_path):
    run_dir = tmp_path / "z3"
    # decay ~0 makes the EMA equal to the latest weights: comparable to the consolidated ones.
    # lr 5e-3: every weight moves by more than bf16 resolution in 4 Adam steps.
    proc = run_train(run_dir, synth_data, "train.max_steps=4", "train.zero_stage=3", "train.lr=5e-3",
                     "train.precision=bf16",
                     "ema.decay=1e-6", "train.num_samples=0", nproc=2)  # fmt: skip
    _ok(proc)
    ckpt = run_dir / "checkpoints"
    tag = (ckpt / "latest").read_text().strip()
    rank0 = read_client_state(ckpt, tag)["ema"]
    assert rank0["format"] == "text2sign-ema-shard-1" and rank0["world_size"] == 2
    ema = read_ema(ckpt, tag)  # both ranks' shards, assembled as sampling does
    trained = fp32_weights(ckpt, tag, zero_stage=3)  # DeepSpeed's zero_to_fp32 consolidation
    initial = build_model(load_resolved(run_dir / "config.yaml"), run_dir, None).model.state_dict()
    assert set(ema) == set(trained) and len(ema) > 50
    shard_numel = sum(t.numel() for t in rank0["shards"].values())
    assert shard_numel <= sum(t.numel() for t in ema.values()) / 2 + 96 * 64  # half, + padding
    for name, value in ema.items():
        assert value.shape == trained[name].shape, name  # full shape, not a 1/2 shard
        # The EMA reads DeepSpeed's fp32 master partitions (not the bf16 weights): with decay ~0
        # it equals the consolidated fp32 weights up to the 1e-6 share of the previous EMA.
        torch.testing.assert_close(value, trained[name], rtol=1e-5, atol=1e-6, msg=name)
    changed = [n for n in ema if not torch.equal(ema[n], initial[n])]
    assert len(changed) == len(ema), set(ema) - set(changed)


def test_signal_checkpoints_exit_75_and_resume_is_exact(synth_data, tmp_path):
    sets = ("train.max_steps=16", "train.checkpoint_every=100", "train.num_samples=0",
            "train.zero_stage=2", "train.precision=bf16")  # fmt: skip
    ref = tmp_path / "ref"
    _ok(run_train(ref, synth_data, *sets))

    run_dir = tmp_path / "interrupted"
    proc = subprocess.Popen(train_cmd(run_dir, synth_data, *sets), cwd=REPO, env=train_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        csv_path = run_dir / "training_metrics.csv"
        if csv_path.exists() and len(csv_path.read_text().splitlines()) > 5:  # >= 5 steps done
            proc.send_signal(signal.SIGUSR2)
            break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_REQUEUE, f"{out[-2000:]}\n{err[-2000:]}"
    status = json.loads((run_dir / "status.json").read_text())
    k = status["step"]
    assert status["state"] == "PREEMPTED" and "SIGUSR2" in status["reason"] and 5 <= k < 16
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == f"step{k:08d}"

    _ok(run_train(run_dir, synth_data, *sets))  # same command again: resumes from step k
    got, want = read_metrics(run_dir), read_metrics(ref)
    assert [r["step"] for r in got] == [str(s) for s in range(1, 17)]  # each step exactly once
    assert [r["loss"] for r in got] == [r["loss"] for r in want]  # bit-identical loss sequence
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "COMPLETED" and status["attempts"] == 2
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["resumed_from_step"] == k
    a = fp32_weights(run_dir / "checkpoints", "step00000016", zero_stage=2)
    b = fp32_weights(ref / "checkpoints", "step00000016", zero_stage=2)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_nan_loss_fails_the_run_and_keeps_the_last_good_checkpoint(synth_data, tmp_path):
    run_dir = tmp_path / "nan"
    proc = run_train(run_dir, synth_data, "train.max_steps=10", "train.checkpoint_every=2",
                     "train.nan_at_step=3", "train.num_samples=0")  # fmt: skip
    assert proc.returncode == 1
    assert "non-finite loss at step 3" in proc.stderr and "Traceback" not in proc.stderr
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "FAILED" and status["step"] == 2
    assert "non-finite loss at step 3" in status["reason"]
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step00000002"
    assert [r["step"] for r in read_metrics(run_dir)] == ["1", "2"]
