"""Sampling videos from captions: DDIM with optional classifier-free guidance, GIFs, TensorBoard.

Used by the trainer (samples during and after training), by ``python -m text2sign sample`` and by
evaluation. Sampling always runs on a plain fp32 copy of the model, loaded with the EMA weights
when EMA is on, else with the trained weights consolidated by DeepSpeed's zero_to_fp32.
"""

from __future__ import annotations

import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from text2sign import atomic, checkpoint
from text2sign.config import Config, load_resolved
from text2sign.diffusion import GaussianDiffusion, cosine_betas
from text2sign.errors import RunDirError
from text2sign.modeling import Built, build_model
from text2sign.rundir import RunDir

GIF_FRAME_MS = 125  # 8 frames per second


def make_diffusion(cfg: Config) -> GaussianDiffusion:
    d = cfg.diffusion
    return GaussianDiffusion(
        d.timesteps,
        cosine_betas(d.timesteps, s=d.cosine_s, max_beta=d.max_beta),
        prediction=d.prediction,
    )


def slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:limit] or "empty"


def load_weights(built: Built, weights: dict[str, torch.Tensor]) -> None:
    """Load fp32 weights into the trainable model; every parameter must be covered."""
    missing, unexpected = built.model.load_state_dict(weights, strict=False)
    params = {n for n, _ in built.model.named_parameters()}
    missing_params = [m for m in missing if m in params]
    if unexpected or missing_params:
        raise RunDirError(
            f"weights do not match the model: missing {missing_params[:3]}, unexpected {unexpected[:3]}"
        )


@torch.no_grad()
def sample_videos(
    built: Built,
    diffusion: GaussianDiffusion,
    captions: list[str],
    *,
    cfg: Config,
    seed: int,
    device: torch.device | str = "cpu",
    steps: int | None = None,
    guidance_scale: float | None = None,
) -> np.ndarray:
    """DDIM samples for ``captions``: uint8 (N, T, H, W, 3). Deterministic for a seed."""
    model = built.model.to(device).eval()
    built.text.to(device)
    n, t_frames, size = len(captions), cfg.data.num_frames, cfg.data.image_size
    cond = built.encode(captions, torch.device(device))
    uncond = built.encode([""] * n, torch.device(device))
    scale = cfg.diffusion.guidance_scale if guidance_scale is None else guidance_scale
    x = diffusion.ddim_sample(
        lambda x_t, t: model(x_t, t, **cond),
        (n, t_frames, 3, size, size),
        steps=steps or cfg.diffusion.sample_steps,
        generator=torch.Generator().manual_seed(seed),
        device=device,
        guidance_scale=scale,
        uncond_fn=lambda x_t, t: model(x_t, t, **uncond),
    )  # (N, T, C, H, W) in [-1, 1]
    return to_uint8(x)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, T, C, H, W) in [-1, 1] -> uint8 (N, T, H, W, C)."""
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 1, 3, 4, 2).cpu().numpy()


def write_gif(path: Path, frames: np.ndarray) -> None:
    """uint8 (T, H, W, 3) -> looping GIF (written to a temp name, then renamed)."""
    tmp = path.with_name(f".{path.name}.tmp.gif")
    iio.imwrite(tmp, frames, duration=GIF_FRAME_MS, loop=0)
    tmp.replace(path)


class SampleWriter:
    """Writes sample GIFs (+ TensorBoard images and captions) for fixed validation captions."""

    def __init__(self, cfg: Config, diffusion, val_ds, run: RunDir, tb) -> None:
        # A clean fp32 copy: the engine's module is bf16 and, under ZeRO-3, partitioned.
        self.cfg, self.diffusion, self.run, self.tb = cfg, diffusion, run, tb
        self.built = build_model(cfg, run.path, None)
        captions = list(dict.fromkeys(val_ds.captions)) if len(val_ds) else []
        self.captions = captions[: cfg.train.num_samples]

    def write(self, step: int, weights: dict[str, torch.Tensor], kind: str) -> list[Path]:
        if not self.captions:
            return []
        load_weights(self.built, weights)
        videos = sample_videos(
            self.built, self.diffusion, self.captions, cfg=self.cfg, seed=self.cfg.train.seed
        )
        self.run.samples.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, (caption, frames) in enumerate(zip(self.captions, videos, strict=True)):
            path = self.run.samples / f"step{step:08d}_{i:02d}_{slug(caption)}.gif"
            write_gif(path, frames)
            paths.append(path)
            if self.tb is not None:
                self.tb.add_video_frames(f"samples/{i:02d}", frames, step)
                self.tb.add_text(f"samples/{i:02d}/caption", caption, step)
        atomic.write_json(
            self.run.samples / "index.json",
            {
                "step": step,
                "weights": kind,
                "captions": self.captions,
                "files": [p.name for p in paths],
            },
        )
        return paths


def load_run_for_sampling(run_dir: Path) -> tuple[Config, Built, str]:
    """Config + model with the latest checkpoint's sampling weights (EMA if on). No DeepSpeed engine."""
    run = RunDir(run_dir)
    if not run.config.exists():
        raise RunDirError(f"{run_dir}: not a text2sign run dir (no config.yaml)")
    cfg = load_resolved(run.config)
    tag = run.latest_checkpoint()
    if tag is None:
        raise RunDirError(f"{run_dir}: no complete checkpoint yet")
    built = build_model(cfg, run.path, None)
    ema = checkpoint.read_ema(run.checkpoints, tag) if cfg.ema.enabled else None
    if ema is not None:
        load_weights(built, ema)
        kind = "ema"
    else:
        load_weights(
            built, checkpoint.fp32_weights(run.checkpoints, tag, zero_stage=cfg.train.zero_stage)
        )
        kind = "raw"
    return cfg, built, kind
