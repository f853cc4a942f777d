"""Metric writers behind one interface: ``log(step, metrics)``.

CSV and JSON-lines get a row per optimizer step (the collector reads the CSV); TensorBoard gets
scalars every ``log_every`` steps, plus images and text. On resume every writer drops what was
logged after the step it resumes from (0 when a run restarts without a checkpoint), so each step
appears exactly once whatever killed the previous attempt.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Protocol

import numpy as np

METRIC_COLUMNS = (
    "step",
    "epoch",
    "loss",
    "lr",
    "grad_norm",
    "samples_per_s",
    "step_time_s",
    "peak_memory_bytes",
    "peak_reserved_bytes",
    "memory_kind",
    "wall_time_s",
)


class Writer(Protocol):
    def log(self, step: int, metrics: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def _keep_rows_upto(path: Path, step: int, parse_step) -> None:
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if (s := parse_step(ln)) is None or s <= step]
    if kept and not kept[-1].endswith("\n"):
        kept.pop()  # a row cut off by a killed writer
    if len(kept) != len(lines):
        path.write_text("".join(kept))


def truncate_csv(path: Path, step: int) -> None:
    """Drop the rows of a CSV with a ``step`` column after ``step`` (header kept)."""
    try:
        with open(path, encoding="utf-8") as f:
            col = f.readline().rstrip("\r\n").split(",").index("step")
    except (OSError, ValueError):
        return

    def parse(line: str) -> int | None:
        cells = line.rstrip("\r\n").split(",")
        return int(cells[col]) if len(cells) > col and cells[col].isdigit() else None

    _keep_rows_upto(path, step, parse)


class CSVWriter:
    """Append-only CSV with a fixed header (``METRIC_COLUMNS``)."""

    def __init__(self, path: Path, resume_step: int = 0) -> None:
        self.path = path
        truncate_csv(path, resume_step)
        new = not path.exists() or path.stat().st_size == 0
        self._f = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._w = csv.DictWriter(self._f, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        if new:
            self._w.writeheader()

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self._w.writerow({"step": step, **metrics})
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _jsonl_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


class JSONLWriter:
    def __init__(self, path: Path, resume_step: int = 0) -> None:
        _keep_rows_upto(path, resume_step, _jsonl_step)
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in metrics.items()
        }
        self._f.write(json.dumps({"step": step, **clean}) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def video_summary(tag: str, frames: np.ndarray, fps: int = 8):
    """A TensorBoard summary holding uint8 (T, H, W, 3) frames as an animated GIF: what
    ``SummaryWriter.add_video`` writes, without its moviepy dependency."""
    import imageio.v3 as iio
    from tensorboard.compat.proto.summary_pb2 import Summary

    gif = iio.imwrite("<bytes>", frames, extension=".gif", duration=1000 // fps, loop=0)
    t, h, w, c = frames.shape
    image = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=gif)
    return Summary(value=[Summary.Value(tag=tag, image=image)])


class TensorBoardWriter:
    """Scalars every ``every`` steps; ``purge_step`` discards events after the resumed step."""

    def __init__(self, logdir: Path, every: int, resume_step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(log_dir=str(logdir), purge_step=resume_step + 1)
        self.every = every

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if step % self.every:
            return
        for key, value in metrics.items():
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                self.tb.add_scalar(f"train/{key}", value, step)

    def add_video(self, tag: str, frames: np.ndarray, step: int, fps: int = 8) -> None:
        """``frames``: uint8 (T, H, W, 3), shown as a looping video in the Images tab."""
        self.tb._get_file_writer().add_summary(video_summary(tag, frames, fps), step)

    def add_text(self, tag: str, text: str, step: int) -> None:
        self.tb.add_text(tag, text, step)

    def close(self) -> None:
        self.tb.flush()
        self.tb.close()


class MetricsLogger:
    """Fan-out of ``log(step, metrics)`` to every backend; a no-op on ranks other than 0."""

    def __init__(self, writers: list[Writer]) -> None:
        self.writers = writers

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        for w in self.writers:
            w.log(step, metrics)

    @property
    def tensorboard(self) -> TensorBoardWriter | None:
        return next((w for w in self.writers if isinstance(w, TensorBoardWriter)), None)

    def close(self) -> None:
        for w in self.writers:
            w.close()
