"""Data: the synthetic generator, GIF + caption folders, the decoded cache and the Dataset.

Names are imported on first use (PEP 562), so that a torch-free caller (``jobs/submit.py``
checking a dataset folder before submitting) does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "DecodedCache": "cache", "VideoTextDataset": "cache", "open_dataset": "cache",
    "check_report": "check",
    "Pair": "gif_folder", "ScanResult": "gif_folder", "load_gif": "gif_folder",
    "scan_folder": "gif_folder", "signer_of": "gif_folder", "split_by_signer": "gif_folder",
    "BLOB_COLOURS": "synth", "GLOSSES": "synth", "KEYPOINT_NAMES": "synth",
    "caption_keypoints": "synth", "generate": "synth",
}  # fmt: skip

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
