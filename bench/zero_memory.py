"""Per-rank bytes of optimizer state plus gradients at ZeRO stages 0-3 (DeepSpeed, 2 CPU ranks).

Each stage is one ``torchrun --nproc_per_node 2 -m bench.zero_worker`` launch (gloo, bf16, torch
AdamW as the client optimizer, the trainer's DeepSpeed template); see ``bench.zero_worker`` for
exactly what is counted. The reported figure per stage is the largest census over the three
measuring points, and the larger of the two ranks.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Goal, Section, mib

PRESET = "small"
RUNS: tuple[tuple[int, float | None], ...] = ((0, None), (1, None), (2, None), (3, None), (2, 5e6))
GOAL_RATIO = 0.55
POINTS = ("backward", "reduce", "step")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(stage: int, bucket: float | None, tmp: Path) -> list[dict[str, Any]]:
    """Run the 2-rank worker for one stage and return both ranks' results."""
    out = tmp / f"stage{stage}-{bucket}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    cmd += ["-m", "bench.zero_worker", "--stage", str(stage), "--preset", PRESET, "--out", str(out)]
    if bucket is not None:
        cmd += ["--bucket", str(bucket)]
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode:
        raise RuntimeError(
            f"ZeRO-{stage} worker failed:\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
        )
    return [json.loads(Path(f"{out}.rank{r}.json").read_text()) for r in range(2)]


def peak(ranks: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """The largest census over points and ranks, and the point it was taken at."""
    best = max(
        ((r["census"][p], p) for r in ranks for p in POINTS if p in r["census"]),
        key=lambda cp: cp[0]["total"],
    )
    return best


def run() -> Section:
    """Measure every stage; the goal is ZeRO-2 over ZeRO-0 with the trainer's template."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="t2s_bench_zero_") as tmp:
        results = [(stage, bucket, launch(stage, bucket, Path(tmp))) for stage, bucket in RUNS]
    base = peak(results[0][2])[0]["total"]
    rows, stage2 = [], 0.0
    for stage, bucket, ranks in results:
        snap, point = peak(ranks)
        ratio = snap["total"] / base
        stage2 = ratio if (stage, bucket) == (2, None) else stage2
        at_points = " / ".join(
            mib(max(r["census"][p]["total"] for r in ranks)) if p in ranks[0]["census"] else "-"
            for p in POINTS
        )
        rows.append(
            [
                f"{stage}" + (f" (bucket {bucket:.0e})" if bucket else ""),
                f"`{ranks[0]['wrapper']}`",
                mib(snap["adam_state"]),
                mib(snap["fp32_master"]),
                mib(snap["grads_fp32"]),
                mib(snap["grads"] - snap["grads_fp32"]),
                f"**{mib(snap['total'])}** ({point})",
                at_points,
                f"{ratio:.2f}",
                mib(snap["bf16_weights"]),
            ]
        )
    first = results[0][2][0]
    big = {f"ZeRO-{s}": peak(r)[0]["grad_sources"][0] for s, b, r in results if b is None}
    return Section(
        title="ZeRO memory: optimizer state + gradients per rank",
        method=(
            f"DiT preset `{PRESET}` ({first['params'] / 1e6:.1f}M parameters), 2 CPU ranks "
            "(torchrun, gloo, `DS_ACCELERATOR=cpu`), bf16 enabled, torch AdamW as the client "
            "optimizer, the trainer's `configs/deepspeed/default.json` (reduce bucket "
            f"{first['reduce_bucket_size']:.0e} elements, contiguous gradients, no overlap) with "
            "only the stage changed; the last row overrides the bucket. Input size does not "
            "change these bytes, so the step runs on a 2-frame 8x8 clip. During step 2 a census "
            "of DeepSpeed's optimizer object is taken at the end of backward, after each gradient "
            "reduction and on entry to AdamW's `step`; the table shows the largest (and where it "
            "was). Counted: the storages of the torch optimizer's state (exp_avg, exp_avg_sq, "
            "step), of DeepSpeed's fp32 master groups/partitions, and every other storage "
            "reachable from the wrapper plus all `.grad`s (bf16 and fp32 gradients, reduction "
            "buckets, gradient partitions), each storage once at its full size, bf16 weights "
            "excluded (shown on the right for reference). Not counted: temporaries inside one "
            "communication call. Details: `bench/zero_worker.py`."
        ),
        columns=[
            "stage",
            "DeepSpeed optimizer",
            "Adam state",
            "fp32 master",
            "fp32 grads",
            "bf16 grads + buckets",
            "peak total (at)",
            "backward / reduce / step",
            "vs stage 0",
            "bf16 weights",
        ],
        rows=rows,
        goals=[
            Goal(
                metric="ZeRO-2 / ZeRO-0 per-rank optimizer state + gradients",
                value=f"{stage2:.2f}",
                goal=f"<= {GOAL_RATIO}",
                met=stage2 <= GOAL_RATIO,
            )
        ],
        notes=[
            "Largest single gradient storage at each peak (attribute path in the census): "
            + "; ".join(f"{k}: `{v}`" for k, v in big.items())
            + ". The bf16 reduction bucket holds reduce_bucket_size elements whatever the model "
            "size, so with the template's bucket it is a fixed cost that ZeRO does not shard."
        ],
        seconds=time.perf_counter() - start,
    )
