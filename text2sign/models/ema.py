"""Exponential moving average (EMA) of a model's weights, kept as our own fp32 buffers.

Works on a plain module and under DeepSpeed ZeRO-3, where each rank holds only a shard of every
parameter (``param.ds_id`` set, ``param.numel() == 0`` locally). There the parameters are
gathered read-only with ``deepspeed.zero.GatheredParameters(params, modifier_rank=None)`` a chunk
at a time (at most ``chunk_numel`` elements), which bounds the extra memory, and every rank keeps
the full EMA. All ranks must call ``EMA(...)``, ``update`` and ``copy_to`` together (collectives).
DeepSpeed is imported only when a ZeRO-3 parameter is seen.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

Chunk = list[tuple[str, nn.Parameter]]


def _is_zero3(p: torch.Tensor) -> bool:
    return hasattr(p, "ds_id")


def _full_numel(p: torch.Tensor) -> int:
    return int(getattr(p, "ds_numel", p.numel()))


def _full_shape(p: torch.Tensor) -> torch.Size:
    return torch.Size(getattr(p, "ds_shape", p.shape))


def _chunks(module: nn.Module, chunk_numel: int) -> Iterator[Chunk]:
    """Named parameters in order, grouped into runs of at most ``chunk_numel`` elements."""
    chunk: Chunk = []
    size = 0
    for name, p in module.named_parameters():
        if chunk and size + _full_numel(p) > chunk_numel:
            yield chunk
            chunk, size = [], 0
        chunk.append((name, p))
        size += _full_numel(p)
    if chunk:
        yield chunk


@contextlib.contextmanager
def _gathered(chunk: Chunk, modifier_rank: int | None = None) -> Iterator[None]:
    """Gather the ZeRO-3 parameters of a chunk for the duration of the block; no-op otherwise."""
    params = [p for _, p in chunk if _is_zero3(p)]
    if not params:
        yield
        return
    import deepspeed  # lazy: only runs under ZeRO-3

    # modifier_rank=None: read-only, nothing is broadcast back on exit.
    with deepspeed.zero.GatheredParameters(params, modifier_rank=modifier_rank):
        yield


class EMA:
    """fp32 shadow copy of a module's parameters, updated as decay * ema + (1 - decay) * param."""

    def __init__(
        self,
        module: nn.Module,
        decay: float,
        update_every: int = 1,
        *,
        device: torch.device | str | None = None,
        chunk_numel: int = 2**26,
    ) -> None:
        """Copy the current parameters (gathered under ZeRO-3) as the initial EMA.

        ``device``: where the shadow lives (default: each parameter's device).
        """
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        if update_every < 1:
            raise ValueError(f"EMA update_every must be >= 1, got {update_every}")
        self.decay = decay
        self.update_every = update_every
        self.chunk_numel = chunk_numel
        self.shadow: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for chunk in _chunks(module, chunk_numel):
                with _gathered(chunk):
                    for name, p in chunk:
                        data = p.detach().reshape(_full_shape(p))  # full shape once gathered
                        dev = device if device is not None else p.device
                        self.shadow[name] = data.to(device=dev, dtype=torch.float32, copy=True)

    def _check_names(self, module: nn.Module) -> None:
        names = {name for name, _ in module.named_parameters()}
        if names != set(self.shadow):
            missing = sorted(set(self.shadow) - names)[:5]
            extra = sorted(names - set(self.shadow))[:5]
            raise KeyError(f"module does not match the EMA: missing {missing}, extra {extra}")

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> bool:
        """Fold the module's parameters into the EMA if ``step % update_every == 0``.

        Returns whether an update happened. Call it on every rank after ``optimizer.step()``.
        """
        if step % self.update_every:
            return False
        weight = 1.0 - self.decay
        for chunk in _chunks(module, self.chunk_numel):
            with _gathered(chunk):
                for name, p in chunk:
                    ema = self.shadow[name]
                    # lerp_(end, w) = ema + w * (end - ema) = decay * ema + (1 - decay) * param
                    ema.lerp_(p.detach().reshape(ema.shape).to(ema.device, torch.float32), weight)
        return True

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Load the EMA weights into ``module`` (cast to its dtypes), e.g. for sampling.

        Meant for a plain module. A ZeRO-3 module also works (rank 0's EMA is broadcast), but
        on a training engine's module the optimizer's fp32 master weights are left unchanged.
        """
        self._check_names(module)
        for chunk in _chunks(module, self.chunk_numel):
            with _gathered(chunk, modifier_rank=0):
                for name, p in chunk:
                    p.data.copy_(self.shadow[name].reshape(p.shape))

    @contextlib.contextmanager
    def swapped(self, module: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the EMA weights into a plain ``module``; restore them on exit."""
        if any(_is_zero3(p) for p in module.parameters()):
            raise ValueError("EMA.swapped needs a plain module; use copy_to on a separate copy")
        backup = {name: p.detach().clone() for name, p in module.named_parameters()}
        self.copy_to(module)
        try:
            yield module
        finally:
            with torch.no_grad():
                for name, p in module.named_parameters():
                    p.copy_(backup[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The EMA weights: fp32 CPU tensors keyed by parameter name."""
        return {name: t.detach().to("cpu", copy=True) for name, t in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore weights from ``state_dict()``; names and shapes must match exactly."""
        if set(state) != set(self.shadow):
            missing = sorted(set(self.shadow) - set(state))[:5]
            extra = sorted(set(state) - set(self.shadow))[:5]
            raise KeyError(f"EMA state does not match the model: missing {missing}, extra {extra}")
        for name, t in state.items():
            if t.shape != self.shadow[name].shape:
                raise ValueError(f"EMA {name}: shape {tuple(t.shape)} != {self.shadow[name].shape}")
            self.shadow[name].copy_(t.to(torch.float32))
