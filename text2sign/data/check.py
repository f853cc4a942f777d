"""``python -m text2sign data check DIR``: what a dataset folder holds, and what is wrong with it."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np

from text2sign.data.gif_folder import scan_folder, signer_of

_MAX_SIGNERS_LISTED = 20  # per-signer counts shown before the rest are summarised
_MAX_SIZES_LISTED = 5  # most common frame sizes shown


def _min_median_max(values: list[int]) -> str:
    return f"min {min(values)} / median {float(np.median(values)):g} / max {max(values)}"


def check_report(root: str | os.PathLike, *, strict: bool = False) -> str:
    """A human-readable report of the dataset at ``root``: counts, frame and caption statistics.

    Raises ``DataError`` for a missing or empty folder, and with ``strict`` for any bad file.
    """
    scan = scan_folder(root, strict=strict)
    pairs = scan.pairs
    signers = Counter(signer_of(p.name) for p in pairs)
    captions = Counter(p.caption for p in pairs)
    sizes = Counter(f"{p.width}x{p.height}" for p in pairs)

    listed = ", ".join(f"{s}: {n}" for s, n in sorted(signers.items())[:_MAX_SIGNERS_LISTED])
    if len(signers) > _MAX_SIGNERS_LISTED:
        listed += f", ... ({len(signers) - _MAX_SIGNERS_LISTED} more)"
    size_list = ", ".join(f"{s} ({n})" for s, n in sizes.most_common(_MAX_SIZES_LISTED))
    if len(sizes) > _MAX_SIZES_LISTED:
        size_list += f", ... ({len(sizes) - _MAX_SIZES_LISTED} more sizes)"

    lines = [
        f"dataset: {scan.root}",
        f"pairs: {len(pairs)}",
        f"signers: {len(signers)} ({listed})",
        f"captions: {len(pairs)} ({len(captions)} unique)",
        f"caption length (words): {_min_median_max([len(p.caption.split()) for p in pairs])}",
        f"caption length (chars): {_min_median_max([len(p.caption) for p in pairs])}",
        f"frames per GIF: {_min_median_max([p.num_frames for p in pairs])}",
        f"frame sizes (WxH): {size_list}",
        f"bad files: {len(scan.bad)}",
    ]
    lines += [f"  {fname}: {reason}" for fname, reason in scan.bad]
    return "\n".join(lines)
