"""Cosine schedule, forward process, eps and v losses and the DDIM sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from text2sign.models.diffusion import GaussianDiffusion, cosine_betas, ddim_timesteps, guided_eps

T = 50


def alpha_bar(t: float, s: float = 0.008) -> float:
    return np.cos((t / T + s) / (1 + s) * np.pi / 2) ** 2


def oracle(diffusion: GaussianDiffusion, x0: torch.Tensor):
    """A model that knows x0, hence the exact noise (or v) of any x_t."""

    def fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = diffusion.alphas_cumprod[t].float().view(-1, *[1] * (x0.ndim - 1))
        eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
        if diffusion.prediction == "eps":
            return eps
        return ab.sqrt() * eps - (1 - ab).sqrt() * x0  # v

    return fn


def test_cosine_schedule_matches_closed_form() -> None:
    betas = cosine_betas(T)
    assert betas.dtype == torch.float64 and betas.shape == (T,)
    assert (betas > 0).all() and (betas <= 0.999).all()
    assert betas[-1] == 0.999  # alpha_bar(T) ~ 0: the last beta is clipped
    for t in (0, 10, 25, 48):
        assert betas[t].item() == pytest.approx(1 - alpha_bar(t + 1) / alpha_bar(t), rel=1e-12)
    ac = GaussianDiffusion(T).alphas_cumprod
    assert (ac[1:] < ac[:-1]).all()
    for t in (0, 10, 25, 48):  # no clipping before the last step: ratio of closed forms
        assert ac[t].item() == pytest.approx(alpha_bar(t + 1) / alpha_bar(0), rel=1e-10)


def test_q_sample_formula_and_variance() -> None:
    d = GaussianDiffusion(T)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 8000, generator=g), torch.randn(4, 8000, generator=g)
    t = torch.tensor([0, 10, 30, 49])
    x_t = d.q_sample(x0, t, noise)
    for i, step in enumerate(t.tolist()):
        ab = d.alphas_cumprod[step].item()
        expected = math.sqrt(ab) * x0[i] + math.sqrt(1 - ab) * noise[i]
        torch.testing.assert_close(x_t[i], expected)
    assert x_t.std(dim=1).sub(1).abs().max() < 0.05  # variance preserving
    # t=0 is almost clean, t=T-1 almost pure noise.
    assert torch.corrcoef(torch.stack([x_t[0], x0[0]]))[0, 1] > 0.99
    assert torch.corrcoef(torch.stack([x_t[3], noise[3]]))[0, 1] > 0.99


def test_training_loss_is_epsilon_mse() -> None:
    d = GaussianDiffusion(T)
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(3, 2, 4, generator=g), torch.randn(3, 2, 4, generator=g)
    t = d.sample_timesteps(3, g, "cpu")
    assert d.training_loss(lambda x, t: noise, x0, t, noise).item() == 0.0
    zero = d.training_loss(lambda x, t: torch.zeros_like(x), x0, t, noise)
    assert zero.ndim == 0 and zero.item() == pytest.approx(noise.square().mean().item())
    bf16 = d.training_loss(lambda x, t: noise.bfloat16(), x0, t, noise)
    assert bf16.dtype == torch.float32 and 0 < bf16.item() < 1e-4


def test_v_target_and_loss_weight_every_noise_level() -> None:
    d = GaussianDiffusion(T, prediction="v")
    g = torch.Generator().manual_seed(2)
    x0, noise = torch.randn(4, 500, generator=g), torch.randn(4, 500, generator=g)
    t = torch.tensor([0, 10, 30, 49])
    ab = d.alphas_cumprod[t].float().view(-1, 1)
    v = ab.sqrt() * noise - (1 - ab).sqrt() * x0
    torch.testing.assert_close(d.target(x0, t, noise), v)
    assert d.training_loss(oracle(d, x0), x0, t, noise).item() == pytest.approx(0.0, abs=1e-10)
    # An output error delta in v is an x0 error of sqrt(1 - alpha_bar) * delta, so the v-MSE is
    # the x0-MSE weighted by 1 / (1 - alpha_bar): the high-noise steps keep their weight, unlike
    # eps, whose x0 weight alpha_bar / (1 - alpha_bar) is ~0 at t = T - 1.
    delta = 0.1 * torch.randn(4, 500, generator=g)
    x_t = d.q_sample(x0, t, noise)
    for i in range(4):
        a_t = ab[i, 0]
        x0_hat, eps_hat = d.to_x0_eps(x_t[i], v[i] + delta[i], a_t)
        torch.testing.assert_close(x0_hat - x0[i], -(1 - a_t).sqrt() * delta[i])
        x0_true, eps_true = d.to_x0_eps(x_t[i], v[i], a_t)
        torch.testing.assert_close(x0_true, x0[i], atol=1e-5, rtol=0)
        torch.testing.assert_close(eps_true, noise[i], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="prediction"):
        GaussianDiffusion(T, prediction="x0")  # type: ignore[arg-type]


def test_sample_timesteps_uniform_and_seeded() -> None:
    d = GaussianDiffusion(T)
    a = d.sample_timesteps(5000, torch.Generator().manual_seed(3), "cpu")
    b = d.sample_timesteps(5000, torch.Generator().manual_seed(3), "cpu")
    assert a.dtype == torch.long and torch.equal(a, b)
    assert a.min() == 0 and a.max() == T - 1 and len(a.unique()) == T
    assert abs(a.float().mean().item() - (T - 1) / 2) < 1.5


def test_ddim_timesteps_even_and_complete() -> None:
    assert ddim_timesteps(T, T) == list(range(T - 1, -1, -1))
    seq = ddim_timesteps(T, 10)
    assert len(seq) == 10 and seq[0] == T - 1 and seq[-1] == 0
    assert all(a > b for a, b in zip(seq, seq[1:], strict=False))
    assert ddim_timesteps(T, 1) == [T - 1]
    for bad in (0, T + 1):
        with pytest.raises(ValueError):
            ddim_timesteps(T, bad)


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("steps", [T, 10])
def test_ddim_with_true_noise_reconstructs_x0(steps: int, prediction: str) -> None:
    d = GaussianDiffusion(T, prediction=prediction)
    x0 = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(4)) * 1.8 - 0.9
    out = d.ddim_sample(oracle(d, x0), x0.shape, steps=steps, generator=torch.Generator())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)


def test_ddim_is_deterministic_per_seed() -> None:
    d = GaussianDiffusion(T)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (0.5 * x + t.view(-1, 1, 1) / T).bfloat16()  # a bf16 model: output is cast back

    def run(seed: int) -> torch.Tensor:
        return d.ddim_sample(
            model, (2, 3, 5), steps=7, generator=torch.Generator().manual_seed(seed)
        )

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert a.dtype == torch.float32 and a.abs().max() <= 1.0 + 1e-6


def test_guidance() -> None:
    d = GaussianDiffusion(T)
    cond = lambda x, t: 0.3 * x + 0.1  # noqa: E731
    uncond = lambda x, t: 0.2 * x  # noqa: E731

    def boom(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise AssertionError("uncond must not run at scale 1")

    def run(fn, **kw) -> torch.Tensor:
        return d.ddim_sample(fn, (2, 6), steps=5, generator=torch.Generator().manual_seed(5), **kw)

    assert torch.equal(run(cond, guidance_scale=1.0, uncond_fn=boom), run(cond))
    guided = run(cond, guidance_scale=3.0, uncond_fn=uncond)
    combined = run(lambda x, t: guided_eps(cond(x, t), uncond(x, t), 3.0))
    torch.testing.assert_close(guided, combined)
    assert not torch.allclose(guided, run(cond))
    with pytest.raises(ValueError, match="uncond_fn"):
        run(cond, guidance_scale=2.0)
