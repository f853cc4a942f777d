"""Latte-style video diffusion transformer (DiT) conditioned on text.

Written after facebookresearch/DiT ``models.py`` (adaLN-Zero blocks, one ``initialize_weights``)
and Latte (Ma et al., 2024: blocks alternate spatial and temporal self-attention). The text
enters twice: every block cross-attends to the token states, and the masked mean of the tokens is
added to the timestep embedding that drives the adaLN modulation.

Shape letters: B batch, T frames, C channels, H/W pixels, N patches per frame, D hidden width,
L text tokens, E text width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from text2sign.errors import ConfigError
from text2sign.models.attention import Attention, CrossAttention, TextCond, text_condition
from text2sign.presets import DIT_PRESETS, DiTPreset, get_preset  # noqa: F401 (re-export)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: per-sample affine on (B, S, D) tokens from (B, D) shift and scale."""
    # One fused pass over the tokens (addcmul) instead of a multiply and an add.
    return torch.addcmul(shift.unsqueeze(1), x, 1 + scale.unsqueeze(1))


def norm_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """LayerNorm without affine (eps 1e-6), then adaLN: the pre-norm of every adaLN block."""
    return modulate(F.layer_norm(x, x.shape[-1:], eps=1e-6), shift, scale)


_fused_norm_modulate = None


def fused_norm_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``norm_modulate`` compiled on its own (``perf.fused_adaln``): one kernel forward and one
    backward instead of the LayerNorm's and the modulation's passes over (B, S, D)."""
    global _fused_norm_modulate
    if _fused_norm_modulate is None:
        _fused_norm_modulate = torch.compile(norm_modulate, dynamic=False)
    return _fused_norm_modulate(x, shift, scale)


#################################################################################
#               Embedding Layers for Timesteps, Text and Positions              #
#################################################################################


class TimestepEmbedder(nn.Module):
    """Embeds scalar diffusion timesteps into vectors (sinusoidal features + MLP)."""

    def __init__(self, hidden: int, frequency_embedding_size: int = 256) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
        )
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
        """Sinusoidal embedding of (B,) timesteps (int or float) as in GLIDE/DiT -> (B, dim)."""
        half = dim // 2
        freqs = torch.exp(
            -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
        )  # (half,)
        args = t.float()[:, None] * freqs[None]  # (B, half)
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2*half)
        if dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)  # (B, dim)
        return emb

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t_freq = self.timestep_embedding(t, self.frequency_embedding_size)  # (B, F) fp32
        return self.mlp(t_freq.to(self.mlp[0].weight.dtype))  # (B, D)


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """Fixed 1-D sin-cos embedding (MAE/DiT convention) of (P,) positions -> (P, dim)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))  # (dim/2,)
    out = positions.to(torch.float64)[:, None] * omega[None]  # (P, dim/2)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1).float()  # (P, dim)


def sincos_2d(dim: int, grid_size: int) -> torch.Tensor:
    """Fixed 2-D sin-cos embedding of a square patch grid -> (grid_size**2, dim), row-major."""
    coords = torch.arange(grid_size, dtype=torch.float64)
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")  # (G, G) each
    emb_h = sincos_1d(dim // 2, gy.reshape(-1))  # (N, D/2)
    emb_w = sincos_1d(dim // 2, gx.reshape(-1))  # (N, D/2)
    return torch.cat([emb_h, emb_w], dim=1)  # (N, D)


#################################################################################
#                 Transformer Block (attention: models/attention.py)            #
#################################################################################


class Mlp(nn.Module):
    """Two-layer MLP with tanh-approximated GELU, as in DiT."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class VideoDiTBlock(nn.Module):
    """adaLN-Zero block: spatial or temporal self-attention, text cross-attention, MLP."""

    def __init__(
        self, hidden: int, heads: int, mlp_ratio: float, temporal: bool, *,
        attention_backend: str = "auto", fused_adaln: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.temporal = temporal
        self.fused_adaln = fused_adaln
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        label = "temporal" if temporal else "spatial"
        self.attn = Attention(hidden, heads, attention_backend, label)
        self.norm2 = nn.LayerNorm(hidden, eps=1e-6)
        self.cross_attn = CrossAttention(hidden, heads, attention_backend)
        self.norm3 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden, int(hidden * mlp_ratio), hidden)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        y: torch.Tensor,
        text: TextCond,
        frames: int,
    ) -> torch.Tensor:
        """``text``: the caption's ``text_condition``, computed once for all blocks."""
        b, s, d = x.shape  # x: (B, T*N, D), frame-major
        n = s // frames
        mod = self.adaLN_modulation(c).chunk(6, dim=1)  # 6 x (B, D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod
        h = self.norm_modulate(x, self.norm1, shift_msa, scale_msa)  # (B, T*N, D)
        if self.temporal:
            h = h.view(b, frames, n, d).transpose(1, 2).reshape(b * n, frames, d)  # (B*N, T, D)
            h = self.attn(h)  # (B*N, T, D)
            h = h.view(b, n, frames, d).transpose(1, 2).reshape(b, s, d)  # (B, T*N, D)
        else:
            h = self.attn(h.reshape(b * frames, n, d)).view(b, s, d)  # (B, T*N, D)
        x = torch.addcmul(x, gate_msa.unsqueeze(1), h)  # (B, T*N, D) x + gate * h, one pass
        # Cross-attention is per query token, so it runs on all T*N tokens at once.
        x = torch.addcmul(x, text.has_text, self.cross_attn(self.norm2(x), y, text))  # (B, T*N, D)
        h = self.mlp(self.norm_modulate(x, self.norm3, shift_mlp, scale_mlp))  # (B, T*N, D)
        return torch.addcmul(x, gate_mlp.unsqueeze(1), h)  # (B, T*N, D)

    def norm_modulate(self, x, norm: nn.LayerNorm, shift, scale) -> torch.Tensor:
        """adaLN pre-norm: the LayerNorm module then ``modulate``, or the one compiled function."""
        if self.fused_adaln:
            return fused_norm_modulate(x, shift, scale)
        return modulate(norm(x), shift, scale)


class FinalLayer(nn.Module):
    """adaLN-modulated LayerNorm and a linear map from tokens to pixel patches."""

    def __init__(self, hidden: int, patch: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, patch * patch * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)  # 2 x (B, D)
        return self.linear(modulate(self.norm_final(x), shift, scale))  # (B, S, p*p*C)


#################################################################################
#                                 Core DiT Model                                #
#################################################################################


class VideoDiT(nn.Module):
    """Text-conditioned video diffusion transformer predicting eps or v (diffusion.prediction)."""

    def __init__(
        self,
        preset: DiTPreset,
        *,
        num_frames: int,
        image_size: int,
        in_channels: int = 3,
        text_dim: int,
        grad_checkpointing: bool = False,
        checkpoint_blocks: int | None = None,
        attention_backend: str = "auto",
        cross_attention: str = "masked",
        fused_adaln: bool = False,
    ) -> None:
        """The keywords after ``text_dim`` are speed switches (config ``model.grad_checkpointing``
        and ``perf.*``); none changes what the model computes beyond float rounding."""
        super().__init__()
        if preset.hidden % preset.heads or preset.hidden % 4:
            # 4 | hidden: the 2-D sin-cos table gives each axis a sin and a cos half.
            raise ConfigError(
                f"DiT hidden {preset.hidden} must be a multiple of 4 and of heads {preset.heads}"
            )
        if image_size % preset.patch:
            raise ConfigError(f"image_size {image_size} is not a multiple of patch {preset.patch}")
        d = preset.hidden
        self.preset = preset
        self.num_frames = num_frames
        self.in_channels = in_channels
        self.patch = preset.patch
        self.grid = image_size // preset.patch
        self.grad_checkpointing = grad_checkpointing
        # Recompute only the first checkpoint_blocks blocks (None: all) when checkpointing.
        self.checkpoint_blocks = preset.depth if checkpoint_blocks is None else checkpoint_blocks
        self.cross_attention = cross_attention

        self.x_embedder = nn.Conv2d(in_channels, d, kernel_size=preset.patch, stride=preset.patch)
        self.t_embedder = TimestepEmbedder(d)
        self.text_embedder = Mlp(text_dim, d, d)  # token states -> cross-attention keys/values
        self.text_pooler = Mlp(text_dim, d, d)  # masked-mean caption -> adaLN condition
        # Fixed sin-cos tables, filled in initialize_weights(); not saved (derived from shapes).
        self.register_buffer("pos_embed", torch.zeros(1, self.grid**2, d), persistent=False)
        self.register_buffer("temp_embed", torch.zeros(1, num_frames, d), persistent=False)
        self.blocks = nn.ModuleList(
            # Latte's variant 1: even blocks attend within a frame, odd blocks across frames.
            VideoDiTBlock(
                d,
                preset.heads,
                preset.mlp_ratio,
                temporal=i % 2 == 1,
                attention_backend=attention_backend,
                fused_adaln=fused_adaln,
            )
            for i in range(preset.depth)
        )
        self.final_layer = FinalLayer(d, preset.patch, in_channels)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Apply every initialisation rule of the model (DiT's scheme plus PixArt's cross-attn)."""

        # Xavier-uniform for every linear layer, zero bias (transformer default in DiT):
        def _basic_init(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

        self.apply(_basic_init)
        # Fixed sin-cos positional tables, spatial (2-D grid) and temporal (frame index):
        d = self.preset.hidden
        self.pos_embed.copy_(sincos_2d(d, self.grid).unsqueeze(0))
        self.temp_embed.copy_(sincos_1d(d, torch.arange(self.num_frames)).unsqueeze(0))
        # Patch embedding like a linear layer (xavier on the flattened kernel), zero bias:
        w = self.x_embedder.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.bias)
        # Timestep MLP: normal(0.02), as in DiT:
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        # Text MLPs keep xavier (not normal(0.02)): the caption must reach cross-attention at
        # unit scale from the start, or the keys are near-constant and attention near-uniform.
        for block in self.blocks:
            # Zero-out adaLN modulation so every block starts as the identity (adaLN-Zero):
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
            # Zero-out the cross-attention output projection (PixArt-alpha), same reason:
            nn.init.zeros_(block.cross_attn.proj.weight)
            nn.init.zeros_(block.cross_attn.proj.bias)
        # Zero-out the final modulation and output layer, so the first prediction is 0:
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def unpatchify(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        """(B*T, N, p*p*C) patch tokens -> (B, T, C, H, W) frames."""
        p, g, c = self.patch, self.grid, self.in_channels
        x = x.view(batch, self.num_frames, g, g, p, p, c)  # (B, T, gh, gw, p, p, C)
        x = x.permute(0, 1, 6, 2, 4, 3, 5)  # (B, T, C, gh, p, gw, p)
        return x.reshape(batch, self.num_frames, c, g * p, g * p)  # (B, T, C, H, W)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        text_states: torch.Tensor,
        text_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Predict eps or v of x (B, T, C, H, W) at timesteps t (B,), given text (B, L, E)."""
        dtype = self.x_embedder.weight.dtype  # inputs follow the model's precision (fp32/bf16)
        b, f = x.shape[:2]
        mask = text_mask.bool()  # (B, L) True = real token
        # Zero the padding states so arbitrary padding values cannot leak in (also not inf/NaN).
        y = text_states.to(dtype).masked_fill(~mask[..., None], 0.0)  # (B, L, E)
        x = self.x_embedder(x.to(dtype).flatten(0, 1))  # (B*T, D, H/p, W/p)
        x = x.flatten(2).transpose(1, 2)  # (B*T, N, D)
        x = x.view(b, f, -1, x.shape[-1])  # (B, T, N, D)
        x = x + self.pos_embed.to(dtype).unsqueeze(1)  # (B, T, N, D) same grid in each frame
        x = x + self.temp_embed.to(dtype).unsqueeze(2)  # (B, T, N, D) frame index
        x = x.flatten(1, 2)  # (B, T*N, D)
        n_valid = mask.sum(dim=1, keepdim=True).clamp(min=1).to(dtype)  # (B, 1)
        pooled = y.sum(dim=1) / n_valid  # (B, E) masked mean (zero for an empty caption)
        c = self.t_embedder(t.to(x.device)) + self.text_pooler(pooled)  # (B, D)
        y = self.text_embedder(y)  # (B, L, D)
        text = text_condition(mask, dtype, self.cross_attention)  # mask or runs, (B, 1, 1) has text
        recompute = self.grad_checkpointing and self.training and torch.is_grad_enabled()
        for i, block in enumerate(self.blocks):
            if recompute and i < self.checkpoint_blocks:
                x = checkpoint(block, x, c, y, text, f, use_reentrant=False)  # (B, T*N, D)
            else:
                x = block(x, c, y, text, f)  # (B, T*N, D)
        x = self.final_layer(x, c)  # (B, T*N, p*p*C)
        return self.unpatchify(x.view(b * f, -1, x.shape[-1]), b)  # (B, T, C, H, W)


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """Return (total, trainable) parameter counts; works on the meta device and under ZeRO-3."""
    total = trainable = 0
    for p in module.parameters():
        n = getattr(p, "ds_numel", p.numel())  # ZeRO-3 keeps only a shard locally
        total += n
        trainable += n if p.requires_grad else 0
    return total, trainable


#################################################################################
#                                   DiT Configs                                 #
#################################################################################
