"""Video DiT size presets: a name registry (DiT's ``DiT_models``), free of torch imports.

The config validates ``model.preset`` against this registry, and job submission imports the
config without paying for ``import torch``.
"""

from __future__ import annotations

from dataclasses import dataclass

from text2sign.errors import ConfigError


@dataclass(frozen=True)
class DiTPreset:
    """Width and depth of a VideoDiT."""

    depth: int
    hidden: int
    heads: int
    patch: int
    mlp_ratio: float = 4.0


DIT_PRESETS: dict[str, DiTPreset] = {
    "tiny": DiTPreset(depth=4, hidden=96, heads=4, patch=4),  # ~0.9M params: CPU tests and demo
    "small": DiTPreset(depth=12, hidden=384, heads=6, patch=2),  # DiT-S/2 width and depth
    "base": DiTPreset(depth=12, hidden=768, heads=12, patch=2),  # DiT-B/2 width and depth
    "d14": DiTPreset(depth=14, hidden=1152, heads=16, patch=2),  # TinyFusion DiT-D14/2
    # d14 with 4 px patches: at 128 px the same 1,024 tokens per frame as d14 at 64 px
    "d14p4": DiTPreset(depth=14, hidden=1152, heads=16, patch=4),
}


def get_preset(name: str) -> DiTPreset:
    """Look up a preset by name; an unknown name raises ConfigError listing the valid ones."""
    try:
        return DIT_PRESETS[name]
    except KeyError:
        valid = ", ".join(sorted(DIT_PRESETS))
        raise ConfigError(f"unknown DiT preset {name!r}; choose one of: {valid}") from None
