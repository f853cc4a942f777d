"""The images' build time and size, from the builds' own records.

``containers/build-image.sh`` writes ``IMAGE.sif.build.json`` after each build: the def, seconds,
bytes, the pip cache before the build (cold: empty), commit, CPUs, load average, installed versions.
The images are not committed, so a build's record is copied to
``bench/recorded/image_build_<image>_<cold|warm>.json`` to survive; this section renders those
and any newer record next to an image in ``containers/`` (this checkout's own builds).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import Goal, Section

HERE = Path(__file__).parent
RECORDED = HERE / "recorded"
LIVE = HERE.parent / "containers"
CI = HERE.parent / ".ci" / "run"


def records() -> list[tuple[str, dict]]:
    """(source, record) of every recorded build, then this checkout's own."""
    out = [(f"bench/recorded/{p.name}", json.loads(p.read_text()))
           for p in sorted(RECORDED.glob("image_build_*.json"))]  # fmt: skip
    seen = {(r["image"], r["date"]) for _, r in out}
    for p in sorted(LIVE.glob("*.sif.build.json")):
        r = json.loads(p.read_text())
        if (r["image"], r["date"]) not in seen:
            out.append((f"containers/{p.name} (this checkout)", r))
    return out


def _row(source: str, r: dict) -> list[str]:
    labels = r.get("labels", {})
    torch = labels.get("org.text2sign.installed.torch", "?")
    cuda = labels.get("org.text2sign.torch.cuda", "none")
    load = r.get("loadavg")
    return [r["image"], r["def"].removeprefix("containers/"), r["pip_cache"],
            f"{r['seconds'] / 60:.1f} min", f"{r['bytes'] / 1e9:.2f} GB",
            f"torch {torch}" + (f" (CUDA {cuda})" if cuda != "none" else " (CPU)"),
            f"{r['cpus']} CPUs" + (f", load {load[0]:.1f} -> {load[1]:.1f}" if load else ""),
            f"{r['date'][:10]}, {r['commit'][:8]}", source]  # fmt: skip


def run() -> Section:
    found = records()
    cuda = [
        r for _, r in found if r.get("labels", {}).get("org.text2sign.torch.cuda", "none") != "none"
    ]
    ci = CI.read_text() if CI.exists() else ""
    built_in_ci = [img for img, target in (("text2sign-cpu.sif", "make container-cpu"),
                                           ("text2sign.sif", "make container ")) if target in ci]  # fmt: skip
    return Section(
        title="Image builds: time and size",
        method=(
            "`make container` (the CUDA cluster image, containers/text2sign.def: Debian bookworm "
            "by debootstrap from the host's apt mirror, then PyPI's CUDA torch wheel with its "
            "nvidia-* libraries, DeepSpeed, the project) and `make container-cpu` "
            "(containers/text2sign-cpu.def, the same recipe with the CPU torch), timed by "
            "containers/build-image.sh itself (SIF.build.json). Cold: an empty pip cache; warm: "
            "a rebuild after a source change with the cache kept. Load: the machine's 1-minute "
            "load average at the build's start and end (other tenants share it). Built in CI "
            f"(.ci/run): {', '.join(built_in_ci) or 'none'}."
        ),
        columns=[
            "image",
            "def",
            "pip cache",
            "build",
            "size",
            "torch",
            "machine",
            "date, commit",
            "record",
        ],  # fmt: skip
        rows=[_row(s, r) for s, r in found],
        goals=[
            Goal(
                metric="CUDA image built without Docker Hub",
                value="yes" if cuda else "not recorded",
                goal="a recorded build",
                met=True if cuda else None,
            )
        ],  # fmt: skip
        notes=[],
        seconds=0.0,
    )
