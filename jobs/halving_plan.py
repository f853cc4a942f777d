"""Submit time of a halving study (issue 24): the rungs, validated before anything is submitted.

``halving.enabled`` (``--halving`` on both doors) turns a study into rungs: rung 0 is one array
of every point × seed with ``halving.stop_at`` at rung 0's budget; a decider job after each rung
(:mod:`jobs.decider`) keeps the points not shown worse and resumes them to the next budget. What
is checked here, one line and exit 2 on any: at least 2 points, a final budget
(``train.max_steps``), at least 2 rungs whose budgets grow, a metric with a known direction that
the runs measure, and the same halving settings for every point.
"""

from __future__ import annotations

from typing import Any

from text2sign.config import Config
from text2sign.errors import UsageError
from text2sign.study.halving import rung_steps
from text2sign.study.metric_specs import EVAL_METRICS
from text2sign.study.rung_results import direction

PLAN_FILE = "plan.json"  # under STUDY/halving/: what the deciders need to submit the next rungs
HALVING_DIR = "halving"


def plan_halving(cfgs: dict[str, Config], seeds: int) -> dict[str, Any] | None:
    """The study's rungs from each point's config (point → its seed-0 config), or None when
    halving is off; a UsageError naming the key and value when it cannot run."""
    on = {p: c for p, c in cfgs.items() if c.halving.enabled}
    if not on:
        return None
    if len(on) != len(cfgs):
        off = next(p for p in cfgs if p not in on)
        raise UsageError(f"halving.enabled: point {off!r} has it off; a study halves all or none")
    first = next(iter(on.values()))
    for p, c in on.items():
        mine = c.halving.model_dump(exclude={"stop_at"}), c.train.max_steps
        if mine != (first.halving.model_dump(exclude={"stop_at"}), first.train.max_steps):
            raise UsageError(f"halving: point {p!r} has other halving.* or train.max_steps "
                             "values than the first point; the rungs are one plan for all")  # fmt: skip
    h = first.halving
    if len(cfgs) < 2:
        raise UsageError("halving.enabled=true: the study has 1 point; halving needs at least 2 "
                         "(--sweep KEY=V1,V2 or --variants a,b)")  # fmt: skip
    if h.stop_at is not None:
        raise UsageError(f"halving.stop_at={h.stop_at}: set by the study per rung, not by hand")
    final = first.train.max_steps
    if final is None:
        raise UsageError("halving.enabled=true needs the final budget as train.max_steps "
                         "(--set train.max_steps=N)")  # fmt: skip
    if h.rungs < 2:
        raise UsageError(f"halving.rungs={h.rungs}: nothing to decide; use 2 or more")
    try:
        better = direction(h.metric)
        budgets = rung_steps(final, h.eta, h.rungs, h.first_steps)
    except ValueError as e:
        key = "halving.metric" if "metric" in str(e) else "halving.first_steps"
        value = h.metric if key == "halving.metric" else h.first_steps
        raise UsageError(f"{key}={value}: {e}") from None
    if h.metric in EVAL_METRICS and not first.eval.enabled:
        raise UsageError(f"halving.metric={h.metric}: an evaluation metric, but eval.enabled is "
                         "false; the rungs could not be decided")  # fmt: skip
    return {"eta": h.eta, "rungs": budgets, "alpha": h.alpha, "margin": h.margin, "metric": h.metric,
            "better": better, "eval_clips": h.eval_clips, "max_keep": h.max_keep,
            "final_steps": final, "seeds": seeds, "points": list(cfgs)}  # fmt: skip


def stop_override(budgets: list[int], rung: int) -> tuple[str, ...]:
    """The override that makes a run stop at ``rung``'s budget (none for the final rung)."""
    return (f"halving.stop_at={budgets[rung]}",) if rung < len(budgets) - 1 else ()


def with_rung(overrides: tuple[str, ...], budgets: list[int], rung: int) -> tuple[str, ...]:
    """A run's overrides for ``rung``: any earlier rung's stop replaced by this one's."""
    kept = tuple(o for o in overrides if not o.startswith("halving.stop_at="))
    return (*kept, *stop_override(budgets, rung))
