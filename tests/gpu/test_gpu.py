"""What only a GPU can show (``make gpu-check``): the trainer, NVML, sampling and resume on CUDA.

* CUDA, bf16, DeepSpeed ZeRO-2: the loss goes down; the samples and the evaluation run on the GPU
  and say so (device, CUDA allocator peak);
* NVML telemetry reads the GPU this process uses, matched by UUID to torch's device;
* ``evaluate --device cuda`` on the command line;
* resume on CUDA with ``train.deterministic=true``: SIGUSR2 → checkpoint → exit 75 → resume
  repeats the uninterrupted losses within the tolerance below (bit-identity is a CPU guarantee,
  see tests/integration/test_train.py).
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import read_metrics
from tests.gpu.conftest import gpu_env, gpu_train_cmd, run_gpu
from text2sign.errors import EXIT_REQUEUE

pytestmark = pytest.mark.gpu
RESUME_ATOL = 1e-6  # max |loss difference| allowed after a deterministic CUDA resume


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )


@pytest.fixture(scope="module")
def gpu_run(cuda, synth_data, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("gpu") / "run"
    _ok(run_gpu(gpu_train_cmd(run_dir, synth_data, "train.max_steps=60", "train.lr=2e-3",
                              "train.log_every=1", "telemetry.interval_s=0.1")))  # fmt: skip
    return run_dir


def test_cuda_bf16_zero2_lowers_the_loss(gpu_run):
    losses = [float(r["loss"]) for r in read_metrics(gpu_run)]
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10, losses
    meta = json.loads((gpu_run / "metadata.json").read_text())
    assert meta["device"] == "cuda:0" and meta["backend"] == "nccl"
    summary = json.loads((gpu_run / "summary.json").read_text())
    assert summary["peak_memory_kind"] == "cuda_max_allocated" and summary["peak_memory_bytes"] > 0


def test_samples_and_evaluation_ran_on_the_gpu(gpu_run):
    index = json.loads((gpu_run / "samples" / "index.json").read_text())
    assert index["device"] == "cuda:0" and len(index["files"]) == 2
    result = json.loads((gpu_run / "evaluation_metrics.json").read_text())
    assert result["inference_device"].startswith("cuda:0 (")
    assert result["inference_peak_memory_kind"] == "cuda_max_allocated"
    assert [r["device"] for r in result["inference_ranks"]] == ["cuda:0"]
    assert result["metrics"]["inference_peak_memory_bytes"]["value"] > 0


def test_nvml_reads_the_gpu_of_this_process_by_uuid(gpu_run, cuda):
    import torch

    meta = json.loads((gpu_run / "metadata.json").read_text())
    tel = meta["telemetry"]
    assert tel["backend"] == "nvml", tel
    uuid = str(torch.cuda.get_device_properties(cuda).uuid).lower().replace("-", "")
    assert [g["uuid"].lower().removeprefix("gpu-").replace("-", "") for g in tel["gpus"]] == [uuid]
    with open(gpu_run / "gpu_memory.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(int(r["memory_used_bytes"]) > 0 for r in rows)
    assert {r["gpu_uuid"] for r in rows} == {tel["gpus"][0]["uuid"]}


def test_evaluate_cli_on_cuda(gpu_run, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(gpu_run, run_dir)
    cmd = [sys.executable, "-m", "text2sign", "evaluate", "--run-dir", str(run_dir),
           "--num-videos", "3", "--device", "cuda"]  # fmt: skip
    proc = run_gpu(cmd)
    _ok(proc)
    assert "inference on cuda:0" in proc.stdout
    assert json.loads((run_dir / "evaluation_metrics.json").read_text())["num_videos"] == 3


def test_deterministic_resume_on_cuda_repeats_the_losses(cuda, synth_data, tmp_path):
    sets = ("train.max_steps=80", "train.checkpoint_every=1000", "train.log_every=1",
            "train.deterministic=true", "eval.enabled=false", "train.num_samples=0")  # fmt: skip
    _ok(run_gpu(gpu_train_cmd(tmp_path / "ref", synth_data, *sets)))
    run_dir = tmp_path / "int"
    proc = subprocess.Popen(gpu_train_cmd(run_dir, synth_data, *sets), env=gpu_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + 240
    while not (run_dir / "training_metrics.csv").exists() or len(read_metrics(run_dir)) < 20:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR2)
    assert proc.wait(timeout=120) == EXIT_REQUEUE
    _ok(run_gpu(gpu_train_cmd(run_dir, synth_data, *sets)))
    ref = [float(r["loss"]) for r in read_metrics(tmp_path / "ref")]
    got = [float(r["loss"]) for r in read_metrics(run_dir)]
    assert [int(r["step"]) for r in read_metrics(run_dir)] == list(range(1, 81))
    diff = max(abs(a - b) for a, b in zip(ref, got, strict=True))
    print(f"max |loss difference| after a deterministic CUDA resume: {diff:.3g}")
    assert diff <= RESUME_ATOL, diff
