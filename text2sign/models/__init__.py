"""Models: the text-conditioned video DiT, the text encoder, the weight EMA and the diffusion process.

Import from the submodules (``text2sign.models.dit`` ...); ``build.py`` assembles the whole model
from a config. The size presets the config names live in :mod:`text2sign.presets`, torch-free.
"""
