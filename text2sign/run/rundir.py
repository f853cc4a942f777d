"""The run-dir contract: one run = one variant × one seed = one folder.

Layout (see docs/training.md "Results layout")::

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

STATES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "PREEMPTED", "CANCELLED", "TIMEOUT")
#: States in which a run has ended for good (PREEMPTED and PENDING come back as RUNNING).
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"})
#: Why a run ended, as recorded in status.json's ``cause`` (the job layer retries only "crash").
CAUSES = (
    "",
    "usage",
    "nonfinite",
    "crash",
    "signal",
    "cancel",
    "timeout",
    "requeue",
    "dependency",
)  # dependency: never started, a job it waited for failed (keypoints)
#: Files that the job layer may write into a run dir before the trainer has claimed it.
#: Written by the launcher of a task other than 0 whose trainer died (jobs/ending.py).
TASK_FAILURE = ".task-failure.json"
NEUTRAL_FILES = frozenset({"status.json", ".lock", TASK_FAILURE})
#: status.json keys carried over from one write to the next (one attempt to the next).
_CARRIED = ("created_at", "started_at", "attempts", "requeues", "retries", "excluded", "submission",
            "history", "step", "total_steps", "job_id", "node")  # fmt: skip


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
        self.ended = False  # this process wrote an ending state (not PENDING/RUNNING)

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
        if self.path.exists() and any(
            p.name not in NEUTRAL_FILES and not p.name.startswith((".status.json.", "slurm-"))
            for p in self.path.iterdir()
        ):
            raise RunDirError(
                f"{self.path}: not empty and not a text2sign run dir; use a new --run-dir"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        atomic.write_text(self.config, dump_yaml(cfg))
        atomic.write_text(self.config_hash, h + "\n")
        if not self.status_file.exists():
            self.write_status("PENDING", step=0, total=0)
        return False

    # -- status -----------------------------------------------------------------------------

    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def write_status(
        self,
        state: str,
        *,
        step: int | None = None,
        total: int | None = None,
        reason: str = "",
        cause: str = "",
        start: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        """Atomically write status.json; keeps the attempt history across writes.

        ``step``/``total`` default to the recorded ones (the job layer writes states without
        knowing them). ``start`` (the trainer, once per process) opens a new attempt in
        ``history``; an attempt still open then ended without a word (SIGKILL, OOM, node failure)
        and says so. An ending state (not PENDING: a retry waiting to start) records how the
        latest attempt ended.
        """
        assert state in STATES, state
        assert cause in CAUSES, cause
        old = self.read_status()
        status: dict[str, Any] = {k: old[k] for k in _CARRIED if k in old}
        status.setdefault("created_at", now_iso())
        status.setdefault("attempts", 0)
        status.setdefault("history", [])
        status.update(
            state=state, reason=reason, cause=cause, updated_at=now_iso(), ended_at=None, **extra
        )
        status["step"] = step if step is not None else old.get("step", 0)
        status["total_steps"] = total if total is not None else old.get("total_steps", 0)
        history = status["history"]
        if start:
            if history and "state" not in history[-1]:
                history[-1].update(state="LOST", reason="ended without a word (SIGKILL, OOM "
                                   "killer or node failure?)", step=old.get("step", 0))  # fmt: skip
            status["started_at"] = status.get("started_at") or now_iso()
            status["attempts"] += 1
            history.append({"attempt": status["attempts"], "job_id": status.get("job_id"),
                            "node": status.get("node"), "started_at": now_iso()})  # fmt: skip
        elif state not in ("RUNNING", "PENDING") and history:  # the latest word on the attempt
            history[-1].update(state=state, reason=reason, step=status["step"], ended_at=now_iso())
        if state in TERMINAL or state == "PREEMPTED":
            status["ended_at"] = now_iso()
        atomic.write_json(self.status_file, status)
        self.ended = state not in ("PENDING", "RUNNING")
        return status

    def note_checkpoint(self, step: int) -> None:
        """The trainer saved a checkpoint at ``step``: the attempt keeps its time (the cost counts
        only the work after an attempt's last checkpoint as lost)."""
        status = self.read_status()
        if status.get("history"):
            status["history"][-1].update(checkpoint_step=step, checkpoint_at=now_iso())
            atomic.write_json(self.status_file, status)

    @property
    def completed(self) -> bool:
        return self.read_status().get("state") == "COMPLETED"

    @property
    def evaluated(self) -> bool:
        """The evaluation wrote its metrics (a COMPLETED run may lack them: the job's time limit
        can hit during the evaluation)."""
        return (self.path / "evaluation_metrics.json").exists()

    # -- checkpoints -------------------------------------------------------------------------

    def latest_checkpoint(self) -> str | None:
        """Tag of the newest *complete* checkpoint (the pointer is written only after all ranks)."""
        pointer = self.checkpoints / "latest"
        if not pointer.exists():
            return None
        tag = pointer.read_text().strip()
        return tag if (self.checkpoints / tag).is_dir() else None


CHECKPOINT_META = "t2s.json"


def checkpoint_meta(ckpt_dir: Path, tag: str) -> dict[str, Any]:
    """``t2s.json`` of a checkpoint: step, world size, config hash ({} if absent or unreadable)."""
    try:
        return json.loads((Path(ckpt_dir) / tag / CHECKPOINT_META).read_text())
    except (OSError, ValueError):
        return {}


class Stopwatch:
    """Monotonic wall time since construction."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0
