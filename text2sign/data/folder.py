"""A flat dataset folder: ``NAME.gif``, ``NAME.mp4``, ``NAME.webm`` or a frame folder ``NAME/``
(``000.png`` ...), each with its caption ``NAME.txt``; the signer is the prefix of ``NAME``
before the first ``_``.

Listing a folder is cheap (names, captions, sizes): nothing is decoded here. Side files
(``NAME.keypoints.json``, a ``manifest.csv``, stray ``.txt``) and hidden entries (the decoded
cache ``.t2s_cache``) are ignored; so is a sub-folder without frames and without a caption.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from text2sign.data.samples import (
    FRAME_SUFFIXES,
    VIDEO_SUFFIXES,
    Bad,
    Sample,
    read_caption,
    signer_of,
    source_problem,
)


def _candidates(root: Path) -> list[tuple[str, Path, str]]:
    """(name, source, kind) of every entry that looks like a sample, sorted by entry name."""
    out = []
    for path in sorted(root.iterdir(), key=lambda p: p.name):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            holds_frames = any(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir())
            if holds_frames or path.with_name(f"{path.name}.txt").is_file():
                out.append((path.name, path, "frames"))
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            out.append((path.stem, path, VIDEO_SUFFIXES[path.suffix.lower()]))
    return out


def iter_folder(root: Path) -> Iterator[Sample | Bad]:
    """Every sample of a flat folder, or the reason an entry is not one, in name order.

    A name used twice (``a.gif`` and ``a.mp4``) keeps the first in name order; the others are
    bad. Sources are checked for existence and size, not decoded.
    """
    seen: dict[str, str] = {}
    for name, source, kind in _candidates(root):
        label = source.name + ("/" if kind == "frames" else "")
        if name in seen:
            yield Bad(label, f"duplicate name {name!r}: {seen[name]} has it too")
            continue
        seen[name] = label
        txt = root / f"{name}.txt"
        if not txt.is_file():
            yield Bad(label, "no caption")
            continue
        try:
            caption = read_caption(txt)
        except ValueError as e:
            yield Bad(txt.name, str(e))
            continue
        problem = source_problem(source)
        if problem:
            yield Bad(label, problem)
            continue
        yield Sample(name, source.absolute(), caption, signer_of(name), kind, label=label)
