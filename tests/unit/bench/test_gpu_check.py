"""`make gpu-check` on a machine without CUDA: a clean skip that still lists its GPU tests; and the
bench section it feeds (from a recorded result, or "not yet run")."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from bench import gpu_check
from tests.conftest import REPO

GPU_TESTS = (
    "test_cuda_bf16_zero2_lowers_the_loss",
    "test_samples_and_evaluation_ran_on_the_gpu",
    "test_nvml_reads_the_gpu_of_this_process_by_uuid",
    "test_evaluate_cli_on_cuda",
    "test_deterministic_resume_on_cuda_repeats_the_losses",
)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: make gpu-check runs for real")
def test_make_gpu_check_without_cuda_skips_cleanly_and_lists_its_tests():
    proc = subprocess.run(["make", "-s", "gpu-check"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "skipped: no CUDA"
    for name in GPU_TESTS:
        assert f"tests/gpu/test_gpu.py::{name}" in lines
    assert f"{len(GPU_TESTS)} tests collected" in proc.stdout


def test_bench_section_says_not_yet_run_without_a_recorded_result(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "RECORDED", tmp_path / "gpu_check.json")
    section = gpu_check.run()
    assert "not yet run" in section["title"] and section["goals"][0]["met"] is None


def test_bench_section_from_a_recorded_result_names_the_device(tmp_path, monkeypatch):
    mfu = {"step_s": 0.2, "samples_per_s": 10.0, "tokens_per_s": 40960.0, "mfu": 0.31,
           "max_allocated": 2**31}  # fmt: skip
    recorded = {
        "device": "NVIDIA H100 80GB HBM3", "date": "2026-11-26T00:00:00+00:00", "torch": "2.11",
        "cuda": "13.0",
        "parts": {
            "tests": {"rc": 0, "cases": {n: {"outcome": "passed"} for n in GPU_TESTS}},
            "mfu_eager": {"rc": 0, "result": mfu},
            "mfu_compiled": {"rc": 0, "result": {**mfu, "mfu": 0.52}},
            "eval_time": {"rc": "timeout after 150 s", "result": None},
        },
    }  # fmt: skip
    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps(recorded))
    monkeypatch.setattr(gpu_check, "RECORDED", path)
    section = gpu_check.run()
    assert "NVIDIA H100 80GB HBM3" in section["title"]
    assert [r[0] for r in section["rows"]] == ["eager", "compiled"]
    assert section["goals"][0]["value"] == "52.0%" and section["goals"][0]["met"] is True
    assert "5/5 passed" in section["notes"][0]
