"""What one sample is, whatever its kind, and the signer-disjoint train/val split.

A sample is a video source (a GIF, an ``.mp4`` or ``.webm`` file, or a folder of frames), its
caption, its signer and the recording it was cut from (clips of one recording are not
independent: evaluation clusters them), optionally cut to ``start``/``end`` seconds or ``start_frame``/
``end_frame`` frames. Folders (``text2sign.data.folder``) and manifests
(``text2sign.data.manifest``) both produce samples; anything wrong with an entry is a ``Bad``
(what to name, why), skipped with one warning or refused with ``strict``.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from text2sign.errors import UsageError

log = logging.getLogger("text2sign")

#: Kinds of video source, and the file suffixes that make one (a folder of frames has none).
KINDS: tuple[str, ...] = ("gif", "mp4", "webm", "frames")
VIDEO_SUFFIXES: dict[str, str] = {".gif": "gif", ".mp4": "mp4", ".webm": "webm"}
#: Image files that make a folder of frames, sorted by name (numbers compared as numbers).
FRAME_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")

MAX_LISTED = 10  # bad entries named in one warning or error line; the rest are counted


@dataclass(frozen=True)
class Sample:
    """One sample: its source, caption and signer, and the cut (seconds or frames) if any.

    ``source`` is absolute. ``label`` is how messages name the sample: the file name in a
    folder, ``manifest.csv line 7`` in a manifest. A cut is half-open: ``[start, end)``.
    """

    name: str
    source: Path
    caption: str
    signer: str
    kind: str
    start: float | None = None
    end: float | None = None
    start_frame: int | None = None
    end_frame: int | None = None
    label: str = ""
    recording: str = ""  # the recording (session, broadcast) it was cut from; "" = its signer

    @property
    def cluster(self) -> str:
        """What clips are clustered by in statistics: the recording, else the signer."""
        return self.recording or self.signer

    @property
    def cut(self) -> dict:
        """The cut as recorded in the cache index: only the keys that are set."""
        keys = ("start", "end", "start_frame", "end_frame")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass(frozen=True)
class Bad:
    """An entry that is not a usable sample: what it is (file or manifest line) and why."""

    label: str
    reason: str


@dataclass
class Listing:
    """The samples of a dataset (sorted by name) and the entries skipped, with reasons."""

    root: Path
    samples: list[Sample] = field(default_factory=list)
    bad: list[Bad] = field(default_factory=list)


def signer_of(name: str) -> str:
    """The signer id of a folder sample: the name's prefix before the first ``_`` (or all)."""
    return name.split("_", 1)[0]


def kind_of(path: Path) -> str | None:
    """``gif``/``mp4``/``webm`` from the suffix, ``frames`` for a folder, else None."""
    if path.is_dir():
        return "frames"
    return VIDEO_SUFFIXES.get(path.suffix.lower())


def keypoints_path(source: Path) -> Path:
    """Where a clip's keypoints lie: ``<source without its video suffix>.keypoints.json``.

    ``clips/s3_00012.mp4`` -> ``clips/s3_00012.keypoints.json``; a frame folder ``s3_00012/``
    -> ``s3_00012.keypoints.json`` beside it.
    """
    stem = source.stem if source.suffix.lower() in VIDEO_SUFFIXES else source.name
    return source.with_name(f"{stem}.keypoints.json")


def format_bad(bad: list[Bad], limit: int = MAX_LISTED) -> str:
    """``a.gif (no caption), b.mp4 (truncated: ...)``, listing at most ``limit`` entries."""
    text = ", ".join(f"{b.label} ({b.reason})" for b in bad[:limit])
    if len(bad) > limit:
        text += f", ... and {len(bad) - limit} more"
    return text


def read_caption(path: Path) -> str:
    """The caption text of a ``NAME.txt``, whitespace collapsed; ValueError (why) if unusable."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"unreadable caption: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8-sig")  # tolerate a BOM, which some editors write
    except UnicodeDecodeError as e:
        raise ValueError("caption is not valid UTF-8") from e
    return clean_caption(text)


def clean_caption(text: str) -> str:
    """One line, single spaces (the text encoder sees words, not layout); ValueError if empty."""
    caption = " ".join(text.split())
    if not caption:
        raise ValueError("empty caption")
    return caption


def source_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a source before decoding it (missing, empty, ...), else None."""
    try:
        if path.is_dir():
            if not any(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir()):
                return "frame folder holds no .png/.jpg frames"
            return None
        st = path.stat()
    except FileNotFoundError:
        return "file missing" if not path.is_symlink() else "unreadable: broken link"
    except OSError as e:
        return f"unreadable: {e.strerror or e}"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    if not os.access(path, os.R_OK):
        return "unreadable: permission denied"
    return None


def split_by_signer(
    samples: list[Sample], val_fraction: float, *, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """Split samples into (train, val) with no signer in both.

    Signers are shuffled with ``seed`` and moved to val while that brings val closer to
    ``val_fraction`` of the samples; val gets at least one signer and train keeps at least one.
    With a single signer there is no signer-disjoint split: everything goes to train, val is
    empty and a warning says so (refusing would make single-signer folders unusable).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"val_fraction must be in [0, 1), got {val_fraction}")
    by_signer: dict[str, list[Sample]] = {}
    for sample in samples:
        by_signer.setdefault(sample.signer, []).append(sample)
    signers = sorted(by_signer)
    if val_fraction == 0.0:
        return list(samples), []
    if len(signers) < 2:
        log.warning(
            "only one signer (%s): cannot make a signer-disjoint validation split; "
            "using all %d samples for training and none for validation",
            signers[0] if signers else "-",
            len(samples),
        )
        return list(samples), []
    random.Random(seed).shuffle(signers)
    target = val_fraction * len(samples)
    val_signers: set[str] = set()
    val_count = 0
    for signer in signers[:-1]:  # the last signer always stays in train
        n = len(by_signer[signer])
        # Stop once one more signer would move val further from the target than it is now.
        if val_signers and abs(val_count + n - target) >= abs(val_count - target):
            break
        val_signers.add(signer)
        val_count += n
    train = [s for s in samples if s.signer not in val_signers]
    val = [s for s in samples if s.signer in val_signers]
    return train, val
