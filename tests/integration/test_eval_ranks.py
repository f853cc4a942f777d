"""Evaluation and sampling shared by the job's ranks (real CLI, torchrun, gloo on CPU).

Guarantees shown here:
* ``evaluate`` over 2 ranks gives the same per-clip metrics as over 1 rank (each clip starts from
  the same noise whichever rank samples it), and each rank sampled only its share;
* the inference time and memory fields name the device that sampled, per rank;
* ``sample`` runs under torchrun too (rank 0 writes the GIF) and says which device sampled;
* a run that COMPLETED but never evaluated (its job ended first) is evaluated when rerun.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_train, train_env

pytestmark = pytest.mark.integration

N_VIDEOS = 5  # odd: rank 0 samples 3 clips, rank 1 samples 2


def _cli(*args: str, nproc: int = 1) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "text2sign"]
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc_per_node={nproc}", "-m", "text2sign"]  # fmt: skip
    proc = subprocess.run(launcher + list(args), cwd=REPO, env=train_env(), capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def trained(synth_data, tmp_path_factory) -> Path:
    """A short run without its end-of-training evaluation (the tests run it by hand)."""
    run_dir = tmp_path_factory.mktemp("evalranks") / "run"
    proc = run_train(run_dir, synth_data, "train.max_steps=6", "train.lr=3e-3",
                     "eval.enabled=false", "train.num_samples=0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def _evaluate(run_dir: Path, nproc: int) -> dict:
    _cli("evaluate", "--run-dir", str(run_dir), "--num-videos", str(N_VIDEOS), "--device", "cpu",
         nproc=nproc)  # fmt: skip
    return json.loads((run_dir / "evaluation_metrics.json").read_text())


def test_two_ranks_evaluate_like_one_each_sampling_its_share_on_its_device(trained, tmp_path):
    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    shutil.copytree(trained, one_dir)
    shutil.copytree(trained, two_dir)
    one, two = _evaluate(one_dir, 1), _evaluate(two_dir, 2)

    # Same clips, same noise: the per-clip errors of every audit pass agree (float rounding of
    # the batch composition aside), and so do the means.
    for name in ("correct", "shuffled", "empty"):
        assert two["audit"]["per_video"][name] == pytest.approx(
            one["audit"]["per_video"][name], abs=1e-6
        ), name
    for key in ("psnr", "ssim", "dtw_mje", "dtw_mje_shuffled", "temporal_cos"):
        assert two["metrics"][key]["value"] == pytest.approx(one["metrics"][key]["value"], rel=1e-4)
    assert two["audit"]["permutation"] == one["audit"]["permutation"]

    # Each rank sampled only its share: 3 passes × (3 | 2) clips; one rank did all 15 alone.
    assert [r["videos"] for r in one["inference_ranks"]] == [3 * N_VIDEOS]
    assert [(r["rank"], r["videos"]) for r in two["inference_ranks"]] == [(0, 9), (1, 6)]

    # Inference time and memory are measured on the device that sampled, and say which.
    assert two["inference_device"].startswith("cpu (")
    assert two["inference_peak_memory_kind"] == "process_rss"  # CPU: the process's RSS
    for r in two["inference_ranks"]:
        assert r["device"] == "cpu" and r["peak_kind"] == "process_rss" and r["peak_bytes"] > 0
        assert len(r["seconds_per_video"]) == 1  # eval.timing_videos=1 in the tests
    top = max(r["peak_bytes"] for r in two["inference_ranks"])
    assert two["metrics"]["inference_peak_memory_bytes"]["value"] == top
    csv = (two_dir / "evaluation_metrics.csv").read_text()
    assert f'inference_device,,"{two["inference_device"]}"' in csv


def test_sample_cli_under_torchrun_writes_one_gif(trained, tmp_path):
    out = tmp_path / "hello.gif"
    proc = _cli("sample", "--run-dir", str(trained), "--caption", "hello", "--steps", "2",
                "--out", str(out), "--device", "cpu", nproc=2)  # fmt: skip
    assert out.exists() and "sampled on cpu" in proc.stdout
    assert proc.stdout.count("hello.gif") == 1  # only rank 0 writes and prints


def test_a_bad_device_is_one_line_exit_2(trained):
    proc = subprocess.run([sys.executable, "-m", "text2sign", "evaluate", "--run-dir",
                           str(trained), "--device", "cuda:0"], cwd=REPO, env=train_env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "text2sign: error: --device cuda:0: no CUDA device is visible to this process"
    ]


def test_a_completed_run_without_evaluation_is_evaluated_on_rerun(trained, tmp_path, synth_data):
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    assert not (run_dir / "evaluation_metrics.json").exists()
    # The same config, with evaluation on (eval.* is not part of the config hash).
    proc = run_train(run_dir, synth_data, "train.max_steps=6", "train.lr=3e-3",
                     "train.num_samples=0", "eval.num_videos=2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "already COMPLETED" in proc.stdout
    result = json.loads((run_dir / "evaluation_metrics.json").read_text())
    assert result["num_videos"] == 2
