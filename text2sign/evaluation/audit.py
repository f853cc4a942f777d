"""The conditioning audit: does the caption drive the video?

The same noise is sampled with the correct captions, with shuffled captions (every clip gets
another clip's caption) and with the empty caption. If the model uses the text, wrong captions
move the detected hands away from the reference: gap = DTW-MJE(shuffled) − DTW-MJE(correct) > 0.
Clips cut from one recording are not independent, so the test is over recordings: the mean gap of
each recording's clips, then an exact one-sided sign-flip permutation test over those means
(:func:`text2sign.metrics.stats.clustered_sign_flip`); with one recording there is no test.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np

from text2sign.data.synth import BLOB_COLOURS, KEYPOINT_NAMES
from text2sign.metrics.keypoints import detect_blobs, dtw_mje, fill_missing
from text2sign.metrics.result import Metric
from text2sign.metrics.stats import clustered_sign_flip

KEYS = ("dtw_mje", "dtw_mje_shuffled", "dtw_mje_empty", "audit_gap", "audit_p", "audit_recordings")


def mean_metric(values: list[float], what: str) -> Metric:
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return Metric.na(f"no finite {what} value")
    return Metric.of(float(np.mean(finite)))


def _derangement(n: int, rng: random.Random) -> list[int]:
    """A permutation with no fixed point: every clip gets another clip's caption."""
    while True:
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


def conditions(captions: list[str], seed: int) -> tuple[dict[str, list[str]], list[int]]:
    """The captions of the three audit passes (correct, shuffled, empty) and the permutation."""
    perm = _derangement(len(captions), random.Random(seed))
    return {
        "correct": captions,
        "shuffled": [captions[p] for p in perm],
        "empty": [""] * len(captions),
    }, perm


def summarise(
    errors: dict[str, list[float]], perm: list[int], clusters: list[str]
) -> tuple[dict[str, Metric], dict[str, Any]]:
    """The audit's metrics from per-clip DTW-MJE of each pass (NaN: a clip that could not be
    scored, left out of its pass's mean and of the test) and each clip's recording (cluster).

    ``audit_gap`` is the mean over recordings of each recording's mean (shuffled − correct), the
    statistic ``audit_p`` tests; ``audit_recordings`` counts the recordings the test rests on."""
    scored = [(s - c, k) for c, s, k in zip(errors["correct"], errors["shuffled"], clusters,
                                            strict=True) if np.isfinite(c) and np.isfinite(s)]  # fmt: skip
    test = clustered_sign_flip([d for d, _ in scored], [k for _, k in scored])
    metrics = {
        "dtw_mje": mean_metric(errors["correct"], "DTW-MJE"),
        "dtw_mje_shuffled": mean_metric(errors["shuffled"], "DTW-MJE"),
        "dtw_mje_empty": mean_metric(errors["empty"], "DTW-MJE"),
    }
    if test["mean_diff"] is None:
        metrics["audit_gap"] = Metric.na(str(test["reason"]))
    else:
        metrics["audit_gap"] = Metric.of(float(test["mean_diff"]))
    p = test["p"]
    metrics["audit_p"] = Metric.of(float(p)) if p is not None else Metric.na(str(test["reason"]))
    metrics["audit_recordings"] = Metric.of(float(test["n_clusters"]))
    detail = {"per_video": errors, "recordings": clusters, "clustered_test": test,
              "permutation": perm}  # fmt: skip
    return metrics, detail


def blob_errors(videos: dict[str, np.ndarray], ref_kps: list[np.ndarray]) -> dict[str, list[float]]:
    """Synthetic set: DTW-MJE of the hand/head blobs of each pass's videos (uint8 (N, T, H, W, 3))
    against the exact keypoints the generator drew."""
    return {
        name: [dtw_mje(fill_missing(detect_blobs(v, BLOB_COLOURS, KEYPOINT_NAMES)), ref)
               for v, ref in zip(vids, ref_kps, strict=True)]
        for name, vids in videos.items()
    }  # fmt: skip


def score(
    videos: dict[str, np.ndarray], ref_kps: list[np.ndarray], perm: list[int], clusters: list[str]
) -> tuple[dict[str, Metric], dict[str, Any]]:
    """The synthetic set's audit: blob keypoints of every pass against the exact ones."""
    return summarise(blob_errors(videos, ref_kps), perm, clusters)


def audit(
    sample_fn: Callable[[list[str]], np.ndarray],
    captions: list[str],
    ref_kps: list[np.ndarray],
    seed: int,
    clusters: list[str],
) -> tuple[dict[str, Metric], dict[str, Any], np.ndarray]:
    """The whole audit in one process: ``sample_fn(captions) -> uint8 (N, T, H, W, 3)``.

    ``sample_fn`` must start from the same noise on every call, so the three passes differ only
    in the caption; ``clusters``: each clip's recording. Returns the metrics, per-clip detail and
    the correct-caption videos.
    """
    passes, perm = conditions(captions, seed)
    videos = {name: sample_fn(caps) for name, caps in passes.items()}
    metrics, detail = score(videos, ref_kps, perm, clusters)
    return metrics, detail, videos["correct"]
