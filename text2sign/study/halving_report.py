"""The report's "Successive halving" section: every dropped point with its evidence, and the
compute used against the full grid (a halving study: ``STUDY/halving/``, written by the deciders).

For every dropped point: the rung, its budget, the metric, the effect (point − best) with its
95 % interval, n (matched seeds, seed × recording clusters, clips), p raw, p after Holm's
correction (and the family), and the run-steps it did not spend. The cost table: run-steps
trained (each run's last step) against the full grid's (points × seeds × final steps), and the
core-/GPU-hours sacct measured with the full grid's projected from them (hours scale with steps
at equal resources; an estimate, said so).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from text2sign.study.cost import hours, runs_cost, unit

HALVING_DIR = "halving"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _num(x: float | None, fmt: str = ".3g") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def decisions(study: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the halving plan, every rung's decision file in rung order); (None, []) otherwise."""
    plan = _read(Path(study) / HALVING_DIR / "plan.json")
    if plan is None:
        return None, []
    rungs = []
    for r in range(len(plan["halving"]["rungs"]) - 1):
        d = _read(Path(study) / HALVING_DIR / f"rung{r}.json")
        if d is not None:
            rungs.append(d)
    return plan, rungs


def steps_trained(study: Path, plan: dict[str, Any]) -> tuple[int, int]:
    """(run-steps trained, run-steps of the full grid)."""
    h = plan["halving"]
    used = 0
    for r in plan["runs"]:
        status = _read(Path(r["spec"]["run_dir"]) / "status.json") or {}
        used += int(status.get("step") or 0)
    return used, len(h["points"]) * h["seeds"] * h["final_steps"]


def halving_section(
    study: Path, jobs: dict[str, dict[str, Any]], study_plan: dict[str, Any]
) -> list[str]:
    """Markdown lines of the section, or [] for a study without halving."""
    plan, rungs = decisions(study)
    if plan is None:
        return []
    h = plan["halving"]
    lines = [
        "## Successive halving\n",
        f"Rungs at {', '.join(map(str, h['rungs']))} steps (eta {h['eta']:g}); after each rung a "
        f"decider kept every point not shown worse than the best on `{h['metric']}` "
        f"({h['better']} is better): one-sided exact sign-flip test of point − best over the "
        f"matched seeds, clips clustered by seed × recording, Holm-corrected over the points "
        f"tested, at alpha {h['alpha']:g}"
        + (f", by more than {h['margin']:.1%} of the best's mean" if h.get("margin") else "")
        + ", and worse in every matched seed; at least "
        f"ceil(n/{h['eta']:g}) points kept"
        + (f", at most {h['max_keep']}" if h.get("max_keep") else "")
        + ". A failed run is missing evidence, never worse. Decisions: `halving/rung<r>.json`.\n",
    ]
    dropped = []
    for d in rungs:
        if "error" in d:
            lines.append(f"**The decider of rung {d['rung']} failed**: {d['error']}. "
                         f"{d.get('resumable', '')}\n")  # fmt: skip
            continue
        lines.append(f"Rung {d['rung']} ({d['steps']} steps): kept {', '.join(d['survivors'])}; "
                     f"dropped {', '.join(d['dropped']) or 'none'} ({d['correction']}).\n")  # fmt: skip
        dropped += [(d, x) for x in d["decisions"] if not x["keep"]]
    done = len(rungs) == len(h["rungs"]) - 1 and all("error" not in d for d in rungs)
    if not done:
        lines.append(f"{len(rungs)} of {len(h['rungs']) - 1} decisions taken so far.\n")
    if dropped:
        lines.append("| dropped point | rung (steps) | metric | effect (point − best) [95 % CI] | "
                     "n seeds / clusters / clips | p | p Holm | run-steps not spent | why |\n"
                     "|---|---|---|---|---|---|---|---|---|")  # fmt: skip
        for d, x in dropped:
            ci = x.get("ci95")
            ci_text = f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else ""
            lines.append(
                f"| {x['point']} | {d['rung']} ({d['steps']}) | {x['metric']} | "
                f"{_num(x['effect'])}{ci_text} | {x['n_seeds']} / {x['n_clusters']} / "
                f"{x['n_clips']} | {_num(x['p'])} | {_num(x['p_holm'])} | "
                f"{x['steps_not_spent']:,} | {x['why']} |"
            )
        lines.append("")
    used, full = steps_trained(study, plan)
    cost = runs_cost(jobs, study_plan, study) if jobs else None
    measured, _ = hours(cost) if cost else (0.0, 0.0)
    lines += [
        "| compute | used | full grid | saved |\n|---|---|---|---|",
        f"| run-steps | {used:,} | {full:,} | {1 - used / full:.0%} |" if full else "",
    ]
    if measured:
        projected = measured * full / used if used else math.nan
        lines.append(f"| {unit(cost)} (sacct; full grid projected from the steps) | "
                     f"{measured:.3g} | {projected:.3g} | {1 - measured / projected:.0%} |")  # fmt: skip
    lines.append("")
    return lines
