"""fp32 against bf16 forward+backward of the tiny DiT on this CPU (no DeepSpeed, no optimizer).

bf16 only pays on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX); on AVX2-only parts
oneDNN and ATen convert to fp32 and back around every kernel, so bf16 is slower, not faster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.common import Goal, Section, interleaved_times, median, spread, top_ops
from text2sign.config import load_config
from text2sign.models.dit import DIT_PRESETS, VideoDiT

FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_tile")
BATCH, FRAMES, SIZE, TEXT_LEN, TEXT_DIM, REPEATS = 8, 8, 16, 16, 64, 10


def cpu_flags() -> dict[str, bool]:
    """Which of the flags that decide bf16 speed this CPU reports (Linux /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return {flag: flag in have for flag in FLAGS}


def fwd_bwd(dtype: torch.dtype) -> Callable[[], None]:
    """A closure doing one forward + MSE loss + backward of the tiny DiT in ``dtype``."""
    torch.manual_seed(0)
    model = VideoDiT(DIT_PRESETS["tiny"], num_frames=FRAMES, image_size=SIZE, text_dim=TEXT_DIM)
    model = model.to(dtype)
    x = torch.randn(BATCH, FRAMES, 3, SIZE, SIZE, dtype=dtype)
    t = torch.randint(0, 1000, (BATCH,))
    text = torch.randn(BATCH, TEXT_LEN, TEXT_DIM, dtype=dtype)
    mask = torch.ones(BATCH, TEXT_LEN, dtype=torch.bool)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.mse_loss(model(x, t, text, mask).float(), x.float()).backward()

    return step


def run() -> Section:
    """Median fp32 and bf16 times, their ratio and the CPU flags behind it."""
    start = time.perf_counter()
    fns = {"fp32": fwd_bwd(torch.float32), "bf16": fwd_bwd(torch.bfloat16)}
    times = interleaved_times(fns, repeats=REPEATS, warmup=2)
    fp32, bf16 = median(times["fp32"]), median(times["bf16"])
    flags = cpu_flags()
    present = ", ".join(f for f, on in flags.items() if on) or "unknown"
    absent = ", ".join(f for f, on in flags.items() if not on) or "none"
    capability = torch.backends.cpu.get_cpu_capability()
    tiny_precision = load_config(profile="tiny").train.precision
    return Section(
        title="Precision on this CPU: fp32 vs bf16",
        method=(
            f"Tiny DiT preset, {FRAMES}x{SIZE}x{SIZE} video, batch {BATCH}, {TEXT_LEN}-token "
            "caption: forward, MSE loss (in fp32) and backward, the model and inputs cast to "
            f"the dtype; no DeepSpeed, no optimizer. Alternating, median of {REPEATS} after 2 "
            "warm-up steps each."
        ),
        columns=["dtype", "fwd+bwd median (min-max)", "vs fp32"],
        rows=[
            ["fp32", f"{fp32 * 1e3:.0f} ms ({spread(times['fp32'])})", "1.00"],
            ["bf16", f"{bf16 * 1e3:.0f} ms ({spread(times['bf16'])})", f"{bf16 / fp32:.2f}"],
        ],
        goals=[
            Goal(
                metric="bf16 / fp32 fwd+bwd time (informational)",
                value=f"{bf16 / fp32:.2f}",
                goal="none",
                met=None,
            )
        ],
        notes=[
            f"CPU flags present: {present}; absent: {absent}. torch CPU capability: {capability}.",
            f"Self CPU time by op, bf16: {top_ops(fns['bf16'])}.",
            f"The `tiny` profile resolves to `train.precision: {tiny_precision}`; on this CPU "
            f"{'fp32' if bf16 > fp32 else 'bf16'} is the faster choice.",
        ],
        seconds=time.perf_counter() - start,
    )
