"""MFU of the d14 DiT on one CUDA GPU: bf16, DeepSpeed ZeRO-2, full-profile shapes.

MFU = model FLOPs per step (forward + backward, counted by torch's FlopCounterMode) / step time /
the bf16 matmul peak measured on the same GPU (a large ``torch.matmul``). Also reads the GPU once
through the project's NVML reader mid-run. Without CUDA it measures nothing: ``run()`` returns a
"not run" section and ``python -m bench.gpu_mfu`` prints ``skipped: no CUDA`` and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from bench.common import Goal, Section, median
from bench.gpu_harness import matmul_peak

COMMAND = "OMP_NUM_THREADS=8 .venv/bin/python -m bench.gpu_mfu --preset d14 --steps 10"
FRAMES, SIZE, BATCH, TEXT_LEN, TEXT_DIM = 16, 64, 2, 77, 768  # the `full` profile


def train_steps(preset: str, steps: int, compile: bool = False) -> dict[str, float]:
    """Median bf16 ZeRO-2 step time, model FLOPs per step and peak memory, one rank.

    ``compile``: the DiT goes through ``torch.compile`` before DeepSpeed wraps it (the FLOPs are
    still counted on the eager model: compiled graphs hide their ops from FlopCounterMode).
    """
    from torch.utils.flop_counter import FlopCounterMode

    for key, value in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29511")
    import deepspeed

    from text2sign.models.dit import VideoDiT, get_preset
    from text2sign.run.telemetry import NVMLReader, torch_device_uuids

    deepspeed.init_distributed(dist_backend="nccl", verbose=False)
    p = get_preset(preset)
    model = VideoDiT(p, num_frames=FRAMES, image_size=SIZE, text_dim=TEXT_DIM)
    flops = model_flops(model) if compile else None
    if compile:
        model = torch.compile(model)
    ds = {
        "train_micro_batch_size_per_gpu": BATCH,
        "gradient_accumulation_steps": 1,
        "bf16": {"enabled": True},
        "zero_optimization": {"stage": 2, "contiguous_gradients": True, "overlap_comm": True},
        "gradient_clipping": 1.0,
    }
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=ds)
    dev = engine.device
    x = torch.randn(BATCH, FRAMES, 3, SIZE, SIZE, device=dev, dtype=torch.bfloat16)
    t = torch.randint(0, 1000, (BATCH,), device=dev)
    text = torch.randn(BATCH, TEXT_LEN, TEXT_DIM, device=dev, dtype=torch.bfloat16)
    mask = torch.ones(BATCH, TEXT_LEN, device=dev, dtype=torch.bool)

    def step() -> None:
        loss = (engine(x, t, text, mask).float() - x.float()).pow(2).mean()
        engine.backward(loss)
        engine.step()

    if flops is None:
        with FlopCounterMode(display=False) as counter:
            step()  # also the first warm-up step
        flops = float(counter.get_total_flops())
    else:
        step()  # the compile happens here
    step()
    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    reader = NVMLReader(torch_device_uuids(dev))
    gpu = reader.read()[0]
    reader.close()
    return {
        "step_s": median(times),
        "flops": flops,
        "max_allocated": float(torch.cuda.max_memory_allocated(dev)),
        "nvml_used": float(gpu["memory_used_bytes"] or 0),
        "nvml_power_w": float(gpu["power_w"] or 0),
        "params": float(sum(q.numel() for q in model.parameters())),
        "tokens": float(BATCH * FRAMES * (SIZE // p.patch) ** 2),  # video tokens per step
    }


def model_flops(model: torch.nn.Module) -> float:
    """Forward + backward FLOPs of one step of the eager model (on a scratch copy's device)."""
    from torch.utils.flop_counter import FlopCounterMode

    m = model.to("cuda", torch.bfloat16)
    x = torch.randn(BATCH, FRAMES, 3, SIZE, SIZE, device="cuda", dtype=torch.bfloat16)
    t = torch.randint(0, 1000, (BATCH,), device="cuda")
    text = torch.randn(BATCH, TEXT_LEN, TEXT_DIM, device="cuda", dtype=torch.bfloat16)
    mask = torch.ones(BATCH, TEXT_LEN, device="cuda", dtype=torch.bool)
    with FlopCounterMode(display=False) as counter:
        (m(x, t, text, mask).float() - x.float()).pow(2).mean().backward()
    m.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def skipped(reason: str) -> Section:
    """The section written when no CUDA device is present."""
    return Section(
        title="GPU (not run)",
        method=(
            f"{reason}. Not measured in this run: the d14 {FRAMES}x{SIZE}x{SIZE} bf16 ZeRO-2 "
            "training step (samples/s, tokens/s, MFU against the measured bf16 matmul peak), "
            "the CUDA bf16 DeepSpeed step itself, and the NVML telemetry path against a real "
            f"GPU. On a machine with a GPU, `make bench` runs it, or alone: `{COMMAND}`. "
            "`bench/gpu_mfu.py` has not yet run on a GPU, so treat its first result as a check "
            "of the benchmark too."
        ),
        columns=[],
        rows=[],
        goals=[Goal(metric="d14 MFU on one GPU", value="not measured", goal="-", met=None)],
        notes=[],
        seconds=0.0,
    )


def run(preset: str = "d14", steps: int = 10) -> Section:
    """Measure on CUDA, or return the "not run" section."""
    if not torch.cuda.is_available():
        return skipped("No GPU was lent to this session (`torch.cuda.is_available()` is False)")
    start = time.perf_counter()
    peak = matmul_peak(torch.device("cuda"))
    r = train_steps(preset, steps)
    mfu = r["flops"] / r["step_s"] / peak
    return Section(
        title=f"GPU: {preset} training step on {torch.cuda.get_device_name()}",
        method=(
            f"{preset} ({r['params'] / 1e6:.0f}M params), {FRAMES}x{SIZE}x{SIZE}, batch "
            f"{BATCH}, {TEXT_LEN}-token text; bf16, DeepSpeed ZeRO-2, fused torch AdamW, one "
            f"rank; median of {steps} steps after 2. Peak: 8192^3 bf16 matmul."
        ),
        columns=["bf16 peak", "step", "samples/s", "tokens/s", "GFLOP/step", "MFU", "memory"],
        rows=[
            [
                f"{peak / 1e12:.0f} TFLOP/s",
                f"{r['step_s'] * 1e3:.0f} ms",
                f"{BATCH / r['step_s']:.2f}",
                f"{r['tokens'] / r['step_s']:,.0f}",
                f"{r['flops'] / 1e9:,.0f}",
                f"{mfu:.1%}",
                f"torch max {r['max_allocated'] / 2**30:.1f} GiB, NVML used "
                f"{r['nvml_used'] / 2**30:.1f} GiB, {r['nvml_power_w']:.0f} W",
            ]
        ],
        goals=[Goal(metric="d14 MFU on one GPU", value=f"{mfu:.1%}", goal="report", met=None)],
        notes=[],
        seconds=time.perf_counter() - start,
    )


def main() -> None:
    """CLI: print the GPU result as text, or 'skipped: no CUDA'."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="d14")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--compile", action="store_true", help="torch.compile the DiT first")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no CUDA")
        return
    if args.json:
        peak = matmul_peak(torch.device("cuda"))
        r = train_steps(args.preset, args.steps, compile=args.compile)
        r.update(preset=args.preset, compiled=args.compile, bf16_peak_flops=peak,
                 mfu=r["flops"] / r["step_s"] / peak, samples_per_s=BATCH / r["step_s"],
                 tokens_per_s=r["tokens"] / r["step_s"], device=torch.cuda.get_device_name(),
                 shape=f"{FRAMES}x{SIZE}x{SIZE}", batch=BATCH, steps=args.steps)  # fmt: skip
        args.json.write_text(json.dumps(r, indent=2))
        print(json.dumps(r, indent=2))
        return
    section = run(args.preset, args.steps)
    print(section["title"])
    for column, value in zip(section["columns"], section["rows"][0], strict=True):
        print(f"  {column}: {value}")


if __name__ == "__main__":
    main()
