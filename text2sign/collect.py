"""The collector: every run of a study → comparison tables and a report.

Reads ``results/<study>/<variant>/seed<k>/`` run dirs (and ``study.json`` when present, to list
runs that never started). A missing, partial, corrupt or FAILED run still yields the tables: it
shows in the state column and in a warning. Never needs a GPU or the container.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from text2sign import atomic
from text2sign.errors import UsageError

log = logging.getLogger("text2sign")

BASELINE = "baseline"
# summary.json key → column label in the tables; the order is the table's order.
SUMMARY_METRICS = {
    "final_loss": "final loss",
    "train_time_s": "train time (s)",
    "samples_per_s_median": "samples/s",
    "peak_memory_bytes": "peak memory (MiB)",
    "params_total": "params total",
    "params_trainable": "params trainable",
}
SCALE = {"peak_memory_bytes": 1 / 2**20}


@dataclass
class RunRecord:
    variant: str
    seed: str
    path: Path
    state: str
    problem: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str]:
    try:
        return json.loads(path.read_text()), ""
    except FileNotFoundError:
        return None, f"no {path.name}"
    except (OSError, ValueError) as e:
        return None, f"corrupt {path.name} ({type(e).__name__})"


def discover(study: Path) -> list[RunRecord]:
    """Every run dir below ``study`` plus the runs ``study.json`` expected but that never wrote."""
    expected: set[tuple[str, str]] = set()
    plan, _ = _read_json(study / "study.json")
    for run in (plan or {}).get("runs_all") or (plan or {}).get("runs", []):
        expected.add((str(run["variant"]), f"seed{run['seed']}"))
    found = {(p.parent.name, p.name) for p in study.glob("*/seed*") if p.is_dir()}
    records = []
    for variant, seed in sorted(found | expected):
        path = study / variant / seed
        if not path.is_dir():
            records.append(RunRecord(variant, seed, path, "MISSING", "run dir was never created"))
            continue
        status, problem = _read_json(path / "status.json")
        state = (status or {}).get("state", "CORRUPT" if "corrupt" in problem else "MISSING")
        summary, sproblem = _read_json(path / "summary.json")
        rec = RunRecord(variant, seed, path, state, problem or (status or {}).get("reason", ""))
        rec.summary = summary or {}
        if state == "COMPLETED" and summary is None:
            rec.state, rec.problem = "PARTIAL", sproblem
        records.append(rec)
    return records


def _fmt(mean: float, std: float, n: int, scale: float = 1.0) -> str:
    if n == 0 or mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "N/A"
    m = mean * scale
    digits = 4 if abs(m) < 10 else 1 if abs(m) < 10_000 else 0
    if n < 2:
        return f"{m:.{digits}f} (n=1)"
    return f"{m:.{digits}f} ± {std * scale:.{digits}f}"


def comparison_table(records: list[RunRecord]) -> pd.DataFrame:
    """One row per variant: state counts, mean/std/n of each metric over COMPLETED seeds, Δ%."""
    rows = []
    for variant in sorted({r.variant for r in records}, key=lambda v: (v != BASELINE, v)):
        runs = [r for r in records if r.variant == variant]
        done = [r for r in runs if r.state == "COMPLETED"]
        states = pd.Series([r.state for r in runs]).value_counts()
        row: dict[str, Any] = {
            "variant": variant,
            "seeds": len(runs),
            "state": ", ".join(f"{n} {s}" for s, n in sorted(states.items())),
        }
        for key in SUMMARY_METRICS:
            vals = pd.Series([r.summary.get(key) for r in done], dtype="float64").dropna()
            row[f"{key}_mean"] = vals.mean() if len(vals) else float("nan")
            row[f"{key}_std"] = vals.std(ddof=1) if len(vals) > 1 else float("nan")
            row[f"{key}_n"] = len(vals)
        rows.append(row)
    df = pd.DataFrame(rows)
    base = df[df.variant == BASELINE]
    for key in SUMMARY_METRICS:
        ref = base[f"{key}_mean"].iloc[0] if len(base) else float("nan")
        df[f"{key}_delta_pct"] = (df[f"{key}_mean"] - ref) / ref * 100 if ref else float("nan")
    return df


def markdown_table(df: pd.DataFrame) -> str:
    """The human table: ``mean ± std`` per metric and Δ vs baseline in %."""
    headers = ["variant", "runs"] + list(SUMMARY_METRICS.values()) + ["Δ final loss vs baseline"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for _, r in df.iterrows():
        cells = [r.variant, r.state]
        for key in SUMMARY_METRICS:
            cells.append(
                _fmt(r[f"{key}_mean"], r[f"{key}_std"], int(r[f"{key}_n"]), SCALE.get(key, 1.0))
            )
        delta = r["final_loss_delta_pct"]
        cells.append(
            "—" if r.variant == BASELINE else ("N/A" if pd.isna(delta) else f"{delta:+.1f}%")
        )
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _plots(records: list[RunRecord], out: Path) -> list[str]:
    """Loss curves and memory over time as PNG; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(7, 4))
    fig2, ax2 = plt.subplots(figsize=(7, 4))
    for r in records:
        label = f"{r.variant}/{r.seed}"
        try:
            m = pd.read_csv(r.path / "training_metrics.csv", usecols=["step", "loss"])
            ax.plot(m.step, m.loss.rolling(5, min_periods=1).mean(), label=label, lw=1)
        except (OSError, ValueError, pd.errors.ParserError):
            pass
        try:
            g = pd.read_csv(r.path / "gpu_memory.csv")
            col = (
                "memory_used_bytes" if g["memory_used_bytes"].notna().any() else "process_rss_bytes"
            )
            ax2.plot(g.elapsed_s, g[col] / 2**20, label=f"{label} ({col.split('_')[0]})", lw=1)
        except (OSError, ValueError, KeyError, pd.errors.ParserError):
            pass
    for a, f, name, ylabel in ((ax, fig, "loss_curves.png", "training loss (5-step mean)"),
                               (ax2, fig2, "memory.png", "memory (MiB)")):  # fmt: skip
        if a.lines:
            a.set_xlabel("step" if name == "loss_curves.png" else "seconds since start")
            a.set_ylabel(ylabel)
            a.legend(fontsize=7)
            f.tight_layout()
            f.savefig(out / name, dpi=110)
            written.append(name)
        plt.close(f)
    return written


def collect(study: Path, *, plots: bool = True) -> pd.DataFrame:
    """Write comparison_table.{csv,md} and report.md into ``study``; return the table."""
    study = Path(study)
    if not study.is_dir():
        raise UsageError(f"{study}: no such study folder")
    records = discover(study)
    if not records:
        raise UsageError(f"{study}: no runs found (expected VARIANT/seedK/ run dirs or study.json)")
    bad = [r for r in records if r.state != "COMPLETED"]
    if bad:
        log.warning(
            "%d of %d runs are not COMPLETED: %s", len(bad), len(records),
            "; ".join(f"{r.variant}/{r.seed} {r.state}{': ' + r.problem if r.problem else ''}" for r in bad),
        )  # fmt: skip
    df = comparison_table(records)
    atomic.write_text(study / "comparison_table.csv", df.to_csv(index=False))
    md = markdown_table(df)
    atomic.write_text(study / "comparison_table.md", md)
    images = _plots(records, study) if plots else []
    runs_md = "\n".join(
        f"| {r.variant} | {r.seed} | {r.state} | {r.problem or ''} |" for r in records
    )
    report = [
        f"# Study `{study.name}`\n",
        "## Comparison\n",
        "Mean ± sample std over the COMPLETED seeds of each variant; runs in other states are "
        "counted in the runs column and excluded from the means.\n",
        md,
        "## Runs\n",
        "| variant | seed | state | note |\n|---|---|---|---|\n" + runs_md + "\n",
    ]
    for name in images:
        report.append(
            f"## {name.removesuffix('.png').replace('_', ' ').capitalize()}\n\n![{name}]({name})\n"
        )
    atomic.write_text(study / "report.md", "\n".join(report))
    return df
