"""The lever runner and the profiler summary of ``make gpu-check``, run for real on the CPU (tiny
profile): they measure the project's own training step and name the SDPA kernel of every kind of
attention call. The numbers mean nothing here; that the script runs and says the right things
is what a CPU can check before a GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from bench import gpu_levers as L
from bench.gpu_harness import Lever
from bench.gpu_profile import category, sdpa_backend
from tests.conftest import REPO

CPU_SETS = ["train.batch_size=2", "train.grad_accum=2", "data.image_size=16", "data.num_frames=4"]

# Kernel names as they appear in CUDA traces (cuBLAS, cuDNN, FlashAttention, torch, Triton).
KERNELS = {
    "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_warpgroupsize2x1x1": "matmul",
    "nvjet_hsh_256x128_64x4_2x1_v_bz_coopA_NTN": "matmul",
    "void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_16x16_32x1_nn>": "matmul",
    "triton_tem_fused_mm_0": "matmul",
    "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<96, 128, 64, 4>>": "attention",
    "fmha_cutlassF_bf16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel)": "attention",
    "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x64": "attention",
    "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<c10::BFloat16>>": "elementwise",
    "void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16, float>": "elementwise",
    "triton_poi_fused_add_mul_native_layer_norm_0": "elementwise",
    "void at::native::multi_tensor_apply_kernel<FusedAdamMathFunctor<float, 4>>": "optimizer",
    "Memcpy HtoD (Pageable -> Device)": "data",
    "ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevKernelArgsStorage<4096ul>)": "communication",
}  # fmt: skip


@pytest.mark.parametrize("name", KERNELS)
def test_kernels_are_put_in_their_category(name):
    assert category(name) == KERNELS[name]


def test_sdpa_forward_ops_name_their_backend():
    assert sdpa_backend("aten::_scaled_dot_product_flash_attention") == "flash"
    assert sdpa_backend("aten::_scaled_dot_product_flash_attention_for_cpu") == "flash"
    assert sdpa_backend("aten::_scaled_dot_product_efficient_attention") == "efficient"
    assert sdpa_backend("aten::_scaled_dot_product_cudnn_attention") == "cudnn"
    assert sdpa_backend("aten::_scaled_dot_product_attention_math") == "math"
    assert sdpa_backend("aten::_scaled_dot_product_flash_attention_backward") is None
    assert sdpa_backend("aten::mm") is None


@pytest.fixture(scope="module")
def cpu_levers(tmp_path_factory) -> dict:
    """One real run of the lever runner on the CPU: baseline (profiled), two levers."""
    out = tmp_path_factory.mktemp("levers") / "levers.json"
    cmd = [sys.executable, "-m", "bench.gpu_levers", "--allow-cpu", "--profile", "tiny",
           "--json", str(out), "--levers", "cross_attention=grouped,trainer step",
           "--data", str(out.parent / "data"), "--deadline-s", "600"]  # fmt: skip
    cmd += [x for s in CPU_SETS for x in ("--set", s)]
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_the_runner_measures_the_baseline_and_each_lever_on_its_own(cpu_levers):
    levers = {r["lever"]: r for r in cpu_levers["levers"]}
    assert list(levers) == ["baseline", "cross_attention=grouped", "trainer step"]
    for r in levers.values():
        assert "error" not in r, r
        assert r["batch"] == 2 and r["grad_accum"] == 2 and r["micro_step_s"] > 0
        assert r["flops_per_sample"] > 0 and r["mfu"] is None  # no GPU peak on a CPU
    assert levers["cross_attention=grouped"]["sets"] == ["perf.cross_attention=grouped"]
    assert levers["trainer step"]["mode"] == "trainer"
    assert len(levers["baseline"]["micro_step_s_all"]) == 2  # two timed cycles for the baseline
    assert cpu_levers["skipped"] == [] and cpu_levers["device"] == "cpu"


def test_the_profile_summary_names_the_sdpa_kernel_of_each_attention_call(cpu_levers):
    base, grouped = cpu_levers["levers"][0], cpu_levers["levers"][1]
    p = base["profile"]
    assert p["device"] == "cpu" and p["micro_steps"] == 2  # one accumulation cycle
    assert sum(p["categories"].values()) == pytest.approx(1.0, abs=1e-3)
    assert p["categories"]["matmul"] > 0 and p["categories"]["attention"] > 0
    assert p["categories"]["optimizer"] > 0  # the DeepSpeed step at the accumulation boundary
    # tiny: 4 blocks, 2 spatial + 2 temporal self-attention calls and 4 cross calls per forward,
    # two micro-steps
    assert p["sdpa"] == {"spatial": {"flash": 4}, "temporal": {"flash": 4}, "cross": {"flash": 8}}
    ms = [t["ms"] for t in p["top"]]
    assert ms == sorted(ms, reverse=True) and {"aten::mm", "aten::addmm"} & {
        t["name"] for t in p["top"]
    }
    # One micro-step, two caption lengths in the batch: two mask-free calls per block.
    assert grouped["sdpa"]["cross"] == {"flash": 8}


def test_a_runner_past_its_deadline_skips_and_says_so(tmp_path):
    runner = L.Runner(tmp_path / "x.json", profile="tiny", sets=(), cycles=1, deadline_s=-1,
                      data_root=None)  # fmt: skip
    runner.last_s = 1.0
    assert runner.run(Lever("fused_adaln", ("perf.fused_adaln=true",))) is None
    saved = json.loads((tmp_path / "x.json").read_text())
    assert saved["skipped"] == [{"lever": "fused_adaln", "reason": "time budget spent"}]


def test_the_sweep_doubles_until_out_of_memory_then_bisects_and_checkpoints(tmp_path, monkeypatch):
    runner = L.Runner(tmp_path / "x.json", profile="tiny", sets=(), cycles=1, deadline_s=60,
                      data_root=None)  # fmt: skip
    asked = []

    def fake_run(lever, **_):
        batch = int(lever.sets[0].split("=")[1])
        asked.append((lever.name, lever.sets))
        return {"error": "OutOfMemoryError: CUDA out of memory", "oom": True} if batch >= 16 and "model.grad_checkpointing=true" not in lever.sets else {"lever": lever.name}  # fmt: skip

    monkeypatch.setattr(runner, "run", fake_run)
    runner.sweep({"lever": "baseline"})
    assert [n for n, _ in asked] == ["batch=4", "batch=8", "batch=16", "batch=12",
                                     "batch=24, grad_checkpointing"]  # fmt: skip
    assert asked[1][1] == ("train.batch_size=8", "train.grad_accum=2")
    assert runner.report["largest_batch"] == 12


def test_the_utilisation_sampler_reads_the_gpu_of_its_reader_while_the_step_runs():
    import time

    from bench.gpu_harness import UtilSampler
    from tests.unit.run.test_telemetry import FakeNVML
    from text2sign.run.telemetry import NVMLReader

    reader = NVMLReader([FakeNVML.UUIDS[2]], nvml=FakeNVML())  # the node's third GPU: 20 %
    with UtilSampler(reader, interval=0.01) as util:
        time.sleep(0.1)
    assert util.values and set(util.values) == {20.0}
    with UtilSampler.for_device(torch.device("cpu")) as none:
        time.sleep(0.02)
    assert none.values == [] and none.reader is None


def test_eval_time_scales_a_few_timed_ddim_steps_to_the_profile():
    from bench.gpu_eval_time import measure

    r = measure(device="cpu", profile="tiny", timed_steps=1, sets=("eval.batch_size=2",))
    assert r["ddim_steps"] == 25 and r["timed_steps"] == 1 and r["batch_size"] == 2
    assert r["s_per_clip"] == pytest.approx(r["s_per_ddim_step"] * 25)
    for key in ("s_per_clip_batched", "s_per_clip_cfg_two_forwards", "s_per_clip_cfg_batched"):
        assert r[key] > 0
