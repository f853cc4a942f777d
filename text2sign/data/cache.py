"""Decoded cache: every clip decoded once into one uint8 ``.npy`` array, and the torch Dataset.

Layout: ``<cache_dir>/<frames>x<size>-<key>/{videos.npy, index.json}``. The key hashes every
listed sample (name, caption, signer, source, kind, cut, and the source's size and mtime; for a
frame folder, those of every frame), the frame count, the size and the frame sampling, so any
change to the data or the decoding makes a new sub-folder instead of silently reusing stale
frames. A cache is built (:mod:`text2sign.data.build`: in parallel over the allocation's CPUs,
in parts when the prepare stage spreads it over a job array) in a temporary folder and renamed
into place, so a concurrent job never sees half of one; the loser of a rename race uses the
winner's copy. Old sub-folders are not deleted.

Sources that fail to decode are skipped and recorded in ``index.json`` (``skipped``), so a later
open names them again without decoding anything; ``strict`` refuses them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from text2sign.data import build
from text2sign.data.samples import Bad, Sample, format_bad, split_by_signer
from text2sign.data.sources import dataset_dir, list_samples
from text2sign.data.video import frame_files, sample_indices
from text2sign.errors import DataError

log = logging.getLogger("text2sign")

CACHE_VERSION = build.CACHE_VERSION
DEFAULT_CACHE_SUBDIR = ".t2s_cache"
_VIDEOS_FILE = build.VIDEOS_FILE
_INDEX_FILE = build.INDEX_FILE


def _relative(path: Path, base: Path | None) -> str:
    """``path`` relative to ``base`` when inside it (POSIX separators), else absolute."""
    try:
        return path.relative_to(base).as_posix() if base is not None else str(path)
    except ValueError:
        return str(path)


def _fingerprint(sample: Sample) -> dict:
    """What changes when the source changes: size and mtime (of every frame, for a folder)."""
    try:
        if sample.kind != "frames":
            st = sample.source.stat()
            return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
        stats = [p.stat() for p in frame_files(sample.source)]
    except OSError as e:  # removed or replaced since the listing
        raise DataError(f"cannot read {sample.source}: {e.strerror}") from e
    return {
        "files": len(stats),
        "bytes": sum(s.st_size for s in stats),
        "mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
    }


def describe(samples: list[Sample], base: Path | None) -> list[dict]:
    """Per sample, sorted by name: the index record (and what invalidates the cache)."""
    records = []
    for s in sorted(samples, key=lambda s: s.name):
        record = {"name": s.name, "caption": s.caption, "signer": s.signer,
                  "recording": s.cluster, "kind": s.kind}  # fmt: skip
        record["source"] = _relative(s.source, base)
        records.append({**record, **s.cut, **_fingerprint(s)})
    return records


def cache_key(records: list[dict], num_frames: int, size: int, frame_sampling: str) -> str:
    """Sub-folder name of the cache for these samples and this decoding."""
    blob = json.dumps(
        {
            "version": CACHE_VERSION,
            "num_frames": num_frames,
            "size": size,
            "frame_sampling": frame_sampling,
            "samples": records,
        },
        sort_keys=True,
    )
    return f"{num_frames}x{size}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


class DecodedCache:
    """Clips decoded once: ``videos`` is a read-only uint8 memmap (N, T, H, W, 3).

    Per sample (same order): ``names``, ``captions``, ``signers``, ``recordings``, ``sources`` (absolute
    paths of the file or frame folder) and ``records`` (the full index entries: kind, cut,
    ``frames`` in the cut). ``skipped`` lists the sources that failed to decode.
    """

    def __init__(self, path: Path, root: Path | None = None) -> None:
        self.path = Path(path)
        index = json.loads((self.path / _INDEX_FILE).read_text(encoding="utf-8"))
        self.num_frames: int = index["num_frames"]
        self.size: int = index["size"]
        self.frame_sampling: str = index["frame_sampling"]
        self.root = Path(root) if root is not None else Path(index["root"])  # where it was opened
        self.records: list[dict] = index["samples"]
        self.names: list[str] = [r["name"] for r in self.records]
        self.captions: list[str] = [r["caption"] for r in self.records]
        self.signers: list[str] = [r["signer"] for r in self.records]
        self.recordings: list[str] = [r.get("recording", r["signer"]) for r in self.records]
        self.sources: list[Path] = [self.root / r["source"] for r in self.records]  # absolute
        self.skipped: list[Bad] = [Bad(s["label"], s["reason"]) for s in index["skipped"]]
        self._videos: np.ndarray | None = None

    @property
    def videos(self) -> np.ndarray:
        """The memmap, opened lazily so each DataLoader worker opens its own."""
        if self._videos is None:
            self._videos = np.load(self.path / _VIDEOS_FILE, mmap_mode="r")
        return self._videos

    def source_frames(self, j: int) -> np.ndarray:
        """Which frames of sample ``j``'s cut (0 = its first) make the cached clip, in order."""
        return sample_indices(self.records[j]["frames"], self.num_frames, self.frame_sampling)

    def absolute_frames(self, j: int) -> np.ndarray:
        """The same frames as indices in the whole source (a cut in frames or in seconds
        shifts them by the index of the cut's first frame): what exact keypoints follow."""
        return int(self.records[j].get("first", 0)) + self.source_frames(j)

    def __getstate__(self) -> dict:
        # Pickling a memmap copies the whole array into the pickle (spawned DataLoader
        # workers); drop it and let each process reopen the file instead.
        return {**self.__dict__, "_videos": None}

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def load_or_build(
        cls,
        samples: list[Sample],
        *,
        num_frames: int,
        size: int,
        cache_dir: str | os.PathLike,
        frame_sampling: str = "first",
        root: str | os.PathLike | None = None,
        strict: bool = False,
        listed_bad: list[Bad] | None = None,
        workers: int | None = None,
    ) -> DecodedCache:
        """Open the cache for ``samples`` at this decoding, building it first if needed
        (:mod:`text2sign.data.build`: ``workers`` processes, default the allocation's CPUs).

        ``root`` is the dataset (a folder or a manifest): sources inside its folder are
        recorded relative to that folder, others (and all, without ``root``) absolute.
        ``strict`` makes a source that fails to decode a DataError, now or recorded earlier.
        ``listed_bad`` (the listing's bad entries) only completes the error when none decodes.
        """
        plan = make_plan(samples, num_frames=num_frames, size=size, cache_dir=cache_dir,
                         frame_sampling=frame_sampling, root=root, strict=strict,
                         listed_bad=listed_bad)  # fmt: skip
        if not (plan.final / _INDEX_FILE).is_file():
            from text2sign.runtime import threads

            build.ensure(plan, workers=workers or threads.allocation()[0])
        cache = cls(plan.final, plan.root_dir if root is not None else None)
        if strict and cache.skipped:
            raise DataError(
                f"{len(cache.skipped)} bad entries in {root}: {format_bad(cache.skipped, 3)}; "
                "data.strict is set"
            )
        return cache


def make_plan(
    samples: list[Sample],
    *,
    num_frames: int,
    size: int,
    cache_dir: str | os.PathLike,
    frame_sampling: str = "first",
    root: str | os.PathLike | None = None,
    strict: bool = False,
    listed_bad: list[Bad] | None = None,
) -> build.CachePlan:
    """Where the cache of ``samples`` at this decoding lives, and what it is built from."""
    if not samples:
        raise DataError("cannot build a decoded cache from zero samples")
    base = dataset_dir(root).absolute() if root is not None else None
    ordered = sorted(samples, key=lambda s: s.name)
    records = describe(ordered, base)
    final = Path(cache_dir) / cache_key(records, num_frames, size, frame_sampling)
    where = Path(root) if root is not None else Path(cache_dir)
    return build.CachePlan(final=final, samples=ordered, records=records, num_frames=num_frames,
                           size=size, sampling=frame_sampling, root=where,
                           root_dir=base or Path(cache_dir).absolute(), strict=strict,
                           listed_bad=list(listed_bad or []))  # fmt: skip


class VideoTextDataset(Dataset):
    """Samples of a DecodedCache: video float32 (T, C, H, W) in [-1, 1], caption, name, index.

    ``index`` is the sample's position in the cache (stable across train/val subsets).
    """

    def __init__(self, cache: DecodedCache, indices: list[int] | None = None) -> None:
        self.cache = cache
        self.indices = list(range(len(cache))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def captions(self) -> list[str]:
        """Captions of this subset, in order."""
        return [self.cache.captions[j] for j in self.indices]

    @property
    def names(self) -> list[str]:
        """Sample names of this subset, in order."""
        return [self.cache.names[j] for j in self.indices]

    def __getitem__(self, i: int) -> dict:
        j = self.indices[i]
        frames = torch.from_numpy(np.array(self.cache.videos[j]))  # (T, H, W, C) uint8, a copy
        video = frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (T, C, H, W) in [-1, 1]
        return {
            "video": video,
            "caption": self.cache.captions[j],
            "name": self.cache.names[j],
            "index": j,
        }


def open_dataset(
    root: str | os.PathLike,
    *,
    num_frames: int,
    size: int,
    val_fraction: float,
    cache_dir: str | os.PathLike | None = None,
    strict: bool = False,
    seed: int = 0,
    frame_sampling: str = "first",
) -> tuple[VideoTextDataset, VideoTextDataset]:
    """List ``root`` (a folder or a manifest), open the decoded cache, split it by signer.

    One cache holds all samples (the split only picks indices), by default in
    ``<dataset folder>/.t2s_cache``. Bad entries and sources that fail to decode are named in
    one warning (``strict``: a DataError). ``val`` is empty when ``val_fraction`` is 0 or there
    is one signer.
    """
    listing = list_samples(root, strict=strict)
    cache_dir = dataset_dir(root) / DEFAULT_CACHE_SUBDIR if cache_dir is None else Path(cache_dir)
    cache = DecodedCache.load_or_build(
        listing.samples, num_frames=num_frames, size=size, cache_dir=cache_dir,
        frame_sampling=frame_sampling, root=root, strict=strict, listed_bad=listing.bad,
    )  # fmt: skip
    bad = listing.bad + cache.skipped
    if bad:
        log.warning("skipped %d bad entries in %s: %s", len(bad), root, format_bad(bad))
    by_name = {s.name: s for s in listing.samples}
    train_s, val_s = split_by_signer([by_name[n] for n in cache.names], val_fraction, seed=seed)
    position = {name: j for j, name in enumerate(cache.names)}
    train = VideoTextDataset(cache, [position[s.name] for s in train_s])
    val = VideoTextDataset(cache, [position[s.name] for s in val_s])
    return train, val
