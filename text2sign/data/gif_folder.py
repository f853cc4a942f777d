"""A flat folder of ``NAME.gif`` + ``NAME.txt`` pairs: scan, validate, load, split by signer.

The signer of a sample is the part of its name before the first ``_`` (``s3_00012`` -> ``s3``).
Bad files (corrupt or truncated GIFs, missing or unusable captions) are skipped with one warning,
or raise ``DataError`` with ``strict=True``; a missing or empty dataset always raises.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from text2sign.errors import DataError, UsageError

log = logging.getLogger("text2sign")

_MAX_LISTED = 10  # bad files named in one warning or error line; the rest are counted


@dataclass(frozen=True)
class Pair:
    """One sample: a GIF and its caption, plus what the scan learnt about the GIF."""

    name: str
    gif: Path
    caption: str
    num_frames: int = 0
    width: int = 0
    height: int = 0


@dataclass
class ScanResult:
    """The valid pairs of a folder (sorted by name) and the skipped files with reasons."""

    root: Path
    pairs: list[Pair] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)


def signer_of(name: str) -> str:
    """The signer id of a sample: the name's prefix before the first ``_`` (or the whole name)."""
    return name.split("_", 1)[0]


def format_bad(bad: list[tuple[str, str]], limit: int = _MAX_LISTED) -> str:
    """``a.gif (no caption), b.gif (corrupt GIF: ...)``, listing at most ``limit`` files."""
    text = ", ".join(f"{fname} ({reason})" for fname, reason in bad[:limit])
    if len(bad) > limit:
        text += f", ... and {len(bad) - limit} more"
    return text


def _probe_gif(path: Path) -> tuple[int, int, int]:
    """Decode every frame, since truncated data only fails when decoded: (frames, W, H)."""
    with Image.open(path) as im:
        if im.format != "GIF":
            raise ValueError(f"not a GIF but {im.format}")
        frames = 0
        for frame in ImageSequence.Iterator(im):
            frame.load()
            frames += 1
        return frames, im.width, im.height


def _read_caption(path: Path) -> str:
    """The caption text, whitespace collapsed; ValueError (the reason) if unusable."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"unreadable caption: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8-sig")  # tolerate a BOM, which some editors write
    except UnicodeDecodeError as e:
        raise ValueError("caption is not valid UTF-8") from e
    # Multi-line captions become one line: the text encoder sees words, not layout.
    caption = " ".join(text.split())
    if not caption:
        raise ValueError("empty caption")
    return caption


def _check_pair(gif: Path) -> tuple[Pair | None, tuple[str, str] | None]:
    """Validate one GIF and its caption: (pair, None) or (None, (file name, reason))."""
    txt = gif.with_suffix(".txt")
    if not txt.is_file():
        return None, (gif.name, "no caption")
    try:
        caption = _read_caption(txt)
    except ValueError as e:
        return None, (txt.name, str(e))
    try:
        frames, width, height = _probe_gif(gif)
    except (PermissionError, FileNotFoundError) as e:  # e.g. no read access, a broken link
        return None, (gif.name, f"unreadable: {e.strerror}")
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, EOFError, ...)
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        return None, (gif.name, f"corrupt GIF: {detail}")
    return Pair(gif.stem, gif, caption, frames, width, height), None


def first_valid_pair(root: str | os.PathLike) -> Pair:
    """The first valid GIF + caption pair of ``root`` (a cheap check before submitting a study).

    Raises ``DataError`` for a missing folder, a file, or a folder without one valid pair.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"dataset path {root} is not a folder")
    bad: list[tuple[str, str]] = []
    for gif in sorted(p for p in root.iterdir() if p.suffix.lower() == ".gif"):
        if gif.name.startswith(".") or gif.is_dir():
            continue
        pair, problem = _check_pair(gif)
        if pair is not None:
            return pair
        bad.append(problem)  # type: ignore[arg-type]
    detail = f" ({len(bad)} bad: {format_bad(bad, 3)})" if bad else ""
    raise DataError(f"no valid NAME.gif + NAME.txt pairs in {root}{detail}")


def scan_folder(root: str | os.PathLike, *, strict: bool = False) -> ScanResult:
    """Find and validate the GIF + caption pairs of a flat folder.

    Bad files are skipped and counted in one warning (``strict=False``) or raise ``DataError``
    (``strict=True``). A missing folder, a file, or a folder without valid pairs raise
    ``DataError``. Stray ``.txt`` and ``.keypoints.json`` files are ignored.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"dataset path {root} is not a folder")
    result = ScanResult(root=root)
    gifs = sorted(
        p for p in root.iterdir() if p.suffix.lower() == ".gif" and not p.name.startswith(".")
    )
    for gif in gifs:
        if gif.is_dir():
            continue  # a folder named *.gif is not a sample
        pair, bad = _check_pair(gif)
        if pair is not None:
            result.pairs.append(pair)
        if bad is not None:
            result.bad.append(bad)
    result.pairs.sort(key=lambda p: p.name)
    if result.bad and strict:
        raise DataError(f"{len(result.bad)} bad files in {root}: {format_bad(result.bad, 3)}")
    if not result.pairs:
        detail = f" ({len(result.bad)} bad: {format_bad(result.bad, 3)})" if result.bad else ""
        raise DataError(f"no valid NAME.gif + NAME.txt pairs in {root}{detail}")
    if result.bad:
        log.warning("skipped %d bad files in %s: %s", len(result.bad), root, format_bad(result.bad))
    return result


def _resize_and_crop(frame: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size``, then centre-crop to ``size`` x ``size``."""
    w, h = frame.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        # BOX (area averaging) when shrinking avoids aliasing; bilinear when enlarging.
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        frame = frame.resize((new_w, new_h), resample)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return frame.crop((left, top, left + size, top + size))


def load_gif(path: str | os.PathLike, num_frames: int, size: int) -> np.ndarray:
    """Decode a GIF to uint8 (num_frames, size, size, 3) RGB.

    Longer clips are truncated to their first ``num_frames`` frames, shorter ones padded by
    repeating the last frame; frames are resized (shorter side = ``size``) and centre-cropped.
    """
    frames: list[np.ndarray] = []
    try:
        with Image.open(path) as im:
            for frame in ImageSequence.Iterator(im):
                # convert("RGB") flattens palette, greyscale and RGBA (alpha is dropped).
                frames.append(np.asarray(_resize_and_crop(frame.convert("RGB"), size)))
                if len(frames) == num_frames:
                    break
    except Exception as e:  # PIL raises many types for a bad file
        raise DataError(f"cannot decode {path}: {e}") from e
    if not frames:
        raise DataError(f"cannot decode {path}: no frames")
    frames += [frames[-1]] * (num_frames - len(frames))
    return np.stack(frames)


def split_by_signer(
    pairs: list[Pair], val_fraction: float, *, seed: int = 0
) -> tuple[list[Pair], list[Pair]]:
    """Split pairs into (train, val) with no signer in both.

    Signers are shuffled with ``seed`` and moved to val while that brings val closer to
    ``val_fraction`` of the samples; val gets at least one signer and train keeps at least one.
    With a single signer there is no signer-disjoint split: everything goes to train, val is
    empty and a warning says so (refusing would make single-signer folders unusable).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"val_fraction must be in [0, 1), got {val_fraction}")
    by_signer: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_signer.setdefault(signer_of(pair.name), []).append(pair)
    signers = sorted(by_signer)
    if val_fraction == 0.0:
        return list(pairs), []
    if len(signers) < 2:
        log.warning(
            "only one signer (%s): cannot make a signer-disjoint validation split; "
            "using all %d samples for training and none for validation",
            signers[0] if signers else "-",
            len(pairs),
        )
        return list(pairs), []
    random.Random(seed).shuffle(signers)
    target = val_fraction * len(pairs)
    val_signers: set[str] = set()
    val_count = 0
    for signer in signers[:-1]:  # the last signer always stays in train
        n = len(by_signer[signer])
        # Stop once one more signer would move val further from the target than it is now.
        if val_signers and abs(val_count + n - target) >= abs(val_count - target):
            break
        val_signers.add(signer)
        val_count += n
    train = [p for p in pairs if signer_of(p.name) not in val_signers]
    val = [p for p in pairs if signer_of(p.name) in val_signers]
    return train, val
