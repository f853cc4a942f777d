"""Full-profile evaluation speed on one GPU, and evaluation's share of a run's wall time.

The `full` profile's DiT (d14, 16x64x64, 50 DDIM steps, its guidance scale) with random weights:
speed does not depend on the weights. The text encoder is the tiny DistilBERT stand-in (no weights
can be downloaded here); it runs once per video against 50+ DiT forwards, so it barely counts.
Timed through the very functions evaluation uses (:mod:`text2sign.evaluation.inference`):

* single clips (what ``inference_s_per_video`` reports) and a batch of ``eval.batch_size`` clips
  at the profile's guidance scale;
* with classifier-free guidance (``--cfg-scale``): two forwards per DDIM step against one
  batched forward (``perf.cfg_batch``), same batch.

:func:`eval_share` turns these and a measured training micro-step into evaluation's share of the
profile's whole run: training steps from the schedule (epochs over ``--train-clips`` clips on
the profile's GPUs), the trainer's sample GIFs, the timing clips and the three audit passes over
``eval.num_videos`` clips, divided among the ranks. Scoring (rank 0, CPU) is not in it.

``python -m bench.gpu_eval_time --json OUT.json``; without CUDA: ``skipped: no CUDA``, exit 0.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from statistics import median

import torch

AUDIT_PASSES = 3  # correct, shuffled, empty (text2sign/evaluation/audit.py)
HOW2SIGN_TRAIN_CLIPS = 31_128  # How2Sign's train split (Duarte et al., CVPR 2021), the default


def _timed(fn, sync) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def measure(clips: int = 4, device: str = "cuda", profile: str = "full", cfg_scale: float = 3.0,
            sets: tuple[str, ...] = ()) -> dict:  # fmt: skip
    """Time sampling on ``device`` (CPU only to check this script, with the tiny profile)."""
    from text2sign.config import load_config
    from text2sign.evaluation.inference import PeakMemory, device_name, time_sampling
    from text2sign.evaluation.sampling import initial_noise, make_diffusion, sample_videos
    from text2sign.models.build import build_model

    cfg = load_config(profile=profile, overrides=["text.encoder=tiny", *sets])
    device = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    captions = [f"clip {i} signs a word" for i in range(max(clips, cfg.eval.batch_size))]
    with torch.device(device):
        built = build_model(cfg, None, captions)
    diffusion = make_diffusion(cfg)
    noise = initial_noise(cfg, len(captions), 0)
    memory = PeakMemory(device).start()
    single = time_sampling(built, diffusion, captions, noise, cfg=cfg, device=device,
                           repeats=clips)  # fmt: skip
    batch = cfg.eval.batch_size
    caps, first = captions[:batch], noise[:batch]

    def batched(scale: float, cfg_batch: bool) -> float:
        cfg.perf.cfg_batch = cfg_batch
        return _timed(lambda: sample_videos(built, diffusion, caps, cfg=cfg, device=device,
                                            noise=first, batch_size=batch, guidance_scale=scale),
                      sync) / batch  # fmt: skip

    per_clip_batched = batched(cfg.diffusion.guidance_scale, cfg.perf.cfg_batch)
    cfg_two, cfg_one = batched(cfg_scale, False), batched(cfg_scale, True)
    per_clip = median(single)
    return {
        "device": device_name(device),
        "preset": cfg.model.preset,
        "shape": f"{cfg.data.num_frames}x{cfg.data.image_size}x{cfg.data.image_size}",
        "ddim_steps": cfg.diffusion.sample_steps,
        "guidance_scale": cfg.diffusion.guidance_scale,
        "s_per_clip": per_clip,
        "s_per_ddim_step": per_clip / cfg.diffusion.sample_steps,
        "s_per_clip_batched": per_clip_batched,
        "batch_size": batch,
        "clips_timed": len(single),
        "cfg_scale": cfg_scale,
        "s_per_clip_cfg_two_forwards": cfg_two,
        "s_per_clip_cfg_batched": cfg_one,
        "peak_bytes": memory.peak(),
    }


def eval_share(profile: str, micro_step_s: float, s_per_clip: float, s_per_clip_batched: float,
               *, train_clips: int = HOW2SIGN_TRAIN_CLIPS, sets: tuple[str, ...] = ()) -> dict:  # fmt: skip
    """Evaluation's share of one run of ``profile`` (per rank; all ranks share the work)."""
    from text2sign.config import load_config
    from text2sign.training.step import total_steps

    cfg = load_config(profile=profile, overrides=["text.encoder=tiny", *sets])
    t, ev = cfg.train, cfg.eval
    world = max(1, cfg.slurm.gpus_per_node) * cfg.slurm.nodes
    per_epoch_micro = train_clips // (t.batch_size * world)
    steps = total_steps(cfg, per_epoch_micro)
    train_s = steps * t.grad_accum * micro_step_s
    rounds = (steps // t.sample_every if t.sample_every else 0) + (1 if t.num_samples else 0)
    sample_videos = math.ceil(rounds * t.num_samples / world)
    eval_videos = math.ceil(ev.num_videos * AUDIT_PASSES / world)
    eval_s = (sample_videos + eval_videos) * s_per_clip_batched + ev.timing_videos * s_per_clip
    return {
        "profile": profile, "world_size": world, "train_clips": train_clips,
        "optimizer_steps": steps, "train_s_per_rank": train_s,
        "sample_videos_per_rank": sample_videos, "eval_videos_per_rank": eval_videos,
        "eval_s_per_rank": eval_s, "eval_share": eval_s / (train_s + eval_s),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--cfg-scale", type=float, default=3.0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no CUDA")
        return
    result = measure(args.clips, cfg_scale=args.cfg_scale)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
