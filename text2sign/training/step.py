"""The pieces of one training step: stop signals, the micro-step loss, the batch, grad norm.

Kept out of :mod:`text2sign.training.train` so that file reads as the run's life (set up → resume → loop
→ end of run) and this one as what happens inside a step.
"""

from __future__ import annotations

import signal
from typing import Any

import torch

from text2sign.config import Config

STOP_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)


class StopFlag:
    """Set by SIGUSR2/SIGTERM; the loop finishes the current step, checkpoints and exits 75.

    USR2 is SLURM's "time limit ahead" (``--signal``) or a preemption notice: the run ends
    PREEMPTED and the job layer requeues it. SIGTERM is ``scancel`` (or SLURM ending the job): the
    run ends CANCELLED, checkpointed, and is never requeued by us (the job layer may refine the
    state to TIMEOUT or PREEMPTED from SLURM's own view of the job).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        for s in STOP_SIGNALS:
            signal.signal(s, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = signum

    def outcome(self, step: int) -> tuple[str, str, str]:
        """(state, cause, reason) of a run stopped by this flag at ``step``."""
        if self.signum == signal.SIGTERM:
            return ("CANCELLED", "cancel",
                    f"SIGTERM at step {step} (scancel or SLURM ending the job); checkpointed, "
                    "not requeued: --resume-study continues it")  # fmt: skip
        sig = signal.Signals(self.signum).name if self.signum else "a peer rank's signal"
        return "PREEMPTED", "signal", f"{sig} at step {step}; checkpointed, requeue to resume"


def total_steps(cfg: Config, per_epoch_micro: int) -> int:
    steps = cfg.train.epochs * per_epoch_micro // cfg.train.grad_accum
    return min(steps, cfg.train.max_steps) if cfg.train.max_steps else steps


class NonFinite(Exception):
    def __init__(self, step: int) -> None:
        self.step = step


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "video": torch.stack([it["video"] for it in items]),  # (B, T, C, H, W)
        "caption": [it["caption"] for it in items],
        "index": [it["index"] for it in items],
    }


def to_device(x: torch.Tensor, device, pin: bool) -> torch.Tensor:
    """Host tensor to ``device``; with ``pin`` (``perf.pin_memory``, CUDA) from pinned memory
    without blocking the host (the caching host allocator keeps the buffer until the copy ends)."""
    if pin and torch.device(device).type == "cuda":
        return (x if x.is_pinned() else x.pin_memory()).to(device, non_blocking=True)
    return x.to(device)


def micro_step_loss(engine, built, diffusion, batch, g, cfg: Config, device, dtype) -> torch.Tensor:
    """Diffusion MSE (ε or v) on one micro-batch; all randomness drawn from the step generator ``g``."""
    pin = cfg.perf.pin_memory
    x0 = to_device(batch["video"], device, pin)  # (B, T, C, H, W) in [-1, 1]
    b = x0.shape[0]
    drop = torch.rand(b, generator=g) < cfg.text.caption_dropout  # caption dropout for CFG
    captions = ["" if d else c for c, d in zip(batch["caption"], drop.tolist(), strict=True)]
    high = cfg.diffusion.high_noise_prob if cfg.diffusion.timestep_sampling == "high_noise" else 0.0
    t = diffusion.sample_timesteps(b, g, device, high_noise_prob=high)  # (B,)
    noise = to_device(torch.randn(x0.shape, generator=g), device, pin)  # (B, T, C, H, W)
    text = built.encode(captions, device)
    return diffusion.training_loss(lambda x_t, tt: engine(x_t.to(dtype), tt, **text), x0, t, noise)


def grad_norm(engine) -> float:
    gn = engine.get_global_grad_norm()
    if gn is None:
        return float("nan")
    return float(gn.item() if torch.is_tensor(gn) else gn)
