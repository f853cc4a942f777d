"""Decode many clips at once, one process per CPU, straight into the rows of one ``.npy`` file.

The parent creates the uint8 (N, T, H, W, 3) array file; worker processes (spawned, so no
thread state of the parent is copied) each open it once and write the rows of the clips they
decode, taking clips a few at a time from a shared queue, so a slow clip never holds up a
whole block. Every clip comes back as its row's result: frames in the cut and the first
source frame, or the one-line reason it failed. Each worker decodes with one FFmpeg thread
(the processes are the parallelism); a single process (``workers=1``) lets FFmpeg pick.

Nothing here imports torch: a worker starts in well under a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from text2sign.data import video
from text2sign.data.samples import Sample

POOL_MIN_CLIPS = 32  # fewer clips are decoded in this process (spawning workers costs ~0.5 s)
CHUNK = 4  # clips a worker takes from the queue at a time


@dataclass(frozen=True)
class Decoded:
    """One clip's outcome: its row, and either (frames in the cut, first source frame) or why not."""

    row: int
    frames: int = 0
    first: int = 0
    error: str | None = None


# -- in a worker process -------------------------------------------------------------------

_OUT: np.ndarray | None = None
_ARGS: tuple[int, int, str] = (0, 0, "first")


def _init(out_npy: str, num_frames: int, size: int, sampling: str) -> None:
    global _OUT, _ARGS
    video.DECODER_THREADS = 1
    _OUT = np.load(out_npy, mmap_mode="r+")
    _ARGS = (num_frames, size, sampling)


def _decode(jobs: list[tuple[int, Sample]]) -> list[Decoded]:
    assert _OUT is not None
    out = []
    for row, sample in jobs:
        out.append(_decode_one(_OUT, row, sample, *_ARGS))
    _OUT.flush()
    return out


def _decode_one(dest: np.ndarray, row: int, sample: Sample, num_frames: int, size: int,
                sampling: str) -> Decoded:  # fmt: skip
    try:
        clip, frames, first = video.decode_clip(sample, num_frames, size, sampling)
    except video.BadVideo as e:
        return Decoded(row, error=str(e))
    dest[row] = clip
    return Decoded(row, frames, first)


# -- in the parent --------------------------------------------------------------------------


def _chunk(n: int, workers: int) -> int:
    """Clips a worker takes at a time: up to ``CHUNK``, but at least 4 chunks a worker, so the
    last chunks do not leave a worker idle (12 clips on 2 workers: one at a time)."""
    return max(1, min(CHUNK, n // (4 * max(workers, 1))))


def decode_into(
    samples: list[Sample],
    out_npy: Path,
    *,
    num_frames: int,
    size: int,
    sampling: str,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[Decoded]:
    """Decode ``samples[i]`` into row ``i`` of ``out_npy`` (created here); the results by row.

    ``strict`` callers stop at the first failure themselves (every clip is decoded here).
    """
    shape = (len(samples), num_frames, size, size, 3)
    dest = np.lib.format.open_memmap(out_npy, mode="w+", dtype=np.uint8, shape=shape)
    results: list[Decoded] = []
    done = 0
    if workers <= 1 or len(samples) < POOL_MIN_CLIPS:
        video.DECODER_THREADS = max(1, workers)  # FFmpeg's threads within the allocation
        for row, sample in enumerate(samples):
            results.append(_decode_one(dest, row, sample, num_frames, size, sampling))
            done += 1
            if progress:
                progress(done, len(samples))
        dest.flush()
        return results
    dest.flush()
    del dest
    jobs = list(enumerate(samples))
    per = _chunk(len(jobs), workers)
    chunks = [jobs[i : i + per] for i in range(0, len(jobs), per)]
    ctx = get_context("spawn")
    init = (str(out_npy), num_frames, size, sampling)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=init) as pool:
        for future in as_completed([pool.submit(_decode, c) for c in chunks]):
            got = future.result()
            results += got
            done += len(got)
            if progress:
                progress(done, len(samples))
    return sorted(results, key=lambda d: d.row)


def _probe(jobs: list[Sample]) -> list[video.ClipInfo | str]:
    video.DECODER_THREADS = 1
    out: list[video.ClipInfo | str] = []
    for sample in jobs:
        try:
            out.append(video.probe(sample))
        except video.BadVideo as e:
            out.append(str(e))
    return out


def probe_all(
    samples: list[Sample],
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[video.ClipInfo | str]:
    """:func:`text2sign.data.video.probe` of every sample (the whole cut decoded), in order, with
    ``workers`` processes: a ClipInfo, or the one-line reason the sample is bad."""
    per = _chunk(len(samples), workers)
    chunks = [samples[i : i + per] for i in range(0, len(samples), per)]
    if workers <= 1 or len(samples) < POOL_MIN_CLIPS:
        video.DECODER_THREADS = max(1, workers)
        results: list[video.ClipInfo | str] = []
        for chunk in chunks:
            results += _probe(chunk)
            if progress:
                progress(len(results), len(samples))
        return results
    done = 0
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_probe, c) for c in chunks]
        for future in as_completed(futures):
            done += len(future.result())
            if progress:
                progress(done, len(samples))
        return [r for f in futures for r in f.result()]


def progress_printer(what: str, every_s: float = 2.0) -> Callable[[int, int], None]:
    """A progress callback: ``what: k/n clips (r clips/s, ETA s)`` on stderr, at most every
    ``every_s`` seconds and at the end."""
    import sys

    start, last = time.monotonic(), [0.0]

    def show(k: int, n: int) -> None:
        now = time.monotonic()
        if k < n and now - last[0] < every_s:
            return
        last[0] = now
        rate = k / max(now - start, 1e-9)
        eta = (n - k) / rate if rate > 0 else float("inf")
        print(f"{what}: {k}/{n} clips ({rate:.2f} clips/s, ETA {eta:.0f} s)", file=sys.stderr,
              flush=True)  # fmt: skip

    return show
