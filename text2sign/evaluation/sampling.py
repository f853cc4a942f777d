"""Sampling videos from captions: DDIM with optional classifier-free guidance, GIFs, TensorBoard.

Used by the trainer's samples (:mod:`text2sign.evaluation.sample_writer`), by ``python -m text2sign sample``
and by evaluation, through :mod:`text2sign.evaluation.inference`, which shares the work between ranks. Sampling always runs on a plain fp32 copy of the model, loaded with the EMA weights
when EMA is on, else with the trained weights consolidated by DeepSpeed's zero_to_fp32.
"""

from __future__ import annotations

import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from text2sign.config import Config, load_resolved
from text2sign.errors import RunDirError
from text2sign.models.build import Built, build_model
from text2sign.models.diffusion import GaussianDiffusion, ModelFn, cosine_betas, guided_eps
from text2sign.run import weights
from text2sign.run.rundir import RunDir

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


def initial_noise(cfg: Config, n: int, seed: int) -> torch.Tensor:
    """The DDIM starting noise of ``n`` videos for ``seed``: fp32 CPU (N, T, C, H, W).

    Drawn for the whole set at once, so video i starts from the same noise whichever rank or
    batch samples it.
    """
    shape = (n, cfg.data.num_frames, 3, cfg.data.image_size, cfg.data.image_size)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def stack_text(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Two ``Built.encode`` results as one batch (a's rows first), padded to the longer caption.

    Padding is what the tokenizer's own padding is: mask False, states and ids 0; the model never
    looks at a masked token, so each row's output is what it would be alone.
    """
    length = max(t.shape[1] for t in (*a.values(), *b.values()))

    def pad(t: torch.Tensor) -> torch.Tensor:  # (B, L, ...) -> (B, length, ...)
        extra = torch.zeros((t.shape[0], length - t.shape[1], *t.shape[2:]), dtype=t.dtype,
                            device=t.device)  # fmt: skip
        return torch.cat([t, extra], dim=1)

    return {k: torch.cat([pad(a[k]), pad(b[k])]) for k in a}


def guided_batch_fn(model, cond: dict, uncond: dict, scale: float) -> ModelFn:
    """Classifier-free guidance in one forward per step (``perf.cfg_batch``): the conditional and
    the unconditional halves stacked along the batch, then ``guided_eps``."""
    both = stack_text(cond, uncond)

    def fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model(torch.cat([x_t, x_t]), torch.cat([t, t]), **both).float()  # (2B, T, C, H, W)
        c, u = out.chunk(2)
        return guided_eps(c, u, scale)

    return fn


@torch.no_grad()
def sample_videos(
    built: Built,
    diffusion: GaussianDiffusion,
    captions: list[str],
    *,
    cfg: Config,
    seed: int = 0,
    device: torch.device | str = "cpu",
    steps: int | None = None,
    guidance_scale: float | None = None,
    noise: torch.Tensor | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """DDIM samples for ``captions``: uint8 (N, T, H, W, 3). Deterministic for a seed.

    ``noise`` (N, T, C, H, W) replaces the seed's draw (see ``initial_noise``); ``batch_size``
    bounds how many videos go through the model at once (default: all).
    """
    device = torch.device(device)
    model = built.model.to(device).eval()
    built.text.to(device)
    n = len(captions)
    if noise is None:
        noise = initial_noise(cfg, n, seed)
    scale = cfg.diffusion.guidance_scale if guidance_scale is None else guidance_scale
    step = batch_size or max(n, 1)
    out = []
    for lo in range(0, n, step):
        caps = captions[lo : lo + step]
        cond = built.encode(caps, device)
        uncond = built.encode([""] * len(caps), device)
        batched = scale != 1.0 and cfg.perf.cfg_batch  # guidance in one forward per step
        x = diffusion.ddim_sample(
            guided_batch_fn(model, cond, uncond, scale)
            if batched
            else lambda x_t, t, c=cond: model(x_t, t, **c),
            tuple(noise[lo : lo + step].shape),
            steps=steps or cfg.diffusion.sample_steps,
            generator=torch.Generator(),  # unused: the noise is given
            device=device,
            guidance_scale=1.0 if batched else scale,
            uncond_fn=lambda x_t, t, u=uncond: model(x_t, t, **u),
            noise=noise[lo : lo + step],
        )  # (B, T, C, H, W) in [-1, 1]
        out.append(to_uint8(x))
    if not out:
        t_frames, size = cfg.data.num_frames, cfg.data.image_size
        return np.zeros((0, t_frames, size, size, 3), dtype=np.uint8)
    return np.concatenate(out)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, T, C, H, W) in [-1, 1] -> uint8 (N, T, H, W, C)."""
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 1, 3, 4, 2).cpu().numpy()


def write_gif(path: Path, frames: np.ndarray) -> None:
    """uint8 (T, H, W, 3) -> looping GIF (written to a temp name, then renamed)."""
    tmp = path.with_name(f".{path.name}.tmp.gif")
    iio.imwrite(tmp, frames, duration=GIF_FRAME_MS, loop=0)
    tmp.replace(path)


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
    ema = weights.read_ema(run.checkpoints, tag) if cfg.ema.enabled else None
    if ema is not None:
        load_weights(built, ema)
        kind = "ema"
    else:
        load_weights(
            built, weights.fp32_weights(run.checkpoints, tag, zero_stage=cfg.train.zero_stage)
        )
        kind = "raw"
    return cfg, built, kind
