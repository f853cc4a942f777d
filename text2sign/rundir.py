"""The run-dir contract: one run = one variant × one seed = one folder.

Layout (see README "Results layout")::

    config.yaml  config_hash  status.json  metadata.json  summary.json
    training_metrics.csv  training_metrics.jsonl  gpu_memory.csv  tb/  samples/
    checkpoints/latest  checkpoints/step00000100/  text_encoder/ (tiny encoder, saved once)

All JSON and pointer files are written atomically. A run dir holding a different config hash is
refused, never overwritten.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from text2sign import atomic
from text2sign.config import Config, dump_yaml
from text2sign.errors import RunDirError

STATES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "PREEMPTED")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunDir:
    """Paths and state files of one run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.config_hash = self.path / "config_hash"
        self.status_file = self.path / "status.json"
        self.metadata = self.path / "metadata.json"
        self.summary = self.path / "summary.json"
        self.metrics_csv = self.path / "training_metrics.csv"
        self.metrics_jsonl = self.path / "training_metrics.jsonl"
        self.gpu_memory_csv = self.path / "gpu_memory.csv"
        self.tb = self.path / "tb"
        self.samples = self.path / "samples"
        self.checkpoints = self.path / "checkpoints"
        self.text_encoder = self.path / "text_encoder"

    # -- config -----------------------------------------------------------------------------

    def prepare(self, cfg: Config) -> bool:
        """Create the run dir for ``cfg`` or check that it holds the same config.

        Returns True when the dir already held this run (a resume or a rerun).
        """
        h = cfg.hash()
        if self.config_hash.exists():
            old = self.config_hash.read_text().strip()
            if old != h:
                raise RunDirError(
                    f"{self.path}: holds a run with config hash {old}, not {h}; "
                    "use a new --run-dir (results are never overwritten)"
                )
            return True
        if self.path.exists() and any(self.path.iterdir()):
            raise RunDirError(
                f"{self.path}: not empty and not a text2sign run dir; use a new --run-dir"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        atomic.write_text(self.config, dump_yaml(cfg))
        atomic.write_text(self.config_hash, h + "\n")
        self.write_status("PENDING", step=0, total=0)
        return False

    # -- status -----------------------------------------------------------------------------

    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def write_status(
        self, state: str, *, step: int, total: int, reason: str = "", **extra: Any
    ) -> None:
        assert state in STATES, state
        old = self.read_status()
        status = {
            "state": state,
            "step": step,
            "total_steps": total,
            "reason": reason,
            "created_at": old.get("created_at", now_iso()),
            "started_at": old.get("started_at"),
            "updated_at": now_iso(),
            "ended_at": None,
            "attempts": old.get("attempts", 0),
            **extra,
        }
        if state == "RUNNING" and old.get("state") != "RUNNING":
            status["started_at"] = status["started_at"] or now_iso()
            status["attempts"] = status["attempts"] + 1
        if state in ("COMPLETED", "FAILED", "PREEMPTED"):
            status["ended_at"] = now_iso()
        atomic.write_json(self.status_file, status)

    @property
    def completed(self) -> bool:
        return self.read_status().get("state") == "COMPLETED"

    # -- checkpoints -------------------------------------------------------------------------

    def latest_checkpoint(self) -> str | None:
        """Tag of the newest *complete* checkpoint (the pointer is written only after all ranks)."""
        pointer = self.checkpoints / "latest"
        if not pointer.exists():
            return None
        tag = pointer.read_text().strip()
        return tag if (self.checkpoints / tag).is_dir() else None


class Stopwatch:
    """Monotonic wall time since construction."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0
