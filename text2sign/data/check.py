"""``python -m text2sign data check ROOT``: what a dataset (folder or manifest) holds, and what
is wrong with it. Every sample is decoded (the whole cut), as the cache would, in parallel over
the allocation's CPUs (:mod:`text2sign.data.decode_pool`)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from text2sign.data.decode_pool import probe_all, progress_printer
from text2sign.data.samples import Bad, format_bad
from text2sign.data.sources import list_samples, no_samples_error
from text2sign.errors import DataError

_MAX_SIGNERS_LISTED = 20  # per-signer counts shown before the rest are summarised
_MAX_SIZES_LISTED = 5  # most common frame sizes shown


def _min_median_max(values: list[float]) -> str:
    if not values:
        return "-"
    return f"min {min(values):g} / median {float(np.median(values)):g} / max {max(values):g}"


def _counts(counter: Counter, limit: int) -> str:
    text = ", ".join(f"{k}: {n}" for k, n in sorted(counter.items())[:limit])
    return text + (f", ... ({len(counter) - limit} more)" if len(counter) > limit else "")


def check_report(root: str | os.PathLike, *, strict: bool = False, workers: int | None = None,
                 progress: bool = False) -> str:  # fmt: skip
    """A human-readable report of the dataset at ``root``: counts, frame and caption statistics.

    Every clip is decoded, with ``workers`` processes (default: the allocation's CPUs);
    ``progress`` prints progress lines on stderr. Raises ``DataError`` for a missing root, one
    without a sample that decodes, and with ``strict`` for any bad entry.
    """
    from text2sign.runtime import threads

    listing = list_samples(root, strict=strict)
    bad: list[Bad] = list(listing.bad)
    good, infos = [], []
    workers = workers or threads.allocation()[0]
    shown = progress_printer("checking") if progress else None
    for sample, info in zip(listing.samples, probe_all(listing.samples, workers=workers,
                                                       progress=shown), strict=True):  # fmt: skip
        if isinstance(info, str):
            bad.append(Bad(sample.label, info))
            continue
        good.append(sample)
        infos.append(info)
    if bad and strict:
        raise DataError(f"{len(bad)} bad entries in {root}: {format_bad(bad, 3)}")
    if not good:
        raise no_samples_error(Path(root), bad)
    signers = Counter(s.signer for s in good)
    sizes = Counter(f"{i.width}x{i.height}" for i in infos)
    size_list = ", ".join(f"{s} ({n})" for s, n in sizes.most_common(_MAX_SIZES_LISTED))
    if len(sizes) > _MAX_SIZES_LISTED:
        size_list += f", ... ({len(sizes) - _MAX_SIZES_LISTED} more sizes)"
    spans = [i.seconds for i in infos if i.seconds is not None]
    cut = sum(1 for s in good if s.cut)
    lines = [
        f"dataset: {listing.root}",
        f"samples: {len(good)} ({_counts(Counter(s.kind for s in good), 4)}; {cut} cut)",
        f"signers: {len(signers)} ({_counts(signers, _MAX_SIGNERS_LISTED)})",
        f"recordings: {len(set(s.cluster for s in good))} (clips of one recording are one "
        "cluster in evaluation's statistics)",
        f"captions: {len(good)} ({len(set(s.caption for s in good))} unique)",
        f"caption length (words): {_min_median_max([len(s.caption.split()) for s in good])}",
        f"caption length (chars): {_min_median_max([len(s.caption) for s in good])}",
        f"frames per clip: {_min_median_max([i.frames for i in infos])}",
        f"seconds per clip (first to last frame, timed kinds): {_min_median_max(spans)}",
        f"frame sizes (WxH): {size_list}",
        f"bad entries: {len(bad)}",
    ]
    lines += [f"  {b.label}: {b.reason}" for b in bad]
    return "\n".join(lines)
