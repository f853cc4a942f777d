"""Gaussian diffusion: cosine noise schedule, epsilon- or v-prediction loss and a DDIM sampler.

What the network predicts (``prediction``):

* ``"eps"``: the noise, as in DDPM/DiT. Its MSE equals the x0 error weighted by the signal-to-noise
  ratio alpha_bar / (1 - alpha_bar), which vanishes at high noise: the loss barely asks the model
  what the clean video should be where only the condition can tell.
* ``"v"``: v = sqrt(alpha_bar) * eps - sqrt(1 - alpha_bar) * x0 (Salimans & Ho, 2022, used by
  Imagen Video and Stable Diffusion 2). Its MSE is the x0 error weighted by 1 / (1 - alpha_bar) >= 1,
  so every noise level counts. Both give the same DDIM sampler: the output is converted to
  (x0, eps) for each update.

Everything here runs in fp32 (the schedule is computed in fp64), whatever precision the model
uses: a model function receives fp32 ``x_t`` and its output is cast back to fp32, so a bf16
model only has to cast its inputs (``VideoDiT`` does that itself).

Classifier-free guidance (Ho & Salimans, 2022). The trainer drops the caption with probability
p (replaces it with the empty string ``""``, which the tokenizer still turns into ``[CLS] [SEP]``),
so one network learns both the conditional and the unconditional noise prediction. At sampling,
the caller passes two model functions, ``model_fn`` (the caption) and ``uncond_fn`` (the empty
caption), and ``ddim_sample`` combines them as
``eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)``. With ``guidance_scale == 1`` the
result is ``eps_cond`` and ``uncond_fn`` is never called. A caller who prefers one batched forward
pass can instead pass a ``model_fn`` that already returns the guided epsilon (scale 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t) -> eps or v
Prediction = Literal["eps", "v"]
PREDICTIONS: tuple[str, ...] = get_args(Prediction)


def cosine_betas(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule: (num_timesteps,) fp64 betas.

    alpha_bar(t) = cos(((t / T) + s) / (1 + s) * pi / 2) ** 2 and
    beta_t = min(1 - alpha_bar(t + 1) / alpha_bar(t), max_beta).
    """

    def alpha_bar(i: int) -> float:
        return math.cos((i / num_timesteps + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar(i + 1) / alpha_bar(i), max_beta) for i in range(num_timesteps)]
    return torch.tensor(betas, dtype=torch.float64)


def guided_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: eps_uncond + scale * (eps_cond - eps_uncond).

    Named for eps, but applied to the model output whichever it is: the combination is affine,
    and eps is affine in v at a fixed x_t, so guiding v guides eps by the same rule.
    """
    return eps_uncond + scale * (eps_cond - eps_uncond)


def ddim_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """Evenly spaced training timesteps for a DDIM sampler, descending from T-1 to 0."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"DDIM steps must be in [1, {num_timesteps}], got {steps}")
    if steps == 1:
        return [num_timesteps - 1]
    # Integer floor of i * (T-1)/(steps-1): strictly increasing because the spacing is >= 1.
    return [i * (num_timesteps - 1) // (steps - 1) for i in range(steps)][::-1]


class GaussianDiffusion:
    """Forward process q(x_t | x_0), the eps- or v-MSE training loss and deterministic DDIM."""

    def __init__(
        self, num_timesteps: int, betas: torch.Tensor | None = None, prediction: Prediction = "eps"
    ) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.num_timesteps = num_timesteps
        self.prediction = prediction
        self.betas = cosine_betas(num_timesteps) if betas is None else betas.double()
        if self.betas.shape != (num_timesteps,):
            raise ValueError(f"expected {num_timesteps} betas, got {tuple(self.betas.shape)}")
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)  # (T,) fp64, alpha_bar_t

    def _coef(self, values: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
        """Gather fp64 (T,) values at timesteps t (B,) -> fp32 (B, 1, ..., 1) for broadcasting."""
        out = values.to(t.device)[t.long()].float()
        return out.view(-1, *([1] * (ndim - 1)))

    def _signal_noise(self, t: torch.Tensor, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t) at timesteps t, shaped to broadcast."""
        a = self._coef(self.alphas_cumprod.sqrt(), t, ndim)
        s = self._coef((1.0 - self.alphas_cumprod).sqrt(), t, ndim)
        return a, s

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Diffuse x0 to step t: sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise."""
        a, s = self._signal_noise(t, x0.ndim)
        return a * x0.float() + s * noise.float()

    def target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """What the model should output at (x0, t, noise): the noise, or v."""
        if self.prediction == "eps":
            return noise.float()
        a, s = self._signal_noise(t, x0.ndim)
        return a * noise.float() - s * x0.float()

    def training_loss(
        self, model_fn: ModelFn, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """Scalar MSE between model_fn(q_sample(x0, t, noise), t) and ``target(x0, t, noise)``."""
        x_t = self.q_sample(x0, t, noise)
        out = model_fn(x_t, t).float()
        return F.mse_loss(out, self.target(x0, t, noise))

    def to_x0_eps(
        self, x_t: torch.Tensor, out: torch.Tensor, a_t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Model output at a step with alpha_bar ``a_t`` (0-dim) -> predicted (x0, eps)."""
        if self.prediction == "eps":
            return (x_t - (1 - a_t).sqrt() * out) / a_t.sqrt(), out
        x0 = a_t.sqrt() * x_t - (1 - a_t).sqrt() * out
        eps = (1 - a_t).sqrt() * x_t + a_t.sqrt() * out
        return x0, eps

    def sample_timesteps(
        self,
        batch: int,
        generator: torch.Generator | None,
        device: torch.device | str,
        *,
        high_noise_prob: float = 0.0,
    ) -> torch.Tensor:
        """Training timesteps (batch,) long, drawn on the generator's device.

        Uniform over [0, T); with ``high_noise_prob > 0`` that share is redrawn from the noisier
        half [T/2, T). Why: at high noise only the condition (the caption) tells where the content
        is, and uniform ε-MSE spends little of its gradient there (x_t is almost ε already).
        """
        gen_device = generator.device if generator is not None else torch.device("cpu")
        t = torch.randint(0, self.num_timesteps, (batch,), generator=generator, device=gen_device)
        if high_noise_prob > 0:
            high = torch.randint(self.num_timesteps // 2, self.num_timesteps, (batch,),
                                 generator=generator, device=gen_device)  # fmt: skip
            pick = torch.rand(batch, generator=generator, device=gen_device) < high_noise_prob
            t = torch.where(pick, high, t)
        return t.to(device)

    @torch.no_grad()
    def ddim_sample(
        self,
        model_fn: ModelFn,
        shape: tuple[int, ...],
        *,
        steps: int,
        generator: torch.Generator,
        device: torch.device | str | None = None,
        guidance_scale: float = 1.0,
        uncond_fn: ModelFn | None = None,
        clip_x0: bool = True,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Deterministic DDIM (eta = 0) from pure noise; returns fp32 x_0 of ``shape``.

        The initial noise comes from ``generator`` on its own device (then moves to ``device``,
        default the generator's), so one seed gives the same sample on any device; ``noise`` (of
        ``shape``) replaces that draw, so a rank can sample its share of a batch. With
        ``guidance_scale != 1`` the unconditional model ``uncond_fn`` is required (see the module
        docstring); ``model_fn`` is then the conditional model. Predicted x_0 is clipped to [-1, 1] unless ``clip_x0`` is False.
        """
        if guidance_scale != 1.0 and uncond_fn is None:
            raise ValueError("guidance_scale != 1 needs uncond_fn (the empty-caption model)")
        device = torch.device(device) if device is not None else generator.device
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=generator.device)
        elif tuple(noise.shape) != tuple(shape):
            raise ValueError(f"noise of shape {tuple(noise.shape)}, expected {tuple(shape)}")
        x = noise.float().to(device)
        ab = self.alphas_cumprod.to(device)  # (T,) fp64
        seq = ddim_timesteps(self.num_timesteps, steps)
        for i, step in enumerate(seq):
            t = torch.full((shape[0],), step, device=device, dtype=torch.long)  # (B,)
            out = model_fn(x, t).float()
            if guidance_scale != 1.0:
                out = guided_eps(out, uncond_fn(x, t).float(), guidance_scale)
            a_t = ab[step].float()
            a_prev = ab[seq[i + 1]].float() if i + 1 < len(seq) else torch.ones_like(a_t)
            x0, eps = self.to_x0_eps(x, out, a_t)
            if clip_x0:
                x0 = x0.clamp(-1.0, 1.0)
                # Re-derive eps from the clipped x0, so the update stays on the DDIM path.
                eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        return x
