"""``report.html``: the study as one web page, opened from the study folder with no server and no
network (no CDN: its style and script are inline, its videos are the runs' own files).

What it holds, top to bottom (docs/evaluation.md, "Reading report.html"): the state of the study
(a partial page while runs are still going), the headline table (the numbers of
``comparison_table.md``, each cell linking to its evidence), the findings, the signing side by
side (reference, sample, sample with a shuffled caption, per point, looping in sync), every
metric per seed with its paired tests, the conditioning audit per clip, learning curves and
memory per seed, every run with its state, reason and cost, then the full tables, cost and
provenance sections of ``report.md``.
"""

from __future__ import annotations

import datetime as dt
import math
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from text2sign import atomic
from text2sign.study import page_parts as parts
from text2sign.study.curves import RunCurves
from text2sign.study.records import RunRecord, Study
from text2sign.study.tables import fmt_weights

PAGE = "report.html"
PASS_LABELS = {"reference": "reference", "correct": "sample", "shuffled": "shuffled caption"}


def _markdown(text: str) -> str:
    import markdown

    return markdown.markdown(text, extensions=["tables"])


def choose_runs(study: Study, seed: int | None = None) -> dict[str, tuple[RunRecord, str]]:
    """Per point, the run whose videos are shown and why: ``seed`` when given and it has videos,
    else the COMPLETED seed with the lowest DTW-MJE (a best case, said on the page), else the
    first with videos."""
    out = {}
    for point in study.points:
        runs = [r for r in study.records if r.variant == point and r.videos.get("clips")]
        if not runs:
            continue
        chosen = [r for r in runs if seed is not None and r.seed_number == seed]
        scored = [r for r in runs if isinstance(r.evaluation.get("dtw_mje"), int | float)]
        if chosen:
            out[point] = (chosen[0], f"{chosen[0].seed}, as chosen")
        elif len(scored) == 1:
            out[point] = (scored[0], f"{scored[0].seed}: its only evaluated seed")
        elif scored:
            best = min(scored, key=lambda r: r.evaluation["dtw_mje"])
            out[point] = (best, f"{best.seed}: the lowest DTW-MJE of {len(scored)} seeds")
        else:
            out[point] = (runs[0], f"{runs[0].seed}: the first seed with videos")
    return out


def _video(r: RunRecord, entry: dict[str, Any], name: str) -> dict[str, Any]:
    files = (entry.get("files") or {}).get(name) or {}
    base = parts.run_href(r, "eval_videos/")
    sources = [
        {"src": base + files[f], "type": f"video/{f}"} for f in ("mp4", "webm") if f in files
    ]
    dtw = (entry.get("dtw_mje") or {}).get(name)
    det = (entry.get("detection") or {}).get(name) or {}
    if "reason" in det:
        found = f"no keypoints: {det['reason']}"
    elif det:
        found = ", ".join(f"{k.replace('_', ' ')} {v:.0%}" for k, v in det.items())
    else:
        found = ""
    return {"sources": sources, "gif": base + files["gif"] if "gif" in files else "",
            "dtw": "" if dtw is None else f"DTW-MJE {dtw:.3f}", "found": found,
            "label": PASS_LABELS[name]}  # fmt: skip


def video_rows(study: Study, seed: int | None = None) -> dict[str, Any]:
    """Rows of the side-by-side section: per shown clip, the reference, then per point its
    sample with the caption and with the shuffled caption."""
    chosen = choose_runs(study, seed)
    missing = {p: next((f"{r.seed} {r.state}: {r.problem or r.eval_problem or 'no videos'}"
                        for r in study.records if r.variant == p), "no runs")
               for p in study.points if p not in chosen}  # fmt: skip
    if not chosen:
        return {"rows": [], "points": [], "missing": missing}
    first_run, _ = next(iter(chosen.values()))
    index = first_run.videos
    rows = []
    for i, clip in enumerate(index["clips"]):
        cells = []
        for point, (r, _) in chosen.items():
            entries = r.videos.get("clips") or []
            entry = (
                entries[i]
                if i < len(entries) and entries[i].get("name") == clip.get("name")
                else None
            )
            if entry is None:
                cells.append({"point": point, "videos": [], "note": "clip not among its videos"})
                continue
            cells.append({"point": point, "videos": [_video(r, entry, "correct"),
                                                     _video(r, entry, "shuffled")],
                          "shuffled": entry.get("shuffled_caption", "")})  # fmt: skip
        rows.append({"caption": clip.get("caption", ""), "name": clip.get("name", ""),
                     "recording": clip.get("recording", ""),
                     "reference": _video(first_run, clip, "reference"), "cells": cells})  # fmt: skip
    return {
        "rows": rows, "points": [{"point": p, "why": why, "weights": fmt_weights(r.videos.get("weights") or ""),
                                  "step": r.videos.get("step")} for p, (r, why) in chosen.items()],
        "fps": index.get("fps", 8), "skeleton": index.get("skeleton") == "estimated",
        "format_note": index.get("format_note", ""), "missing": missing,
    }  # fmt: skip


def runs_table(study: Study, run_cost: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for r in study.records:
        peak = r.summary.get("peak_memory_bytes")
        wall = r.summary.get("train_time_s")
        out.append({
            "point": r.variant, "seed": r.seed, "state": r.state, "reason": r.problem or r.eval_problem,
            "cost": run_cost.get(r.job_id, "-"), "anchor": parts.anchor("run", f"{r.variant}-{r.seed}"),
            "wall": f"{wall:.0f} s" if isinstance(wall, int | float) else "-",
            "peak": f"{peak / 2**20:.0f} MiB" if isinstance(peak, int | float) else "-",
            "device": r.inference_device or "-", "href": parts.run_href(r),
            "tb": parts.run_href(r, "tb/") if (r.path / "tb").is_dir() else "",
            "evaluated_on": _basis(r),
        })  # fmt: skip
    return out


def _basis(r: RunRecord) -> str:
    """``32 clips, 6 recordings`` of one run's evaluation ("-": none)."""
    counts = [(r.evaluation.get(k), what) for k, what in (("eval_clips", "clips"),
                                                          ("eval_recordings", "recordings"))]  # fmt: skip
    text = ", ".join(f"{int(n)} {what}" for n, what in counts
                     if isinstance(n, int | float) and math.isfinite(n))  # fmt: skip
    return text or "-"


def _asset(name: str) -> str:
    return resources.files("text2sign.study").joinpath("templates", name).read_text()


def write_page(
    study: Study,
    df: pd.DataFrame,
    long: pd.DataFrame,
    tables_md: str,
    findings: list[str],
    extra_md: list[str],
    *,
    run_cost: dict[str, str],
    curves: dict[tuple[str, str], RunCurves],
    video_seed: int | None = None,
) -> Path:
    """Write ``report.html`` into the study folder and return its path."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)  # fmt: skip
    template = env.from_string(_asset("report.html.j2"))
    context = {
        "name": study.name, "reference": study.reference, "reference_source": study.reference_source,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "progress": parts.progress(study.records), "headline": parts.headline(df, study.reference),
        "findings": [Markup(_markdown(p)) for p in findings],
        "videos": video_rows(study, video_seed),
        "metrics": parts.metric_cards(study, df, long), "audit": parts.audit_cards(study),
        "curves": parts.curve_cards(study, curves), "runs": runs_table(study, run_cost),
        "tables": Markup(_markdown(tables_md)),
        "extra": Markup(_markdown("\n".join(extra_md))),
        "max_seeds": parts.MAX_SEEDS, "css": Markup(_asset("report.css")),
        "js": Markup(_asset("report.js")), "markup": Markup,
    }  # fmt: skip
    path = study.path / PAGE
    atomic.write_text(path, template.render(**context))
    return path
