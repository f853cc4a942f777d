"""The study report: ``report.md`` with plots, sample strips and one finding per ablation.

Plots (PNG, next to the report): loss curves as mean ± std band over seeds per variant, memory
over time, the evaluation metrics as bars with 95 % CI error bars, and one strip of sample frames
per variant. The findings are generated from the comparison table's numbers: a paired t-test over
the seeds a point shares with the reference, Holm-adjusted over the headline metrics, at the 5 %
level; with fewer than 3 matched seeds they say that no test is possible. The report also has a
"Cost" section (:mod:`text2sign.study.cost`) and a "Provenance" section (:mod:`text2sign.study.provenance`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from text2sign import atomic
from text2sign.metrics.stats import MIN_PAIRS
from text2sign.study.comparison import holm_family, no_test_note
from text2sign.study.curves import RunCurves, read_all
from text2sign.study.metric_specs import ALPHA, HEADLINE, SUMMARY_METRICS, metric, metric_keys
from text2sign.study.records import RunRecord, Study
from text2sign.study.tables import basis_sentence, fmt_num, fmt_weights, reference_line

log = logging.getLogger("text2sign")

# Variant name → what it does, in plain language (the subject of its finding).
PLAIN_NAMES = {"text_finetuned": "Finetuning the text encoder", "no_ema": "Turning EMA off"}
STRIP_FRAME_PX = 64  # sample frames are upscaled (nearest neighbour) to at least this height
STRIP_MAX_FRAMES = 16


# ----------------------------------------------------------------------------------------------
# Findings
# ----------------------------------------------------------------------------------------------


KEYPOINTS = {
    "exact": "the synthetic set's exact keypoints (blob centres found by colour in the samples)",
    "estimated": "keypoints estimated by MediaPipe Holistic on samples and references alike "
    "(upper body and both hands, in reference shoulder widths; detection rates in each run's "
    "evaluation_metrics.json)",
    "none": "no keypoints: N/A (each run's evaluation_metrics.json says why)",
}


def keypoints_note(df) -> list[str]:
    """What DTW-MJE and the audit compared, per kind of keypoints, naming the points."""
    kinds: dict[str, list[str]] = {}
    for _, r in df.iterrows():
        for kind in str(r.get("keypoints") or "").split("/"):
            if kind:
                kinds.setdefault(kind, []).append(f"`{r.variant}`")
    if not kinds:
        return []
    parts = [f"{KEYPOINTS.get(k, k)} ({', '.join(v)})" for k, v in sorted(kinds.items())]
    return ["DTW-MJE and the conditioning audit compare " + "; ".join(parts) + ".\n"]


def evaluation_note(df: pd.DataFrame) -> list[str]:
    """What the evaluation numbers rest on, how the audit is tested, what the floor means."""
    out = []
    if basis := basis_sentence(df):
        out.append(f"{basis} The evaluated clips are a seeded draw from the validation split, "
                   "stratified over recordings, the same for every run; the conditioning audit's "
                   "p-value is an exact one-sided sign-flip test over recordings (the clips of a "
                   "recording averaged first), so it rests on the recordings, not the clips.\n")  # fmt: skip
    if "dtw_mje_floor_mean" in df and (df["dtw_mje_floor_n"] > 0).any():
        out.append("DTW-MJE floor: the references' keypoints at the model's resolution against "
                   "the same clips at the source's resolution (synthetic set: the blobs found in "
                   "the references against the exact keypoints), the lowest DTW-MJE a perfect "
                   "model could score; DTW-MJE differences below it are below what the estimator "
                   "resolves at this frame size.\n")  # fmt: skip
    return out


def _mean_std(r: pd.Series, key: str) -> str:
    s, m = metric(key).scale, r[f"{key}_mean"] * metric(key).scale
    if int(r[f"{key}_n"]) < 2:
        return fmt_num(m)
    return f"{fmt_num(m)} ± {fmt_num(r[f'{key}_std'] * s, m)}"


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def _clause(r: pd.Series, b: pd.Series, key: str, family: int) -> str:
    """``the <metric> from <reference> to <point> (Δ, test, n): <verdict>``."""
    m, note = metric(key), str(r[f"{key}_note"])
    delta = r[f"{key}_delta_pct"]
    dtext = "Δ n/a" if math.isnan(delta) else f"{delta:+.1f} %".replace("-", "−")
    n = int(r[f"{key}_n_paired"])
    head = f"the {m.label} from {_mean_std(b, key)} to {_mean_std(r, key)} ({dtext}, "
    if n < MIN_PAIRS:
        welch = r[f"{key}_p_welch"]
        extra = "" if math.isnan(welch) else (
            f"; unpaired Welch p = {_p(welch)}, n = {int(r[f'{key}_n'])} vs {int(b[f'{key}_n'])}, "
            "uncorrected, not judged")  # fmt: skip
        return head + no_test_note(n) + extra + ")"
    p, raw, flip = r[f"{key}_p_holm"], r[f"{key}_p_paired_t"], r[f"{key}_p_signflip"]
    test = f"paired t-test over n = {n} matched seeds"
    if math.isnan(p) and r[f"{key}_mean_diff"] == 0:  # e.g. no_ema's training loss: same seeds
        return head + f"{test}): identical in every matched seed"
    if math.isnan(p):
        why = "constant differences" if "constant differences" in note else "no t statistic"
        return (
            head
            + f"{test}: p undefined ({why}); sign-flip p = {_p(flip)}): cannot be judged by the t-test"
        )
    holm = f"Holm-adjusted over {family} metrics" if family > 1 else "one metric, no correction"
    ptext = f"{test}: p = {_p(p)} ({holm}; raw {_p(raw)}); sign-flip p = {_p(flip)}"
    if p >= ALPHA:
        verdict = f"no significant difference at the {ALPHA:.0%} level"
    else:
        lower = r[f"{key}_mean_diff"] < 0
        judged = {("lower", True): " (better)", ("lower", False): " (worse)",
                  ("higher", True): " (worse)", ("higher", False): " (better)"}  # fmt: skip
        verdict = (f"the {m.label} is significantly {'lower' if lower else 'higher'}"
                   f"{judged.get((m.better, lower), '')} at the {ALPHA:.0%} level")  # fmt: skip
        verdict += " after Holm's correction" if family > 1 else ""
    return head + ptext + "): " + verdict.replace("%", " %")


def findings(df: pd.DataFrame, reference: str) -> list[str]:
    """One plain-language paragraph per point other than ``reference`` on the headline metrics."""
    base = df[df.variant == reference]
    others = df[df.variant != reference]
    if others.empty:
        return [f"Only `{reference}` ran: there is nothing to compare."]
    if base.empty:
        return [f"No `{reference}` runs: the points cannot be compared."]
    b = base.iloc[0]
    keys = [k for k in HEADLINE if k in metric_keys(df)]
    out = []
    for _, r in others.iterrows():
        v = r.variant
        subject = f"{PLAIN_NAMES[v]} ({v})" if v in PLAIN_NAMES else f"Variant {v}"
        if r.get("overrides"):
            subject += f" [{r.overrides}]"
        family = len(holm_family(r, keys))
        clauses, missing = [], []
        for k in keys:
            if int(r[f"{k}_n"]) and int(b[f"{k}_n"]):
                clauses.append(_clause(r, b, k, family))
            else:
                side = r if int(r[f"{k}_n"]) == 0 else b
                who = "" if side is r else f" for `{reference}`"
                missing.append(f"{metric(k).label}{who} ({side[f'{k}_note'] or 'no value'})")
        text = f"{subject} changed " + "; ".join(clauses) + "." if clauses else f"{subject}:"
        if missing:
            text += " Not available: " + "; ".join(missing) + "."
        out.append(text)
    return out


# ----------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curve_plots(
    records: list[RunRecord], curves: dict[tuple[str, str], RunCurves], out: Path
) -> list[str]:
    """Loss (mean ± std band over seeds, per variant) and memory over time, as PNG files."""
    plt = _pyplot()
    written = []
    by_variant: dict[str, list[RunRecord]] = {}
    for r in records:
        by_variant.setdefault(r.variant, []).append(r)
    fig, ax = plt.subplots(figsize=(7, 4))
    for variant, runs in sorted(by_variant.items()):
        losses = [c for r in runs if (c := curves[(r.variant, r.seed)].loss) is not None]
        if not losses:
            continue
        wide = pd.concat(losses, axis=1).rolling(5, min_periods=1).mean()  # (steps, seeds)
        mean, std = wide.mean(axis=1), wide.std(axis=1).fillna(0.0)
        line = ax.plot(mean.index, mean, label=f"{variant} (n={len(losses)})", lw=1.2)[0]
        ax.fill_between(mean.index, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    fig2, ax2 = plt.subplots(figsize=(7, 4))
    for variant, runs in sorted(by_variant.items()):
        for r in runs[:1]:  # one run per variant: memory is deterministic enough to compare
            c = curves[(r.variant, r.seed)]
            if (kind := c.memory_kind) is None:
                continue
            g = c.memory
            ax2.plot(g.elapsed_s, g[kind[0]] / 2**20, label=f"{variant}/{r.seed}: {kind[1]}", lw=1)
    for a, f, name, xlabel, ylabel in (
        (ax, fig, "loss_curves.png", "step", "training loss (5-step mean; band: ± std over seeds)"),
        (ax2, fig2, "memory.png", "seconds since start", "memory (MiB)"),
    ):
        if a.lines:
            a.set_xlabel(xlabel)
            a.set_ylabel(ylabel, fontsize=8)
            a.legend(fontsize=7)
            f.tight_layout()
            f.savefig(out / name, dpi=110)
            written.append(name)
        plt.close(f)
    return written


def metric_bars(df: pd.DataFrame, out: Path) -> tuple[str | None, list[str]]:
    """``metrics.png``: one subplot per evaluation metric with a value, bars = mean per variant,
    error bars = 95 % CI; returns (file name or None, the N/A metrics skipped with their reason)."""
    keys = [k for k in metric_keys(df) if k not in SUMMARY_METRICS]
    shown = [k for k in keys if df[f"{k}_n"].max() > 0]
    skipped = []
    for k in (k for k in keys if k not in shown):
        reasons = dict.fromkeys(x for note in df[f"{k}_note"] for x in note.split("; ") if x)
        skipped.append(f"{metric(k).label} ({'; '.join(reasons)})")
    if not shown:
        return None, skipped
    plt = _pyplot()
    cols = min(4, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    x = np.arange(len(df))
    for ax, k in zip(axes.flat, shown, strict=False):
        m = metric(k)
        mean = df[f"{k}_mean"].to_numpy() * m.scale
        err = (df[f"{k}_ci95_high"] - df[f"{k}_mean"]).fillna(0).to_numpy() * m.scale
        ax.bar(x, np.nan_to_num(mean), yerr=err, capsize=3, color="tab:blue", alpha=0.8)
        ax.set_xticks(x, [f"{v}\n(n={n})" for v, n in zip(df.variant, df[f"{k}_n"], strict=True)],
                      fontsize=7, rotation=30)  # fmt: skip
        arrow = {"lower": " (lower is better)", "higher": " (higher is better)"}
        ax.set_title(m.label + arrow.get(m.better or "", ""), fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(shown) :]:
        ax.set_visible(False)
    fig.suptitle("mean over COMPLETED seeds; error bars: 95 % CI (Student t)", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "metrics.png", dpi=100)
    plt.close(fig)
    return "metrics.png", skipped


def _strip(frames: np.ndarray) -> np.ndarray:
    """(T, H, W[, C]) uint8 frames → one (H', T·W' + gaps, 3) image, nearest-neighbour upscaled."""
    if frames.ndim == 3:  # grayscale GIF
        frames = np.repeat(frames[..., None], 3, axis=-1)
    frames = frames[:STRIP_MAX_FRAMES, :, :, :3]
    k = max(1, math.ceil(STRIP_FRAME_PX / frames.shape[1]))
    frames = frames.repeat(k, axis=1).repeat(k, axis=2)  # (T, kH, kW, 3)
    gap = np.full((frames.shape[1], 2, 3), 255, dtype=frames.dtype)
    return np.concatenate([p for f in frames for p in (f, gap)][:-1], axis=1)


def sample_strips(records: list[RunRecord], out: Path) -> list[tuple[str, str, str]]:
    """``samples_<variant>.png`` per variant: the first GIF of its first COMPLETED seed with
    samples; returns (variant, file name, source description) per strip written."""
    import imageio.v3 as iio

    plt = None
    written = []
    for variant in dict.fromkeys(r.variant for r in records):
        run = next((r for r in records if r.variant == variant and r.state == "COMPLETED"
                    and r.samples.get("files")), None)  # fmt: skip
        if run is None:
            continue
        name, caption = run.samples["files"][0], (run.samples.get("captions") or [""])[0]
        try:
            strip = _strip(np.asarray(iio.imread(run.path / "samples" / name, index=None)))
        except (OSError, ValueError, IndexError) as e:
            log.warning("%s/%s: cannot read sample %s (%s)", variant, run.seed, name, e)
            continue
        plt = plt or _pyplot()
        h, w = strip.shape[:2]
        dpi, title_px = 100, 30
        fig = plt.figure(figsize=(max(w, 320) / dpi, (h + title_px) / dpi), dpi=dpi)
        fig.add_axes((0, 0, w / max(w, 320), h / (h + title_px))).imshow(
            strip, interpolation="nearest"
        )
        fig.axes[0].set_axis_off()
        fig.text(0.01, 1 - 4 / (h + title_px), f"{variant}: “{caption}”", va="top", fontsize=9)
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in variant)
        fig.savefig(out / f"samples_{safe}.png", dpi=dpi)
        plt.close(fig)
        weights = fmt_weights(str(run.samples.get("weights") or ""))
        source = f"`{variant}/{run.seed}/samples/{name}` ({weights} weights)"
        written.append((variant, f"samples_{safe}.png", source))
    return written


# ----------------------------------------------------------------------------------------------
# report.md
# ----------------------------------------------------------------------------------------------


def write_report(
    study: Study,
    df: pd.DataFrame,
    md: str,
    extra: list[str],
    *,
    plots: bool = True,
    run_cost: dict[str, str] | None = None,
    curves: dict[tuple[str, str], RunCurves] | None = None,
) -> None:
    """Write ``report.md`` (and its PNG files when ``plots``) into the study folder; ``extra``:
    Markdown lines of further sections (cost, provenance) placed before the runs; ``run_cost``:
    job id → its cost, a column of the runs table."""
    out, records = study.path, study.records
    cost = run_cost or {}
    runs_md = "\n".join(
        f"| {r.variant} | {r.seed} | {r.state} | {cost.get(r.job_id, '-')} | "
        f"{r.inference_device or '-'} | {r.problem or ''} |"
        for r in records
    )
    report = [
        f"# Study `{study.name}`\n",
        "## Comparison\n",
        "Statistics over the COMPLETED seeds of each variant; runs in other states are counted "
        "in the runs column and excluded. All statistics (with 95 % CIs) are in "
        "`comparison_table.csv`, one row per run and metric in `comparison_long.csv`; a booktabs "
        "LaTeX table is in `comparison_table.tex`.\n",
        md,
        "## Findings\n",
        reference_line(study.reference, study.reference_source)
        + " Seed k of every variant shares "
        "initial weights, data order and noise, so each comparison is paired over the seeds both "
        "have: a paired t-test, its p-value Holm-adjusted over the headline metrics of that "
        f"comparison, judged at the {ALPHA:.0%} level; the exact sign-flip permutation p is given "
        f"beside it (it cannot go below 2/2^n: 0.25 with 3 seeds). With fewer than {MIN_PAIRS} "
        'matched seeds there is no test. With few seeds, "no significant difference" means the '
        "study cannot tell, not that there is no effect.\n".replace("%", " %"),
        *[p + "\n" for p in findings(df, study.reference)],
        *keypoints_note(df),
        *evaluation_note(df),
        *extra,
        "## Runs\n",
        "| variant | seed | state | cost | evaluated on | note |\n|---|---|---|---|---|---|\n"
        + runs_md
        + "\n",
    ]
    if plots:
        titles = {"loss_curves.png": "Loss curves", "memory.png": "Memory over time"}
        for name in curve_plots(records, curves or read_all(records), out):
            report.append(f"## {titles[name]}\n\n![{name}]({name})\n")
        bars, skipped = metric_bars(df, out)
        if bars or skipped:
            report.append("## Evaluation metrics\n")
        if bars:
            report.append(f"![{bars}]({bars})\n\nBars: mean over the COMPLETED seeds; error bars: "
                          "95 % Student-t confidence interval of the mean (none where n<2).\n")  # fmt: skip
        if skipped:
            report.append("Not plotted (N/A): " + "; ".join(skipped) + ".\n")
        strips = sample_strips(records, out)
        if strips:
            report.append("## Samples\n\nPer variant, the first sample of its first COMPLETED "
                          "seed, frames left to right (upscaled, nearest neighbour).\n")  # fmt: skip
        for variant, name, source in strips:
            report.append(f"### {variant}\n\n![{name}]({name})\n\nFrom {source}\n")
    atomic.write_text(out / "report.md", "\n".join(report))
