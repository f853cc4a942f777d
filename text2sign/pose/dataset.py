"""``python -m text2sign data keypoints``: every reference clip of a dataset through the estimator.

The clips are the ones the model sees: decoded once into the dataset's decoded cache at the
config's ``data.num_frames`` x ``data.image_size`` (the same cache training reads), then each
clip is estimated once, keyed by its frames' content (:mod:`text2sign.pose.extract`), into
``<cache dir>/keypoints/``, where evaluation finds them. Parallel over the allocation's CPUs,
resumable (what is there is not estimated again), with progress on stderr.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from text2sign.config import Config
from text2sign.data import open_dataset
from text2sign.errors import DataError, UsageError
from text2sign.pose.env import PoseEnv
from text2sign.pose.extract import Extraction, content_key, extract, print_progress


def keypoints_dir(videos_npy: Path) -> Path:
    """Where the references' keypoints of a decoded cache live: ``<cache dir>/keypoints``."""
    return Path(videos_npy).parent.parent / "keypoints"


def exact(cfg: Config) -> bool:
    """The dataset carries exact keypoints (the synthetic set): nothing to estimate."""
    from text2sign.data.samples import keypoints_path
    from text2sign.data.sources import first_valid_sample

    return keypoints_path(first_valid_sample(cfg.data.root).source).is_file()


def dataset_keypoints(
    cfg: Config, env: PoseEnv, *, workers: int, split: str = "all"
) -> tuple[Extraction, Path, int] | None:
    """Estimate the clips of ``cfg.data`` (``split``: all | train | val) that lack keypoints.

    Returns what was done, the keypoints folder and the number of clips asked for; None for a
    dataset with exact keypoints (evaluation uses those).
    """
    if exact(cfg):
        return None
    if not env.ok:
        raise UsageError(f"data keypoints: {env.reason}")
    d = cfg.data
    train, val = open_dataset(
        d.root, num_frames=d.num_frames, size=d.image_size, val_fraction=d.val_fraction,
        cache_dir=d.cache_dir, strict=d.strict, seed=d.split_seed, frame_sampling=d.frame_sampling,
    )  # fmt: skip
    cache = train.cache
    rows = {"all": range(len(cache)), "train": train.indices, "val": val.indices}[split]
    videos_npy = cache.path / "videos.npy"
    videos = np.load(videos_npy, mmap_mode="r")
    keys = {int(j): content_key(videos[j]) for j in rows}
    if not keys:
        raise DataError(f"data keypoints: no {split} clips in {d.root}")
    out = keypoints_dir(videos_npy)
    done = extract(videos_npy, keys, out, env, workers=workers,
                   progress=print_progress("keypoints"))  # fmt: skip
    return done, out, len(keys)


def summary(done: Extraction, out: Path, asked: int) -> str:
    """One paragraph: counts, time, detection over the clips estimated now, failures."""
    frames = max(done.frames, 1)
    found = {k: sum(int(r.get(k, 0)) for r in done.done.values()) / frames
             for k in ("body", "left_hand", "right_hand")}  # fmt: skip
    lines = [
        f"keypoints: {asked} clips → {out}: {len(done.done)} estimated, "
        f"{len(set(done.cached))} already there, {len(done.failed)} failed, in {done.seconds:.1f} s"
    ]
    if done.done:
        lines.append(
            f"  estimated {done.frames} frames ({done.frames / max(done.seconds, 1e-9):.1f}/s); "
            f"found: body {found['body']:.0%}, left hand {found['left_hand']:.0%}, "
            f"right hand {found['right_hand']:.0%} of frames"
        )
    lines += [f"  failed {k}: {why}" for k, why in list(done.failed.items())[:10]]
    return "\n".join(lines)
