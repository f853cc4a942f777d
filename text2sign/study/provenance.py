"""Provenance checks: did the runs of one comparison run on the same hardware, image and code?

Each run's ``metadata.json`` (:mod:`text2sign.run.metadata`) records its GPUs, world size, container
image digest and git commit. A point compared with the reference whose runs (its own and the
reference's) differ in any of these gets a warning in the report naming every value and its runs:
a difference in the metrics may then come from the machine or the code, not from the ablation.
Runs without ``metadata.json`` are left out of the check (and counted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from text2sign.study.records import RunRecord, Study


def _gpu(meta: dict[str, Any]) -> str | None:
    names = meta.get("gpus_torch")
    if names is None:
        names = [g.get("name") for g in (meta.get("telemetry") or {}).get("gpus", [])]
    if not names:
        return "no GPU" if "gpus_torch" in meta else None
    return ", ".join(sorted({str(n) for n in names if n}))


def _world(meta: dict[str, Any]) -> str | None:
    return str(meta["world_size"]) if "world_size" in meta else None


def _image(meta: dict[str, Any]) -> str | None:
    c = meta.get("container")
    if not isinstance(c, dict):
        return None
    if c.get("runtime") == "none":
        return "no container"
    return str(c.get("sha256") or c.get("image") or "unknown image")


def _commit(meta: dict[str, Any]) -> str | None:
    g = meta.get("git")
    if not isinstance(g, dict) or not g.get("commit"):
        return None
    if not g.get("dirty"):
        return str(g["commit"])
    diff = g.get("diff_sha256")  # a frozen code snapshot records its uncommitted diff's hash
    return f"{g['commit']} (dirty{', diff ' + str(diff)[:12] if diff else ''})"


CHECKS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "GPU types": _gpu, "world sizes": _world, "container image digests": _image,
    "git commits": _commit,
}  # fmt: skip


def differences(runs: list[RunRecord]) -> dict[str, dict[str, list[str]]]:
    """What → value → the runs (``point/seedK``) that recorded it, where more than one value."""
    out = {}
    for what, read in CHECKS.items():
        seen: dict[str, list[str]] = {}
        for r in runs:
            try:
                value = read(r.metadata) if r.metadata else None
            except (AttributeError, TypeError, KeyError):  # a hand-edited metadata.json
                value = None
            if value is not None:
                seen.setdefault(value, []).append(f"{r.variant}/{r.seed}")
        if len(seen) > 1:
            out[what] = seen
    return out


def provenance_warnings(study: Study) -> list[str]:
    """One warning per comparison (point vs reference) and differing property."""
    ref_runs = [r for r in study.records if r.variant == study.reference]
    warnings = []
    for point in study.points:
        if point == study.reference:
            continue
        runs = ref_runs + [r for r in study.records if r.variant == point]
        for what, values in differences(runs).items():
            listed = "; ".join(f"`{v}` ({', '.join(rs)})" for v, rs in values.items())
            warnings.append(f"`{point}` vs `{study.reference}`: the runs ran on different "
                            f"{what}: {listed}.")  # fmt: skip
    return warnings


def provenance_section(study: Study) -> list[str]:
    """The report's "Provenance" section (Markdown lines)."""
    out = ["## Provenance\n"]
    missing = sum(1 for r in study.records if r.path.is_dir() and not r.metadata)
    note = f" ({missing} runs without metadata.json are not checked)" if missing else ""
    warnings = provenance_warnings(study)
    if not warnings:
        out.append("The runs of each comparison recorded the same GPU type, world size, container "
                   f"image digest and git commit (metadata.json){note}.\n")  # fmt: skip
        return out
    out.append(f"> **Warning: the runs compared below did not run under the same conditions**{note}"
               ". A difference in the metrics may come from these, not from the ablation.\n>")  # fmt: skip
    out += [f"> - {w}" for w in warnings]
    return [*out, ""]
