"""Statistics per variant and metric, and the comparison table as CSV, Markdown and LaTeX.

For every metric: mean, sample std (ddof=1), n and a 95 % Student-t confidence interval over the
COMPLETED seeds of a variant; against ``baseline``: Δ % of the mean and Welch's t-test p-value
(``scipy.stats.ttest_ind(equal_var=False)``). Where a number cannot exist it is NaN in the CSV and
``<metric>_note`` says why: ``n<2``, ``zero variance`` (both sides constant: the test is undefined)
or, when no seed has a value, the N/A reason (e.g. ``no I3D weights``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

if TYPE_CHECKING:
    from text2sign.collect import RunRecord

BASELINE = "baseline"
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
    _m("dtw_mje_shuffled", "DTW-MJE shuffled captions", "DTW-MJE (shuffled)", "lower"),
    _m("dtw_mje_empty", "DTW-MJE empty caption", "DTW-MJE (empty)", "lower"),
    _m("audit_gap", "audit gap", "Audit gap", "higher"),
    _m("inference_s_per_video", "inference s/video", "Inference s/video", "lower"),
    _m("inference_peak_memory_bytes", "inference peak memory (MiB)", "Inference memory (MiB)",
       "lower", MIB),
)}  # fmt: skip
# Per-seed p-values are never averaged: the audit is summarised as "k of n seeds with p < 0.05".
AUDIT_P, AUDIT_ALPHA = "audit_p", 0.05
# The metrics of the Δ/p table, the LaTeX table and the findings (when the study has them).
HEADLINE = ("final_loss", "dtw_mje", "audit_gap", "psnr", "ssim", "fvd")
STAT_SUFFIXES = ("mean", "std", "n", "ci95_low", "ci95_high", "delta_pct", "p_welch", "note")


def metric(key: str) -> MetricSpec:
    """The registered metric, or a neutral one labelled by its key (unknown evaluation metrics)."""
    return SUMMARY_METRICS.get(key) or EVAL_METRICS.get(key) or MetricSpec(key, key, key)


def metric_keys(df: pd.DataFrame) -> list[str]:
    """The metrics of a comparison table, in table order."""
    return [c.removesuffix("_mean") for c in df.columns if c.endswith("_mean")]


# ----------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------


def describe(values: Sequence[float]) -> dict[str, float | int]:
    """mean, std (ddof=1), n and the 95 % Student-t CI of the mean (NaN where n is too small)."""
    a = np.asarray(values, dtype="float64")
    n = len(a)
    mean = float(a.mean()) if n else math.nan
    std = float(a.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n) if n > 1 else math.nan
    return {"mean": mean, "std": std, "n": n, "ci95_low": mean - half, "ci95_high": mean + half}


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, str]:
    """Welch's t-test p-value of ``a`` vs ``b``, or (NaN, why not): ``n<2`` or ``zero variance``."""
    if len(a) < 2 or len(b) < 2:
        return math.nan, "n<2"
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # scipy: NaN (equal means) or a meaningless 0 (unequal)
        return math.nan, "zero variance"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "precision loss" on near-constant data
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue), ""


def _weights(records: Iterable[RunRecord]) -> str:
    return "/".join(sorted({r.weights for r in records if r.weights}))


def _values(runs: list[RunRecord], key: str, source: str) -> tuple[list[float], str]:
    """The finite values of ``key`` over ``runs`` and, when there are none, why (the N/A reason)."""
    vals, reasons = [], []
    for r in runs:
        v = r.summary.get(key) if source == "summary" else r.evaluation.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            vals.append(float(v))
        elif source == "evaluation":
            reasons.append(r.eval_reasons.get(key) or r.eval_problem or "not reported")
    if vals:
        return vals, ""
    if not runs:
        return [], "no COMPLETED run"
    if source == "summary":
        return [], "not in summary.json"
    return [], "; ".join(dict.fromkeys(reasons))


def _audit_seeds(runs: list[RunRecord]) -> dict[str, Any]:
    """The conditioning audit per seed: how many seeds separate at p < 0.05, and every p."""
    ps = [float(r.evaluation[AUDIT_P]) for r in runs
          if isinstance(r.evaluation.get(AUDIT_P), int | float)]  # fmt: skip
    return {
        "audit_seeds_significant": sum(p < AUDIT_ALPHA for p in ps),
        "audit_seeds_tested": len(ps),
        "audit_p_values": "; ".join(f"{p:.3g}" for p in ps),
    }


def fmt_audit(r: pd.Series) -> str:
    """``k/n seeds (p = …)``: the audit separates in k of n seeds at the 5 % level."""
    n = int(r.get("audit_seeds_tested", 0) or 0)
    if not n:
        return "N/A"
    return f"{int(r.audit_seeds_significant)}/{n} (p = {r.audit_p_values.replace('; ', ', ')})"


def comparison_table(records: list[RunRecord]) -> pd.DataFrame:
    """One row per variant (baseline first): run states, weights, and per metric the columns
    ``<metric>_{mean,std,n,ci95_low,ci95_high,delta_pct,p_welch,note}`` over COMPLETED seeds."""
    by_variant: dict[str, list[RunRecord]] = {}
    for r in records:
        by_variant.setdefault(r.variant, []).append(r)
    variants = sorted(by_variant, key=lambda v: (v != BASELINE, v))
    done = {v: [r for r in by_variant[v] if r.state == "COMPLETED"] for v in variants}
    evaluated = dict.fromkeys(k for runs in done.values() for r in runs for k in r.evaluation)
    keys = [(k, "summary") for k in SUMMARY_METRICS]
    keys += [(k, "evaluation") for k in EVAL_METRICS if k in evaluated]
    keys += [
        (k, "evaluation")
        for k in sorted(evaluated)
        if k not in EVAL_METRICS | SUMMARY_METRICS and k != AUDIT_P
    ]

    rows: dict[str, dict[str, Any]] = {}
    for v in variants:
        states = pd.Series([r.state for r in by_variant[v]]).value_counts()
        rows[v] = {
            "variant": v,
            "seeds": len(by_variant[v]),
            "completed": len(done[v]),
            "state": ", ".join(f"{n} {s}" for s, n in sorted(states.items())),
            "not_completed": "; ".join(
                f"{r.seed} {r.state}: {r.problem}" if r.problem else f"{r.seed} {r.state}"
                for r in by_variant[v]
                if r.state != "COMPLETED"
            ),  # fmt: skip
            "weights": _weights(done[v]) or _weights(by_variant[v]),
            **_audit_seeds(done[v]),
        }
    for key, source in keys:
        values = {v: _values(done[v], key, source) for v in variants}
        base_vals = values.get(BASELINE, ([], "no baseline variant"))[0]
        base_mean = float(np.mean(base_vals)) if base_vals else math.nan
        for v in variants:
            vals, reason = values[v]
            d = describe(vals)
            notes = [reason] if reason else (["n<2"] if len(vals) == 1 else [])
            delta = p = math.nan
            if v != BASELINE and vals:
                if not base_vals:
                    notes.append("no baseline value")
                else:
                    delta = (
                        (d["mean"] - base_mean) / abs(base_mean) * 100 if base_mean else math.nan
                    )
                    p, why = welch(vals, base_vals)
                    notes += [why] if why and why not in notes else []
            row = rows[v]
            row.update({f"{key}_{s}": d[s] for s in ("mean", "std", "n", "ci95_low", "ci95_high")})
            row[f"{key}_delta_pct"], row[f"{key}_p_welch"] = delta, p
            row[f"{key}_note"] = "; ".join(notes)
    return pd.DataFrame(list(rows.values()))


# ----------------------------------------------------------------------------------------------
# Formatting
# ----------------------------------------------------------------------------------------------


def _digits(x: float) -> int:
    return 4 if abs(x) < 10 else 1 if abs(x) < 10_000 else 0


def fmt_num(x: float, like: float | None = None) -> str:
    """A value with as many decimals as the magnitude of ``like`` (default: ``x``) warrants."""
    ref = abs(x if like is None else like)
    if 0 < ref < 1e-3:
        return f"{x:.2e}"
    return f"{x:.{_digits(ref)}f}"


def fmt_mean_std(r: pd.Series, key: str, *, tex: bool = False) -> str:
    """``mean ± std`` (``(n=1)`` for one seed) of ``key`` in row ``r``; ``N/A (reason)`` for none."""
    n, s = int(r[f"{key}_n"]), metric(key).scale
    if n == 0:
        return "--" if tex else f"N/A ({r[f'{key}_note'] or 'no value'})"
    m = r[f"{key}_mean"] * s
    if n == 1:
        return f"${fmt_num(m)}$" if tex else f"{fmt_num(m)} (n=1)"
    pm = r"\pm" if tex else "±"
    text = f"{fmt_num(m)} {pm} {fmt_num(r[f'{key}_std'] * s, m)}"
    return f"${text}$" if tex else text


def fmt_ci(r: pd.Series, key: str) -> str:
    if int(r[f"{key}_n"]) < 2:
        return "N/A" if int(r[f"{key}_n"]) == 0 else "n<2"
    s, m = metric(key).scale, r[f"{key}_mean"] * metric(key).scale
    return f"[{fmt_num(r[f'{key}_ci95_low'] * s, m)}, {fmt_num(r[f'{key}_ci95_high'] * s, m)}]"


def fmt_delta(delta: float, *, unicode_minus: bool = False) -> str:
    if math.isnan(delta):
        return "n/a"
    text = f"{delta:+.1f}%"
    return text.replace("-", "−") if unicode_minus else text


def fmt_p(r: pd.Series, key: str) -> str:
    """The Welch p-value, or why there is none (``n<2``, ``n/a (zero variance)``, ``n/a``)."""
    p, note = r[f"{key}_p_welch"], r[f"{key}_note"]
    if not math.isnan(p):
        return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"
    if int(r[f"{key}_n"]) == 0:
        return "N/A"
    if "n<2" in note or int(r[f"{key}_n"]) < 2:
        return "n<2"
    return "n/a (zero variance)" if "zero variance" in note else "n/a"


def fmt_weights(w: str) -> str:
    names = ["EMA" if x == "ema" else x for x in w.split("/") if x]
    return {0: "unknown", 1: "".join(names[:1])}.get(len(names), "mixed: " + "/".join(names))


def _arrow(m: MetricSpec, up: str = "↑", down: str = "↓") -> str:
    return {"lower": f" {down}", "higher": f" {up}"}.get(m.better or "", "")


def _md_row(cells: Iterable[Any]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def markdown_table(df: pd.DataFrame) -> str:
    """Training and evaluation tables (``mean ± std``) and the headline metrics vs baseline."""
    keys = metric_keys(df)
    train = [k for k in keys if k in SUMMARY_METRICS]
    ev = [k for k in keys if k not in SUMMARY_METRICS]
    headers = ["variant", "runs"] + [metric(k).label for k in train] + ["weights"]
    out = ["### Training (summary.json)\n", _md_row(headers), "|" + "---|" * len(headers)]
    for _, r in df.iterrows():
        cells = [r.variant, r.state] + [fmt_mean_std(r, k) for k in train]
        out.append(_md_row(cells + [fmt_weights(r.weights)]))
    problems = [f"- {r.variant} {item}" for _, r in df.iterrows()
                for item in str(r.get("not_completed") or "").split("; ") if item]  # fmt: skip
    if problems:
        out += ["", "Runs not COMPLETED (state: reason):", "", *problems]
    if ev:
        headers = ["variant"] + [metric(k).label + _arrow(metric(k)) for k in ev]
        headers.append("audit: seeds with p < 0.05")
        out += ["", "### Evaluation (evaluation_metrics.json)\n", _md_row(headers)]
        out.append("|" + "---|" * len(headers))
        out += [_md_row([r.variant] + [fmt_mean_std(r, k) for k in ev] + [fmt_audit(r)])
                for _, r in df.iterrows()]  # fmt: skip
    headers = ["metric", "variant", "mean ± std", "95% CI", "n", "Δ vs baseline", "Welch p"]
    out += ["", "### Headline metrics vs baseline\n", _md_row(headers), "|" + "---|" * 7]
    for k in (k for k in HEADLINE if k in keys):
        m = metric(k)
        for _, r in df.iterrows():
            base = r.variant == BASELINE
            out.append(_md_row([
                m.label + _arrow(m), r.variant, fmt_mean_std(r, k), fmt_ci(r, k), int(r[f"{k}_n"]),
                "—" if base else fmt_delta(r[f"{k}_delta_pct"]), "—" if base else fmt_p(r, k),
            ]))  # fmt: skip
    out += ["", "Mean ± sample std (ddof=1) over the COMPLETED seeds; 95% CI: Student t; Welch p: "
            "`scipy.stats.ttest_ind(equal_var=False)` vs baseline; N/A (reason): no seed has a "
            "value; weights: EMA or raw weights used for samples and evaluation; ↓/↑: lower/higher "
            "is better."]  # fmt: skip
    return "\n".join(out) + "\n"


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}"}  # fmt: skip


def tex_escape(text: str) -> str:
    """``text`` safe for LaTeX text mode."""
    return "".join(_TEX_ESCAPES.get(c, c) for c in str(text))


def latex_table(df: pd.DataFrame, study: str) -> str:
    """A booktabs table of the headline metrics (``mean $\\pm$ std``) for a paper.

    N/A cells are ``--`` with a lettered note in the caption giving the reason; ``*`` marks a
    Welch p < 0.05 vs baseline.
    """
    keys = [k for k in HEADLINE if k in metric_keys(df)]
    notes: dict[str, str] = {}  # "FVD: no I3D weights" → letter
    rows = []
    for _, r in df.iterrows():
        cells = [tex_escape(r.variant), tex_escape(fmt_weights(r.weights)), str(int(r.completed))]
        for k in keys:
            cell = fmt_mean_std(r, k, tex=True)
            if cell == "--":
                text = f"{metric(k).tex}: {tex_escape(r[f'{k}_note'] or 'no value')}"
                cell += f"$^{{{notes.setdefault(text, chr(ord('a') + len(notes)))}}}$"
            elif r[f"{k}_p_welch"] < ALPHA:
                cell = cell[:-1] + "^{*}$"
            cells.append(cell)
        rows.append("    " + " & ".join(cells) + r" \\")
    header = ["Variant", "Weights", "$n$"]
    header += [metric(k).tex + _arrow(metric(k), r"$\uparrow$", r"$\downarrow$") for k in keys]
    caption = (
        rf"Study \texttt{{{tex_escape(study)}}}: mean $\pm$ sample standard deviation over the "
        r"$n$ COMPLETED seeds of each variant; $\downarrow$/$\uparrow$: lower/higher is better; "
        rf"$^{{*}}$: Welch's $t$-test $p < {ALPHA}$ vs baseline; weights: EMA or raw weights "
        "used for evaluation."
    )
    if notes:
        caption += " --: not available (" + "; ".join(f"$^{{{v}}}${k}" for k, v in notes.items())
        caption += ")."
    label = "".join(c if c.isalnum() else "-" for c in study)
    return "\n".join([
        "% Generated by text2sign.collect; needs \\usepackage{booktabs}.",
        r"\begin{table}[t]", r"  \centering", rf"  \caption{{{caption}}}",
        rf"  \label{{tab:{label}}}", rf"  \begin{{tabular}}{{lll{'c' * len(keys)}}}",
        r"    \toprule", "    " + " & ".join(header) + r" \\", r"    \midrule", *rows,
        r"    \bottomrule", r"  \end{tabular}", r"\end{table}", "",
    ])  # fmt: skip
