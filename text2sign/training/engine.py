"""The one place where DeepSpeed wraps the model: config, optimizer, compile, weight gathering.

The model code knows nothing about DeepSpeed (STYLE.md): everything engine-specific is here.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import torch

from text2sign.config import Config
from text2sign.errors import ConfigError


def deepspeed_config(cfg: Config, world_size: int) -> dict[str, Any]:
    """The packaged DeepSpeed JSON template, with everything the text2sign config owns filled in."""
    path = resources.files("text2sign") / "configs" / "deepspeed" / cfg.train.deepspeed_config
    try:
        ds = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"key 'train.deepspeed_config': no such template {path}") from None
    ds.pop("_comment", None)
    t = cfg.train
    ds.update(
        train_micro_batch_size_per_gpu=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        train_batch_size=t.batch_size * t.grad_accum * world_size,
        gradient_clipping=t.grad_clip,
        bf16={"enabled": t.precision == "bf16"},
    )
    ds["zero_optimization"] = {**ds.get("zero_optimization", {}), "stage": t.zero_stage}
    return ds


def param_groups(model: torch.nn.Module, cfg: Config) -> list[dict[str, Any]]:
    """AdamW groups: the DiT at train.lr, a finetuned text encoder at text.lr."""
    dit = [p for p in model.dit.parameters() if p.requires_grad]
    groups = [{"params": dit, "lr": cfg.train.lr, "name": "dit"}]
    if model.text_encoder is not None:
        te = [p for p in model.text_encoder.parameters() if p.requires_grad]
        groups.append({"params": te, "lr": cfg.text.lr or cfg.train.lr, "name": "text_encoder"})
    return groups


def build_optimizer(
    model: torch.nn.Module, cfg: Config, device: torch.device | str
) -> torch.optim.Optimizer:
    """AdamW over :func:`param_groups`: on CUDA torch's fused kernel (``perf.fused_adamw``) or
    its multi-tensor foreach kernel; elsewhere the default one.

    Fused, not DeepSpeed's FusedAdam: it needs no CUDA extension build, and DeepSpeed's ZeRO and
    bf16 wrappers step it like any torch optimizer (on the fp32 master partitions).
    """
    cuda = torch.device(device).type == "cuda"
    fused = cuda and cfg.perf.fused_adamw
    return torch.optim.AdamW(
        param_groups(model, cfg), lr=cfg.train.lr, betas=cfg.train.betas,
        weight_decay=cfg.train.weight_decay, fused=fused or None,
        foreach=True if cuda and not fused else None,
    )  # fmt: skip


def optimizer_label(optimizer: Any) -> str:
    """What the run's metadata records, e.g. ``AdamW (torch, fused)``; ``optimizer`` may also be
    the engine's (DeepSpeed's wrappers hold the torch optimizer as ``.optimizer``)."""
    inner = optimizer if isinstance(optimizer, torch.optim.Optimizer) else optimizer.optimizer
    kernel = next(
        (k for k in ("fused", "foreach") if any(g.get(k) for g in inner.param_groups)), ""
    )
    return f"{type(inner).__name__} (torch{', ' + kernel if kernel else ''})"


def maybe_compile(model: torch.nn.Module, cfg: Config) -> None:
    """``train.compile``: compile the DiT in place (``nn.Module.compile``: parameter names, and so
    checkpoints and the EMA, stay as they are), before DeepSpeed wraps the model.

    ``perf.compile_scope=blocks`` compiles each block on its own instead (regional compilation):
    the blocks share their code, so torch compiles the spatial and the temporal block once each,
    not the whole unrolled model; the embedders and the final layer stay eager.
    """
    if not cfg.train.compile:
        return
    if cfg.perf.compile_scope == "blocks":
        for block in model.dit.blocks:
            block.compile()
    else:
        model.dit.compile()


def gathered_weights(module: torch.nn.Module, zero_stage: int) -> dict[str, torch.Tensor]:
    """Full fp32 copies of every parameter; under ZeRO-3 gathered from all ranks (collective)."""
    params = dict(module.named_parameters())
    if zero_stage == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(params.values()), modifier_rank=None):
            return {n: p.detach().float().cpu().clone() for n, p in params.items()}
    return {n: p.detach().float().cpu().clone() for n, p in params.items()}
