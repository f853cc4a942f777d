"""Clips per second per core decoding into the cache: mp4 (H.264 via PyAV/FFmpeg) against GIF.

The same synthetic clips are written as GIF, mp4, webm and PNG frame folders
(``text2sign.data.synth.generate``); each pass builds a fresh decoded cache with
``DecodedCache.load_or_build`` (decode, cut, resize, write the memmap), pinned to one core. Two
sets: the demo set (8 frames at 32x32 into 16x16, ``first``) and sentence-like clips (96 frames
at 256x256 into 64x64, ``uniform`` 16 frames), where decoding rather than overhead dominates.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from bench.common import Goal, Section, interleaved_times, median
from text2sign.data.cache import DecodedCache
from text2sign.data.sources import list_samples
from text2sign.data.synth import generate

KINDS = ("gif", "mp4", "webm", "frames")
SETS = {  # name: (clips, frames, size, cached frames, cached size, sampling, repeats)
    "demo set": (128, 8, 32, 8, 16, "first", 5),
    "sentence-like": (6, 96, 256, 16, 64, "uniform", 3),
}
#: The earlier project's 4,082 GIFs in under 5 minutes on one core.
GOAL_CLIPS_PER_S = 4082 / 300


@contextmanager
def one_core():
    """Pin this process to one of its cores (restored afterwards)."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _megabytes(root: Path) -> float:
    """Size of the clips of a generated folder (not captions, keypoints or the manifest)."""
    clips = (".gif", ".mp4", ".webm", ".png")
    return sum(f.stat().st_size for f in root.rglob("*") if f.suffix in clips) / 1e6


def _build(root: Path, frames: int, size: int, sampling: str) -> None:
    samples = list_samples(root / "manifest.csv").samples
    out = Path(tempfile.mkdtemp(prefix="t2s_bench_cache_"))
    try:
        DecodedCache.load_or_build(samples, num_frames=frames, size=size, cache_dir=out,
                                   frame_sampling=sampling, root=root / "manifest.csv")  # fmt: skip
    finally:
        shutil.rmtree(out)


def run() -> Section:
    """Median clips/s of each kind per set, one core."""
    start = time.perf_counter()
    rows, rates, notes = [], {}, []
    with tempfile.TemporaryDirectory(prefix="t2s_bench_video_") as tmp:
        for set_name, (n, frames, size, t_out, s_out, sampling, repeats) in SETS.items():
            roots = {}
            for kind in KINDS:
                roots[kind] = Path(tmp) / set_name.replace(" ", "_") / kind
                generate(roots[kind], n, frames=frames, size=size, fmt=kind)
            mb = {kind: _megabytes(root) for kind, root in roots.items()}
            decoding = (t_out, s_out, sampling)
            fns = {k: (lambda r=r, d=decoding: _build(r, *d)) for k, r in roots.items()}
            with one_core():
                times = interleaved_times(fns, repeats=repeats)
            for kind in KINDS:
                rate = n / median(times[kind])
                rates[(set_name, kind)] = rate
                rows.append([
                    set_name, kind, f"{rate:,.1f}", f"{rate * frames:,.0f}",
                    f"{1e3 / rate:.1f}", f"{mb[kind]:.2f}",
                ])  # fmt: skip
            notes.append(
                f"{set_name}: {n} clips of {frames} frames at {size}x{size} into a "
                f"{t_out}x{s_out}x{s_out} cache ({sampling}); median of {repeats} interleaved "
                "builds after one warm-up."
            )
    demo_mp4 = rates[("demo set", "mp4")]
    ratio = {s: rates[(s, "mp4")] / rates[(s, "gif")] for s in SETS}
    return Section(
        title="Data: decoding mp4 vs GIF into the decoded cache (clips/s per core)",
        method=(
            "The same synthetic clips as GIF, mp4 (H.264, 4:2:0, crf 15), webm (VP9) and PNG "
            "frame folders; each pass lists the manifest and builds a fresh cache "
            "(`DecodedCache.load_or_build`: decode the whole clip, resize and crop, sample, "
            "write the memmap) with the process pinned to one core "
            "(`os.sched_setaffinity`), so clips/s is per core. Passes of the four kinds "
            "alternate; medians."
        ),
        columns=["set", "kind", "clips/s per core", "source frames/s", "ms per clip", "MB on disk"],
        rows=rows,
        goals=[
            Goal(
                metric="mp4 clips/s per core, demo set",
                value=f"{demo_mp4:.0f}",
                goal=f">= {GOAL_CLIPS_PER_S:.1f} (4,082 clips in 5 min)",
                met=demo_mp4 >= GOAL_CLIPS_PER_S,
            ),
            Goal(
                metric="mp4 / GIF clips/s (demo set; sentence-like)",
                value=f"{ratio['demo set']:.2f}x; {ratio['sentence-like']:.2f}x",
                goal="measured (no target)",
                met=None,
            ),
        ],
        notes=notes,
        seconds=time.perf_counter() - start,
    )


if __name__ == "__main__":  # python -m bench.video_decode: print the rows
    section = run()
    print(section["columns"])
    for row in section["rows"]:
        print(row)
    print(section["goals"])
