"""Full-profile evaluation speed on one GPU, and evaluation's share of a run's wall time.

The `full` profile's DiT (d14, 16x64x64, 50 DDIM steps, its guidance scale) with random weights:
speed does not depend on the weights. The text encoder is the tiny DistilBERT stand-in (no weights
can be downloaded here); it runs once per video against 50+ DiT forwards, so it barely counts.
Timed through the function evaluation samples with (``sample_videos``), a few DDIM steps per
case scaled to the profile's 50 (every step costs one forward; sampling runs the fp32 model):

* a single clip (what ``inference_s_per_video`` reports) and a batch of ``eval.batch_size``
  clips at the profile's guidance scale;
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

import torch

AUDIT_PASSES = 3  # correct, shuffled, empty (text2sign/evaluation/audit.py)
HOW2SIGN_TRAIN_CLIPS = 31_128  # How2Sign train sentences as its paper reports (Duarte et al., 2021)


def measure(device: str = "cuda", profile: str = "full", cfg_scale: float = 3.0,
            timed_steps: int = 4, sets: tuple[str, ...] = ()) -> dict:  # fmt: skip
    """Time sampling on ``device`` (CPU only to check this script, with the tiny profile).

    Every DDIM step costs the same (one forward of the DiT, two with unbatched guidance), so each
    case runs ``timed_steps`` steps once and is scaled to the profile's ``sample_steps``: the
    whole 50-step sampling of a d14 batch in fp32 would not fit the check's budget.
    """
    from text2sign.config import load_config
    from text2sign.evaluation.inference import PeakMemory, device_name
    from text2sign.evaluation.sampling import initial_noise, make_diffusion, sample_videos
    from text2sign.models.build import build_model

    cfg = load_config(profile=profile, overrides=["text.encoder=tiny", *sets])
    device = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    batch = cfg.eval.batch_size
    captions = [f"clip {i} signs a word" for i in range(batch)]
    with torch.device(device):
        built = build_model(cfg, None, captions)
    diffusion = make_diffusion(cfg)
    noise = initial_noise(cfg, batch, 0)
    memory = PeakMemory(device).start()

    def per_step(n: int, scale: float, cfg_batch: bool) -> float:
        """Seconds per DDIM step of ``n`` clips at guidance ``scale``."""
        cfg.perf.cfg_batch = cfg_batch
        sync()
        t0 = time.perf_counter()
        sample_videos(built, diffusion, captions[:n], cfg=cfg, device=device, noise=noise[:n],
                      batch_size=n, steps=timed_steps, guidance_scale=scale)  # fmt: skip
        sync()
        return (time.perf_counter() - t0) / timed_steps

    per_step(1, cfg.diffusion.guidance_scale, cfg.perf.cfg_batch)  # warm-up: kernels, allocator
    steps = cfg.diffusion.sample_steps
    single = per_step(1, cfg.diffusion.guidance_scale, cfg.perf.cfg_batch)
    batched = per_step(batch, cfg.diffusion.guidance_scale, cfg.perf.cfg_batch)
    cfg_two, cfg_one = per_step(batch, cfg_scale, False), per_step(batch, cfg_scale, True)
    return {
        "device": device_name(device),
        "preset": cfg.model.preset,
        "shape": f"{cfg.data.num_frames}x{cfg.data.image_size}x{cfg.data.image_size}",
        "ddim_steps": steps,
        "timed_steps": timed_steps,
        "guidance_scale": cfg.diffusion.guidance_scale,
        "s_per_clip": single * steps,
        "s_per_ddim_step": single,
        "s_per_clip_batched": batched * steps / batch,
        "batch_size": batch,
        "cfg_scale": cfg_scale,
        "s_per_clip_cfg_two_forwards": cfg_two * steps / batch,
        "s_per_clip_cfg_batched": cfg_one * steps / batch,
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
    ap.add_argument("--timed-steps", type=int, default=4, help="DDIM steps timed per case")
    ap.add_argument("--cfg-scale", type=float, default=3.0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no CUDA")
        return
    result = measure(cfg_scale=args.cfg_scale, timed_steps=args.timed_steps)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
