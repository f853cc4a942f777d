"""Preparing real data: decoding and keypoint estimation per clip, 1 vs 2 workers, projected.

Realistic clips of :mod:`text2sign.data.fullsize` (a real person on a green backdrop with
sensor-like noise): How2Sign's size (1280 x 720, 24 fps, 6 s of H.264 at ~4 Mbit/s) and
PHOENIX's (210 x 260 PNG frames at 25 fps, 4.8 s). Decoding: the prepare stage's decoder
(:func:`text2sign.data.decode_pool.decode_into`) into the ``full128`` profile's clips (16 frames,
uniform, 128 px), with 1 and 2 worker processes (the pool's minimum clip count lowered so that
2 workers use the pool). Keypoints: :func:`text2sign.pose.extract.extract` on those decoded
clips (MediaPipe Holistic, enlarged to 256 px), 1 and 2 workers, a fresh output folder each.
The projection: How2Sign's train split (31,128 clips) prepared on one 64-core node, from the
per-clip core-seconds measured with 2 workers (both cores busy, as on a full node).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Goal, Section
from text2sign.data import decode_pool, fullsize
from text2sign.data.sources import list_samples
from text2sign.pose import env as pose_env
from text2sign.pose.extract import content_key, extract

CLIPS = {"h2s": 12, "phx": 48}  # realistic clips (one 720p clip takes ~8 s to generate)
VARIANTS = 4  # keypoints: each decoded clip as it is, flipped, shifted, both (distinct contents)
FRAMES, SIZE = 16, 128  # the full128 profile's clips
HOW2SIGN_TRAIN, NODE_CORES = fullsize.HOW2SIGN_TRAIN_ROWS, 64
GOAL_SPEEDUP, GOAL_MINUTES = 1.8, 30.0


def _decode(samples, out: Path, workers: int) -> float:
    start = time.perf_counter()
    results = decode_pool.decode_into(samples, out, num_frames=FRAMES, size=SIZE,
                                      sampling="uniform", workers=workers)  # fmt: skip
    seconds = time.perf_counter() - start
    bad = [d for d in results if d.error]
    if bad:
        raise RuntimeError(f"realistic clips failed to decode: {bad[:2]}")
    return seconds


def run() -> Section:
    start = time.perf_counter()
    env = pose_env.find()
    if not env.ok:
        raise RuntimeError(env.reason)
    rows, goals, per_clip = [], [], {}
    decode_pool.POOL_MIN_CLIPS = 2  # measure the pool with 2 workers on a dozen clips
    with tempfile.TemporaryDirectory(prefix="t2s_prepare_speed_") as tmp_name:
        tmp = Path(tmp_name)
        h2s = fullsize.how2sign(tmp / "h2s", rows=CLIPS["h2s"], realistic=True)
        fullsize.phoenix(tmp / "phx", folders=CLIPS["phx"], realistic=True)
        from text2sign.data.importers import import_how2sign, import_phoenix

        import_how2sign(h2s.annotations, tmp / "h2s.csv", clips=h2s.clips)
        import_phoenix(tmp / "phx", "train", tmp / "phx.csv")
        mbit = np.mean([p.stat().st_size * 8 / 6 / 1e6 for p in h2s.clips.glob("*.mp4")])
        decoded = []
        for name, manifest in (("How2Sign 720p mp4", tmp / "h2s.csv"),
                               ("PHOENIX 210x260 PNG", tmp / "phx.csv")):  # fmt: skip
            samples = list_samples(manifest).samples
            n = len(samples)
            secs = {w: _decode(samples, tmp / f"{name[:3]}{w}.npy", w) for w in (1, 2)}
            decoded.append(tmp / f"{name[:3]}2.npy")
            per_clip[name] = 2 * secs[2] / n  # core-seconds a clip, both cores busy
            for w in (1, 2):
                rows.append([f"decode {n} {name} clips -> {FRAMES} x {SIZE} px", str(w),
                             f"{secs[w]:.2f}", f"{n / secs[w]:.2f}", f"{n / secs[w] / w:.2f}"])  # fmt: skip
            goals.append(Goal(metric=f"decode {name}: 2 workers / 1",
                              value=f"{secs[1] / secs[2]:.2f}x", goal=f">= {GOAL_SPEEDUP}x",
                              met=secs[1] / secs[2] >= GOAL_SPEEDUP))  # fmt: skip
        first = np.concatenate([np.load(p)[:12] for p in decoded])  # 12 of each dataset
        both = np.concatenate([first, first[:, :, :, ::-1], np.roll(first, 3, axis=2),
                               np.roll(first[:, :, :, ::-1], 3, axis=2)])[: len(first) * VARIANTS]  # fmt: skip
        np.save(tmp / "both.npy", both)
        keys = {i: content_key(v) for i, v in enumerate(both)}
        secs = {}
        for w in (1, 2):
            t0 = time.perf_counter()
            done = extract(tmp / "both.npy", keys, tmp / f"kp{w}", env, workers=w)
            secs[w] = time.perf_counter() - t0
            if done.failed:
                raise RuntimeError(f"keypoints failed: {list(done.failed.items())[:2]}")
            rows.append([f"keypoints of those {len(both)} clips ({FRAMES} frames, MediaPipe)",
                         str(w), f"{secs[w]:.2f}", f"{len(both) / secs[w]:.2f}",
                         f"{len(both) / secs[w] / w:.2f}"])  # fmt: skip
        goals.append(Goal(metric="keypoints: 2 workers / 1", value=f"{secs[1] / secs[2]:.2f}x",
                          goal=f">= {GOAL_SPEEDUP}x", met=secs[1] / secs[2] >= GOAL_SPEEDUP))  # fmt: skip
        kp_clip = 2 * secs[2] / len(both)
    decode_clip = per_clip["How2Sign 720p mp4"]
    minutes = HOW2SIGN_TRAIN * (decode_clip + kp_clip) / NODE_CORES / 60
    goals.append(Goal(metric=f"projected: How2Sign train ({HOW2SIGN_TRAIN:,} clips) on one "
                             f"{NODE_CORES}-core node", value=f"{minutes:.1f} min",
                      goal=f"<= {GOAL_MINUTES:g} min", met=minutes <= GOAL_MINUTES))  # fmt: skip
    return Section(
        title="Preparing real data: decoding and keypoints per clip, 1 vs 2 workers",
        method=__doc__.split("\n\n", 1)[1].replace("\n", " ").strip(),
        columns=["what", "workers", "seconds", "clips/s", "clips/s per core"],
        rows=rows,
        goals=goals,
        notes=[
            f"{CLIPS['h2s']} How2Sign-sized clips (averaging {mbit:.1f} Mbit/s) and "
            f"{CLIPS['phx']} PHOENIX-sized ones; keypoints on 12 decoded clips of each, as they "
            f"are, flipped, shifted and both ({len(first) * VARIANTS} distinct clips), so that "
            "starting MediaPipe (once per worker, inside the timing) is a small share.",
            f"Per clip, with both cores busy: decoding a How2Sign clip {decode_clip:.2f} core-s, "
            f"a PHOENIX clip {per_clip['PHOENIX 210x260 PNG']:.2f} core-s; keypoints "
            f"{kp_clip:.2f} core-s ({FRAMES} frames). The projection is "
            f"{HOW2SIGN_TRAIN:,} x ({decode_clip:.2f} + {kp_clip:.2f}) / {NODE_CORES} cores, "
            "before any spread over several nodes (prepare.tasks shards it over an array).",
            f"Pose environment: {env.versions}; MediaPipe's start-up is inside each keypoints "
            "timing (once per worker).",
        ],
        seconds=time.perf_counter() - start,
    )


if __name__ == "__main__":  # python -m bench.prepare_speed: this benchmark alone
    import json

    print(json.dumps(run(), indent=1))
