"""What a dataset root is: a flat folder or a manifest file, listed as samples and bad entries.

Listing is cheap (captions, file sizes; nothing decoded): the decoded cache decodes and names
what fails then. ``first_valid_sample`` is the pre-submit check: it stops at the first sample
that decodes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from text2sign.data.folder import iter_folder
from text2sign.data.manifest import is_manifest, iter_manifest, video_folders
from text2sign.data.samples import Bad, Listing, Sample, format_bad
from text2sign.errors import DataError

FOLDER_HINT = "NAME.gif/.mp4/.webm or a frame folder NAME/, each with NAME.txt"


def iter_entries(root: str | os.PathLike) -> Iterator[Sample | Bad]:
    """Every entry of a dataset folder or manifest: a Sample, or a Bad with the reason."""
    root = Path(root)
    if is_manifest(root):
        yield from iter_manifest(root)
        return
    if not root.exists():
        raise DataError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"dataset path {root} is not a folder or a manifest (.csv, .jsonl)")
    yield from iter_folder(root)


def dataset_dir(root: str | os.PathLike) -> Path:
    """The folder a dataset lives in: the folder itself, or the manifest's folder."""
    root = Path(root)
    return root.parent if is_manifest(root) else root


def no_samples_error(root: Path, bad: list[Bad]) -> DataError:
    """The one-line error for a dataset without a usable sample."""
    detail = f" ({len(bad)} bad: {format_bad(bad, 3)})" if bad else ""
    if is_manifest(root):
        return DataError(f"no usable row in manifest {root}{detail}")
    return DataError(f"no valid samples ({FOLDER_HINT}) in {root}{detail}")


def list_samples(root: str | os.PathLike, *, strict: bool = False) -> Listing:
    """The samples of ``root`` sorted by name, and its bad entries (nothing is decoded).

    Raises ``DataError`` for a missing root, a root without samples, and with ``strict`` for
    any bad entry.
    """
    root = Path(root)
    listing = Listing(root=root)
    for entry in iter_entries(root):
        (listing.samples if isinstance(entry, Sample) else listing.bad).append(entry)
    listing.samples.sort(key=lambda s: s.name)
    if listing.bad and strict:
        raise DataError(f"{len(listing.bad)} bad entries in {root}: {format_bad(listing.bad, 3)}")
    if not listing.samples:
        raise no_samples_error(root, listing.bad)
    return listing


def first_valid_sample(root: str | os.PathLike) -> Sample:
    """The first sample of ``root`` that decodes (a cheap check before submitting a study).

    Raises ``DataError`` for a missing root, or one without a sample that decodes.
    """
    from text2sign.data.video import BadVideo, probe  # PyAV and Pillow, only when needed

    root = Path(root)
    bad: list[Bad] = []
    for entry in iter_entries(root):
        if isinstance(entry, Bad):
            bad.append(entry)
            continue
        try:
            probe(entry)
        except BadVideo as e:
            bad.append(Bad(entry.label, str(e)))
            continue
        return entry
    raise no_samples_error(root, bad)


#: At most this many folders are bound for a dataset, however many folders its clips lie in.
MAX_DATA_FOLDERS = 8


def data_folders(root: str | os.PathLike, limit: int = MAX_DATA_FOLDERS) -> list[Path]:
    """The few folders a job reads a dataset from (its bind mounts): the folder itself, or a
    manifest's folder and the folders its videos lie in, merged into at most ``limit`` roots.

    PHOENIX-2014T's train split is 7,096 frame folders under one split folder: one bind each
    would be a ~1 MB ``--bind`` argument (Linux allows 128 KiB per argument). Folders are
    taken as the manifest writes them and as their links resolve (a ``clips -> /store/clips``
    link in the project needs both bound). O(N log N) in the rows.
    """
    root = Path(root)
    if not is_manifest(root):
        return [root]
    written = {Path(os.path.abspath(root.parent)), *video_folders(root)}
    return common_roots(written | {Path(os.path.realpath(f)) for f in written}, limit)


def _outermost(folders) -> list[Path]:
    """The folders not inside another of them, sorted. Sorting by path components puts a
    folder right before everything inside it, so one pass comparing with the last kept one
    suffices: O(N log N)."""
    out: list[Path] = []
    for folder in sorted(set(folders), key=lambda p: p.parts):
        if out and folder.parts[: len(out[-1].parts)] == out[-1].parts:
            continue
        out.append(folder)
    return out


def common_roots(folders, limit: int = MAX_DATA_FOLDERS) -> list[Path]:
    """The outermost of ``folders`` (absolute), the deepest merged into their parents until at
    most ``limit`` remain. Never merges up to ``/`` (a top-level folder is as far as it goes),
    so more than ``limit`` come back only when the data spans more top-level folders."""
    roots = _outermost(folders)
    while len(roots) > limit:
        deepest = max(len(p.parts) for p in roots)
        if deepest <= 2:  # ("/", "data"): merging further would bind the whole machine
            break
        roots = _outermost(p.parent if len(p.parts) == deepest else p for p in roots)
    return roots
