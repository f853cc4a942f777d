"""The throughput switches of the DiT (config ``perf``): each gives the result of the code without
it, on the CPU, to float rounding. Their speed is measured by ``make gpu-check``, never here."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from tests.unit.models.test_dit import MICRO, inputs, make_model, perturb
from text2sign.config import load_config
from text2sign.errors import ConfigError
from text2sign.models import attention as A
from text2sign.models.dit import VideoDiT

LENGTHS = [5, 3, 3, 0]  # per caption: full, two shorter (one run), empty


def masked_inputs(lengths=LENGTHS, length: int = 5):
    x, t, states, _ = inputs(b=len(lengths), length=length)
    mask = torch.arange(length)[None] < torch.tensor(lengths)[:, None]  # right-padded
    return x, t, states, mask


def outputs_and_grads(model: VideoDiT, args) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(*args)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def assert_same(a, b, atol: float = 1e-5) -> None:
    (out_a, grads_a), (out_b, grads_b) = a, b
    torch.testing.assert_close(out_a, out_b, atol=atol, rtol=1e-4)
    assert len(grads_a) == len(grads_b)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(ga, gb, atol=atol, rtol=1e-4)


def test_grouped_cross_attention_equals_the_masked_one():
    args = masked_inputs()
    masked = outputs_and_grads(perturb(make_model()), args)
    grouped = outputs_and_grads(perturb(make_model(cross_attention="grouped")), args)
    assert_same(masked, grouped)
    cond = A.text_condition(args[3], torch.float32, "grouped")
    assert cond.mask is None and cond.runs == ((0, 1, 5), (1, 3, 3), (3, 4, 5))  # empty: all keys


def test_grouped_with_full_captions_is_one_mask_free_call(monkeypatch):
    calls = []
    real = A.F.scaled_dot_product_attention
    monkeypatch.setattr(A.F, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(k.get("attn_mask")) or real(*a, **k))  # fmt: skip
    args = masked_inputs([5, 5, 5])
    make_model(cross_attention="grouped")(*args)
    assert len(calls) == 2 * MICRO.depth and all(m is None for m in calls)  # self + cross, no mask
    calls.clear()
    make_model()(*args)
    assert sum(m is not None for m in calls) == MICRO.depth  # masked: every cross call has one


def test_grouped_falls_back_to_the_mask_for_left_padding():
    x, t, states, mask = masked_inputs([5, 3])
    mask = mask.flip(1)  # padding first
    with pytest.warns(UserWarning, match="right-padded"):
        cond = A.text_condition(mask, torch.float32, "grouped")
    assert cond.runs is None and cond.mask is not None
    a = outputs_and_grads(perturb(make_model()), (x, t, states, mask))
    b = outputs_and_grads(perturb(make_model(cross_attention="grouped")), (x, t, states, mask))
    assert_same(a, b)


@pytest.mark.parametrize("backend", ["flash", "math"])
def test_a_named_sdpa_kernel_gives_the_auto_result_on_cpu(backend):
    args = masked_inputs([5, 5, 2, 5])
    auto = outputs_and_grads(perturb(make_model()), args)
    form = "grouped" if backend == "flash" else "masked"
    named = make_model(attention_backend=backend, cross_attention=form)
    with torch.profiler.profile() as prof:
        got = outputs_and_grads(perturb(named), args)
    assert_same(auto, got, atol=1e-5)
    kernels = {e.name for e in prof.events() if e.name.startswith("aten::_scaled_dot_product")}
    want = "flash_attention_for_cpu" if backend == "flash" else "attention_math"
    assert kernels and all(want in k for k in kernels), kernels


@pytest.mark.parametrize("backend", ["cudnn", "efficient"])
def test_cuda_only_kernels_fall_back_on_cpu_with_a_warning(backend):
    args = masked_inputs()
    auto = outputs_and_grads(perturb(make_model()), args)
    A._warned.discard(backend)
    with pytest.warns(UserWarning, match=f"attention_backend={backend} is CUDA-only"):
        got = outputs_and_grads(perturb(make_model(attention_backend=backend)), args)
    assert_same(auto, got)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per backend, not per call
        make_model(attention_backend=backend)(*args)


def test_flash_with_the_masked_cross_attention_is_a_config_error():
    with pytest.raises(ConfigError, match="perf.cross_attention=grouped"):
        load_config(overrides=["perf.attention_backend=flash"])
    cfg = load_config(overrides=["perf.attention_backend=flash", "perf.cross_attention=grouped"])
    assert cfg.perf.attention_backend == "flash"


def test_perf_switches_leave_the_config_hash_alone():
    base = load_config()
    sets = ["perf.attention_backend=cudnn", "perf.fused_adaln=true", "perf.cfg_batch=true",
            "perf.pin_memory=true", "perf.checkpoint_blocks=2"]  # fmt: skip
    assert load_config(overrides=sets).hash() == base.hash()


@pytest.mark.parametrize("blocks", [0, 1, None])
def test_checkpointing_some_blocks_gives_the_plain_gradients(blocks):
    args = masked_inputs()
    plain = outputs_and_grads(perturb(make_model()), args)
    ckpt = perturb(make_model(grad_checkpointing=True, checkpoint_blocks=blocks))
    assert_same(plain, outputs_and_grads(ckpt, args))


def test_checkpoint_blocks_recompute_only_those_blocks(monkeypatch):
    from text2sign.models import dit

    calls = []
    monkeypatch.setattr(dit, "checkpoint", lambda fn, *a, **k: calls.append(fn) or fn(*a))
    model = make_model(grad_checkpointing=True, checkpoint_blocks=1)
    model(*masked_inputs())
    assert calls == [model.blocks[0]]


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="inductor on CPU needs a C++ compiler")  # fmt: skip
def test_fused_adaln_equals_the_layernorm_then_modulate():
    args = masked_inputs()
    plain = outputs_and_grads(perturb(make_model()), args)
    fused = outputs_and_grads(perturb(make_model(fused_adaln=True)), args)
    assert_same(plain, fused, atol=1e-5)


def test_the_profiler_sees_each_kind_of_attention_under_its_label():
    model = make_model()
    with torch.profiler.profile() as prof:
        model(*masked_inputs())
    labels = [e.name for e in prof.events() if e.name.startswith("t2s.attn.")]
    per_kind = {k: labels.count(f"t2s.attn.{k}") for k in ("spatial", "temporal", "cross")}
    assert per_kind == {"spatial": 1, "temporal": 1, "cross": MICRO.depth}, per_kind


def test_every_switch_keeps_the_parameter_names():
    # Every switch keeps the parameter set: checkpoints and EMA load across them.
    names = {n for n, _ in make_model().named_parameters()}
    other = make_model(attention_backend="math", cross_attention="grouped", fused_adaln=True,
                       grad_checkpointing=True, checkpoint_blocks=1)  # fmt: skip
    assert {n for n, _ in other.named_parameters()} == names


def test_build_model_hands_every_perf_switch_to_the_dit():
    from text2sign.models.build import build_model

    sets = ["perf.attention_backend=math", "perf.cross_attention=grouped", "perf.fused_adaln=true",
            "model.grad_checkpointing=true", "perf.checkpoint_blocks=1"]  # fmt: skip
    dit = build_model(load_config(overrides=sets), None, ["left hand up"]).model.dit
    assert (
        dit.cross_attention == "grouped" and dit.grad_checkpointing and dit.checkpoint_blocks == 1
    )
    for block in dit.blocks:
        assert block.fused_adaln and block.attn.backend == block.cross_attn.backend == "math"
    plain = build_model(load_config(), None, ["left hand up"]).model.dit
    assert plain.cross_attention == "masked" and plain.checkpoint_blocks == len(plain.blocks)
    assert not plain.blocks[0].fused_adaln and plain.blocks[0].attn.backend == "auto"
