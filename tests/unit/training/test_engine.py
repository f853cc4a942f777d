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


def _steps(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], n: int = 5) -> list:
    g = torch.Generator().manual_seed(3)
    for _ in range(n):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    return [p.detach().clone() for p in params]


def test_perf_fused_adamw_false_takes_the_foreach_kernel_with_the_same_updates():
    cfg = load_config(profile="tiny", overrides=["perf.fused_adamw=false"])
    model = Text2SignModel(VideoDiT(DIT_PRESETS["tiny"], num_frames=2, image_size=8, text_dim=8))
    foreach = build_optimizer(model, cfg, "cuda")
    assert [(g["fused"], g["foreach"]) for g in foreach.param_groups] == [(None, True)]
    assert optimizer_label(foreach) == "AdamW (torch, foreach)"
    # The two CUDA kernels compute the same AdamW: run both (and the default) on CPU tensors.
    results = []
    for kernel in ({"fused": True}, {"foreach": True}, {}):
        torch.manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(7, 5)), torch.nn.Parameter(torch.randn(11))]
        opt = torch.optim.AdamW(params, lr=1e-2, betas=cfg.train.betas, weight_decay=0.01, **kernel)
        results.append(_steps(opt, params))
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_compile_scope_blocks_compiles_each_block_and_not_the_model():
    from text2sign.training.engine import maybe_compile

    def built(scope: str) -> Text2SignModel:
        cfg = load_config(overrides=["train.compile=true", f"perf.compile_scope={scope}"])
        dit = VideoDiT(DIT_PRESETS["tiny"], num_frames=2, image_size=8, text_dim=8)
        model = Text2SignModel(dit)
        maybe_compile(model, cfg)
        return model

    def compiled(m: torch.nn.Module) -> bool:
        return getattr(m, "_compiled_call_impl", None) is not None

    blocks, whole = built("blocks"), built("model")
    assert not compiled(blocks.dit) and all(compiled(b) for b in blocks.dit.blocks)
    assert compiled(whole.dit) and not any(compiled(b) for b in whole.dit.blocks)
    # Parameter names stay those of the eager model (checkpoints, EMA).
    eager = VideoDiT(DIT_PRESETS["tiny"], num_frames=2, image_size=8, text_dim=8)
    assert [n for n, _ in blocks.dit.named_parameters()] == [n for n, _ in eager.named_parameters()]


def test_to_device_with_pin_memory_changes_nothing_on_a_cpu():
    from text2sign.training.step import to_device

    x = torch.randn(2, 3)
    y = to_device(x, "cpu", pin=True)
    assert torch.equal(x, y) and not y.is_pinned()  # pinning is for copies to a GPU
