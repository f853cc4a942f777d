"""DTW-MJE of generated signing on real data: the same pose estimator on samples and references.

On a dataset without exact keypoints (anything but the synthetic set) the generated videos of
every audit pass and the reference clips go through MediaPipe Holistic (:mod:`text2sign.pose`,
in its own environment), at the model's resolution enlarged to 256 px, so that both sides are
seen the same way. The samples are saved first (``RUN/eval_samples/``: ``videos.npy`` with the
passes one after the other, ``index.json`` saying what they are), so scoring can run, or run
again, without sampling twice. Keypoints are cached by content: the references' next to the
decoded cache (``<cache dir>/keypoints/``, shared by every run and by ``data keypoints``), the
samples' in ``RUN/eval_samples/keypoints/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from text2sign import atomic
from text2sign.metrics.pose_dtw import VARIANT, masked_dtw_mje
from text2sign.pose import joints as joints_mod
from text2sign.pose.env import PoseEnv
from text2sign.pose.extract import ENLARGE_TO, content_key, extract

SAMPLES_DIR = "eval_samples"
DESCRIPTION = (
    "estimated: MediaPipe Holistic (model_complexity 1, pose-format), upper body (7 joints) and "
    f"both hands (21 each) at the model's resolution enlarged to {ENLARGE_TO} px; DTW-MJE: "
    + VARIANT
)


def save_samples(run_dir: Path, videos: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """``RUN/eval_samples/videos.npy`` (passes stacked in ``meta['passes']`` order) + index."""
    out = Path(run_dir) / SAMPLES_DIR
    out.mkdir(exist_ok=True)
    stacked = np.concatenate([videos[p] for p in meta["passes"]])
    tmp = out / ".videos.npy.tmp"
    with open(tmp, "wb") as f:
        np.save(f, stacked)
    tmp.replace(out / "videos.npy")
    atomic.write_json(out / "index.json", meta)
    return out


def load_samples(run_dir: Path, meta: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The saved samples when they were drawn with exactly ``meta`` (checkpoint, seed, clips)."""
    out = Path(run_dir) / SAMPLES_DIR
    try:
        saved = json.loads((out / "index.json").read_text())
        stacked = np.load(out / "videos.npy")
    except (OSError, ValueError):
        return None
    if saved != meta or len(stacked) != len(meta["passes"]) * meta["num_videos"]:
        return None
    n = meta["num_videos"]
    return {p: stacked[i * n : (i + 1) * n] for i, p in enumerate(meta["passes"])}


def _joints(folder: Path, keys: list[str], failed: dict[str, str]) -> list[Any]:
    """Joints per key, or the reason a clip has none."""
    out: list[Any] = []
    for key in keys:
        path = folder / f"{key}.pose"
        out.append(joints_mod.read(path) if path.exists() else failed.get(key, "no keypoints"))
    return out


def _rates(items: list[Any]) -> dict[str, float | None]:
    found = [j.detection() for j in items if isinstance(j, joints_mod.Joints)]
    if not found:
        return {k: None for k in ("body", "left_hand", "right_hand")}
    return {k: float(np.mean([d[k] for d in found])) for k in found[0]}


def pose_errors(
    run_dir: Path,
    videos: dict[str, np.ndarray],
    refs_npy: Path,
    ref_indices: list[int],
    env: PoseEnv,
    *,
    workers: int = 1,
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Per pass, per clip DTW-MJE of the saved samples against the references' keypoints.

    ``refs_npy`` is the decoded cache's ``videos.npy`` and ``ref_indices`` the clips' rows in
    it. A clip that cannot be scored (estimation failed, no shoulders in the reference) is NaN,
    with the reason in the detail.
    """
    samples = Path(run_dir) / SAMPLES_DIR
    stacked = np.load(samples / "videos.npy", mmap_mode="r")
    ref_videos = np.load(refs_npy, mmap_mode="r")
    ref_keys = [content_key(ref_videos[j]) for j in ref_indices]
    gen_keys = [content_key(v) for v in stacked]
    ref_dir, gen_dir = Path(refs_npy).parent.parent / "keypoints", samples / "keypoints"
    ref_run = extract(Path(refs_npy), dict(zip(ref_indices, ref_keys, strict=True)), ref_dir, env,
                      workers=workers)  # fmt: skip
    gen_run = extract(samples / "videos.npy", dict(enumerate(gen_keys)), gen_dir, env,
                      workers=workers)  # fmt: skip
    refs = _joints(ref_dir, ref_keys, ref_run.failed)
    gens = _joints(gen_dir, gen_keys, gen_run.failed)
    n = len(ref_indices)
    errors: dict[str, list[float]] = {}
    unscorable: dict[str, str] = {}
    for p, name in enumerate(videos):
        errors[name] = []
        for i in range(n):
            ref, gen = refs[i], gens[p * n + i]
            scale = ref.shoulder_width() if isinstance(ref, joints_mod.Joints) else None
            if not isinstance(ref, joints_mod.Joints) or not isinstance(gen, joints_mod.Joints):
                why = ref if isinstance(ref, str) else gen
                unscorable[f"{name}/{i}"] = f"keypoints failed: {why}"
                errors[name].append(float("nan"))
            elif scale is None:
                unscorable[f"{name}/{i}"] = "no shoulders found in the reference clip"
                errors[name].append(float("nan"))
            else:
                errors[name].append(masked_dtw_mje(gen.xy, ref.xy, scale=scale))
    detail = {
        "keypoints": DESCRIPTION,
        "pose_environment": env.versions,
        "detection_reference": _rates(refs),
        "detection_generated": _rates(gens[:n]),  # the correct-caption pass
        "detection_per_clip": [
            {
                "reference": r.detection() if isinstance(r, joints_mod.Joints) else None,
                "generated": g.detection() if isinstance(g, joints_mod.Joints) else None,
            }
            for r, g in zip(refs, gens[:n], strict=True)
        ],  # fmt: skip
        "unscorable": unscorable,
        "estimated_frames": ref_run.frames + gen_run.frames,
        "estimation_seconds": round(ref_run.seconds + gen_run.seconds, 2),
    }
    return errors, detail
