"""Evaluation wall time per run at the tiny profile.

A tiny baseline run is trained briefly (fp32, 50 steps, 1 rank, no samples, no evaluation) on a
synthetic set; then ``text2sign.evaluation.evaluate.evaluate(run_dir)`` is timed end to end with the tiny
profile's settings (32 validation clips, 25 DDIM steps, 3 timed videos, the conditioning audit's
three sampling passes, PSNR/SSIM/temporal metrics; FVD and LPIPS are N/A here and cost nothing).
Peer: one DDIM sampling pass over the same 32 captions, the unit of work evaluation repeats.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Goal, Section, median

REPO = Path(__file__).resolve().parents[1]
REPEATS = 3


def run() -> Section:
    from text2sign.data import generate
    from text2sign.evaluation.evaluate import evaluate
    from text2sign.evaluation.sampling import load_run_for_sampling, make_diffusion, sample_videos

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="t2s_bench_eval_") as tmp:
        data, run_dir = Path(tmp) / "data", Path(tmp) / "run"
        generate(data, 384)
        cmd = [sys.executable, "-m", "text2sign", "train", "--run-dir", str(run_dir),
               "--set", f"data.root={data}", "--set", "train.max_steps=50", "--set",
               "train.num_samples=0", "--set", "eval.enabled=false"]  # fmt: skip
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
        cfg, built, _ = load_run_for_sampling(run_dir)
        diffusion = make_diffusion(cfg)
        ours, peer = [], []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            result = evaluate(run_dir)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            sample_videos(built, diffusion, [f"caption {i}" for i in range(result["num_videos"])],
                          cfg=cfg, seed=0)  # fmt: skip
            peer.append(time.perf_counter() - t0)
    m_ours, m_peer = median(ours), median(peer)
    return Section(
        title="Evaluation wall time per run (tiny profile)",
        method=(__doc__ or "").strip() + f" Median of {REPEATS} alternating repeats.",
        columns=["path", "median s", "all repeats (s)"],
        rows=[
            ["evaluate(run_dir)", f"{m_ours:.1f}", ", ".join(f"{x:.1f}" for x in ours)],
            ["one DDIM pass, 32 videos", f"{m_peer:.1f}", ", ".join(f"{x:.1f}" for x in peer)],
        ],
        goals=[
            Goal(metric="evaluation per tiny run", value=f"{m_ours:.1f} s", goal="none", met=None),
            Goal(
                metric="evaluate / one sampling pass",
                value=f"{m_ours / m_peer:.1f}",
                goal="none",
                met=None,
            ),
        ],  # fmt: skip
        notes=[
            "GPU (full profile, I3D throughput): not measured, no GPU was lent to this session."
        ],
        seconds=time.perf_counter() - start,
    )
