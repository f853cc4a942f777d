"""A study's records: what its run dirs and ``study.json`` say, read once, in one place.

The collector's data flows one way: run dirs → **records** (this module) → statistics
(:mod:`text2sign.study.comparison`) → tables and report (:mod:`text2sign.study.tables`,
:mod:`text2sign.study.report`). Nothing here imports those modules.

A study's **points** are its run dir names (``baseline``, ``no_ema``, ``baseline__lr1e-3``): a
variant, possibly with ``--set`` overrides. ``study.json`` (read defensively: old studies lack the
newer fields) gives each point's ``base_variant`` and ``overrides``, the order of the points and the
**reference** the others are compared with.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("text2sign")

BASELINE = "baseline"


@dataclass
class RunRecord:
    """What the collector knows about one run dir, read once."""

    variant: str  # the point: the run dir's name
    seed: str  # "seed<k>"
    path: Path
    state: str
    problem: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)  # metric → value (None: N/A)
    eval_reasons: dict[str, str] = field(default_factory=dict)  # metric → why it is N/A
    eval_problem: str = ""  # why evaluation_metrics.json gave nothing ("" when it was read)
    inference_device: str = ""  # the device that sampled the evaluation ("" before issue 9)
    num_videos: int | None = None  # clips evaluated (evaluation_metrics.json), None when unknown
    weights: str = ""  # "ema" | "raw" | "" (unknown): evaluation_metrics.json, else samples
    keypoints: str = ""  # "exact" (synthetic) | "estimated" (MediaPipe) | "none" | "" (unknown)
    samples: dict[str, Any] = field(default_factory=dict)  # samples/index.json
    metadata: dict[str, Any] = field(default_factory=dict)  # metadata.json ({} when absent)
    job_id: str = ""  # the submitit/SLURM job id of the run (study.json), "" when unknown
    audit: dict[str, Any] = field(default_factory=dict)  # evaluation_metrics.json's audit detail
    videos: dict[str, Any] = field(default_factory=dict)  # eval_videos/index.json ({}: none)

    @property
    def seed_number(self) -> int | None:
        digits = self.seed.removeprefix("seed")
        return int(digits) if digits.isdigit() else None


@dataclass
class Study:
    """A study's records plus what study.json says about its points (see the module doc)."""

    path: Path
    plan: dict[str, Any]  # study.json ({} when absent or corrupt)
    records: list[RunRecord]
    points: list[str]  # in the study's order: study.json's, else baseline first then by name
    reference: str  # the point every other is compared with
    reference_source: str  # "baseline" | "--reference" | "first point" | "study.json"
    base_variant: dict[str, str] = field(default_factory=dict)  # point → variant it builds on
    overrides: dict[str, str] = field(default_factory=dict)  # point → "k=v, k2=v2" ("" if none)

    @property
    def name(self) -> str:
        return self.path.resolve().name


def read_json(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The JSON object in ``path``, or (None, why not: ``no X`` / ``corrupt X (…)``)."""
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        return None, f"no {path.name}"
    except (OSError, ValueError) as e:
        return None, f"corrupt {path.name} ({type(e).__name__})"
    return (obj, "") if isinstance(obj, dict) else (None, f"corrupt {path.name} (not an object)")


def _read_evaluation(rec: RunRecord) -> None:
    """Fill ``rec.evaluation``/``eval_reasons`` from evaluation_metrics.json; warn if corrupt."""
    ev, rec.eval_problem = read_json(rec.path / "evaluation_metrics.json")
    metrics = (ev or {}).get("metrics")
    if ev is not None and not isinstance(metrics, dict):
        ev, rec.eval_problem = None, "corrupt evaluation_metrics.json (no metrics object)"
    if rec.eval_problem.startswith("corrupt"):
        log.warning("%s/%s: %s: its evaluation metrics are N/A", rec.variant, rec.seed,
                    rec.eval_problem)  # fmt: skip
    if ev is None:
        return
    for key, entry in metrics.items():
        entry = entry if isinstance(entry, dict) else {"value": entry}
        value = entry.get("value")
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        rec.evaluation[key] = value if ok else None
        if not ok:
            rec.eval_reasons[key] = str(entry.get("reason") or "no value")
    rec.weights = str(ev.get("weights") or "")
    rec.audit = ev.get("audit") if isinstance(ev.get("audit"), dict) else {}
    n = ev.get("num_videos")
    rec.num_videos = n if isinstance(n, int) and not isinstance(n, bool) else None
    # Before keypoints_source existed only the synthetic set had DTW-MJE and the audit: exact.
    older = any(rec.evaluation.get(k) is not None for k in ("dtw_mje", "audit_gap"))
    rec.keypoints = str(ev.get("keypoints_source") or ("exact" if older else ""))
    if ev.get("keypoints_warning"):  # estimated on frames too small for the estimator
        rec.keypoints += " (frames too small: noise)"
    ranks = ev.get("inference_ranks") or []
    device = str(ev.get("inference_device") or "")
    rec.inference_device = f"{device} x{len(ranks)} ranks" if len(ranks) > 1 else device


NEEDS_EVALUATION = ("needs evaluation (COMPLETED, but its job ended before the evaluation: "
                    "--resume-study evaluates it)")  # fmt: skip


def _short(status: dict[str, Any] | None) -> bool:
    """The run stopped before its final budget (a halving rung's end)."""
    step, total = (status or {}).get("step"), (status or {}).get("total_steps")
    return isinstance(step, int) and isinstance(total, int) and step < total


def _evaluates(run: Path) -> bool:
    """The run's config asks for an evaluation (``eval.enabled``; yes when unreadable)."""
    try:
        import yaml

        cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
        return bool((cfg.get("eval") or {}).get("enabled", True))
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return True


def plan_runs(plan: dict[str, Any] | None) -> list[dict[str, Any]]:
    """study.json's run entries (every submission's: ``runs_all``, else ``runs``), well-formed."""
    runs = (plan or {}).get("runs_all") or (plan or {}).get("runs") or []
    return [r for r in runs if isinstance(r, dict) and "variant" in r and "seed" in r]


def _order(vs: tuple[str, str]) -> tuple[str, int, str]:  # seed2 before seed10
    digits = vs[1].removeprefix("seed")
    return vs[0], int(digits) if digits.isdigit() else 1 << 30, vs[1]


def dropped_points(study: Path) -> dict[str, str]:
    """Point → why successive halving dropped it (``STUDY/halving/rung<r>.json``, the deciders'
    decisions), for the points a decider dropped; {} for a study without halving."""
    out: dict[str, str] = {}
    for f in sorted((study / "halving").glob("rung*.json")):
        d, _ = read_json(f)
        if not isinstance(d, dict) or not isinstance(d.get("decisions"), list):
            continue
        for x in d["decisions"]:
            if isinstance(x, dict) and x.get("keep") is False and x.get("point"):
                out[str(x["point"])] = (
                    f"dropped by successive halving after rung {d.get('rung')} "
                    f"({d.get('steps')} of {d.get('final_steps')} steps), "
                    f"{str(x.get('why', '')).replace('; ', ', ')} (evidence: halving/{f.name}, "
                    f"the rung's evaluation in rungs/step{d.get('steps')}/)"
                )
    return out


def discover(study: Path) -> list[RunRecord]:
    """Every run dir below ``study`` plus the runs ``study.json`` expected but that never wrote."""
    plan, _ = read_json(study / "study.json")
    job_ids = {(str(r["variant"]), f"seed{r['seed']}"): str(r.get("job_id") or "")
               for r in plan_runs(plan)}  # fmt: skip
    found = {(p.parent.name, p.name) for p in study.glob("*/seed*") if p.is_dir()}
    dropped = dropped_points(study)
    records = []
    for variant, seed in sorted(found | set(job_ids), key=_order):
        path = study / variant / seed
        job = job_ids.get((variant, seed), "")
        if not path.is_dir():
            rec = RunRecord(variant, seed, path, "MISSING", "run dir was never created", job_id=job)
            records.append(rec)
            continue
        status, problem = read_json(path / "status.json")
        state = (status or {}).get("state", "CORRUPT" if "corrupt" in problem else "MISSING")
        summary, sproblem = read_json(path / "summary.json")
        rec = RunRecord(variant, seed, path, state, problem or (status or {}).get("reason", ""))
        rec.summary, rec.job_id = summary or {}, job
        rec.metadata = read_json(path / "metadata.json")[0] or {}
        if state == "COMPLETED" and summary is None:
            rec.state, rec.problem = "PARTIAL", sproblem
        elif state == "COMPLETED" and variant in dropped and _short(status):
            # Its budget was a rung's: its numbers are not the full budget's, never compared.
            rec.state, rec.problem = "DROPPED", dropped[variant]
        if rec.state == "COMPLETED":
            _read_evaluation(rec)
            if rec.eval_problem == "no evaluation_metrics.json" and _evaluates(path):
                rec.eval_problem = NEEDS_EVALUATION
            rec.samples = read_json(path / "samples" / "index.json")[0] or {}
            rec.videos = read_json(path / "eval_videos" / "index.json")[0] or {}
            rec.weights = rec.weights or str(rec.samples.get("weights") or "")
        records.append(rec)
    return records


def fmt_overrides(overrides: Any) -> str:
    """``{"train.lr": "0.001", "ema.decay": 0.99}`` → ``train.lr=0.001, ema.decay=0.99``."""
    if isinstance(overrides, dict):
        return ", ".join(f"{k}={v}" for k, v in overrides.items())
    if isinstance(overrides, list | tuple):
        return ", ".join(str(x) for x in overrides)
    return str(overrides or "")


def choose_reference(points: list[str], plan: dict[str, Any]) -> tuple[str, str]:
    """(reference point, where it came from): study.json's ``reference`` when it names a point of
    the study, else ``baseline`` when the study has it, else the first point."""
    wanted = plan.get("reference")
    if isinstance(wanted, str) and wanted in points:
        source = str(plan.get("reference_source") or "study.json")
        return wanted, source
    if wanted:
        log.warning("study.json names reference %r, which has no runs: falling back", wanted)
    if BASELINE in points:
        return BASELINE, "baseline"
    return (points[0] if points else BASELINE), "first point"


def load_study(study: Path) -> Study:
    """Read ``study``: its records (:func:`discover`), its points, their overrides, the reference."""
    study = Path(study)
    plan = read_json(study / "study.json")[0] or {}
    records = discover(study)
    listed = list(dict.fromkeys(str(r.get("point") or r["variant"]) for r in plan_runs(plan)))
    seen = dict.fromkeys(r.variant for r in records)
    rest = sorted((p for p in seen if p not in listed), key=lambda v: (v != BASELINE, v))
    points = [p for p in listed if p in seen] + rest
    reference, source = choose_reference(points, plan)
    base, overrides = {}, {}
    for r in plan_runs(plan):
        point = str(r.get("point") or r["variant"])
        base.setdefault(point, str(r.get("base_variant") or point))
        overrides.setdefault(point, fmt_overrides(r.get("overrides")))
    for p in points:
        base.setdefault(p, p)
        overrides.setdefault(p, "")
    points = [reference] + [p for p in points if p != reference]
    return Study(study, plan, records, points, reference, source, base, overrides)
