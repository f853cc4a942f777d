"""report.html of a 3 x 3 study: its size, its load time in a real browser, the collector's time
with and without it.

The study: 3 points x 3 seeds, each run with a 2,000-row training_metrics.csv, an evaluation
with per-clip audit detail, and ``eval_videos/`` as the evaluation writes them
(:func:`text2sign.evaluation.showcase.write`: 4 clips x 3 passes, H.264 + VP9, 8 frames of
16 x 16 upscaled to 128 x 128). The videos are uniform noise, the worst case for their size (a
trained model's samples compress better). Ours: ``collect(study)`` (report.html included);
peer: ``collect(study, html=False)``, the same collector without the page, alternating.
The page is then opened 5 times in headless Chromium (Playwright, the system browser) from disk;
load time is the browser's own navigation timing (navigation start → load event).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Goal, Section, median, ours_vs_peer

POINTS, SEEDS, CLIPS, REPEATS, OPENS = ("baseline", "text_finetuned", "no_ema"), 3, 4, 5, 5


def fabricate(study: Path) -> None:
    import json

    import pandas as pd

    from text2sign.evaluation import showcase

    rng = np.random.default_rng(0)
    steps = np.arange(1, 2001)
    for i, point in enumerate(POINTS):
        for seed in range(SEEDS):
            run = study / point / f"seed{seed}"
            run.mkdir(parents=True)
            loss = 1 / np.sqrt(steps) + rng.normal(0, 0.01, len(steps))
            pd.DataFrame({"step": steps, "loss": loss}).to_csv(
                run / "training_metrics.csv", index=False
            )
            (run / "gpu_memory.csv").write_text(
                "elapsed_s,memory_used_bytes,process_rss_bytes\n0,,1000\n1,,2000\n"
            )
            (run / "status.json").write_text(
                json.dumps({"state": "COMPLETED", "step": 2000, "total_steps": 2000})
            )
            (run / "summary.json").write_text(json.dumps({"final_loss": float(loss[-100:].mean()),
                                                          "train_time_s": 600.0}))  # fmt: skip
            dtw = rng.normal(0.06 + 0.01 * i, 0.005, 32)
            metrics = {"dtw_mje": float(dtw.mean()), "psnr": float(rng.normal(20, 0.5)),
                       "audit_gap": 0.17, "audit_p": 1 / 64, "eval_clips": 32.0, "eval_recordings": 6.0}  # fmt: skip
            audit = {"per_video": {"correct": list(dtw), "shuffled": list(dtw + 0.15),
                                   "empty": list(dtw + 0.13)},
                     "recordings": [f"s{j % 6}" for j in range(32)],
                     "clustered_test": {"p": 1 / 64, "n_clusters": 6}}  # fmt: skip
            (run / "evaluation_metrics.json").write_text(json.dumps({
                "weights": "ema", "num_videos": 32, "audit": audit,
                "metrics": {k: {"value": v, "reason": ""} for k, v in metrics.items()}}))  # fmt: skip
            vids = {p: rng.integers(0, 255, (CLIPS, 8, 16, 16, 3), dtype=np.uint8)
                    for p in showcase.PASSES}  # fmt: skip
            clips = [{"name": f"clip{j}", "recording": f"s{j}", "caption": f"caption {j}",
                      "shuffled_caption": f"caption {j + 1}", "dtw_mje": {"correct": float(dtw[j])}}
                     for j in range(CLIPS)]  # fmt: skip
            showcase.write(run, clips, vids, fps=8, step=2000, weights="ema")


def run() -> Section:
    from tests.tools import browser
    from text2sign.study.collect import collect

    start = time.perf_counter()
    ours, peer, loads = [], [], []
    with tempfile.TemporaryDirectory(prefix="t2s_bench_page_") as tmp:
        study = Path(tmp) / "study"
        fabricate(study)
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            collect(study, html=False)
            peer.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            collect(study)
            ours.append(time.perf_counter() - t0)
        page = study / "report.html"
        shown = {m for m in page.read_text().split('"') if m.endswith((".mp4", ".webm"))}
        video_kib = sum((study / m).stat().st_size for m in shown) / 1024
        all_kib = sum(p.stat().st_size for p in study.glob("*/seed*/eval_videos/*.*")) / 1024
        page_kib = page.stat().st_size / 1024
        why = browser.missing()
        if why is None:
            for i in range(OPENS):
                check = browser.check_page(page, f"bench-3x3-{i}")
                loads.append(check.load_ms)
                assert not check.errors, check.errors
    section = ours_vs_peer(
        title="report.html of a 3 x 3 study: size, load time, collector time",
        method=(__doc__ or "").strip() + f" Collector: median of {REPEATS} alternating repeats.",
        ours=("collect() with report.html", ours),
        peer=("collect(html=False)", peer),
        goal_metric="collector wall time (3 x 3 study)",
        goal_s=10.0,
        notes=[
            f"report.html itself: {page_kib:,.0f} KiB; the {len(shown)} videos it shows: "
            f"{video_kib:,.0f} KiB; all runs' eval_videos/: {all_kib:,.0f} KiB (9 runs)."
        ],  # fmt: skip
        seconds=time.perf_counter() - start,
    )
    section["goals"].append(Goal(metric="report.html size (page + shown videos)",
                                 value=f"{page_kib + video_kib:,.0f} KiB", goal="<= 2,048 KiB",
                                 met=page_kib + video_kib <= 2048))  # fmt: skip
    if loads:
        section["rows"].append(["Chromium load (navigation → load event), ms", f"{median(loads):.0f}",
                                ", ".join(f"{x:.0f}" for x in loads)])  # fmt: skip
        section["goals"].append(Goal(metric="report.html load in Chromium", value=f"{median(loads):.0f} ms",
                                     goal="< 1,000 ms", met=median(loads) < 1000))  # fmt: skip
    else:
        section["goals"].append(Goal(metric="report.html load in Chromium", value=f"not measured: {why}",
                                     goal="< 1,000 ms", met=None))  # fmt: skip
    return section


if __name__ == "__main__":  # python -m bench.report_page: this benchmark alone
    print(run())
