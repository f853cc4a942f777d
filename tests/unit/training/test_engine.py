"""Optimizer construction for the DeepSpeed engine: fused AdamW on CUDA only."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from text2sign.config import load_config
from text2sign.models.build import Text2SignModel
from text2sign.models.dit import DIT_PRESETS, VideoDiT
from text2sign.training.engine import build_optimizer, optimizer_label


def test_fused_adamw_on_cuda_and_the_default_one_on_cpu():
    cfg = load_config(profile="tiny")
    model = Text2SignModel(VideoDiT(DIT_PRESETS["tiny"], num_frames=2, image_size=8, text_dim=8))
    cpu = build_optimizer(model, cfg, torch.device("cpu"))
    # Built on CPU parameters: the fused kernel's device check runs at the first step, when
    # DeepSpeed has moved the (master) parameters to the GPU.
    cuda = build_optimizer(model, cfg, "cuda")
    assert [g["fused"] for g in cuda.param_groups] == [True]
    assert not any(g["fused"] for g in cpu.param_groups)
    assert optimizer_label(cuda) == "AdamW (torch, fused)"
    assert optimizer_label(cpu) == "AdamW (torch)"
    assert optimizer_label(SimpleNamespace(optimizer=cuda)) == "AdamW (torch, fused)"  # wrapped
    group = cpu.param_groups[0]
    assert group["lr"] == cfg.train.lr and group["weight_decay"] == cfg.train.weight_decay
    assert sum(p.numel() for p in group["params"]) == sum(p.numel() for p in model.parameters())
