"""Attention of the video DiT: self-attention along one axis, cross-attention to the caption, and
the kernel switches both share (``perf.attention_backend``, ``perf.cross_attention``).

Every attention call goes through :func:`sdpa`, under a ``record_function`` label
(``t2s.attn.spatial``, ``t2s.attn.temporal``, ``t2s.attn.cross``): the profiler summary of
``make gpu-check`` reads which SDPA kernel each kind of call ran on from these labels.

Why the cross-attention has two forms. A caption shorter than the longest in its batch has
padding keys, which a boolean mask hides; but a mask rules out FlashAttention (it takes none) and
may send the call to a slower kernel. ``grouped`` gives the same result without a mask: the
keys of each run of consecutive samples with the same caption length are cut to that length
(views, no copies), one mask-free call per run. It needs the lengths on the host: one device
sync per forward, and a new shape per length under torch.compile.

Shape letters: B batch, S query tokens, L text tokens, D width, h heads.
"""

from __future__ import annotations

import warnings
from typing import Literal, NamedTuple, get_args

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

AttentionBackend = Literal["auto", "flash", "cudnn", "efficient", "math"]
CrossAttentionForm = Literal["masked", "grouped"]
ATTENTION_BACKENDS: tuple[str, ...] = get_args(AttentionBackend)
SDPA = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}
CPU_BACKENDS = ("flash", "math")  # what torch's SDPA has on a CPU
_warned: set[str] = set()


def sdpa_backends(backend: str, device_type: str) -> list[SDPBackend] | None:
    """The SDPA kernel list for ``backend`` on a device type; None lets torch choose.

    A CPU has only the flash and math kernels: there ``cudnn`` and ``efficient`` fall back to
    torch's choice, with a warning (once per backend), so a cluster config still runs on a laptop.
    """
    if backend == "auto":
        return None
    if device_type == "cpu" and backend not in CPU_BACKENDS:
        if backend not in _warned:
            _warned.add(backend)
            warnings.warn(f"perf.attention_backend={backend} is CUDA-only; on the CPU torch "
                          "chooses the attention kernel", stacklevel=3)  # fmt: skip
        return None
    return [SDPA[backend]]


def sdpa(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    backend: str = "auto",
    label: str,
) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` on the chosen kernel, labelled for the profiler."""
    backends = sdpa_backends(backend, q.device.type)
    with torch.profiler.record_function(f"t2s.attn.{label}"):
        if backends is None:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        with sdpa_kernel(backends):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class TextCond(NamedTuple):
    """The caption's attention inputs, computed once per forward for all blocks.

    ``mask``: (B, 1, 1, L) True = attend (the masked form), else None. ``has_text``: (B, 1, 1),
    0 for a caption without any valid token (its cross-attention output is "no text").
    ``runs``: the grouped form's (start, stop, length) of consecutive samples, else None.
    """

    mask: torch.Tensor | None
    has_text: torch.Tensor
    runs: tuple[tuple[int, int, int], ...] | None


def text_condition(y_mask: torch.Tensor, dtype: torch.dtype, form: str = "masked") -> TextCond:
    """From (B, L) token validity, the :class:`TextCond` of the ``masked`` or ``grouped`` form."""
    b, length = y_mask.shape
    # A caption without any valid token would give an all -inf softmax row (NaN): it attends
    # everywhere to stay finite, and the caller multiplies its output by 0.
    empty = ~y_mask.any(dim=1)  # (B,)
    has_text = (~empty).to(dtype)[:, None, None]  # (B, 1, 1)
    masked = TextCond((y_mask | empty[:, None])[:, None, None, :], has_text, None)
    if form == "masked":
        return masked
    lengths = y_mask.sum(dim=1)  # (B,)
    prefix = y_mask == (torch.arange(length, device=y_mask.device) < lengths[:, None])  # (B, L)
    host = torch.cat([lengths, prefix.all(dim=1).long()]).tolist()  # the one sync per forward
    if not all(host[b:]):  # padding not at the end (no tokenizer here does that): masked is exact
        if "left-padding" not in _warned:
            _warned.add("left-padding")
            warnings.warn("perf.cross_attention=grouped needs right-padded captions; "
                          "these use the masked form", stacklevel=2)  # fmt: skip
        return masked
    runs: list[tuple[int, int, int]] = []
    for i, n in enumerate(host[:b]):
        n = n or length  # an empty caption attends everywhere, as in the masked form
        if runs and runs[-1][2] == n:
            runs[-1] = (runs[-1][0], i + 1, n)
        else:
            runs.append((i, i + 1, n))
    return TextCond(None, has_text, tuple(runs))


class Attention(nn.Module):
    """Multi-head self-attention over the second axis, via scaled_dot_product_attention."""

    def __init__(self, hidden: int, heads: int, backend: str = "auto", label: str = "self"):
        super().__init__()
        self.heads = heads
        self.backend = backend
        self.label = label
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        qkv = self.qkv(x).view(b, s, 3, self.heads, d // self.heads)  # (B', S, 3, h, d/h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B', h, S, d/h)
        out = sdpa(q, k, v, backend=self.backend, label=self.label)  # (B', h, S, d/h)
        return self.proj(out.transpose(1, 2).reshape(b, s, d))  # (B', S, D)


class CrossAttention(nn.Module):
    """Multi-head attention from video tokens to text tokens; padding keys are left out."""

    def __init__(self, hidden: int, heads: int, backend: str = "auto") -> None:
        super().__init__()
        self.heads = heads
        self.backend = backend
        self.q = nn.Linear(hidden, hidden)
        self.kv = nn.Linear(hidden, 2 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, y: torch.Tensor, text: TextCond) -> torch.Tensor:
        b, s, d = x.shape
        hd = d // self.heads
        q = self.q(x).view(b, s, self.heads, hd).transpose(1, 2)  # (B, h, S, d/h)
        kv = self.kv(y).view(b, y.shape[1], 2, self.heads, hd)  # (B, L, 2, h, d/h)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # 2 x (B, h, L, d/h)
        if text.runs is None:
            out = sdpa(q, k, v, text.mask, backend=self.backend, label="cross")  # (B, h, S, d/h)
        else:  # one mask-free call per run of equal caption length, keys cut to that length
            parts = [
                sdpa(q[i:j], k[i:j, :, :n], v[i:j, :, :n], backend=self.backend, label="cross")
                for i, j, n in text.runs
            ]  # (j-i, h, S, d/h) each
            out = parts[0] if len(parts) == 1 else torch.cat(parts)  # (B, h, S, d/h)
        return self.proj(out.transpose(1, 2).reshape(b, s, d))  # (B, S, D)
