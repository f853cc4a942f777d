"""``python -m text2sign evaluate --run-dir DIR``: every number measured, or N/A with the reason.

Samples one video per evaluated clip (DDIM, fixed seed, EMA weights when EMA is on) and compares
it with that clip's reference video. The clips are a seeded draw from the validation split,
stratified over recordings (:mod:`text2sign.evaluation.clips`); the result says how many clips,
recordings and signers the numbers rest on.

* inference: median seconds per video (after a warm-up) and peak memory, on the device that
  sampled, named in the result;
* parameters: total and trainable, DiT and text encoder separately;
* PSNR, SSIM (per video, vs the reference of the same caption), temporal consistency;
* FVD (I3D torchscript from ``eval.i3d_path``) and LPIPS (AlexNet from TORCH_HOME), else N/A;
* DTW-MJE and the conditioning audit (:mod:`text2sign.evaluation.audit`) on any dataset with
  keypoints: on the synthetic set, the detected hand blobs against the exact keypoints it was drawn
  from; on real signers, MediaPipe keypoints of samples and references
  (:mod:`text2sign.evaluation.pose_scoring`: the samples are saved, then scored by the pose
  environment; without one, these metrics are N/A with the reason and the samples wait), with
  the detection gap and the estimator floor (:mod:`text2sign.evaluation.floor`).

Sampling is shared by the job's ranks (:mod:`text2sign.evaluation.inference`): each rank samples its share of
the clips, for every audit pass, on its own device; rank 0 scores and writes
``evaluation_metrics.json`` and ``evaluation_metrics.csv`` in the run dir. Run it alone
(``--device cuda``) or under ``torchrun --nproc-per-node N``.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import torch

from text2sign import atomic
from text2sign.config import Config
from text2sign.data import open_dataset
from text2sign.data.samples import keypoints_path
from text2sign.evaluation import audit as audit_mod
from text2sign.evaluation import clips as clips_mod
from text2sign.evaluation import floor as floor_mod
from text2sign.evaluation import pose_scoring, showcase
from text2sign.evaluation.audit import audit, mean_metric  # noqa: F401  (audit: the public entry point)
from text2sign.evaluation.definitions import DEFINITIONS, DETECTION, FLOOR
from text2sign.evaluation.inference import (
    DeviceReport,
    PeakMemory,
    device_name,
    gather_reports,
    sample_shared,
    time_sampling,
)
from text2sign.evaluation.sampling import initial_noise, load_run_for_sampling, make_diffusion
from text2sign.metrics.fvd import fvd
from text2sign.metrics.image import psnr, ssim, temporal_consistency
from text2sign.metrics.lpips_metric import lpips_distance
from text2sign.metrics.result import Metric
from text2sign.pose import env as pose_env
from text2sign.pose.dataset import resolution_warning
from text2sign.run.rundir import RunDir, checkpoint_meta
from text2sign.run.writers import video_summary
from text2sign.runtime import distributed, threads

EVAL_JSON, EVAL_CSV = "evaluation_metrics.json", "evaluation_metrics.csv"


def default_device() -> torch.device:
    """This process's device: CUDA (LOCAL_RANK mod visible devices) when there is one, else CPU."""
    import os

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return distributed.pick_device(int(os.environ.get("LOCAL_RANK", "0")), visible)


def _reference_keypoints(cache: Any, j: int) -> np.ndarray | None:
    """The exact keypoints of cached clip ``j`` (the synthetic set's ``<source>.keypoints.json``,
    :func:`text2sign.data.samples.keypoints_path`), at the frames the clip was made of."""
    path = keypoints_path(cache.sources[j])
    if not path.exists():
        return None
    xy = np.asarray(json.loads(path.read_text())["xy"], dtype=np.float64)  # (T0, K, 2)
    return xy[np.minimum(cache.absolute_frames(j), len(xy) - 1)]  # cuts in frames or seconds


def evaluate(
    run_dir: Path, *, num_videos: int | None = None, device: torch.device | str | None = None
) -> dict[str, Any] | None:
    """Evaluate the latest checkpoint of ``run_dir``: the result on rank 0, None on other ranks.

    Collective under torch.distributed: every rank calls it and samples its share on ``device``
    (default: :func:`default_device`).
    """
    run_dir = Path(run_dir)
    device = torch.device(device) if device is not None else default_device()
    rank, world = distributed.current()
    cfg, built, weights = load_run_for_sampling(run_dir)
    ev = cfg.eval
    diffusion = make_diffusion(cfg)
    _, val = open_dataset(
        cfg.data.root, num_frames=cfg.data.num_frames, size=cfg.data.image_size,
        val_fraction=cfg.data.val_fraction, cache_dir=cfg.data.cache_dir, seed=cfg.data.split_seed,
        frame_sampling=cfg.data.frame_sampling,
    )  # fmt: skip
    n = min(num_videos or ev.num_videos, len(val))
    if n == 0:
        raise ValueError(f"{run_dir}: the validation split is empty (data.val_fraction)")
    drawn = clips_mod.draw(val, n, ev.seed)  # the same clips on every rank and every run
    items = [val[i] for i in drawn.positions]
    rows = [val.indices[i] for i in drawn.positions]  # the clips' rows in the decoded cache
    captions = [it["caption"] for it in items]
    noise = initial_noise(cfg, n, ev.seed)  # (N, T, C, H, W): clip i's noise on every rank
    ref_kps = [_reference_keypoints(val.cache, j) for j in rows]

    exact = all(k is not None for k in ref_kps)  # the synthetic set: exact keypoints
    passes, perm = audit_mod.conditions(captions, ev.seed)  # real data: estimated keypoints
    meta = {
        "checkpoint": RunDir(run_dir).latest_checkpoint(), "weights": weights, "seed": ev.seed,
        "num_videos": n, "clips": [it["name"] for it in items], "passes": list(passes),
        "permutation": perm, "sample_steps": cfg.diffusion.sample_steps,
        "guidance_scale": cfg.diffusion.guidance_scale,
    }  # fmt: skip

    # -- sampling: every rank, its share, on its device (real data: saved samples are reused) --
    memory = PeakMemory(device).start()
    times = time_sampling(built, diffusion, captions, noise, cfg=cfg, device=device,
                          repeats=ev.timing_videos)  # fmt: skip
    saved = None if exact else pose_scoring.load_samples(run_dir, meta)
    reuse = distributed.all_reduce_max(0.0 if saved is not None else 1.0) == 0.0
    if reuse:
        videos = saved  # every rank found them: nothing is sampled twice
    else:
        videos = {
            name: sample_shared(built, diffusion, caps, noise, cfg=cfg, device=device,
                                batch_size=ev.batch_size)
            for name, caps in passes.items()
        }  # fmt: skip
    mine = 0 if reuse else len(distributed.shard(n, rank, world)) * len(passes)
    report = DeviceReport(rank, str(device), device_name(device), mine, times, memory.peak(),
                          memory.kind)  # fmt: skip
    reports = gather_reports(report)
    if rank != 0:
        return None

    # -- scoring: rank 0 ---------------------------------------------------------------------
    refs = np.stack(
        [((it["video"].permute(0, 2, 3, 1) + 1) * 127.5).round().byte().numpy() for it in items]
    )
    joints = None  # real signers: the estimated joints, drawn over the report's videos
    if exact:
        audit_metrics, detail = audit_mod.score(videos, ref_kps, perm, drawn.recordings)
        detail["keypoints"], source = EXACT, "exact"
        floor = audit_mod.blob_errors({"reference": refs}, ref_kps)["reference"]
        audit_metrics.update(floor_mod.floor_metrics(floor, {}))
        detail["floor"] = {"description": EXACT_FLOOR, "per_video": floor}
    else:
        audit_metrics, detail, source, joints = _score_real(
            run_dir, videos, meta, val.cache, rows, perm, drawn.recordings, reuse
        )
    fakes = videos["correct"]
    metrics: dict[str, Metric] = {
        f"eval_{k}": Metric.of(float(v)) for k, v in drawn.counts.items()
    }  # eval_clips, eval_recordings, eval_signers: what every number below rests on
    metrics["psnr"] = mean_metric([psnr(f, r) for f, r in zip(fakes, refs, strict=True)], "PSNR")
    metrics["ssim"] = mean_metric([ssim(f, r) for f, r in zip(fakes, refs, strict=True)], "SSIM")
    temporal = [temporal_consistency(f) for f in fakes]
    metrics["temporal_cos"] = mean_metric([tc["cosine"] for tc in temporal], "cosine")
    metrics["temporal_l1"] = mean_metric([tc["l1"] for tc in temporal], "L1")
    metrics["reference_temporal_cos"] = mean_metric(
        [temporal_consistency(r)["cosine"] for r in refs], "cosine"
    )
    metrics["fvd"] = fvd(refs, fakes, ev.i3d_path)
    metrics["lpips"] = lpips_distance(refs, fakes, torch_home=ev.torch_home, resize_to=64)
    metrics.update(audit_metrics)
    top = max(reports, key=lambda r: r.peak_bytes)
    metrics["inference_s_per_video"] = Metric.of(
        median(t for r in reports for t in r.seconds_per_video)
    )
    metrics["inference_peak_memory_bytes"] = Metric.of(top.peak_bytes)
    counts = built.parameter_counts()
    result = {
        "weights": weights,
        "keypoints_source": source,
        "keypoints_warning": detail.get("keypoints_warning", ""),
        "samples_reused": reuse,
        "num_videos": n,
        "seed": ev.seed,
        "clips": drawn.to_json(ev.seed),
        "sample_steps": cfg.diffusion.sample_steps,
        "guidance_scale": cfg.diffusion.guidance_scale,
        "inference_peak_memory_kind": top.peak_kind,
        "inference_device": f"{top.device} ({top.name})",
        "inference_ranks": [r.to_json() for r in reports],
        "parameters": counts,
        "metrics": {k: m.to_json() for k, m in metrics.items()},
        "audit": detail,
        "definitions": DEFINITIONS,
    }
    atomic.write_json(run_dir / EVAL_JSON, result)
    _write_videos(run_dir, cfg, meta, passes, {"reference": refs, **videos}, detail, joints,
                  drawn.recordings)  # fmt: skip
    lines = ["metric,value,reason"] + [
        f'{k},{"" if m.value is None else m.value},"{m.reason}"' for k, m in metrics.items()
    ]
    lines += [f"{k},{v}," for k, v in counts.items()]
    lines += [f'inference_device,,"{result["inference_device"]}"']
    atomic.write_text(run_dir / EVAL_CSV, "\n".join(lines) + "\n")
    return result


EXACT = "exact: the synthetic set's blob keypoints, detected by colour in the generated frames"
EXACT_FLOOR = ("DTW-MJE of the blobs detected in the reference frames against the exact keypoints "
               "they were drawn from: the lowest a perfect model could score")  # fmt: skip


def _write_videos(
    run_dir: Path,
    cfg: Config,
    meta: dict[str, Any],
    passes: dict[str, list[str]],
    videos: dict[str, np.ndarray],
    detail: dict[str, Any],
    joints: dict[str, list[Any]] | None,
    recordings: list[str],
) -> None:
    """The first ``eval.video_clips`` clips as videos for the report, and in TensorBoard;
    ``passes``: the captions each pass was sampled with."""
    names = meta["clips"]
    k = min(cfg.eval.video_clips, len(names))
    if k == 0:
        return
    per = detail.get("per_video") or {}
    clips = [{"name": names[i], "recording": recordings[i], "caption": passes["correct"][i],
              "shuffled_caption": passes["shuffled"][i],
              "dtw_mje": {p: (per.get(p) or [None] * k)[i] for p in ("correct", "shuffled", "empty")}}
             for i in range(k)]  # fmt: skip
    from torch.utils.tensorboard import SummaryWriter

    step = checkpoint_meta(RunDir(run_dir).checkpoints, meta["checkpoint"] or "").get("step")
    index, rows = showcase.write(run_dir, clips, videos, fps=cfg.eval.video_fps, joints=joints,
                                 step=step, weights=meta["weights"])  # fmt: skip
    tb = SummaryWriter(log_dir=str(RunDir(run_dir).tb))  # its own event file beside training's
    try:
        for i, (clip, row) in enumerate(zip(index["clips"], rows, strict=True)):
            tb._get_file_writer().add_summary(
                video_summary(f"eval/clip{i:02d} reference | correct | shuffled", row,
                              cfg.eval.video_fps), step or 0)  # fmt: skip
            tb.add_text(f"eval/clip{i:02d}", f"correct: {clip['caption']}  \nshuffled: "
                        f"{clip['shuffled_caption']}", step or 0)  # fmt: skip
    finally:
        tb.close()


def _score_real(
    run_dir: Path,
    videos: dict[str, np.ndarray],
    meta: dict[str, Any],
    cache: Any,
    rows: list[int],
    perm: list[int],
    recordings: list[str],
    reused: bool,
) -> tuple[dict[str, Metric], dict[str, Any], str, dict[str, list[Any]] | None]:
    """Real signers: save the samples (unless they are the saved ones), then MediaPipe keypoints
    of samples and references (cached clips ``rows``), the detection gap and the floor; the
    joints per pass (None without a pose environment)."""
    if not reused:
        pose_scoring.save_samples(run_dir, videos, meta)
    env = pose_env.find()
    if not env.ok:
        na = {k: Metric.na(env.reason) for k in (*audit_mod.KEYS, *DETECTION, *FLOOR)}
        return na, {"keypoints": f"none: {env.reason}"}, "none", None
    refs_npy = cache.path / "videos.npy"
    workers = threads.allocation()[0]
    errors, detail, joints = pose_scoring.pose_errors(run_dir, videos, refs_npy, rows, env,
                                                      workers=workers)  # fmt: skip
    ref_joints = joints["reference"]
    detail["keypoints_warning"] = resolution_warning(cache.size)  # "" at 64 px and above
    metrics, audit_detail = pose_scoring.pose_metrics(errors, detail, perm, recordings)
    try:  # the floor is context: a source that cannot be read again makes it N/A, not the run
        native, info = floor_mod.native_joints(cache, rows, pose_scoring.keypoints_dir(refs_npy),
                                               env, workers=workers)  # fmt: skip
    except Exception as e:  # any failure of decoding or estimation: the reason
        why = f"estimator floor failed: {type(e).__name__}: {e}"
        metrics.update({k: Metric.na(why) for k in FLOOR})
        detail["floor"] = {"description": floor_mod.DESCRIPTION, "error": why}
        return metrics, {**audit_detail, **detail}, "estimated", joints
    floor, unscorable = floor_mod.floor_errors(ref_joints, native)
    metrics.update(floor_mod.floor_metrics(floor, unscorable))
    detail["floor"] = {"description": floor_mod.DESCRIPTION, "per_video": floor,
                       "unscorable": unscorable, **info}  # fmt: skip
    return metrics, {**audit_detail, **detail}, "estimated", joints


def format_metrics(result: dict[str, Any]) -> str:
    """One line per metric: value, or N/A (reason)."""
    c = result.get("clips") or {}
    drawn = f" from {c['recordings']} recordings of {c['signers']} signers" if c else ""
    lines = [f"weights: {result['weights']}, {result['num_videos']} videos{drawn}, "
             f"seed {result['seed']}"]  # fmt: skip
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
