"""``python -m text2sign evaluate --run-dir DIR``: every number measured, or N/A with the reason.

Samples one video per validation clip (DDIM, fixed seed, EMA weights when EMA is on) and compares
it with that clip's reference video:

* inference: median seconds per video (after a warm-up) and peak memory;
* parameters: total and trainable, DiT and text encoder separately;
* PSNR, SSIM (per video, vs the reference of the same caption), temporal consistency;
* FVD (I3D torchscript from ``eval.i3d_path``) and LPIPS (AlexNet from TORCH_HOME), else N/A;
* on the synthetic dataset: DTW-MJE of the detected hand blobs against the ground-truth keypoints,
  and the **conditioning audit**: the same noise sampled with shuffled captions and with the empty
  caption. If the model uses the text, wrong captions move the hands away from the reference:
  gap = DTW-MJE(shuffled) − DTW-MJE(correct) > 0, with a one-sided paired Wilcoxon test.

Writes ``evaluation_metrics.json`` and ``evaluation_metrics.csv`` in the run dir.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import psutil
import torch

from text2sign import atomic
from text2sign.config import Config
from text2sign.data import open_dataset
from text2sign.data.synth import BLOB_COLOURS, KEYPOINT_NAMES
from text2sign.metrics.fvd import fvd
from text2sign.metrics.image import psnr, ssim, temporal_consistency
from text2sign.metrics.keypoints import detect_blobs, dtw_mje, fill_missing
from text2sign.metrics.lpips_metric import lpips_distance
from text2sign.metrics.result import Metric
from text2sign.metrics.stats import paired_test
from text2sign.sampling import load_run_for_sampling, make_diffusion, sample_videos

EVAL_JSON, EVAL_CSV = "evaluation_metrics.json", "evaluation_metrics.csv"


def _mean(values: list[float], what: str) -> Metric:
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return Metric.na(f"no finite {what} value")
    return Metric.of(float(np.mean(finite)))


def _derangement(n: int, rng: random.Random) -> list[int]:
    """A permutation with no fixed point: every clip gets another clip's caption."""
    while True:
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


def _reference_keypoints(root: Path, name: str, frames: int) -> np.ndarray | None:
    path = root / f"{name}.keypoints.json"
    if not path.exists():
        return None
    xy = np.asarray(json.loads(path.read_text())["xy"], dtype=np.float64)  # (T0, K, 2)
    if len(xy) >= frames:
        return xy[:frames]
    return np.concatenate([xy, np.repeat(xy[-1:], frames - len(xy), axis=0)])  # like the loader


def _timed_sampling(built, diffusion, captions, cfg, seed, device, repeats: int):
    """Median seconds for one video (after one warm-up) and the peak memory while sampling."""
    proc = psutil.Process()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    times, peak_rss = [], proc.memory_info().rss
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        sample_videos(built, diffusion, captions[i % len(captions) : i % len(captions) + 1],
                      cfg=cfg, seed=seed + i, device=device)  # fmt: skip
        if i:  # the first call is the warm-up
            times.append(time.perf_counter() - t0)
        peak_rss = max(peak_rss, proc.memory_info().rss)
    peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else peak_rss
    return (
        median(times),
        int(peak),
        ("cuda_max_allocated" if torch.cuda.is_available() else "process_rss"),
    )


def audit(
    sample_fn: Callable[[list[str]], np.ndarray],
    captions: list[str],
    ref_kps: list[np.ndarray],
    seed: int,
) -> tuple[dict[str, Metric], dict[str, Any], np.ndarray]:
    """The conditioning audit: DTW-MJE with correct, shuffled and empty captions.

    ``sample_fn(captions) -> uint8 (N, T, H, W, 3)`` must start from the same noise on every call,
    so the three conditions differ only in the caption. Returns the metrics, per-clip detail and
    the correct-caption videos.
    """
    perm = _derangement(len(captions), random.Random(seed))
    conditions = {
        "correct": captions,
        "shuffled": [captions[p] for p in perm],
        "empty": [""] * len(captions),
    }
    errors: dict[str, list[float]] = {}
    videos = {}
    for name, caps in conditions.items():
        videos[name] = sample_fn(caps)
        errors[name] = [
            dtw_mje(fill_missing(detect_blobs(v, BLOB_COLOURS, KEYPOINT_NAMES)), ref)
            for v, ref in zip(videos[name], ref_kps, strict=True)
        ]
    test = paired_test(errors["correct"], errors["shuffled"])
    metrics = {
        "dtw_mje": _mean(errors["correct"], "DTW-MJE"),
        "dtw_mje_shuffled": _mean(errors["shuffled"], "DTW-MJE"),
        "dtw_mje_empty": _mean(errors["empty"], "DTW-MJE"),
    }
    if test["mean_diff"] is None:
        metrics["audit_gap"] = Metric.na(str(test["reason"]))
    else:
        metrics["audit_gap"] = Metric.of(float(test["mean_diff"]))
    p = test["wilcoxon_p"]
    metrics["audit_p"] = (
        Metric.of(float(p)) if p is not None else Metric.na(str(test["reason"]) or "no p-value")
    )
    detail = {"per_video": errors, "paired_test": test, "permutation": perm}
    return metrics, detail, videos["correct"]


def evaluate(
    run_dir: Path, *, num_videos: int | None = None, device: str = "cpu"
) -> dict[str, Any]:
    """Evaluate the latest checkpoint of ``run_dir``; write and return the metrics."""
    run_dir = Path(run_dir)
    cfg, built, weights = load_run_for_sampling(run_dir)
    ev = cfg.eval
    diffusion = make_diffusion(cfg)
    _, val = open_dataset(
        cfg.data.root, num_frames=cfg.data.num_frames, size=cfg.data.image_size,
        val_fraction=cfg.data.val_fraction, cache_dir=cfg.data.cache_dir, seed=cfg.data.split_seed,
    )  # fmt: skip
    n = min(num_videos or ev.num_videos, len(val))
    if n == 0:
        raise ValueError(f"{run_dir}: the validation split is empty (data.val_fraction)")
    items = [val[i] for i in range(n)]
    captions = [it["caption"] for it in items]
    refs = np.stack(
        [((it["video"].permute(0, 2, 3, 1) + 1) * 127.5).round().byte().numpy() for it in items]
    )

    t_video, peak, peak_kind = _timed_sampling(
        built, diffusion, captions, cfg, ev.seed, device, ev.timing_videos
    )
    metrics: dict[str, Metric] = {}
    root = Path(cfg.data.root)
    ref_kps = [_reference_keypoints(root, it["name"], cfg.data.num_frames) for it in items]
    detail: dict[str, Any] = {}
    if all(k is not None for k in ref_kps):

        def sample_fn(caps: list[str]) -> np.ndarray:
            return sample_videos(built, diffusion, caps, cfg=cfg, seed=ev.seed, device=device)

        audit_metrics, detail, fakes = audit(sample_fn, captions, ref_kps, ev.seed)
    else:
        fakes = sample_videos(built, diffusion, captions, cfg=cfg, seed=ev.seed, device=device)
        reason = "no ground-truth keypoints (NAME.keypoints.json): not the synthetic dataset"
        audit_metrics = {k: Metric.na(reason) for k in
                         ("dtw_mje", "dtw_mje_shuffled", "dtw_mje_empty", "audit_gap", "audit_p")}  # fmt: skip

    metrics["psnr"] = _mean([psnr(f, r) for f, r in zip(fakes, refs, strict=True)], "PSNR")
    metrics["ssim"] = _mean([ssim(f, r) for f, r in zip(fakes, refs, strict=True)], "SSIM")
    temporal = [temporal_consistency(f) for f in fakes]
    metrics["temporal_cos"] = _mean([tc["cosine"] for tc in temporal], "cosine")
    metrics["temporal_l1"] = _mean([tc["l1"] for tc in temporal], "L1")
    metrics["reference_temporal_cos"] = _mean(
        [temporal_consistency(r)["cosine"] for r in refs], "cosine"
    )
    metrics["fvd"] = fvd(refs, fakes, ev.i3d_path)
    metrics["lpips"] = lpips_distance(refs, fakes, torch_home=ev.torch_home, resize_to=64)
    metrics.update(audit_metrics)
    metrics["inference_s_per_video"] = Metric.of(t_video)
    metrics["inference_peak_memory_bytes"] = Metric.of(peak)
    counts = built.parameter_counts()
    result = {
        "weights": weights,
        "num_videos": n,
        "seed": ev.seed,
        "sample_steps": cfg.diffusion.sample_steps,
        "guidance_scale": cfg.diffusion.guidance_scale,
        "inference_peak_memory_kind": peak_kind,
        "parameters": counts,
        "metrics": {k: m.to_json() for k, m in metrics.items()},
        "audit": detail,
        "definitions": DEFINITIONS,
    }
    atomic.write_json(run_dir / EVAL_JSON, result)
    rows = ["metric,value,reason"] + [
        f'{k},{"" if m.value is None else m.value},"{m.reason}"' for k, m in metrics.items()
    ]
    rows += [f"{k},{v}," for k, v in counts.items()]
    atomic.write_text(run_dir / EVAL_CSV, "\n".join(rows) + "\n")
    return result


DEFINITIONS = {
    "psnr": "mean over videos of PSNR (dB, uint8 range) between the generated and reference video",
    "ssim": "mean over videos of SSIM (Gaussian 11x11, sigma 1.5; mean over frames and channels)",
    "temporal_cos": "mean cosine similarity of consecutive generated frames (pixels scaled to [-1, 1])",
    "temporal_l1": "mean absolute difference of consecutive generated frames (0-255 units)",
    "reference_temporal_cos": "temporal_cos of the reference videos, for context",
    "fvd": "Frechet distance of I3D features (StyleGAN-V torchscript), reference vs generated",
    "lpips": "mean LPIPS (AlexNet) over paired frames resized to 64 px",
    "dtw_mje": "DTW mean joint error of detected hand/head blobs vs ground truth (fraction of frame)",
    "dtw_mje_shuffled": "dtw_mje when each clip is sampled with another clip's caption (same noise)",
    "dtw_mje_empty": "dtw_mje when every clip is sampled with the empty caption (same noise)",
    "audit_gap": "mean over clips of dtw_mje_shuffled - dtw_mje (> 0: the caption drives the motion)",
    "audit_p": "one-sided paired Wilcoxon signed-rank p-value of shuffled > correct",
    "inference_s_per_video": "median seconds to sample one video (after one warm-up)",
    "inference_peak_memory_bytes": "peak CUDA allocation, or process RSS on CPU, while sampling",
}


def format_metrics(result: dict[str, Any]) -> str:
    """One line per metric: value, or N/A (reason)."""
    lines = [f"weights: {result['weights']}, {result['num_videos']} videos, seed {result['seed']}"]
    for key, m in result["metrics"].items():
        shown = f"{m['value']:.6g}" if m["value"] is not None else f"N/A ({m['reason']})"
        lines.append(f"  {key:28s} {shown}")
    return "\n".join(lines)


def hparams(cfg: Config) -> dict[str, Any]:
    """The hyper-parameters shown in TensorBoard's HParams tab."""
    return {
        "variant": cfg.variant, "seed": cfg.train.seed, "profile": cfg.profile,
        # Booleans as strings: torch's add_hparams would store a bool as the number 0/1.
        "text_finetune": str(cfg.text.finetune).lower(), "ema": str(cfg.ema.enabled).lower(),
        "ema_decay": cfg.ema.decay,
        "lr": cfg.train.lr, "batch_size": cfg.train.batch_size, "zero_stage": cfg.train.zero_stage,
        "precision": cfg.train.precision, "preset": cfg.model.preset,
        "max_steps": cfg.train.max_steps or 0,
    }  # fmt: skip


def log_hparams(
    run_dir: Path, cfg: Config, result: dict[str, Any], final_loss: float | None
) -> None:
    """HParams plugin: hyper-parameters with the final metrics (N/A metrics are left out)."""
    from torch.utils.tensorboard import SummaryWriter

    metrics = {f"eval/{k}": m["value"] for k, m in result["metrics"].items()
               if m["value"] is not None and np.isfinite(m["value"])}  # fmt: skip
    if final_loss is not None:
        metrics["eval/final_loss"] = final_loss
    with SummaryWriter(log_dir=str(run_dir / "tb")) as tb:
        tb.add_hparams(hparams(cfg), metrics, run_name="hparams")
