"""Data: the synthetic generator, GIF + caption folders, the decoded cache and the Dataset."""

from text2sign.data.cache import DecodedCache, VideoTextDataset, open_dataset
from text2sign.data.check import check_report
from text2sign.data.gif_folder import (
    Pair,
    ScanResult,
    load_gif,
    scan_folder,
    signer_of,
    split_by_signer,
)
from text2sign.data.synth import BLOB_COLOURS, GLOSSES, KEYPOINT_NAMES, caption_keypoints, generate

__all__ = [
    "BLOB_COLOURS",
    "GLOSSES",
    "KEYPOINT_NAMES",
    "DecodedCache",
    "Pair",
    "ScanResult",
    "VideoTextDataset",
    "caption_keypoints",
    "check_report",
    "generate",
    "load_gif",
    "open_dataset",
    "scan_folder",
    "signer_of",
    "split_by_signer",
]
