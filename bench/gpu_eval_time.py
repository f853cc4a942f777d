"""Full-profile evaluation speed on one GPU: seconds per clip and per DDIM step.

The `full` profile's DiT (d14, 16x64x64, 50 DDIM steps, its guidance scale) with random weights:
speed does not depend on the weights. The text encoder is the tiny DistilBERT stand-in (no weights
can be downloaded here); it runs once per video against 50+ DiT forwards, so it barely counts.
Times single clips (what ``inference_s_per_video`` reports) and a batch of ``eval.batch_size``
clips, through the very functions evaluation uses (:mod:`text2sign.evaluation.inference`), then estimates
the whole evaluation (``eval.num_videos`` clips x 3 audit passes) per GPU.

``python -m bench.gpu_eval_time --json OUT.json``; without CUDA: ``skipped: no CUDA``, exit 0.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from statistics import median

import torch


def measure(clips: int = 4, device: str = "cuda", profile: str = "full") -> dict:
    """Time sampling on ``device`` (CPU only to check this script, with the tiny profile)."""
    from text2sign.config import load_config
    from text2sign.evaluation.inference import PeakMemory, device_name, time_sampling
    from text2sign.evaluation.sampling import initial_noise, make_diffusion, sample_videos
    from text2sign.models.build import build_model

    cfg = load_config(profile=profile, overrides=["text.encoder=tiny"])
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    captions = [f"clip {i} signs a word" for i in range(max(clips, cfg.eval.batch_size))]
    built = build_model(cfg, None, captions)
    diffusion = make_diffusion(cfg)
    noise = initial_noise(cfg, len(captions), 0)
    memory = PeakMemory(device).start()
    single = time_sampling(built, diffusion, captions, noise, cfg=cfg, device=device,
                           repeats=clips)  # fmt: skip
    batch = cfg.eval.batch_size
    sync()
    t0 = time.perf_counter()
    sample_videos(built, diffusion, captions[:batch], cfg=cfg, device=device, noise=noise[:batch],
                  batch_size=batch)  # fmt: skip
    batched = (time.perf_counter() - t0) / batch
    per_clip = median(single)
    forwards = 2 if cfg.diffusion.guidance_scale != 1.0 else 1
    videos = cfg.eval.num_videos * 3  # the audit's three passes
    return {
        "device": device_name(device),
        "preset": cfg.model.preset,
        "shape": f"{cfg.data.num_frames}x{cfg.data.image_size}x{cfg.data.image_size}",
        "ddim_steps": cfg.diffusion.sample_steps,
        "dit_forwards_per_step": forwards,
        "s_per_clip": per_clip,
        "s_per_ddim_step": per_clip / cfg.diffusion.sample_steps,
        "s_per_clip_batched": batched,
        "batch_size": batch,
        "clips_timed": len(single),
        "peak_bytes": memory.peak(),
        "full_eval_videos": videos,
        "full_eval_estimate_s_one_gpu": videos * batched,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no CUDA")
        return
    result = measure(args.clips)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
