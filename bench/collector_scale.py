"""The collector over 1,000 fabricated run dirs, each with a 2,000-row training_metrics.csv.

Ours: ``text2sign.study.collect.collect(study)`` end to end (discovery, every status/summary/evaluation/
metadata file, the paired statistics with Holm's correction over 250 matched seeds per point,
the long CSV, the cost and provenance sections, the tables, the report and both plots, and
report.html), and the same without report.html (``--no-html``): the page may cost at most 10 %
of the collector's time. Peer: the
bare lower bound of the same input, every CSV read once with ``pandas.read_csv``. The run dirs hold
4 points x 250 seeds with plausible values (one point with overrides, listed in study.json).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import Goal, Section, median, ours_vs_peer

RUNS, ROWS, REPEATS = 1000, 2000, 5
VARIANTS = ("baseline", "text_finetuned", "no_ema", "baseline__lr1e-3")
GOAL_S = 20.0
HEADER = "step,epoch,loss,lr,grad_norm,samples_per_s,step_time_s,peak_memory_bytes,memory_kind,wall_time_s"


def fabricate(study: Path) -> None:
    rng = np.random.default_rng(0)
    steps = np.arange(1, ROWS + 1)
    runs = []
    for i in range(RUNS):
        variant, seed = VARIANTS[i % len(VARIANTS)], i // len(VARIANTS)
        run = study / variant / f"seed{seed}"
        run.mkdir(parents=True)
        over = {"train.lr": "0.001"} if "__" in variant else {}
        runs.append({"variant": variant, "point": variant, "seed": seed, "overrides": over,
                     "base_variant": variant.split("__")[0], "run_dir": f"{variant}/seed{seed}",
                     "job_id": f"1_{i}"})  # fmt: skip
        loss = 1.0 / np.sqrt(steps) + rng.normal(0, 0.01, ROWS)
        df = pd.DataFrame({"step": steps, "epoch": steps // 100, "loss": loss, "lr": 1e-3,
                           "grad_norm": 0.5, "samples_per_s": 100.0, "step_time_s": 0.08,
                           "peak_memory_bytes": 2**29, "memory_kind": "process_rss",
                           "wall_time_s": steps * 0.08})  # fmt: skip
        df.to_csv(run / "training_metrics.csv", index=False)
        (run / "status.json").write_text(
            json.dumps({"state": "COMPLETED", "step": ROWS, "total_steps": ROWS})
        )
        (run / "summary.json").write_text(json.dumps({
            "final_loss": float(loss[-200:].mean()), "train_time_s": 160.0, "samples_per_s_median": 100.0,
            "peak_memory_bytes": 2**29, "params_total": 10**6, "params_trainable": 9 * 10**5}))  # fmt: skip
        (run / "gpu_memory.csv").write_text(
            "elapsed_s,memory_used_bytes,process_rss_bytes\n0,,1000\n1,,2000\n"
        )
        metrics = {k: {"value": float(v), "reason": ""} for k, v in (
            ("dtw_mje", rng.normal(0.06, 0.005)), ("psnr", rng.normal(20, 0.5)),
            ("ssim", rng.normal(0.55, 0.02)), ("audit_gap", rng.normal(0.17, 0.01)),
            ("audit_p", 2.3e-10))}  # fmt: skip
        metrics["fvd"] = {"value": None, "reason": "no I3D weights"}
        (run / "evaluation_metrics.json").write_text(json.dumps({"weights": "ema",
                                                                 "metrics": metrics}))  # fmt: skip
        (run / "metadata.json").write_text(json.dumps({
            "git": {"commit": "abc", "dirty": False}, "world_size": 1, "gpus_torch": [],
            "container": {"runtime": "none"}, "telemetry": {"reason": "no NVIDIA GPU/driver"}}))  # fmt: skip
    (study / "study.json").write_text(json.dumps({"runs": runs, "reference": "baseline",
                                                  "reference_source": "baseline"}))  # fmt: skip


def run() -> Section:
    from text2sign.study.collect import collect

    start = time.perf_counter()
    ours, peer, bare = [], [], []
    with tempfile.TemporaryDirectory(prefix="t2s_bench_collect_") as tmp:
        study = Path(tmp) / "study"
        t0 = time.perf_counter()
        fabricate(study)
        fab_s = time.perf_counter() - t0
        csvs = sorted(study.glob("*/seed*/training_metrics.csv"))
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            for path in csvs:
                pd.read_csv(path)
            peer.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            collect(study, html=False)
            bare.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            df = collect(study)
            ours.append(time.perf_counter() - t0)
        long_rows = len(pd.read_csv(study / "comparison_long.csv"))
        page_kib = (study / "report.html").stat().st_size / 1024
    section = ours_vs_peer(
        title="Collector over 1,000 run dirs x 2,000 rows",
        method=(__doc__ or "").strip() + f" Median of {REPEATS} alternating repeats; fabricating "
        f"the input took {fab_s:.0f} s (not counted).",
        ours=("collect() (tables + report + plots + report.html)", ours),
        peer=("pandas.read_csv of every CSV", peer),
        goal_metric="collector wall time",
        goal_s=GOAL_S,
        notes=[
            f"The table had {len(df)} rows (one per point); comparison_long.csv {long_rows:,} "
            f"rows (one per run x metric); report.html {page_kib:,.0f} KiB (at most "
            "20 seeds per point drawn in its charts, every run in its runs table)."
        ],  # fmt: skip
        seconds=time.perf_counter() - start,
    )
    ratio = median(ours) / median(bare)
    section["rows"].append(["collect(html=False), the same without report.html",
                            f"{median(bare):.2f}", ", ".join(f"{x:.2f}" for x in bare)])  # fmt: skip
    section["goals"].append(Goal(metric="with report.html / without", value=f"{ratio:.2f}",
                                 goal="<= 1.10", met=ratio <= 1.10))  # fmt: skip
    return section


if __name__ == "__main__":  # python -m bench.collector_scale: this benchmark alone
    section = run()
    print(section["rows"], section["goals"], sep="\n")
