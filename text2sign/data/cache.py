"""Decoded cache: GIFs decoded once into one uint8 ``.npy`` array, and the torch Dataset over it.

Layout: ``<cache_dir>/<frames>x<size>-<key>/{videos.npy, index.json}``. The key hashes the
sample names, captions, source sizes and mtimes, the frame count and the size, so any change to
the data or the decoding makes a new sub-folder instead of silently reusing stale frames. A cache
is built in a temporary folder and renamed into place, so a concurrent job never sees half of
one; the loser of a rename race uses the winner's copy. Old sub-folders are not deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from text2sign.atomic import write_json
from text2sign.data.gif_folder import Pair, load_gif, scan_folder, split_by_signer
from text2sign.errors import DataError

log = logging.getLogger("text2sign")

CACHE_VERSION = 1  # bump when the decoding changes, so old caches are not reused
DEFAULT_CACHE_SUBDIR = ".t2s_cache"
_VIDEOS_FILE = "videos.npy"
_INDEX_FILE = "index.json"


def _source_stats(pairs: list[Pair]) -> list[dict]:
    """Per sample: name, caption and the GIF's size and mtime (what invalidates the cache)."""
    stats = []
    for pair in sorted(pairs, key=lambda p: p.name):
        try:
            st = pair.gif.stat()
        except OSError as e:  # removed or replaced since the scan
            raise DataError(f"cannot read {pair.gif}: {e.strerror}") from e
        stats.append(
            {
                "name": pair.name,
                "caption": pair.caption,
                "bytes": st.st_size,
                "mtime_ns": st.st_mtime_ns,
            }
        )
    return stats


def cache_key(sources: list[dict], num_frames: int, size: int) -> str:
    """Sub-folder name of the cache for these sources and this decoding."""
    blob = json.dumps(
        {"version": CACHE_VERSION, "num_frames": num_frames, "size": size, "sources": sources},
        sort_keys=True,
    )
    return f"{num_frames}x{size}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _build(pairs: list[Pair], sources: list[dict], num_frames: int, size: int, out: Path) -> None:
    """Decode every GIF into ``out/videos.npy`` (written in place, never all in RAM)."""
    by_name = {p.name: p for p in pairs}
    shape = (len(sources), num_frames, size, size, 3)
    videos = np.lib.format.open_memmap(out / _VIDEOS_FILE, mode="w+", dtype=np.uint8, shape=shape)
    for i, src in enumerate(sources):
        videos[i] = load_gif(by_name[src["name"]].gif, num_frames, size)
    videos.flush()
    del videos
    index = {"version": CACHE_VERSION, "num_frames": num_frames, "size": size, "sources": sources}
    write_json(out / _INDEX_FILE, index)


@contextlib.contextmanager
def _build_lock(path: Path):
    """Serialise builders on one machine; a file system without flock just skips the lock."""
    with open(path, "w") as f:
        with contextlib.suppress(OSError):
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


class DecodedCache:
    """GIFs decoded once: ``videos`` is a read-only uint8 memmap (N, T, H, W, 3)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        index = json.loads((self.path / _INDEX_FILE).read_text(encoding="utf-8"))
        self.num_frames: int = index["num_frames"]
        self.size: int = index["size"]
        self.names: list[str] = [s["name"] for s in index["sources"]]
        self.captions: list[str] = [s["caption"] for s in index["sources"]]
        self._videos: np.ndarray | None = None

    @property
    def videos(self) -> np.ndarray:
        """The memmap, opened lazily so each DataLoader worker opens its own."""
        if self._videos is None:
            self._videos = np.load(self.path / _VIDEOS_FILE, mmap_mode="r")
        return self._videos

    def __getstate__(self) -> dict:
        # Pickling a memmap copies the whole array into the pickle (spawned DataLoader
        # workers); drop it and let each process reopen the file instead.
        return {**self.__dict__, "_videos": None}

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def load_or_build(
        cls, pairs: list[Pair], *, num_frames: int, size: int, cache_dir: str | os.PathLike
    ) -> DecodedCache:
        """Open the cache for ``pairs`` at this decoding, building it first if needed."""
        if not pairs:
            raise DataError("cannot build a decoded cache from zero samples")
        cache_dir = Path(cache_dir)
        sources = _source_stats(pairs)
        final = cache_dir / cache_key(sources, num_frames, size)
        if (final / _INDEX_FILE).is_file():
            return cls(final)
        lock = cache_dir / f".{final.name}.lock"
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            lock.touch()
        except OSError as e:  # e.g. a read-only shared dataset folder holding the default
            raise DataError(
                f"cannot write the decoded cache to {cache_dir}: {e.strerror}; "
                "point data.cache_dir at a writable folder"
            ) from e
        with _build_lock(lock):
            if (final / _INDEX_FILE).is_file():  # another job built it while we waited
                return cls(final)
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=cache_dir))
            try:
                log.info("decoding %d GIFs into %s", len(sources), final)
                _build(pairs, sources, num_frames, size, tmp)
                try:
                    os.rename(tmp, final)
                except OSError:
                    if not (final / _INDEX_FILE).is_file():
                        raise
                    # Lost the race to a job on another machine: its cache is the same.
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return cls(final)


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
) -> tuple[VideoTextDataset, VideoTextDataset]:
    """Scan ``root``, split it by signer and open the decoded cache: (train, val) datasets.

    One cache holds all samples (the split only picks indices), by default in
    ``<root>/.t2s_cache``. ``val`` is empty when ``val_fraction`` is 0 or there is one signer.
    """
    scan = scan_folder(root, strict=strict)
    train_pairs, val_pairs = split_by_signer(scan.pairs, val_fraction, seed=seed)
    cache_dir = Path(root) / DEFAULT_CACHE_SUBDIR if cache_dir is None else Path(cache_dir)
    cache = DecodedCache.load_or_build(
        scan.pairs, num_frames=num_frames, size=size, cache_dir=cache_dir
    )
    position = {name: j for j, name in enumerate(cache.names)}
    train = VideoTextDataset(cache, [position[p.name] for p in train_pairs])
    val = VideoTextDataset(cache, [position[p.name] for p in val_pairs])
    return train, val
