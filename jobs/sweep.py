"""Sweeps over config keys: ``--sweep KEY=V1,V2,...`` (repeatable), crossed or ``--zip``-ped.

    --sweep train.lr=1e-4,3e-4 --sweep ema.decay=0.99,0.999          4 points (grid)
    --sweep train.lr=1e-4,3e-4 --sweep ema.decay=0.99,0.999 --zip    2 points (paired)

Each point of each variant is a study variant of its own, named after what it overrides:

    <variant>__<key><value>[__<key><value>...]      e.g. baseline__lr1e-3__decay0.99

* ``<key>`` is the last part of the dotted key (``train.lr`` → ``lr``), or the whole dotted key
  when two swept keys end the same (``train.lr`` and ``text.lr``);
* ``<value>`` is the *resolved* value (after validation), written canonically: ``1e-3``,
  ``0.001`` and ``1.0e-3`` all give ``1e-3``, so values that mean the same give the same name
  (and two of them in one flag are refused);
* characters outside ``[A-Za-z0-9_.-]`` become ``-``; where that loses anything (a path, a
  list) a short hash of the value is appended so that distinct values keep distinct names;
* a name longer than :data:`MAX_NAME` keeps its start and ends in a hash of the whole.

The grammar and the names live here; :func:`jobs.study.plan` resolves and validates the configs.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from text2sign.config import Config
from text2sign.errors import UsageError

SEP = "__"
MAX_NAME = 96
SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# Keys a sweep may not vary: each has its own flag.
RESERVED = {"train.seed": "--seeds", "profile": "--profile", "variant": "--variants"}


@dataclass(frozen=True)
class Axis:
    """One ``--sweep KEY=V1,V2,...`` flag: the key and the values as the user typed them."""

    key: str
    values: tuple[str, ...]


def leaf_keys(model: type[BaseModel] = Config, prefix: str = "") -> list[str]:
    """Every dotted key of the config that holds a value (``train.lr``, ``slurm.extra``, …)."""
    out = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += leaf_keys(ann, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def split_values(text: str) -> list[str]:
    """``a,[1,2],'x,y'`` → ``['a', '[1,2]', "'x,y'"]``: commas inside brackets or quotes stay."""
    out, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    out.append(cur.strip())
    return out


def parse(items: list[str], set_overrides: list[str] = ()) -> list[Axis]:
    """The ``--sweep`` flags → axes; an unknown, reserved, repeated or ``--set`` key, or an empty
    value, is a one-line :class:`UsageError` (unknown keys with the closest valid one)."""
    keys = leaf_keys()
    set_keys = {o.partition("=")[0].strip() for o in set_overrides}
    axes: list[Axis] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--sweep {item!r}: expected KEY=V1,V2,... e.g. train.lr=1e-4,3e-4")
        if key in RESERVED:
            raise UsageError(f"--sweep {key}: not sweepable; use {RESERVED[key]}")
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UsageError(f"--sweep: unknown key '{key}'{hint}")
        if key in set_keys:
            raise UsageError(f"--sweep {key}: also given with --set (or a resource flag); keep one")
        if any(a.key == key for a in axes):
            raise UsageError(f"--sweep {key}: given twice; list all its values in one flag")
        values = split_values(raw)
        if not raw.strip() or any(not v for v in values):
            raise UsageError(f"--sweep {key}: empty value in {raw!r}")
        axes.append(Axis(key, tuple(values)))
    return axes


def expand(axes: list[Axis], zipped: bool = False) -> list[tuple[tuple[str, str], ...]]:
    """The points: tuples of (key, value as typed), crossed (grid) or paired (``--zip``).
    No axes → one point without overrides."""
    if zipped and len({len(a.values) for a in axes}) > 1:
        sizes = ", ".join(f"{a.key} has {len(a.values)}" for a in axes)
        raise UsageError(f"--zip: every --sweep needs as many values ({sizes})")
    columns = [[(a.key, v) for v in a.values] for a in axes]
    return list(zip(*columns, strict=True) if zipped and axes else itertools.product(*columns))


def short_keys(keys: list[str]) -> dict[str, str]:
    """``train.lr`` → ``lr``, unless another swept key ends in ``lr`` too (then the full key)."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: s if last.count(s) == 1 else k for k, s in zip(keys, last, strict=True)}


def canonical(value: Any) -> str:
    """A resolved config value as one canonical string (floats: shortest, small ones as 1e-3)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        if value != 0 and abs(value) < 1e-2 or "e" in text:
            text = format(Decimal(text).normalize(), "e").replace("e+", "e")
        return text
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _digest(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _safe(text: str) -> str:
    clean = SAFE.sub("-", text).strip("-") or "x"
    clean = re.sub(r"\.{2,}", ".", clean)  # NAME_RE refuses '..'
    return clean if clean == text else f"{clean}-{_digest(text, 6)}"


def point_name(variant: str, resolved: list[tuple[str, Any]], short: dict[str, str]) -> str:
    """The study variant name of one point: see the module docstring."""
    if not resolved:
        return variant
    parts = [variant] + [_safe(short[k] + canonical(v)) for k, v in resolved]
    name = SEP.join(parts)
    if len(name) > MAX_NAME:
        name = f"{name[: MAX_NAME - 9]}-{_digest(name, 8)}"
    return name


def get(cfg: Config, key: str) -> Any:
    """The resolved value of a dotted key (``train.lr`` → ``cfg.train.lr``)."""
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def reference(points: list[str], requested: str | None) -> tuple[str, str]:
    """The point Δ and tests compare against, and why: ``--reference NAME`` (one of the
    study's points), else ``baseline`` when the study has that point, else the first point."""
    if requested is not None:
        if requested not in points:
            shown = ", ".join(points[:8]) + (", ..." if len(points) > 8 else "")
            raise UsageError(f"--reference {requested!r}: not a point of this study ({shown})")
        return requested, "--reference"
    if "baseline" in points:
        return "baseline", "baseline"
    return points[0], "first point"
