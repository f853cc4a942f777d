"""A run in rungs (successive halving, issue 24): where a rung stops it, and its evaluation.

A rung only moves where the step loop stops (``halving.stop_at``, outside the config hash): the
run ends COMPLETED for that rung with ``step < total_steps`` and the reason "rung budget
reached", keeps its checkpoint, and evaluates into ``rungs/step<N>/``; the same command with a
larger budget resumes it. The LR schedule, data order and noise depend on the step and the final
budget only, so a survivor's final weights equal an uninterrupted run's
(tests/integration/test_rung_resume.py).
"""

from __future__ import annotations

from pathlib import Path

from text2sign.config import Config
from text2sign.run.rundir import RunDir

RUNGS_DIR = "rungs"


def rung_folder(run: RunDir, step: int) -> Path:
    """Where the rung evaluation at ``step`` lives."""
    return run.path / RUNGS_DIR / f"step{step}"


def stopped_at(run: RunDir) -> int | None:
    """The step of a COMPLETED run that stopped at a rung's budget, else None."""
    status = run.read_status()
    step, total = status.get("step") or 0, status.get("total_steps") or 0
    return step if status.get("state") == "COMPLETED" and step < total else None


def more_steps(run: RunDir, cfg: Config) -> bool:
    """A run stopped at a rung's budget has steps left when this call's budget is larger: it
    resumes from its checkpoint."""
    step = stopped_at(run)
    stop_at = cfg.halving.stop_at
    return step is not None and (stop_at is None or step < stop_at)


def evaluate_rung(run: RunDir, cfg: Config, env, step: int, *, missing_only: bool = False) -> None:
    """A rung's evaluation (``halving.eval_clips`` clips, the same for every run) into
    ``rungs/step<N>/``: the run's own evaluation files are those of its final weights only.
    Never fails the run: the decider reads a missing evaluation as missing evidence."""
    from text2sign.evaluation.evaluate import EVAL_CSV, EVAL_JSON, evaluate

    folder = rung_folder(run, step)
    if missing_only and (folder / EVAL_JSON).exists():
        return
    clips = cfg.halving.eval_clips or cfg.eval.num_videos
    try:
        result = evaluate(run.path, num_videos=clips, device=env.device)
        if env.is_main and result is not None:
            folder.mkdir(parents=True, exist_ok=True)
            for name in (EVAL_JSON, EVAL_CSV):
                (run.path / name).replace(folder / name)
            print(f"[text2sign] rung evaluation at step {step} ({clips} clips): {folder}",
                  flush=True)  # fmt: skip
    except Exception as e:
        if env.is_main:
            print(f"[text2sign] rung evaluation failed: {type(e).__name__}: {e}", flush=True)
