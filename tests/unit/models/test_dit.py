"""VideoDiT: shapes, parameter counts, and that the caption really conditions the output."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from text2sign.errors import ConfigError
from text2sign.models.dit import (
    DIT_PRESETS,
    Attention,
    DiTPreset,
    VideoDiT,
    count_parameters,
    get_preset,
)

TEXT_DIM = 16
MICRO = DiTPreset(depth=2, hidden=32, heads=2, patch=2)  # for the slower checks


def make_model(preset: DiTPreset = MICRO, frames: int = 4, size: int = 8, **kw) -> VideoDiT:
    torch.manual_seed(0)
    return VideoDiT(preset, num_frames=frames, image_size=size, text_dim=TEXT_DIM, **kw)


def perturb(model: nn.Module, seed: int = 0, std: float = 0.05) -> nn.Module:
    """Add noise to every parameter: the zero-init layers would hide the conditioning paths."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return model


def inputs(b: int = 2, frames: int = 4, size: int = 8, length: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, frames, 3, size, size, generator=g)
    t = torch.randint(0, 50, (b,), generator=g)
    states = torch.randn(b, length, TEXT_DIM, generator=g)
    mask = torch.ones(b, length, dtype=torch.bool)
    return x, t, states, mask


@pytest.mark.parametrize("preset", [DIT_PRESETS["tiny"], MICRO], ids=["tiny", "micro"])
@pytest.mark.parametrize("float_t", [False, True])
def test_output_shape_matches_input(preset: DiTPreset, float_t: bool) -> None:
    model = make_model(preset, frames=3, size=16)
    x, t, states, mask = inputs(b=2, frames=3, size=16)
    out = model(x, t.float() + 0.5 if float_t else t, states, mask)
    assert out.shape == x.shape and out.dtype == torch.float32


def test_zero_init_predicts_zero() -> None:
    # adaLN-Zero: the final layer starts at zero, so the first prediction is eps = 0.
    out = make_model()(*inputs())
    assert torch.count_nonzero(out) == 0


def test_tiny_preset_is_about_one_million_parameters() -> None:
    model = VideoDiT(DIT_PRESETS["tiny"], num_frames=8, image_size=16, text_dim=64)
    total, trainable = count_parameters(model)
    print(f"tiny: {total:,} parameters")
    assert 500_000 <= total <= 2_000_000 and trainable == total


def test_d14_parameter_count_on_meta_device() -> None:
    with torch.device("meta"):
        model = VideoDiT(DIT_PRESETS["d14"], num_frames=16, image_size=64, text_dim=768)
    assert next(model.parameters()).is_meta  # nothing was allocated
    total, _ = count_parameters(model)
    print(f"d14: {total:,} parameters")
    # 14 blocks x 22 * 1152^2 (self-attn, cross-attn, MLP, adaLN) ~ 409M, plus embedders.
    assert 380e6 <= total <= 450e6


def test_bad_names_and_shapes_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="tiny"):
        get_preset("huge")
    with pytest.raises(ConfigError, match="patch"):
        VideoDiT(DIT_PRESETS["tiny"], num_frames=2, image_size=10, text_dim=8)
    assert get_preset("d14") == DiTPreset(depth=14, hidden=1152, heads=16, patch=2)


def test_caption_changes_output_through_both_text_paths() -> None:
    model = perturb(make_model()).eval()
    x, t, states_a, mask = inputs()
    states_b = torch.randn(states_a.shape, generator=torch.Generator().manual_seed(9))

    def gap() -> float:
        with torch.no_grad():
            out_a, out_b = model(x, t, states_a, mask), model(x, t, states_b, mask)
        return ((out_a - out_b).abs().mean() / out_a.abs().mean()).item()

    assert gap() > 0.02
    # Cut the pooled-text path: cross-attention alone must still carry the caption.
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.text_pooler.fc2.weight.zero_()
        model.text_pooler.fc2.bias.zero_()
    assert gap() > 0.01
    # Cut every cross-attention instead: the pooled text in adaLN must still carry it.
    model.load_state_dict(saved)
    with torch.no_grad():
        for block in model.blocks:
            block.cross_attn.proj.weight.zero_()
            block.cross_attn.proj.bias.zero_()
    assert gap() > 0.01


def test_gradients_reach_valid_text_tokens_only() -> None:
    model = perturb(make_model())
    x, t, states, mask = inputs()
    mask[0, 3:] = False
    states.requires_grad_(True)
    model(x, t, states, mask).square().sum().backward()
    grad_norm = states.grad.norm(dim=-1)  # (B, L)
    assert (grad_norm[mask] > 0).all()
    assert (grad_norm[~mask] == 0).all()


def test_padding_tokens_do_not_change_the_output() -> None:
    model = perturb(make_model()).eval()
    x, t, states, mask = inputs(length=4)
    garbage = 100 * torch.randn(2, 3, TEXT_DIM)
    padded = torch.cat([states, garbage], dim=1)  # (B, 7, E)
    padded_mask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        ref = model(x, t, states, mask)
        out = model(x, t, padded, padded_mask)
        # Mixed lengths in one batch equal each sample run alone with only its own tokens.
        padded_mask[1, 2:] = False
        mixed = model(x, t, padded, padded_mask)
        alone = model(x[1:], t[1:], states[1:, :2], mask[1:, :2])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed[1:], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed[:1], ref[:1], atol=1e-5, rtol=1e-5)


def test_all_padding_caption_stays_finite() -> None:
    model = perturb(make_model()).eval()
    x, t, states, mask = inputs()
    mask[0] = False
    with torch.no_grad():
        out = model(x, t, states, mask)
        assert torch.isfinite(out).all()
        # "No text": the empty caption's cross-attention adds nothing in any block.
        for block in model.blocks:
            block.cross_attn.proj.weight.zero_()
            block.cross_attn.proj.bias.zero_()
        torch.testing.assert_close(model(x, t, states, mask)[0], out[0])


def test_every_parameter_learns_from_the_real_init() -> None:
    # From the zero-init, a few optimizer steps must wake up every weight, in particular the
    # text pathways (cross-attention, token and pooled-text projections): no dead text input.
    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, t, states, mask = inputs()
    for _ in range(4):
        opt.zero_grad()
        (model(x, t, states, mask) - x).square().mean().backward()
        opt.step()
    dead = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead
    text_params = [n for n, _ in model.named_parameters() if "cross_attn" in n or "text_" in n]
    assert len(text_params) == 8 + 6 * MICRO.depth  # 2 text MLPs, q/kv/proj in every block


def test_gradient_checkpointing_matches_plain() -> None:
    plain = perturb(make_model())
    ckpt = perturb(make_model(grad_checkpointing=True))
    batch = inputs()
    grads = []
    for model in (plain, ckpt):
        model(*batch).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


def test_bf16_model_accepts_fp32_inputs() -> None:
    model = perturb(make_model()).to(torch.bfloat16)
    x, t, states, mask = inputs()
    out = model(x, t, states, mask)
    assert out.dtype == torch.bfloat16 and out.shape == x.shape and torch.isfinite(out).all()


def test_fused_qkv_attention_equals_separate_projections() -> None:
    # One Linear computes q, k, v (rows [q; k; v] of qkv.weight, heads contiguous in each):
    # the same as three Linears with those weights and textbook softmax attention.
    torch.manual_seed(0)
    b, s, d, heads = 2, 5, 32, 2
    attn, x = Attention(d, heads), torch.randn(b, s, d)

    def split_heads(t: torch.Tensor) -> torch.Tensor:
        return t.view(b, s, heads, d // heads).transpose(1, 2)  # (B, h, S, d/h)

    w, bias = attn.qkv.weight.chunk(3, dim=0), attn.qkv.bias.chunk(3)
    q, k, v = (split_heads(F.linear(x, w[i], bias[i])) for i in range(3))
    probs = (q @ k.transpose(-1, -2) / math.sqrt(d // heads)).softmax(dim=-1)  # (B, h, S, S)
    ref = attn.proj((probs @ v).transpose(1, 2).reshape(b, s, d))
    torch.testing.assert_close(attn(x), ref, rtol=1e-5, atol=1e-6)
