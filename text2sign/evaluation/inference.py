"""Sampling on the job's devices, shared by all ranks: each rank samples its share, rank 0 gets all.

Used by evaluation, by the trainer's samples and by ``python -m text2sign sample``. Every function
here is collective when torch.distributed is initialised (all ranks call it, also when their own
share failed), and works unchanged in a single process.

Video i always starts from the same noise (``sampling.initial_noise`` for the whole set), so the
videos do not depend on how many ranks shared the work. Batching over the model can move a value
by float rounding, which is why tests compare metrics with a tolerance, not bit for bit.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import psutil
import torch

from text2sign.evaluation.sampling import sample_videos
from text2sign.runtime import distributed


@dataclass
class DeviceReport:
    """What one rank's device did: where, how long per video, how much memory at peak."""

    rank: int
    device: str  # "cuda:0" | "cpu"
    name: str  # "NVIDIA H100 80GB HBM3" | the CPU model
    videos: int  # videos this rank sampled (timing videos excluded)
    seconds_per_video: list[float]  # timed single-video samples (after one warm-up)
    peak_bytes: int
    peak_kind: str  # "cuda_max_allocated" | "process_rss"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine() or "cpu"


class PeakMemory:
    """Peak memory of this rank's device from ``start()`` on: CUDA allocator peak, or RSS on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.proc = psutil.Process()
        self.rss = 0

    @property
    def kind(self) -> str:
        return "cuda_max_allocated" if self.device.type == "cuda" else "process_rss"

    def start(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.rss = self.proc.memory_info().rss
        return self

    def poll(self) -> None:
        self.rss = max(self.rss, self.proc.memory_info().rss)

    def peak(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        self.poll()
        return int(self.rss)


def _agree(local_error: str | None) -> None:
    """Collective: raise on every rank if any rank's share failed (rank 0 names them all)."""
    if distributed.all_reduce_max(1.0 if local_error else 0.0) == 0:
        return
    errors = distributed.gather_to_main(local_error)
    rank, _ = distributed.current()
    if rank == 0:
        named = [e for e in (errors or []) if e]
        raise RuntimeError("sampling failed: " + "; ".join(named))
    raise distributed.PeerFailed("sampling failed on another rank; rank 0's error says where")


def sample_shared(
    built, diffusion, captions: list[str], noise: torch.Tensor, *, cfg, device, batch_size=None,
    steps: int | None = None, guidance_scale: float | None = None,
) -> np.ndarray | None:  # fmt: skip
    """Videos for all ``captions`` (uint8 (N, T, H, W, 3)) on rank 0, None on the others.

    Rank r samples captions r, r + world, … on its ``device`` from ``noise[i]``.
    """
    rank, world = distributed.current()
    mine = distributed.shard(len(captions), rank, world)
    local, error = None, None
    try:
        local = sample_videos(
            built, diffusion, [captions[i] for i in mine], cfg=cfg, device=device,
            noise=noise[mine], batch_size=batch_size, steps=steps, guidance_scale=guidance_scale,
        )  # fmt: skip
    except Exception as e:
        error = f"rank {rank} ({device}): {type(e).__name__}: {e}"
    _agree(error)
    parts = distributed.gather_to_main((mine, local))
    if parts is None:
        return None
    out = np.zeros((len(captions), *local.shape[1:]), dtype=np.uint8)
    for idx, videos in parts:
        out[idx] = videos
    return out


def time_sampling(
    built, diffusion, captions: list[str], noise: torch.Tensor, *, cfg, device, repeats: int
) -> list[float]:
    """Seconds per single-video sample on this rank's device: ``repeats`` after one warm-up.

    Every rank times its own device at once (no rank waits for another); the noise of clip i is
    reused, so timing draws nothing new.
    """
    times = []
    for i in range(repeats + 1):
        j = i % len(captions)
        t0 = time.perf_counter()
        sample_videos(
            built, diffusion, [captions[j]], cfg=cfg, device=device, noise=noise[j : j + 1]
        )  # fmt: skip; returns a CPU array: synchronised
        if i:
            times.append(time.perf_counter() - t0)
    return times


def gather_reports(report: DeviceReport) -> list[DeviceReport] | None:
    """Every rank's DeviceReport on rank 0 (collective)."""
    return distributed.gather_to_main(report)
