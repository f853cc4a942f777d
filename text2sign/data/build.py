"""Building a decoded cache: in parts (shards of the clips), in parallel, resumable, then merged.

A cache ``<cache_dir>/<frames>x<size>-<key>/`` (:mod:`text2sign.data.cache`) is made of the
dataset's clips sorted by name. Part ``k`` of ``n`` holds the clips ``k*N//n <= i < (k+1)*N//n``
and is built into ``<cache_dir>/.<cache name>.parts/``:

* ``part-K-of-N.npy`` (the part's decoded clips, failures left out) and ``part-K-of-N.json``
  (their index records and the failures), both written through a rename: a killed task leaves
  no half part, and a part that is there is never decoded again;
* ``part-K-of-N.done``: the part is finished (the prepare stage writes it once the part's
  keypoints are estimated too, since they are read from the part's file);
* when every part of ``n`` is done, whoever sees it first merges them into the cache (one part
  is renamed into place, several are copied into one ``videos.npy``) and removes them.

The prepare stage (``python -m text2sign data prepare --task K --tasks N``) builds one part per
array task, each on its own node; a job that opens a dataset whose cache is missing builds it as
one part with the CPUs it has (:func:`ensure`). A file system without ``flock`` only loses the
guard against two builders of one part on one machine; renames keep the results whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from text2sign.atomic import write_json
from text2sign.data.decode_pool import decode_into, progress_printer
from text2sign.data.samples import Bad, Sample
from text2sign.errors import DataError

log = logging.getLogger("text2sign")

CACHE_VERSION = 3  # bump when the decoding or the index changes, so old caches are not reused
VIDEOS_FILE = "videos.npy"
INDEX_FILE = "index.json"


@dataclass
class CachePlan:
    """What one cache holds and how its clips are decoded: enough to build any part of it."""

    final: Path  # <cache_dir>/<frames>x<size>-<key>
    samples: list[Sample]  # sorted by name, one per record
    records: list[dict]  # index records (cache.describe), sorted by name
    num_frames: int
    size: int
    sampling: str
    root: Path  # the dataset (folder or manifest), for messages and the index
    root_dir: Path  # the folder sources are recorded relative to
    strict: bool = False
    listed_bad: list[Bad] = field(default_factory=list)

    @property
    def parts_dir(self) -> Path:
        return self.final.parent / f".{self.final.name}.parts"

    def shard(self, k: int, n: int) -> range:
        """The clips (positions in ``records``) of part ``k`` of ``n``."""
        total = len(self.records)
        return range(k * total // n, (k + 1) * total // n)


def part_stem(k: int, n: int) -> str:
    return f"part-{k:05d}-of-{n:05d}"


@contextlib.contextmanager
def _lock(path: Path):
    """Serialise builders on one machine; a file system without flock just skips the lock."""
    with open(path, "w") as f:
        with contextlib.suppress(OSError):
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # e.g. a read-only shared dataset folder holding the default
        raise DataError(
            f"cannot write the decoded cache to {folder}: {e.strerror}; "
            "point data.cache_dir at a writable folder"
        ) from e


@dataclass(frozen=True)
class Part:
    """A built part: its array file, its index records (clips that decoded) and failures."""

    npy: Path
    records: list[dict]
    skipped: list[dict]

    @property
    def done_marker(self) -> Path:
        return self.npy.with_suffix(".done")


def read_part(plan: CachePlan, k: int, n: int) -> Part | None:
    """Part ``k`` of ``n`` when it is built, else None."""
    stem = plan.parts_dir / part_stem(k, n)
    try:
        index = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Part(stem.with_suffix(".npy"), index["samples"], index["skipped"])


def build_part(plan: CachePlan, k: int, n: int, *, workers: int = 1, quiet: bool = False) -> Part:
    """Decode part ``k`` of ``n`` with ``workers`` processes (a part already built is reused).

    A clip that fails to decode is left out and recorded (``strict``: a DataError).
    """
    _writable(plan.parts_dir)
    with _lock(plan.final.parent / f".{plan.final.name}.{part_stem(k, n)}.lock"):
        built = read_part(plan, k, n)
        if built is not None:
            return built
        try:
            return _build_part(plan, k, n, workers=workers, quiet=quiet)
        except BaseException:
            with contextlib.suppress(OSError):
                plan.parts_dir.rmdir()  # nothing half-built stays behind (empty: removed)
            raise


def _build_part(plan: CachePlan, k: int, n: int, *, workers: int, quiet: bool) -> Part:
    """:func:`build_part` under its lock."""
    rows = plan.shard(k, n)
    stem = plan.parts_dir / part_stem(k, n)
    tmp = stem.with_name(f".{stem.name}.{os.getpid()}.tmp.npy")
    samples = [plan.samples[i] for i in rows]
    what = f"decoding {plan.final.name}" + (f" part {k + 1}/{n}" if n > 1 else "")
    log.info("%s: %d clips, %d worker(s)", what, len(samples), workers)
    try:
        results = decode_into(samples, tmp, num_frames=plan.num_frames, size=plan.size,
                              sampling=plan.sampling, workers=workers,
                              progress=None if quiet else progress_printer(what))  # fmt: skip
        kept, skipped = [], []
        for d in results:
            sample, record = samples[d.row], plan.records[rows[d.row]]
            if d.error is None:
                kept.append((d.row, {**record, "frames": d.frames, "first": d.first}))
                continue
            if plan.strict:
                raise DataError(f"bad entry in {plan.root}: {sample.label} ({d.error}); "
                                "data.strict is set")  # fmt: skip
            skipped.append({"label": sample.label, "reason": d.error, "name": sample.name})
        if len(kept) < len(samples):
            _compact(tmp, [row for row, _ in kept])
        os.replace(tmp, stem.with_suffix(".npy"))
    finally:
        tmp.unlink(missing_ok=True)
    write_json(stem.with_suffix(".json"), {"samples": [r for _, r in kept], "skipped": skipped})
    return Part(stem.with_suffix(".npy"), [r for _, r in kept], skipped)


def _compact(npy: Path, rows: list[int]) -> None:
    """Keep only ``rows`` of ``npy`` (the clips that decoded), in order, through a copy."""
    videos = np.load(npy, mmap_mode="r")
    small_path = npy.with_name(f".{npy.name}.small")
    small = np.lib.format.open_memmap(small_path, mode="w+", dtype=np.uint8,
                                      shape=(len(rows), *videos.shape[1:]))  # fmt: skip
    for i, row in enumerate(rows):
        small[i] = videos[row]
    small.flush()
    del small, videos
    os.replace(small_path, npy)


def mark_done(part: Part) -> None:
    part.done_marker.touch()


def complete(plan: CachePlan, n: int) -> bool:
    """Every part of ``n`` is built and done."""
    return all((plan.parts_dir / f"{part_stem(k, n)}.done").exists() for k in range(n))


def merge(plan: CachePlan, n: int) -> bool:
    """Merge the ``n`` done parts into the cache (True: the cache is there, by us or another).

    One part is renamed into place; several are copied, in order, into one ``videos.npy``.
    Raises the no-samples DataError when no clip of any part decoded.
    """
    if (plan.final / INDEX_FILE).is_file():
        return True
    if not complete(plan, n):
        return False
    parts = [read_part(plan, k, n) for k in range(n)]
    records = [r for p in parts for r in p.records]  # type: ignore[union-attr]
    skipped = [s for p in parts for s in p.skipped]  # type: ignore[union-attr]
    if not records:
        from text2sign.data.sources import no_samples_error

        bad = [*plan.listed_bad, *(Bad(s["label"], s["reason"]) for s in skipped)]
        _remove_parts(plan, n)  # nothing to keep: the next open decodes (and names) them again
        raise no_samples_error(plan.root, bad)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{plan.final.name}.", suffix=".tmp", dir=plan.final.parent)
    )
    try:
        with _lock(plan.final.parent / f".{plan.final.name}.merge.lock"):
            if (plan.final / INDEX_FILE).is_file():
                return True
            if n == 1:
                os.replace(parts[0].npy, tmp / VIDEOS_FILE)  # type: ignore[union-attr]
            else:
                _concatenate([p.npy for p in parts], tmp / VIDEOS_FILE, len(records))  # type: ignore[union-attr]
            write_json(tmp / INDEX_FILE, {
                "version": CACHE_VERSION, "num_frames": plan.num_frames, "size": plan.size,
                "frame_sampling": plan.sampling, "root": str(plan.root_dir),
                "samples": records, "skipped": skipped,
            })  # fmt: skip
            try:
                os.rename(tmp, plan.final)
            except OSError:
                if not (plan.final / INDEX_FILE).is_file():
                    raise  # else another machine's merge won: its cache is the same
            _remove_parts(plan, n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True


def _concatenate(parts: list[Path], out: Path, total: int) -> None:
    first = np.load(parts[0], mmap_mode="r")
    dest = np.lib.format.open_memmap(
        out, mode="w+", dtype=np.uint8, shape=(total, *first.shape[1:])
    )
    at = 0
    for path in parts:
        videos = np.load(path, mmap_mode="r")
        for i in range(0, len(videos), 256):  # bounded memory: 256 clips at a time
            block = videos[i : i + 256]
            dest[at : at + len(block)] = block
            at += len(block)
    dest.flush()


def _remove_parts(plan: CachePlan, n: int) -> None:
    for k in range(n):
        for suffix in (".npy", ".json", ".done"):
            (plan.parts_dir / f"{part_stem(k, n)}{suffix}").unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # other builds' files (another n) may still be there
        plan.parts_dir.rmdir()


def ensure(plan: CachePlan, *, workers: int = 1) -> None:
    """The cache is there after this: merged from a finished set of parts (the prepare stage
    ended before merging), or built here as one part with ``workers`` processes."""
    if (plan.final / INDEX_FILE).is_file():
        return
    if plan.parts_dir.is_dir():
        for done in plan.parts_dir.glob("part-*-of-*.done"):
            if merge(plan, int(done.stem.rsplit("-", 1)[1])):
                return
    # One builder at a time: trainers that start together on a fresh dataset would otherwise each
    # build part 0, and the first to merge removes the parts folder under the others' feet.
    _writable(plan.parts_dir)
    with _lock(ensure_lock(plan)):
        if (plan.final / INDEX_FILE).is_file():  # built by another trainer while this one waited
            with contextlib.suppress(OSError):
                plan.parts_dir.rmdir()
            return
        part = build_part(plan, 0, 1, workers=workers)
        mark_done(part)
        merge(plan, 1)


def ensure_lock(plan: CachePlan) -> Path:
    """The lock :func:`ensure` builds under (beside the cache)."""
    return plan.final.parent / f".{plan.final.name}.ensure.lock"
