"""Each run's curves, read once for every chart of the study: training loss per step and memory
over time (``training_metrics.csv``, ``gpu_memory.csv``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from text2sign.study.records import RunRecord

MEMORY_COLUMNS = ["elapsed_s", "memory_used_bytes", "process_rss_bytes"]


def read_curve(path: Path, columns: list[str]) -> pd.DataFrame | None:
    """Columns of a metrics CSV; a step logged twice (an attempt that died before its first
    checkpoint, in a run dir older than the truncation on restart) counts once: the last wins."""
    try:
        df = pd.read_csv(path, usecols=columns)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    return df.drop_duplicates("step", keep="last") if "step" in df else df


@dataclass
class RunCurves:
    """One run's loss per step (None: none logged) and memory over time (None: none)."""

    loss: pd.Series | None
    memory: pd.DataFrame | None

    @property
    def memory_kind(self) -> tuple[str, str] | None:
        """(column, what it measures) of the memory curve, GPU when NVML saw one."""
        g = self.memory
        if g is None or g.empty:
            return None
        if g["memory_used_bytes"].notna().any():
            return "memory_used_bytes", "GPU (NVML)"
        return "process_rss_bytes", "process RSS, no GPU"


def read_all(records: list[RunRecord]) -> dict[tuple[str, str], RunCurves]:
    """(point, seed) → its curves, every file read once."""
    out = {}
    for r in records:
        c = read_curve(r.path / "training_metrics.csv", ["step", "loss"])
        loss = c.set_index("step")["loss"] if c is not None and not c.empty else None
        out[(r.variant, r.seed)] = RunCurves(
            loss, read_curve(r.path / "gpu_memory.csv", MEMORY_COLUMNS)
        )
    return out
