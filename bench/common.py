"""Shared pieces of the benchmarks: the Section format, thread setup and interleaved timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import TypedDict

import torch


class Goal(TypedDict):
    """One checked target: ``met`` is None when it was not measured in this run."""

    metric: str
    value: str
    goal: str
    met: bool | None


class Section(TypedDict):
    """What every benchmark's ``run()`` returns; ``bench.run`` renders it as Markdown."""

    title: str
    method: str  # Markdown: what is measured and how
    columns: list[str]
    rows: list[list[str]]
    goals: list[Goal]
    notes: list[str]
    seconds: float  # wall time of the benchmark itself


def set_threads(n: int) -> None:
    """Pin torch's intra-op pool (OMP_NUM_THREADS is set to the same by ``bench.run``)."""
    torch.set_num_threads(n)


def interleaved_times(
    fns: Mapping[str, Callable[[], object]], *, repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each function, alternating A, B, A, B, ... after ``warmup`` calls.

    Alternating makes the two sides share whatever load the other tenants of the machine put
    on it, so the ratio of medians is fairer than two back-to-back series.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median(xs: list[float]) -> float:
    """The median of a non-empty list."""
    return statistics.median(xs)


def spread(xs: list[float]) -> str:
    """'min-max' of a series, for the table: shows how noisy the shared machine was."""
    return f"{min(xs) * 1e3:.0f}-{max(xs) * 1e3:.0f} ms"


def mib(nbytes: float) -> str:
    """Bytes as MiB with one decimal."""
    return f"{nbytes / 2**20:.1f} MiB"


def top_ops(fn: Callable[[], None], n: int = 5) -> str:
    """The ``n`` aten ops with the most self CPU time in one profiled call of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: -e.self_cpu_time_total)
    return ", ".join(f"{e.key[6:]} {e.self_cpu_time_total / total:.0%}" for e in events[:n])


def ours_vs_peer(
    *,
    title: str,
    method: str,
    ours: tuple[str, list[float]],
    peer: tuple[str, list[float]],
    goal_metric: str,
    goal_s: float,
    notes: list[str],
    seconds: float,
) -> Section:
    """A section timing our path against a named peer: medians, all repeats, goal, ratio."""
    (ours_label, ours_t), (peer_label, peer_t) = ours, peer
    m_ours, m_peer = median(ours_t), median(peer_t)
    return Section(
        title=title,
        method=method,
        columns=["path", "median s", "all repeats (s)"],
        rows=[
            [ours_label, f"{m_ours:.2f}", ", ".join(f"{x:.2f}" for x in ours_t)],
            [peer_label, f"{m_peer:.2f}", ", ".join(f"{x:.2f}" for x in peer_t)],
        ],
        goals=[
            Goal(
                metric=goal_metric,
                value=f"{m_ours:.2f} s",
                goal=f"<= {goal_s:.0f} s",
                met=m_ours <= goal_s,
            ),
            Goal(
                metric=f"ours / {peer_label}", value=f"{m_ours / m_peer:.2f}", goal="none", met=None
            ),
        ],  # fmt: skip
        notes=notes,
        seconds=seconds,
    )


def init_cpu_worker() -> None:
    """In a benchmark's worker process: one torch thread, DeepSpeed on CPU (gloo), quiet logs."""
    import atexit
    import os

    torch.set_num_threads(1)
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed
    from deepspeed.utils import logger as ds_logger

    ds_logger.setLevel("WARNING")
    deepspeed.init_distributed(dist_backend="gloo", verbose=False)
    # Leave the group before interpreter shutdown: left to it, a rank was seen to abort at exit
    # (SIGABRT after its result was written), which failed the whole torchrun launch.
    atexit.register(torch.distributed.destroy_process_group)
