"""The estimator floor: how far the references' keypoints at the model's resolution are from their
keypoints at the source's own resolution.

DTW-MJE compares a sample with its reference *at the model's resolution* (the decoded cache's
frames), where a model that returned the reference frames would score 0. But the estimator sees
less in small frames than in the source: the same clip estimated at native resolution (the
clip's centre square crop at the source's size, the same sampled frames as the cache) gives other
keypoints. ``dtw_mje_floor`` is the nDTW-MJE of the model-resolution keypoints against the
native ones (scaled by the native shoulder width): the lowest DTW-MJE a perfect model could score
against the truth the source holds. Differences between runs smaller than it are below what the
estimator can resolve at this frame size.

The native clips are decoded from the sources (:func:`text2sign.data.video.iter_cut`, frames
:meth:`~text2sign.data.cache.DecodedCache.source_frames`) and estimated through
:func:`text2sign.pose.extract.extract`, keyed by content, beside the references' keypoints: every
run of a study reuses them. On the synthetic set the floor is the blob detector's error on the
reference frames against the exact keypoints.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from text2sign.data.samples import Sample
from text2sign.data.video import BadVideo, iter_cut
from text2sign.metrics.pose_dtw import masked_dtw_mje
from text2sign.metrics.result import Metric
from text2sign.pose import joints as joints_mod
from text2sign.pose.env import PoseEnv
from text2sign.pose.extract import content_key, extract

DESCRIPTION = (
    "nDTW-MJE of the references' MediaPipe keypoints at the model's resolution (the decoded "
    "cache) against the same references at native resolution (the source's centre square crop, "
    "the same sampled frames), in native shoulder widths: the lowest a perfect model could score"
)


def centre_square(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) → the centre (S, S, 3) crop, S = min(H, W), as the cache crops before resizing."""
    h, w = frame.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return frame[top : top + s, left : left + s]


def sample_of(cache: Any, j: int) -> Sample:
    """The :class:`Sample` cached clip ``j`` was decoded from (source, kind and cut)."""
    r = cache.records[j]
    cut = {k: r[k] for k in ("start", "end", "start_frame", "end_frame") if r.get(k) is not None}
    return Sample(r["name"], cache.sources[j], r["caption"], r["signer"], r["kind"],
                  label=r["name"], **cut)  # fmt: skip


def native_clip(cache: Any, j: int) -> np.ndarray:
    """uint8 (T, S, S, 3): cached clip ``j``'s frames at the source's resolution, centre square."""
    wanted = cache.source_frames(j)  # (T,) indices into the cut, repeats allowed
    keep, frames = set(wanted.tolist()), {}
    for i, _, get in iter_cut(sample_of(cache, j)):
        if i in keep:
            frames[i] = centre_square(np.asarray(get()))  # (S, S, 3)
        if i >= max(keep):
            break  # the later frames are not used: stop decoding
    return np.stack([frames[int(i)] for i in wanted])  # (T, S, S, 3)


def native_joints(
    cache: Any, rows: list[int], out: Path, env: PoseEnv, *, workers: int = 1
) -> tuple[list[Any], dict[str, Any]]:
    """Joints of cached clips ``rows`` at native resolution (or why there are none), estimated
    into ``out`` by content key; clips already there are only decoded and hashed."""
    keys: dict[int, str] = {}
    failed: dict[int, str] = {}
    shapes: dict[tuple, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="t2s-native-") as tmp:
        for i, j in enumerate(rows):
            try:
                clip = native_clip(cache, j)
            except (BadVideo, OSError) as e:
                failed[i] = f"cannot decode the source at native resolution: {e}"
                continue
            keys[i] = content_key(clip)
            if not (out / f"{keys[i]}.pose").exists():
                np.save(Path(tmp) / f"{i}.npy", clip)
                shapes.setdefault(clip.shape, []).append(i)
        seconds, frames = 0.0, 0
        for g, (shape, members) in enumerate(shapes.items()):
            group = np.lib.format.open_memmap(Path(tmp) / f"group{g}.npy", mode="w+",
                                              dtype=np.uint8, shape=(len(members), *shape))  # fmt: skip
            for k, i in enumerate(members):
                group[k] = np.load(Path(tmp) / f"{i}.npy")
            group.flush()
            del group
            run = extract(Path(tmp) / f"group{g}.npy", {k: keys[i] for k, i in enumerate(members)},
                          out, env, workers=workers)  # fmt: skip
            seconds, frames = seconds + run.seconds, frames + run.frames
            failed.update({i: f"estimation failed: {run.failed[keys[i]]}" for i in members
                           if keys[i] in run.failed})  # fmt: skip
    joints: list[Any] = []
    for i in range(len(rows)):
        path = out / f"{keys.get(i)}.pose"
        joints.append(failed.get(i) or (joints_mod.read(path) if path.exists() else "no keypoints"))
    return joints, {"estimated_frames": frames, "estimation_seconds": round(seconds, 2),
                    "native_sizes_estimated": sorted(f"{s[1]}x{s[2]}" for s in shapes)}  # fmt: skip


def floor_errors(model: list[Any], native: list[Any]) -> tuple[list[float], dict[int, str]]:
    """Per clip nDTW-MJE of the model-resolution joints against the native ones (NaN + reason
    where a side has no joints or the native reference no shoulders)."""
    errors: list[float] = []
    reasons: dict[int, str] = {}
    for i, (m, nat) in enumerate(zip(model, native, strict=True)):
        if not isinstance(m, joints_mod.Joints) or not isinstance(nat, joints_mod.Joints):
            reasons[i] = f"keypoints failed: {nat if isinstance(nat, str) else m}"
        elif nat.shoulder_width() is None:
            reasons[i] = "no shoulders found in the native-resolution reference"
        else:
            errors.append(masked_dtw_mje(m.xy, nat.xy, scale=nat.shoulder_width()))
            continue
        errors.append(float("nan"))
    return errors, reasons


def floor_metrics(errors: list[float], reasons: dict[int, str]) -> dict[str, Metric]:
    """``dtw_mje_floor`` (mean over the clips it could score) and ``dtw_mje_floor_clips``."""
    finite = [e for e in errors if np.isfinite(e)]
    if not finite:
        why = "; ".join(dict.fromkeys(reasons.values())) or "no clip"
        return {"dtw_mje_floor": Metric.na(f"no clip could be scored: {why}"),
                "dtw_mje_floor_clips": Metric.of(0.0)}  # fmt: skip
    return {"dtw_mje_floor": Metric.of(float(np.mean(finite))),
            "dtw_mje_floor_clips": Metric.of(float(len(finite)))}  # fmt: skip
