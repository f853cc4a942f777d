"""What a run reports about itself: the start-up banner, progress lines and summary.json."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from statistics import median

from text2sign import atomic
from text2sign.config import Config


def write_summary(run, cfg, env, counts, wall, telemetry, step) -> None:
    """summary.json from the whole metrics CSV, so it spans every attempt of a resumed run."""
    rows = read_rows(run.metrics_csv)
    losses = [float(r["loss"]) for r in rows]
    tail = losses[-max(1, len(losses) // 10) :]  # "final loss": mean of the last 10% of steps
    step_times = [float(r["step_time_s"]) for r in rows]
    old = json.loads(run.summary.read_text()) if run.summary.exists() else {}
    global_batch = cfg.train.batch_size * cfg.train.grad_accum * env.world_size
    summary = {
        "variant": cfg.variant,
        "seed": cfg.train.seed,
        "steps": step,
        "world_size": env.world_size,
        "final_loss": (sum(tail) / len(tail)) if tail else None,
        "final_loss_definition": "mean training loss over the last 10% of steps",
        "train_time_s": round(old.get("train_time_s", 0.0) + wall, 3),
        "train_time_definition": "wall time of the training loops of all attempts",
        "samples_per_s_median": global_batch / median(step_times) if step_times else None,
        "step_time_s_median": median(step_times) if step_times else None,
        "peak_memory_bytes": max((int(r["peak_memory_bytes"]) for r in rows), default=None),
        "peak_memory_kind": "cuda_max_allocated" if env.device.type == "cuda" else "process_rss",
        "telemetry_backend": telemetry.backend,
        **telemetry.cuda_peaks(),
        **counts,
    }
    summary = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in summary.items()
    }
    atomic.write_json(run.summary, summary)


def read_rows(csv_path: Path) -> list[dict[str, str]]:
    """The metrics rows, one per step (a step logged twice: the last row wins)."""
    if not csv_path.exists():
        return []
    with open(csv_path, newline="") as f:
        rows = {r["step"]: r for r in csv.DictReader(f)}
    return sorted(rows.values(), key=lambda r: int(r["step"]))


def print_startup(cfg: Config, env, counts, n_steps: int, step: int, micro_per_epoch: int) -> None:
    global_batch = cfg.train.batch_size * cfg.train.grad_accum * env.world_size
    print(
        f"[text2sign] variant={cfg.variant} profile={cfg.profile} seed={cfg.train.seed} "
        f"world={env.world_size} ({env.backend}, {env.device.type}) zero={cfg.train.zero_stage} "
        f"precision={cfg.train.precision} compile={str(cfg.train.compile).lower()}\n"
        f"[text2sign] DiT {counts['params_dit'] / 1e6:.2f}M params, text encoder "
        f"{counts['params_text_encoder'] / 1e6:.2f}M ({'finetuned' if cfg.text.finetune else 'frozen'}), "
        f"trainable {counts['params_trainable'] / 1e6:.2f}M\n"
        f"[text2sign] global batch {global_batch} clips = {global_batch * cfg.data.num_frames} frames/step, "
        f"{micro_per_epoch // cfg.train.grad_accum} steps/epoch, {n_steps} steps"
        + (f", resuming at step {step}" if step else ""),
        flush=True,
    )


class Progress:
    """tqdm on a terminal; plain periodic lines in batch logs."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
        self.enabled, self.total = enabled, total

    def update(self, step: int, loss: float, sps: float, every: int) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", sps=f"{sps:.1f}")
        elif self.enabled and (step % every == 0 or step == self.total):
            print(
                f"[text2sign] step {step}/{self.total} loss {loss:.4f} {sps:.1f} samples/s",
                flush=True,
            )
