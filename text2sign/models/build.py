"""Assemble the Text2Sign model from a config: text encoder → video DiT.

``Text2SignModel`` is the *trainable* module that DeepSpeed wraps: the DiT, plus the text encoder
when the variant finetunes it. A frozen text encoder stays outside the engine: not in the
optimizer, not in gradient memory, not saved in every checkpoint (the tiny one is saved once in
the run dir, a hub one is re-read from the HF cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from text2sign.config import Config
from text2sign.models.dit import DIT_PRESETS, VideoDiT, count_parameters
from text2sign.models.text_encoder import TextEncoder, build_text_encoder, freeze

CHANNELS = 3  # RGB video


class Text2SignModel(nn.Module):
    """The trainable part: the video DiT, and the text encoder when it is finetuned."""

    def __init__(self, dit: VideoDiT, text_encoder: TextEncoder | None = None) -> None:
        super().__init__()
        self.dit = dit
        self.text_encoder = text_encoder

    def forward(
        self,
        x_t: torch.Tensor,  # (B, T, C, H, W) noisy video
        t: torch.Tensor,  # (B,) timesteps
        text_states: torch.Tensor | None = None,  # (B, L, Dt) from a frozen encoder
        text_mask: torch.Tensor | None = None,  # (B, L) True = real token
        input_ids: torch.Tensor | None = None,  # (B, L) when the encoder is finetuned
        attention_mask: torch.Tensor | None = None,  # (B, L)
    ) -> torch.Tensor:
        if self.text_encoder is not None:
            text_states, text_mask = self.text_encoder(input_ids, attention_mask)  # (B, L, Dt)
        assert text_states is not None and text_mask is not None, "no text conditioning given"
        return self.dit(x_t, t, text_states.to(x_t.dtype), text_mask)  # (B, T, C, H, W)


@dataclass
class Built:
    model: Text2SignModel  # what DeepSpeed trains
    text: TextEncoder  # the encoder (inside ``model`` when finetuned, else frozen beside it)
    frozen: bool

    def encode(self, captions: list[str], device: torch.device):
        """Tokenize; return the keyword arguments of ``Text2SignModel.forward`` for the text."""
        ids, mask = self.text.tokenize(captions, device)
        if not self.frozen:
            return {"input_ids": ids, "attention_mask": mask}
        with torch.no_grad():
            states, smask = self.text(ids, mask)
        return {"text_states": states, "text_mask": smask}

    def parameter_counts(self) -> dict[str, int]:
        dit_total, dit_train = count_parameters(self.model.dit)
        te_total, te_train = count_parameters(self.text)
        return {
            "params_dit": dit_total,
            "params_dit_trainable": dit_train,
            "params_text_encoder": te_total,
            "params_text_encoder_trainable": te_train,
            "params_total": dit_total + te_total,
            "params_trainable": dit_train + te_train,
        }


def build_model(cfg: Config, run_dir: Path | None, captions: list[str] | None) -> Built:
    """Build text encoder + DiT for ``cfg``. ``captions`` train the tiny tokenizer on first use."""
    text = build_text_encoder(
        cfg.text.encoder,
        max_tokens=cfg.text.max_tokens,
        captions=captions,
        save_dir=(run_dir / "text_encoder") if run_dir is not None else None,
    )
    if not cfg.text.finetune:
        freeze(text)
    dit = VideoDiT(
        DIT_PRESETS[cfg.model.preset],
        num_frames=cfg.data.num_frames,
        image_size=cfg.data.image_size,
        in_channels=CHANNELS,
        text_dim=text.dim,
        grad_checkpointing=cfg.model.grad_checkpointing,
        checkpoint_blocks=cfg.perf.checkpoint_blocks,
        attention_backend=cfg.perf.attention_backend,
        cross_attention=cfg.perf.cross_attention,
        fused_adaln=cfg.perf.fused_adaln,
    )
    model = Text2SignModel(dit, text if cfg.text.finetune else None)
    return Built(model=model, text=text, frozen=not cfg.text.finetune)
