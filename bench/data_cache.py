"""Samples per second from the decoded cache against decoding the GIF on every access.

A synthetic set of 256 GIFs is generated in a temporary folder. The cached side is
``VideoTextDataset.__getitem__`` (memmap read, uint8 -> float in [-1, 1]); the uncached side
decodes the same item's GIF with the project's ``load_path`` and applies the same conversion.
Both walk the same training items; the two passes alternate, median over repeats.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import Goal, Section, interleaved_times, median
from text2sign.data import generate, load_path, open_dataset

NUM_SAMPLES, NUM_FRAMES, SIZE, REPEATS = 256, 8, 16, 7
GOAL_SPEEDUP = 20.0


def to_video(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, C) -> float32 (T, C, H, W) in [-1, 1], exactly as the dataset does."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def run() -> Section:
    """Median samples/s of both access paths over the training split."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="t2s_bench_data_") as tmp:
        root = Path(tmp) / "synth"
        t0 = time.perf_counter()
        generate(root, num=NUM_SAMPLES)
        t1 = time.perf_counter()
        train, _ = open_dataset(
            root, num_frames=NUM_FRAMES, size=SIZE, val_fraction=0.2, cache_dir=Path(tmp) / "cache"
        )
        build_s = time.perf_counter() - t1
        gifs = [root / f"{name}.gif" for name in train.names]
        n = len(train)

        def cached() -> None:
            for i in range(n):
                train[i]["video"]

        def decoded() -> None:
            for gif in gifs:
                to_video(load_path(gif, NUM_FRAMES, SIZE))

        same = torch.equal(train[0]["video"], to_video(load_path(gifs[0], NUM_FRAMES, SIZE)))
        times = interleaved_times({"cached": cached, "decoded": decoded}, repeats=REPEATS)
    rate = {k: n / median(v) for k, v in times.items()}
    speedup = rate["cached"] / rate["decoded"]
    return Section(
        title="Data: decoded cache vs decoding GIFs on every access",
        method=(
            f"{NUM_SAMPLES} synthetic GIFs (`text2sign.data.synth.generate`, generated in "
            f"{t1 - t0:.1f} s), {NUM_FRAMES} frames at {SIZE}x{SIZE}, `val_fraction=0.2`: the "
            f"{n} training items are read one by one, single process, no DataLoader. Cached: "
            "`VideoTextDataset[i]` (memmap of the decoded cache, float conversion). Decoded: "
            "`load_path(path, frames, size)` (PIL, resize and centre crop) plus the same float "
            f"conversion. Passes alternate; median of {REPEATS} passes after one warm-up pass. "
            f"Both paths return identical tensors: {same}."
        ),
        columns=["path", "samples/s (median)", "ms per sample", "one-off cost"],
        rows=[
            [
                "decoded cache",
                f"{rate['cached']:,.0f}",
                f"{1e3 / rate['cached']:.3f}",
                f"cache build {build_s:.2f} s for {NUM_SAMPLES} GIFs",
            ],
            [
                "decode GIF per access",
                f"{rate['decoded']:,.0f}",
                f"{1e3 / rate['decoded']:.3f}",
                "-",
            ],
        ],
        goals=[
            Goal(
                metric="samples/s cached / decoded",
                value=f"{speedup:.0f}x",
                goal=f">= {GOAL_SPEEDUP:.0f}x",
                met=speedup >= GOAL_SPEEDUP,
            )
        ],
        notes=[],
        seconds=time.perf_counter() - start,
    )
