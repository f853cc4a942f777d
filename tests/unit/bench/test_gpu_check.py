"""`make gpu-check` on a machine without CUDA: a clean skip that still lists its GPU tests and levers;
and the bench section it feeds (from a recorded result, or "not yet run")."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from bench import gpu_check, gpu_levers
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
    # ... and what else it would run: the parts, the baseline and every lever by its config key.
    for part in ("tests", "levers", "compiled", "eval_time"):
        assert any(line.startswith(f"  {part} (at most ") for line in lines), part
    for lever in (*gpu_levers.LEVERS, *gpu_levers.COMPILED):
        assert (
            f"  {lever.name}: {' '.join(lever.sets) or '(the profile as it is)'} [{lever.mode}]"
            in lines
        )


def test_bench_section_says_not_yet_run_without_a_recorded_result(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "RECORDED", tmp_path / "gpu_check.json")
    section = gpu_check.run()
    assert "not yet run" in section["title"] and section["goals"][0]["met"] is None


def _lever(name: str, ms: float, mfu: float, **kw) -> dict:
    return {"lever": name, "sets": kw.pop("sets", []), "mode": "device", "batch": kw.pop("batch", 2),
            "grad_accum": kw.pop("accum", 8), "micro_step_s": ms / 1e3, "samples_per_s": 2e3 / ms,
            "tokens_per_s": 2e3 / ms * 16384, "mfu": mfu, "peak_bytes": 30 * 2**30,
            "gpu_util_mean": 93.0, "gpu_util_min": 88.0, **kw}  # fmt: skip


PROFILE = {
    "device": "cuda", "micro_steps": 3, "time_ms_per_micro_step": 220.0,
    "categories": {"matmul": 0.61, "attention": 0.12, "elementwise": 0.2, "optimizer": 0.05,
                   "data": 0.0, "communication": 0.0, "other": 0.02},
    "category_ms": {}, "top": [{"name": "sm90_xmma_gemm_bf16bf16", "category": "matmul",
                                "ms": 80.0, "share": 0.36}],
    "sdpa": {"cross": {"efficient": 14}, "spatial": {"flash": 7}, "temporal": {"flash": 7}},
}  # fmt: skip


def test_bench_section_from_a_recorded_result_names_the_device(tmp_path, monkeypatch):
    levers = {
        "levers": [
            _lever("baseline", 230.0, 0.274, profile=PROFILE),
            _lever("attention_backend=flash", 200.0, 0.31, sets=["perf.attention_backend=flash"]),
            _lever("batch=8", 800.0, 0.35, batch=8, accum=2),
            {"lever": "batch=16", "sets": ["train.batch_size=16"], "error": "OutOfMemoryError: x",
             "oom": True},
        ],
        "skipped": [{"lever": "trainer step", "reason": "time budget spent"}],
        "largest_batch": 12,
    }  # fmt: skip
    compiled = {"levers": [_lever("compile, blocks", 120.0, 0.52)], "skipped": []}
    evals = {"preset": "d14", "shape": "16x64x64", "ddim_steps": 50, "s_per_clip": 1.5,
             "s_per_clip_batched": 0.6, "batch_size": 8, "cfg_scale": 3.0,
             "s_per_clip_cfg_two_forwards": 1.2, "s_per_clip_cfg_batched": 1.0}  # fmt: skip
    recorded = {
        "device": "NVIDIA H200", "date": "2026-12-02T00:00:00+00:00", "torch": "2.13.0+cu130",
        "cuda": "13.0",
        "parts": {
            "tests": {"rc": 0, "cases": {n: {"outcome": "passed"} for n in GPU_TESTS}},
            "levers": {"rc": 0, "seconds": 180.0, "result": levers},
            "compiled": {"rc": 0, "seconds": 100.0, "result": compiled},
            "eval_time": {"rc": 0, "seconds": 40.0, "result": evals},
        },
    }  # fmt: skip
    recorded["derived"] = gpu_check.derived(recorded)  # what check() adds, from the real function
    share = recorded["derived"]["eval_share"]
    # full: 150 epochs of 31,128 // (batch 2 x 4 GPUs) micro-batches, 8 per optimizer step
    assert share["optimizer_steps"] == 150 * (31_128 // (2 * 4)) // 8
    assert share["train_s_per_rank"] == pytest.approx(share["optimizer_steps"] * 8 * 0.230)
    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps(recorded))
    monkeypatch.setattr(gpu_check, "RECORDED", path)
    section = gpu_check.run()
    assert "NVIDIA H200" in section["title"]
    rows = {r[0]: r for r in section["rows"]}
    assert list(rows) == ["baseline", "attention_backend=flash", "batch=8", "batch=16",
                          "compile, blocks"]  # fmt: skip
    assert rows["baseline"][3] == "230 ms" and rows["baseline"][5] == "27.4%"
    assert rows["batch=8"][8] == "1.15x"  # 8 samples in 800 ms against 2 in 230 ms
    assert rows["batch=16"][3] == "not measured: out of memory"
    mfu, util, evaluation = section["goals"]
    assert mfu["value"] == "52.0% (compile, blocks)" and mfu["met"] is True
    assert util["value"] == "93 %" and util["met"] is True
    assert evaluation["met"] is True and float(evaluation["value"].rstrip("%")) < 1
    notes = "\n".join(section["notes"])
    assert (
        "5/5 passed" in notes
        and "largest micro-batch that fits (bf16, ZeRO-2, no checkpointing): 12" in notes
    )
    assert "matmul 61%" in notes and "cross: efficient x14" in notes and "trainer step" in notes
    assert "1.20 s per clip in two forwards, 1.00 s in one batched forward" in notes
