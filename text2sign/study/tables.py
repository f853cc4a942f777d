"""The comparison table as Markdown and LaTeX (the numbers come from :mod:`text2sign.study.comparison`).

Every p-value shown is one that exists: with fewer than 3 matched seeds a cell says ``no test``;
a LaTeX ``*`` marks a Holm-adjusted paired t-test p < 0.05 vs the reference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from text2sign.metrics.stats import MIN_PAIRS
from text2sign.study.metric_specs import (
    ALPHA,
    HEADLINE,
    SUMMARY_METRICS,
    MetricSpec,
    metric,
    metric_keys,
)

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


def fmt_p(r: pd.Series, key: str, test: str = "p_holm") -> str:
    """A p-value column of ``key`` (``p_holm``, ``p_paired_t``, ``p_signflip``, ``p_welch``), or
    why there is none: ``no test`` (fewer than 3 matched seeds, 3 per side for Welch), ``n/a
    (zero variance)``, ``N/A`` (no value)."""
    p, note = r[f"{key}_{test}"], str(r[f"{key}_note"])
    if not math.isnan(p):
        return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"
    if int(r[f"{key}_n"]) == 0:
        return "N/A"
    if test == "p_welch" and not math.isnan(r[f"{key}_p_paired_t"]):
        return "n/a" if "zero variance" not in note else "n/a (zero variance)"
    if int(r[f"{key}_n_paired"]) < MIN_PAIRS and "zero variance" not in note:
        return "no test"
    if "constant differences" in note and test in ("p_holm", "p_paired_t"):
        return "n/a (constant differences)"
    return "n/a (zero variance)" if "zero variance" in note else "n/a"


def fmt_audit(r: pd.Series) -> str:
    """``k/n seeds (p = …)``: the audit separates in k of n seeds at the 5 % level; without a
    tested seed, ``N/A (why)`` (e.g. all clips from one recording)."""
    n = int(r.get("audit_seeds_tested", 0) or 0)
    if not n:
        note = str(r.get("audit_note") or "")
        return f"N/A ({note})" if note and note != "nan" else "N/A"
    return f"{int(r.audit_seeds_significant)}/{n} (p = {r.audit_p_values.replace('; ', ', ')})"


def fmt_basis(r: pd.Series) -> str:
    """What the point's evaluation numbers rest on (``32 clips, 12 recordings, 3 signers``)."""
    text = str(r.get("evaluated_on") or "")
    return text if text and text != "nan" else "-"


def basis_sentence(df: pd.DataFrame) -> str:
    """One sentence: what every point's evaluation rests on ("" when no point says)."""
    texts = {r.variant: fmt_basis(r) for _, r in df.iterrows() if fmt_basis(r) != "-"}
    if not texts:
        return ""
    if len(set(texts.values())) == 1 and len(texts) == len(df):
        return f"Every evaluation rests on {next(iter(texts.values()))}."
    return "Evaluations rest on: " + "; ".join(f"{v}: {t}" for v, t in texts.items()) + "."


def fmt_weights(w: str) -> str:
    names = ["EMA" if x == "ema" else x for x in w.split("/") if x]
    return {0: "unknown", 1: "".join(names[:1])}.get(len(names), "mixed: " + "/".join(names))


def _arrow(m: MetricSpec, up: str = "↑", down: str = "↓") -> str:
    return {"lower": f" {down}", "higher": f" {up}"}.get(m.better or "", "")


def _md_row(cells: Iterable[Any]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def reference_line(reference: str, source: str) -> str:
    return f"Δ and tests against `{reference}` (reference: {source})."


def markdown_table(df: pd.DataFrame, reference: str, source: str) -> str:
    """Training and evaluation tables (``mean ± std``) and the headline metrics vs the reference.

    An ``overrides`` column appears when a point of the study has overrides (the CSV always has
    it)."""
    keys = metric_keys(df)
    train = [k for k in keys if k in SUMMARY_METRICS]
    ev = [k for k in keys if k not in SUMMARY_METRICS]
    over = bool(df.overrides.astype(bool).any()) if "overrides" in df else False
    extra = ["overrides"] if over else []

    def tail(r: pd.Series) -> list[str]:
        return [r.overrides] if over else []

    headers = ["variant", "runs"] + [metric(k).label for k in train] + ["weights"] + extra
    out = ["### Training (summary.json)\n", _md_row(headers), "|" + "---|" * len(headers)]
    for _, r in df.iterrows():
        cells = [r.variant, r.state] + [fmt_mean_std(r, k) for k in train]
        out.append(_md_row(cells + [fmt_weights(r.weights)] + tail(r)))
    problems = [f"- {r.variant} {item}" for _, r in df.iterrows()
                for item in str(r.get("not_completed") or "").split("; ") if item]  # fmt: skip
    if problems:
        out += ["", "Runs not COMPLETED (state: reason):", "", *problems]
    if ev:
        headers = ["variant"] + [metric(k).label + _arrow(metric(k)) for k in ev]
        headers += ["audit: seeds with p < 0.05", "keypoints", "evaluated on", *extra]
        out += ["", "### Evaluation (evaluation_metrics.json)\n", _md_row(headers)]
        out.append("|" + "---|" * len(headers))
        out += [_md_row([r.variant] + [fmt_mean_std(r, k) for k in ev]
                        + [fmt_audit(r), r.get("keypoints") or "-", fmt_basis(r)] + tail(r))
                for _, r in df.iterrows()]  # fmt: skip
    headers = ["metric", "variant", "mean ± std", "95% CI", "n", f"Δ vs {reference}",
               "matched seeds", "paired t p (Holm)", "sign-flip p", "Welch p"]  # fmt: skip
    out += ["", f"### Headline metrics vs {reference}\n", reference_line(reference, source), ""]
    out += [_md_row(headers), "|" + "---|" * len(headers)]
    for k in (k for k in HEADLINE if k in keys):
        m = metric(k)
        for _, r in df.iterrows():
            ref = r.variant == reference
            tests = ["—"] * 4 if ref else [
                int(r[f"{k}_n_paired"]),
                fmt_p(r, k, "p_holm") + ("" if math.isnan(r[f"{k}_p_holm"])
                                         else f" (raw {fmt_p(r, k, 'p_paired_t')})"),
                fmt_p(r, k, "p_signflip"), fmt_p(r, k, "p_welch"),
            ]  # fmt: skip
            out.append(_md_row([
                m.label + _arrow(m), r.variant, fmt_mean_std(r, k), fmt_ci(r, k), int(r[f"{k}_n"]),
                "—" if ref else fmt_delta(r[f"{k}_delta_pct"]), *tests,
            ]))  # fmt: skip
    out += ["", "Mean ± sample std (ddof=1) over the COMPLETED seeds; 95% CI: Student t. Tests "
            "against the reference over the seeds both have (matched seeds share initial weights, "
            "data order and noise): paired t-test (`scipy.stats.ttest_rel`), Holm-adjusted over "
            "this comparison's headline metrics (raw p in brackets); exact two-sided sign-flip "
            "permutation p; Welch p (`ttest_ind(equal_var=False)`, unpaired). `no test`: fewer than "
            f"{MIN_PAIRS} matched seeds ({MIN_PAIRS} per side for Welch). N/A (reason): no seed "
            "has a value; weights: EMA or raw weights used for samples and evaluation; keypoints: "
            "what DTW-MJE and the audit compare, `exact` (the synthetic set's own) or `estimated` "
            "(MediaPipe Holistic on samples and references alike); evaluated on: the clips (a seeded "
            "draw stratified over recordings), recordings and signers each run's evaluation rests "
            "on; audit: per seed, the exact one-sided sign-flip test over recordings (clips of a "
            "recording averaged first), no test with one recording; DTW-MJE floor: the lowest a "
            "perfect model could score (the estimator at the model's resolution vs native); "
            "↓/↑: lower/higher is better."]  # fmt: skip
    return "\n".join(out) + "\n"


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}"}  # fmt: skip


def tex_escape(text: str) -> str:
    """``text`` safe for LaTeX text mode."""
    return "".join(_TEX_ESCAPES.get(c, c) for c in str(text))


def latex_table(df: pd.DataFrame, study: str, reference: str) -> str:
    """A booktabs table of the headline metrics (``mean $\\pm$ std``) for a paper.

    N/A cells are ``--`` with a lettered note in the caption giving the reason; ``*`` marks a
    Holm-adjusted paired t-test p < 0.05 vs the reference (never with fewer than 3 matched seeds).
    """
    keys = [k for k in HEADLINE if k in metric_keys(df)]
    over = bool(df.overrides.astype(bool).any()) if "overrides" in df else False
    notes: dict[str, str] = {}  # "FVD: no I3D weights" → letter
    rows = []
    for _, r in df.iterrows():
        cells = [tex_escape(r.variant), *([tex_escape(r.overrides)] if over else []),
                 tex_escape(fmt_weights(r.weights)), str(int(r.completed))]  # fmt: skip
        for k in keys:
            cell = fmt_mean_std(r, k, tex=True)
            if cell == "--":
                text = f"{metric(k).tex}: {tex_escape(r[f'{k}_note'] or 'no value')}"
                cell += f"$^{{{notes.setdefault(text, chr(ord('a') + len(notes)))}}}$"
            elif r[f"{k}_p_holm"] < ALPHA:
                cell = cell[:-1] + "^{*}$"
            cells.append(cell)
        rows.append("    " + " & ".join(cells) + r" \\")
    header = ["Variant", *(["Overrides"] if over else []), "Weights", "$n$"]
    header += [metric(k).tex + _arrow(metric(k), r"$\uparrow$", r"$\downarrow$") for k in keys]
    caption = (
        rf"Study \texttt{{{tex_escape(study)}}}: mean $\pm$ sample standard deviation over the "
        r"$n$ COMPLETED seeds of each variant; $\downarrow$/$\uparrow$: lower/higher is better; "
        rf"$^{{*}}$: paired $t$-test over matched seeds vs \texttt{{{tex_escape(reference)}}}, "
        rf"Holm-adjusted $p < {ALPHA}$; weights: EMA or raw weights used for evaluation."
    )
    if notes:
        caption += " --: not available (" + "; ".join(f"$^{{{v}}}${k}" for k, v in notes.items())
        caption += ")."
    if basis := basis_sentence(df):
        caption += " " + tex_escape(basis)
    label = "".join(c if c.isalnum() else "-" for c in study)
    return "\n".join([
        "% Generated by text2sign.study.collect; needs \\usepackage{booktabs}.",
        r"\begin{table}[t]", r"  \centering", rf"  \caption{{{caption}}}",
        rf"  \label{{tab:{label}}}", rf"  \begin{{tabular}}{{{'l' * (len(header) - len(keys))}{'c' * len(keys)}}}",
        r"    \toprule", "    " + " & ".join(header) + r" \\", r"    \midrule", *rows,
        r"    \bottomrule", r"  \end{tabular}", r"\end{table}", "",
    ])  # fmt: skip
