"""Models: the text-conditioned video DiT, the text encoder and the weight EMA."""

from text2sign.models.dit import DIT_PRESETS, DiTPreset, VideoDiT, count_parameters, get_preset
from text2sign.models.ema import EMA
from text2sign.models.text_encoder import TextEncoder, build_text_encoder, freeze

__all__ = [
    "DIT_PRESETS",
    "EMA",
    "DiTPreset",
    "TextEncoder",
    "VideoDiT",
    "build_text_encoder",
    "count_parameters",
    "freeze",
    "get_preset",
]
