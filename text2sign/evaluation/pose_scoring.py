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
from text2sign.evaluation import audit
from text2sign.evaluation.definitions import DETECTION
from text2sign.metrics.pose_dtw import VARIANT, masked_dtw_mje
from text2sign.metrics.result import Metric
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


def keypoints_dir(refs_npy: Path) -> Path:
    """Where the references' keypoints of a decoded cache live: ``<cache dir>/keypoints``."""
    return Path(refs_npy).parent.parent / "keypoints"


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


def unscorable_reason(ref: Any, gen: Any) -> str | None:
    """Why a clip pair cannot be scored (None: it can): keypoints missing, or a reference in
    which the estimator found no body or no shoulders (the unit of DTW-MJE)."""
    if not isinstance(ref, joints_mod.Joints) or not isinstance(gen, joints_mod.Joints):
        return f"keypoints failed: {ref if isinstance(ref, str) else gen}"
    if not ref.body_found.any():
        return NO_BODY
    if ref.shoulder_width() is None:
        return "no shoulders found in the reference clip"
    return None


NO_BODY = "no body found in the reference clip"


def none_scored(reasons: list[str]) -> str:
    """The N/A reason of a pass in which no clip could be scored, from each clip's reason."""
    if reasons and all(r == NO_BODY for r in reasons):
        return f"no body found in the {len(reasons)} reference clips"
    counts: dict[str, int] = {}
    for r in reasons:
        counts[r] = counts.get(r, 0) + 1
    return "no clip could be scored: " + "; ".join(f"{r} ({n})" for r, n in counts.items())


def pose_errors(
    run_dir: Path,
    videos: dict[str, np.ndarray],
    refs_npy: Path,
    ref_indices: list[int],
    env: PoseEnv,
    *,
    workers: int = 1,
) -> tuple[dict[str, list[float]], dict[str, Any], dict[str, list[Any]]]:
    """Per pass, per clip DTW-MJE of the saved samples against the references' keypoints.

    ``refs_npy`` is the decoded cache's ``videos.npy`` and ``ref_indices`` the clips' rows in
    it. A clip that cannot be scored (estimation failed, no body or shoulders in the reference)
    is NaN, with the reason in the detail (``unscorable``; ``no_score``: per pass in which no
    clip was scored, why). Also returns the joints (or why there are none) per clip of the
    references (``reference``) and of every pass.
    """
    samples = Path(run_dir) / SAMPLES_DIR
    stacked = np.load(samples / "videos.npy", mmap_mode="r")
    ref_videos = np.load(refs_npy, mmap_mode="r")
    ref_keys = [content_key(ref_videos[j]) for j in ref_indices]
    gen_keys = [content_key(v) for v in stacked]
    ref_dir, gen_dir = keypoints_dir(refs_npy), samples / "keypoints"
    ref_run = extract(Path(refs_npy), dict(zip(ref_indices, ref_keys, strict=True)), ref_dir, env,
                      workers=workers)  # fmt: skip
    gen_run = extract(samples / "videos.npy", dict(enumerate(gen_keys)), gen_dir, env,
                      workers=workers)  # fmt: skip
    refs = _joints(ref_dir, ref_keys, ref_run.failed)
    gens = _joints(gen_dir, gen_keys, gen_run.failed)
    n = len(ref_indices)
    errors: dict[str, list[float]] = {}
    unscorable: dict[str, str] = {}
    no_score: dict[str, str] = {}
    for p, name in enumerate(videos):
        errors[name], why = [], []
        for i in range(n):
            ref, gen = refs[i], gens[p * n + i]
            reason = unscorable_reason(ref, gen)
            if reason is None:
                errors[name].append(masked_dtw_mje(gen.xy, ref.xy, scale=ref.shoulder_width()))
            else:
                unscorable[f"{name}/{i}"] = reason
                errors[name].append(float("nan"))
                why.append(reason)
        if len(why) == n:
            no_score[name] = none_scored(why)
    per_clip = [
        {"reference": r.detection() if isinstance(r, joints_mod.Joints) else None,
         "generated": g.detection() if isinstance(g, joints_mod.Joints) else None}
        for r, g in zip(refs, gens[:n], strict=True)
    ]  # fmt: skip
    detail = {
        "keypoints": DESCRIPTION,
        "pose_environment": env.versions,
        "detection_reference": _rates(refs),
        "detection_generated": _rates(gens[:n]),  # the correct-caption pass
        "detection_per_clip": per_clip,
        "detection_gap": detection_gap(per_clip),
        "unscorable": unscorable,
        "no_score": no_score,
        "estimated_frames": ref_run.frames + gen_run.frames,
        "estimation_seconds": round(ref_run.seconds + gen_run.seconds, 2),
    }
    joints = {
        "reference": refs,
        **{name: gens[p * n : (p + 1) * n] for p, name in enumerate(videos)},
    }
    return errors, detail, joints


PARTS = ("body", "left_hand", "right_hand")


def detection_gap(per_clip: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per part, the mean over the clips with keypoints on both sides of the reference's
    detection rate minus the generated one (> 0: the estimator finds less in the samples)."""
    both = [c for c in per_clip if c["reference"] is not None and c["generated"] is not None]
    if not both:
        return {k: None for k in PARTS}
    return {k: float(np.mean([c["reference"][k] - c["generated"][k] for c in both])) for k in PARTS}


def pose_metrics(
    errors: dict[str, list[float]], detail: dict[str, Any], perm: list[int], recordings: list[str]
) -> tuple[dict[str, Metric], dict[str, Any]]:
    """The audit's metrics from :func:`pose_errors` (N/A reasons saying why no clip of a pass
    could be scored), the detection rates and gaps, and the clips DTW-MJE rests on."""
    metrics, audit_detail = audit.summarise(errors, perm, recordings)
    no_score = detail["no_score"]  # pass → why no clip of it could be scored
    for key, name in (("dtw_mje", "correct"), ("dtw_mje_shuffled", "shuffled"),
                      ("dtw_mje_empty", "empty")):  # fmt: skip
        if name in no_score:
            metrics[key] = Metric.na(no_score[name])
    if "correct" in no_score or "shuffled" in no_score:
        why = no_score.get("correct") or no_score["shuffled"]
        metrics["audit_gap"], metrics["audit_p"] = Metric.na(why), Metric.na(why)
    for key, (side, part) in DETECTION.items():
        rate = detail["detection_gap" if side == "gap" else f"detection_{side}"][part]
        metrics[key] = Metric.of(rate) if rate is not None else Metric.na("no keypoints read")
    metrics["dtw_mje_clips"] = Metric.of(float(np.isfinite(errors["correct"]).sum()))
    return metrics, audit_detail
