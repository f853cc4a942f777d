"""The metrics the collector knows: label, LaTeX label, display scale and which way is better.

A metric not listed here (a new evaluation metric) is still collected, labelled by its key.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

ALPHA = 0.05  # significance level of the findings and of the * in the LaTeX table


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is labelled, scaled for display and judged (``better``: lower/higher/None)."""

    key: str
    label: str
    tex: str
    better: str | None = None
    scale: float = 1.0


def _m(
    key: str, label: str, tex: str | None = None, better: str | None = None, scale: float = 1.0
) -> MetricSpec:
    return MetricSpec(key, label, tex or label, better, scale)


MIB = 1 / 2**20
# summary.json metrics, then evaluation_metrics.json metrics; the order is the tables' order.
SUMMARY_METRICS: dict[str, MetricSpec] = {m.key: m for m in (
    _m("final_loss", "final loss", "Final loss", "lower"),
    _m("train_time_s", "train time (s)", "Train time (s)", "lower"),
    _m("samples_per_s_median", "samples/s", "Samples/s", "higher"),
    _m("peak_memory_bytes", "peak memory (MiB)", "Peak memory (MiB)", "lower", MIB),
    _m("params_total", "params total", "Params total"),
    _m("params_trainable", "params trainable", "Params trainable"),
)}  # fmt: skip
EVAL_METRICS: dict[str, MetricSpec] = {m.key: m for m in (
    _m("psnr", "PSNR", "PSNR", "higher"),
    _m("ssim", "SSIM", "SSIM", "higher"),
    _m("temporal_cos", "temporal cos", "Temporal cos"),
    _m("temporal_l1", "temporal L1 (0-255)", "Temporal L1"),
    _m("reference_temporal_cos", "temporal cos of references", "Reference temporal cos"),
    _m("fvd", "FVD", "FVD", "lower"),
    _m("lpips", "LPIPS", "LPIPS", "lower"),
    _m("dtw_mje", "DTW-MJE", "DTW-MJE", "lower"),
    _m("dtw_mje_floor", "DTW-MJE floor (estimator)", "DTW-MJE floor"),
    _m("dtw_mje_shuffled", "DTW-MJE shuffled captions", "DTW-MJE (shuffled)", "lower"),
    _m("dtw_mje_empty", "DTW-MJE empty caption", "DTW-MJE (empty)", "lower"),
    _m("audit_gap", "audit gap", "Audit gap", "higher"),
    _m("detection_gap_body", "detection gap body (ref − gen)", "Detection gap body"),
    _m("detection_gap_left_hand", "detection gap left hand", "Detection gap left hand"),
    _m("detection_gap_right_hand", "detection gap right hand", "Detection gap right hand"),
    _m("inference_s_per_video", "inference s/video", "Inference s/video", "lower"),
    _m("inference_peak_memory_bytes", "inference peak memory (MiB)", "Inference memory (MiB)",
       "lower", MIB),
)}  # fmt: skip
# Per-seed p-values are never averaged: the audit is summarised as "k of n seeds with p < 0.05".
AUDIT_P, AUDIT_ALPHA = "audit_p", 0.05
# What each evaluation rests on (counts, not measurements): never averaged or tested, shown as
# one "evaluated on" column ("32 clips, 12 recordings, 3 signers").
BASIS = ("eval_clips", "eval_recordings", "eval_signers", "dtw_mje_clips", "dtw_mje_floor_clips",
         "audit_recordings")  # fmt: skip
# The metrics of the Δ/p table, the LaTeX table and the findings (when the study has them); they
# are the family of Holm's correction in each comparison.
HEADLINE = ("final_loss", "dtw_mje", "audit_gap", "psnr", "ssim", "fvd")


def metric(key: str) -> MetricSpec:
    """The registered metric, or a neutral one labelled by its key (unknown evaluation metrics)."""
    return SUMMARY_METRICS.get(key) or EVAL_METRICS.get(key) or MetricSpec(key, key, key)


def metric_keys(df: pd.DataFrame) -> list[str]:
    """The metrics of a comparison table, in table order."""
    return [c.removesuffix("_mean") for c in df.columns if c.endswith("_mean")]
