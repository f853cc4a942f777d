"""Data: dataset folders and manifests, importers, decoding, the decoded cache and the Dataset.

Names are imported on first use (PEP 562), so that a torch-free caller (``jobs/submit.py``
checking a dataset before submitting) does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "DecodedCache": "cache", "VideoTextDataset": "cache", "open_dataset": "cache",
    "check_report": "check",
    "import_how2sign": "importers", "import_phoenix": "importers",
    "iter_manifest": "manifest", "write_manifest": "manifest",
    "Bad": "samples", "Listing": "samples", "Sample": "samples", "signer_of": "samples",
    "split_by_signer": "samples",
    "write_how2sign": "shaped", "write_phoenix": "shaped",
    "first_valid_sample": "sources", "list_samples": "sources",
    "BLOB_COLOURS": "synth", "GLOSSES": "synth", "KEYPOINT_NAMES": "synth",
    "caption_keypoints": "synth", "generate": "synth",
    "keypoints_path": "samples",
    "BadVideo": "video", "load_path": "video", "load_video": "video", "probe": "video",
}  # fmt: skip

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
