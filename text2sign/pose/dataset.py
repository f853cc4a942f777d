"""Preparing a dataset for training and evaluation: ``python -m text2sign data prepare|keypoints``.

A task of the prepare stage (:func:`prepare`, shard ``task`` of ``tasks``):

1. decodes its shard of the clips into the decoded cache (:mod:`text2sign.data.build`: every
   CPU of the allocation, resumable; the clips the model sees: ``data.num_frames`` x
   ``data.image_size``, the same cache training reads);
2. unless the dataset has exact keypoints (the synthetic set) or ``keypoints`` is off, estimates
   each clip of the shard once, keyed by its frames' content (:mod:`text2sign.pose.extract`),
   into ``<cache dir>/keypoints/``, where evaluation finds them;
3. marks its shard done; the task that finds every shard done merges them into the cache.

A clip that fails (to decode, or in the estimator) is named and left out; the task fails only
when more than ``prepare.max_failed_share`` of its clips failed. Progress lines with an ETA go to
stderr. ``data keypoints`` is the same as one task over the whole dataset (``--split`` estimates
only the train or val clips of the finished cache).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from text2sign.config import Config
from text2sign.data import build
from text2sign.data.cache import DEFAULT_CACHE_SUBDIR, DecodedCache, make_plan
from text2sign.data.decode_pool import progress_printer
from text2sign.data.sources import dataset_dir, list_samples
from text2sign.errors import DataError, UsageError
from text2sign.pose.env import PoseEnv
from text2sign.pose.extract import Extraction, content_key, extract

#: Below this frame size MediaPipe finds no hand and often no body (docs/evaluation.md, "Which
#: frame size is enough": the body from 64-96 px, hands from 128 px); what it returns is noise.
MIN_POSE_SIZE = 64


def keypoints_dir(videos_npy: Path) -> Path:
    """Where the references' keypoints of a decoded cache live: ``<cache dir>/keypoints``."""
    return Path(videos_npy).parent.parent / "keypoints"


def exact(cfg: Config) -> bool:
    """The dataset carries exact keypoints (the synthetic set): nothing to estimate."""
    from text2sign.data.samples import keypoints_path
    from text2sign.data.sources import first_valid_sample

    return keypoints_path(first_valid_sample(cfg.data.root).source).is_file()


def resolution_warning(size: int) -> str:
    """Why keypoints at ``size`` px mean little, or "" when the size is enough for the body."""
    if size >= MIN_POSE_SIZE:
        return ""
    return (f"keypoints at {size} px are noise: MediaPipe needs >= {MIN_POSE_SIZE} px to find a "
            "body (and ~128 px for hands; docs/evaluation.md): DTW-MJE on them does not measure "
            "signing")  # fmt: skip


@dataclass
class Prepared:
    """What one task did: its clips, those that failed (decoding or estimation) and why."""

    cache: Path  # the cache folder (there once merged)
    clips: int  # clips of this task's shard
    decode_failed: list[dict] = field(default_factory=list)  # {"label", "reason", "name"}
    keypoints: Extraction | None = None  # None: not estimated (exact, or keypoints off)
    keypoints_dir: Path | None = None
    merged: bool = False  # this task found every shard done and the cache is complete
    decode_seconds: float = 0.0
    warning: str = ""
    note: str = ""  # why keypoints were not estimated

    @property
    def failed(self) -> int:
        return len(self.decode_failed) + (len(self.keypoints.failed) if self.keypoints else 0)

    @property
    def failed_share(self) -> float:
        return self.failed / max(self.clips, 1)


def prepare(
    cfg: Config,
    env: PoseEnv | None,
    *,
    task: int = 0,
    tasks: int = 1,
    workers: int = 1,
    keypoints: bool = True,
) -> Prepared:
    """Shard ``task`` of ``tasks`` of ``cfg.data``: decoded, estimated, merged when last."""
    if not 0 <= task < tasks:
        raise UsageError(f"data prepare: --task {task} is not one of 0..{tasks - 1} (--tasks)")
    d = cfg.data
    listing = list_samples(d.root, strict=d.strict)
    cache_dir = Path(d.cache_dir) if d.cache_dir else dataset_dir(d.root) / DEFAULT_CACHE_SUBDIR
    plan = make_plan(listing.samples, num_frames=d.num_frames, size=d.image_size,
                     cache_dir=cache_dir, frame_sampling=d.frame_sampling, root=d.root,
                     strict=d.strict, listed_bad=listing.bad)  # fmt: skip
    wants = keypoints and not exact(cfg)
    if wants and (env is None or not env.ok):
        raise UsageError(f"data prepare: {env.reason if env else 'no pose environment'} "
                         "(or --no-keypoints)")  # fmt: skip
    out = Prepared(cache=plan.final, clips=len(plan.shard(task, tasks)))
    if not wants:
        out.note = ("exact keypoints (<clip>.keypoints.json: the synthetic set)" if keypoints
                    else "--no-keypoints")  # fmt: skip
    started = time.monotonic()
    merged = (plan.final / build.INDEX_FILE).is_file()
    if merged:  # decoded before: estimate this task's share of the finished cache
        videos_npy = plan.final / build.VIDEOS_FILE
        total = len(DecodedCache(plan.final).names)
        rows = list(range(task * total // tasks, (task + 1) * total // tasks))
        out.clips, part = len(rows), None
    else:
        part = build.build_part(plan, task, tasks, workers=workers)
        videos_npy, rows = part.npy, list(range(len(part.records)))
        out.decode_failed = list(part.skipped)
    out.decode_seconds = time.monotonic() - started
    if wants:
        out.warning = resolution_warning(d.image_size)
        out.keypoints_dir = keypoints_dir(plan.final / build.VIDEOS_FILE)
        out.keypoints = _estimate(videos_npy, rows, out.keypoints_dir, env, workers)
    if part is not None:
        build.mark_done(part)
        merged = build.merge(plan, tasks)
    out.merged = merged
    return out


def _estimate(videos_npy: Path, rows: list[int], out: Path, env: PoseEnv | None,
              workers: int) -> Extraction:  # fmt: skip
    videos = np.load(videos_npy, mmap_mode="r")
    keys = {j: content_key(videos[j]) for j in rows}
    return extract(videos_npy, keys, out, env, workers=workers,
                   progress=progress_printer("keypoints"))  # fmt: skip


def split_keypoints(
    cfg: Config, env: PoseEnv, *, workers: int, split: str
) -> tuple[Extraction, Path, int]:
    """``data keypoints --split train|val``: the clips of one side of the finished cache."""
    from text2sign.data import open_dataset

    if not env.ok:
        raise UsageError(f"data keypoints: {env.reason}")
    d = cfg.data
    train, val = open_dataset(
        d.root, num_frames=d.num_frames, size=d.image_size, val_fraction=d.val_fraction,
        cache_dir=d.cache_dir, strict=d.strict, seed=d.split_seed, frame_sampling=d.frame_sampling,
    )  # fmt: skip
    rows = {"train": train.indices, "val": val.indices}[split]
    if not rows:
        raise DataError(f"data keypoints: no {split} clips in {d.root}")
    videos_npy = train.cache.path / build.VIDEOS_FILE
    out = keypoints_dir(videos_npy)
    return _estimate(videos_npy, list(rows), out, env, workers), out, len(rows)


def summary(p: Prepared, *, task: int = 0, tasks: int = 1, limit: float = 1.0) -> str:
    """What a task did, for its log: counts, times, detection rates, failures, the verdict."""
    shard = f" (shard {task + 1}/{tasks})" if tasks > 1 else ""
    lines = [f"prepare{shard}: {p.clips} clips -> {p.cache}"
             f"{' (merged)' if p.merged else ''}: decoded in {p.decode_seconds:.1f} s, "
             f"{len(p.decode_failed)} failed to decode"]  # fmt: skip
    lines += [f"  failed to decode {b['label']}: {b['reason']}" for b in p.decode_failed[:10]]
    if p.keypoints is None:
        lines.append(f"  keypoints: not estimated ({p.note})")
    else:
        lines.append("  " + keypoints_line(p.keypoints, p.keypoints_dir, p.clips))
        lines += [
            f"  keypoints failed {k}: {why}" for k, why in list(p.keypoints.failed.items())[:10]
        ]
    if p.warning:
        lines.append(f"  warning: {p.warning}")
    verdict = "ok" if p.failed_share <= limit else "FAILED"
    lines.append(f"  {p.failed} of {p.clips} clips failed ({p.failed_share:.1%}; "
                 f"prepare.max_failed_share {limit:.1%}): {verdict}")  # fmt: skip
    return "\n".join(lines)


def keypoints_line(done: Extraction, out: Path | None, asked: int) -> str:
    """One line: counts, time and detection over the clips estimated now."""
    frames = max(done.frames, 1)
    found = {k: sum(int(r.get(k, 0)) for r in done.done.values()) / frames
             for k in ("body", "left_hand", "right_hand")}  # fmt: skip
    text = (f"keypoints: {asked} clips -> {out}: {len(done.done)} estimated, "
            f"{len(set(done.cached))} already there, {len(done.failed)} failed, in "
            f"{done.seconds:.1f} s")  # fmt: skip
    if done.done:
        text += (f"; {done.frames / max(done.seconds, 1e-9):.1f} frames/s; found: body "
                 f"{found['body']:.0%}, left hand {found['left_hand']:.0%}, right hand "
                 f"{found['right_hand']:.0%} of frames")  # fmt: skip
    return text
