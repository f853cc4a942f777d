"""``make gpu-check``: every GPU check in one call, results in one JSON file; and its bench section.

``python -m bench.gpu_check --out DIR`` (what ``bench/gpu_check.sh`` runs once it has seen CUDA):

1. the tests marked ``gpu`` (tests/gpu: CUDA bf16 ZeRO-2 training, NVML by UUID, sampling and
   evaluation on the GPU, deterministic resume), with ``T2S_REQUIRE_GPU=1``;
2. ``bench/gpu_mfu.py``: the d14 DiT at 16x64x64, bf16, ZeRO-2: samples/s, tokens/s, MFU against
   the measured bf16 matmul peak, peak memory; eager, then compiled;
3. ``bench/gpu_eval_time.py``: full-profile evaluation time per clip and per DDIM step.

Each part runs in its own process under a time limit, so one failure still leaves the others'
numbers. DIR/gpu_check.json holds everything, with the device's name; copy it to
``bench/recorded/gpu_check.json`` and commit it: ``make bench`` folds that file into
BENCHMARKS.md (``run()`` below), where no GPU is needed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from bench.common import Goal, Section

RECORDED = Path(__file__).parent / "recorded" / "gpu_check.json"
MFU_GOAL = 0.5


def _parts(out: Path) -> list[tuple[str, list[str], int]]:
    py = sys.executable
    return [
        (
            "tests",
            [
                py,
                "-m",
                "pytest",
                "-q",
                "-rA",
                "-m",
                "gpu",
                "tests/gpu",
                "-p",
                "no:cacheprovider",
                f"--junitxml={out / 'gpu_tests.xml'}",
            ],
            330,
        ),  # fmt: skip
        ("mfu_eager", [py, "-m", "bench.gpu_mfu", "--json", str(out / "mfu_eager.json")], 150),
        (
            "mfu_compiled",
            [py, "-m", "bench.gpu_mfu", "--compile", "--json", str(out / "mfu_compiled.json")],
            240,
        ),  # fmt: skip
        (
            "eval_time",
            [py, "-m", "bench.gpu_eval_time", "--json", str(out / "eval_time.json")],
            150,
        ),
    ]


def _tests(xml: Path) -> dict:
    if not xml.exists():
        return {"error": "no junit xml (pytest did not finish)"}
    cases = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                cases[case.get("name")] = {"outcome": outcome,
                                           "message": (node.get("message") or "")[:300]}  # fmt: skip
                break
        else:
            cases[case.get("name")] = {"outcome": outcome, "seconds": float(case.get("time", 0))}
    return cases


def check(out: Path) -> int:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "T2S_REQUIRE_GPU": "1"}
    report: dict = {
        "device": torch.cuda.get_device_name(0),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "parts": {},
    }
    failed = False
    for name, cmd, limit in _parts(out):
        t0 = time.perf_counter()
        with open(out / f"{name}.log", "w") as log:
            try:
                rc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    timeout=limit).returncode  # fmt: skip
            except subprocess.TimeoutExpired:
                rc = f"timeout after {limit} s"
        part = {"rc": rc, "seconds": round(time.perf_counter() - t0, 1)}
        if name == "tests":
            part["cases"] = _tests(out / "gpu_tests.xml")
        else:
            path = out / f"{name}.json"
            part["result"] = json.loads(path.read_text()) if path.exists() else None
        report["parts"][name] = part
        failed |= rc != 0
        print(f"[gpu-check] {name}: rc={rc} in {part['seconds']} s", flush=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print(f"[gpu-check] wrote {out / 'gpu_check.json'}")
    return 1 if failed else 0


def run() -> Section:
    """BENCHMARKS.md section from the recorded GPU check (no GPU needed to render it)."""
    if not RECORDED.exists():
        return Section(
            title="GPU check (make gpu-check): not yet run",
            method=("No recorded result in bench/recorded/gpu_check.json: "
                    "`make gpu-check` has not run on a GPU since it was written. Run it on a CUDA "
                    "machine and commit its gpu_check.json there."),  # fmt: skip
            columns=[], rows=[], notes=[], seconds=0.0,
            goals=[Goal(metric="d14 MFU on one GPU (compiled)", value="not measured",
                        goal=f">= {MFU_GOAL:.0%}", met=None)],
        )  # fmt: skip
    r = json.loads(RECORDED.read_text())
    parts = r["parts"]
    rows = []
    for name in ("mfu_eager", "mfu_compiled"):
        m = (parts.get(name) or {}).get("result")
        if m:
            rows.append([name.removeprefix("mfu_"), f"{m['step_s'] * 1e3:.0f} ms",
                         f"{m['samples_per_s']:.2f}", f"{m['tokens_per_s']:,.0f}", f"{m['mfu']:.1%}",
                         f"{m['max_allocated'] / 2**30:.1f} GiB"])  # fmt: skip
        else:
            rows.append([name.removeprefix("mfu_"), f"not measured (rc {parts.get(name, {}).get('rc')})",
                         "", "", "", ""])  # fmt: skip
    e = (parts.get("eval_time") or {}).get("result")
    cases = (parts.get("tests") or {}).get("cases", {})
    passed = sum(c["outcome"] == "passed" for c in cases.values())
    notes = [f"gpu tests: {passed}/{len(cases)} passed: "
             + ", ".join(f"{k} {v['outcome']}" for k, v in cases.items())]  # fmt: skip
    if e:
        notes.append(
            f"full-profile evaluation ({e['preset']}, {e['shape']}, {e['ddim_steps']} DDIM steps): "
            f"{e['s_per_clip']:.2f} s per clip alone ({e['s_per_ddim_step'] * 1e3:.1f} ms per DDIM "
            f"step), {e['s_per_clip_batched']:.2f} s per clip in batches of {e['batch_size']}; "
            f"{e['full_eval_videos']} videos ≈ {e['full_eval_estimate_s_one_gpu'] / 60:.1f} min "
            f"on one GPU, divided by the ranks of the job")  # fmt: skip
    best = max((p["result"]["mfu"] for n, p in parts.items()
                if n.startswith("mfu") and p.get("result")), default=None)  # fmt: skip
    return Section(
        title=f"GPU check on {r['device']} ({r['date']})",
        method=(
            f"`make gpu-check` (bench/gpu_check.py) on {r['device']}, torch {r['torch']} "
            f"CUDA {r['cuda']}: d14 at 16x64x64, bf16, DeepSpeed ZeRO-2, one rank; MFU against "
            "the measured bf16 matmul peak. Recorded file: bench/recorded/gpu_check.json."
        ),  # fmt: skip
        columns=["mode", "step", "samples/s", "tokens/s", "MFU", "torch peak"],
        rows=rows,
        goals=[
            Goal(
                metric="d14 MFU on one GPU",
                value=f"{best:.1%}" if best else "not measured",
                goal=f">= {MFU_GOAL:.0%}",
                met=(best >= MFU_GOAL) if best else None,
            )
        ],  # fmt: skip
        notes=notes,
        seconds=0.0,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/t2s-gpu-check")))
    sys.exit(check(ap.parse_args().out))


if __name__ == "__main__":
    main()
