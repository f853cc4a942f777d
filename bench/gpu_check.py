"""``make gpu-check``: every GPU check in one call, results in one JSON file; and its bench section.

``python -m bench.gpu_check --out DIR`` (what ``bench/gpu_check.sh`` runs once it has seen CUDA),
each part in its own process under a time limit carved from one budget (``BUDGET_S``, under the
8 minutes the call may take on one H100/H200), so one failure still leaves the others' numbers:

1. ``tests``: the tests marked ``gpu`` (tests/gpu: CUDA bf16 ZeRO-2 training, NVML by UUID,
   sampling and evaluation on the GPU, deterministic resume), with ``T2S_REQUIRE_GPU=1``;
2. ``levers``: bench/gpu_levers.py: the `full` profile's baseline with a torch.profiler summary
   of one accumulation cycle (top kernels, shares in matmul / attention / elementwise / optimizer
   / data, the SDPA kernel of each kind of attention call), each lever alone, the micro-batch
   sweep;
3. ``compiled``: the same for ``train.compile`` (per block, then the whole model);
4. ``eval_time``: bench/gpu_eval_time.py: seconds per clip, guidance in one or two forwards;
   with the baseline's micro-step, evaluation's share of the profile's whole run.

DIR/gpu_check.json holds everything, with the device's name; copy it to
``bench/recorded/gpu_check.json`` and commit it: ``make bench`` folds that file into
BENCHMARKS.md (``run()`` below), where no GPU is needed. ``--plan`` prints what would run.
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
BUDGET_S = 450  # all parts; start-up, CUDA checks and wheel installs fit in the rest of 8 min
MFU_GOAL, UTIL_GOAL, EVAL_SHARE_GOAL = 0.5, 90.0, 0.10


def _parts(out: Path) -> list[tuple[str, list[str], int, int]]:
    """(name, command, most seconds, least seconds worth starting it with)."""
    py = sys.executable
    levers = [py, "-m", "bench.gpu_levers", "--deadline-s"]
    return [
        ("tests", [py, "-m", "pytest", "-q", "-rA", "-m", "gpu", "tests/gpu", "-p",
                   "no:cacheprovider", f"--junitxml={out / 'gpu_tests.xml'}"], 150, 60),
        ("levers", [*levers, "{deadline}", "--json", str(out / "levers.json")], 190, 60),
        ("compiled", [*levers, "{deadline}", "--only", "compiled", "--json",
                      str(out / "compiled.json")], 110, 60),
        ("eval_time", [py, "-m", "bench.gpu_eval_time", "--json", str(out / "eval_time.json")],
         60, 30),
    ]  # fmt: skip


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


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def derived(report: dict) -> dict:
    """Evaluation's share of the profile's run, from the baseline micro-step and the eval times."""
    from bench.gpu_eval_time import eval_share

    levers = (report["parts"].get("levers") or {}).get("result") or {}
    base = next((r for r in levers.get("levers", []) if r.get("lever") == "baseline"), None)
    e = (report["parts"].get("eval_time") or {}).get("result")
    if not base or "error" in base or not e:
        return {}
    out = {"eval_share": eval_share("full", base["micro_step_s"], e["s_per_clip"],
                                    e["s_per_clip_batched"])}  # fmt: skip
    out["eval_share_with_cfg"] = eval_share("full", base["micro_step_s"], e["s_per_clip"],
                                            e["s_per_clip_cfg_batched"])  # fmt: skip
    return out


def check(out: Path, budget: float = BUDGET_S) -> int:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "T2S_REQUIRE_GPU": "1"}
    report: dict = {
        "device": torch.cuda.get_device_name(0),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "cuda": torch.version.cuda, "budget_s": budget, "parts": {},
    }  # fmt: skip
    end, failed = time.monotonic() + budget, False
    parts = _parts(out)
    for i, (name, cmd, most, least) in enumerate(parts):
        later = sum(p[3] for p in parts[i + 1 :])
        limit = int(min(most, end - time.monotonic() - later))
        if limit < least:
            report["parts"][name] = {"rc": "skipped: no time left in the budget", "seconds": 0}
            failed = True
            continue
        cmd = [c.replace("{deadline}", str(limit - 15)) for c in cmd]
        t0 = time.perf_counter()
        with open(out / f"{name}.log", "w") as log:
            try:
                rc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    timeout=limit).returncode  # fmt: skip
            except subprocess.TimeoutExpired:
                rc = f"timeout after {limit} s"
        part = {"rc": rc, "seconds": round(time.perf_counter() - t0, 1), "limit_s": limit}
        if name == "tests":
            part["cases"] = _tests(out / "gpu_tests.xml")
        else:
            part["result"] = _read(out / f"{name}.json")
        report["parts"][name] = part
        failed |= rc != 0
        print(f"[gpu-check] {name}: rc={rc} in {part['seconds']} s (limit {limit} s)", flush=True)
    report["derived"] = derived(report)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print(f"[gpu-check] wrote {out / 'gpu_check.json'}")
    return 1 if failed else 0


def plan() -> None:
    """What ``check`` runs, printed where there is no GPU (``bench/gpu_check.sh``)."""
    from bench.gpu_levers import COMPILED, LEVERS, batch_lever

    what = {"tests": "the tests marked gpu, listed above",
            "levers": "the full profile's baseline, profiled (top kernels, time shares, the SDPA "
                      "kernel of each attention call), then each lever below alone",
            "compiled": "train.compile: per block, then the whole model",
            "eval_time": "seconds per clip, guidance in two forwards or one; evaluation's share "
                         "of a full-profile run"}  # fmt: skip
    print(f"the parts it runs on a CUDA machine (budget {BUDGET_S} s):")
    for name, _, most, _ in _parts(Path("OUT")):
        print(f"  {name} (at most {most} s): {what[name]}")
    print("the levers, each alone against the baseline (config overrides):")
    for lever in (*LEVERS, batch_lever(4), *COMPILED):
        print(f"  {lever.name}: {' '.join(lever.sets) or '(the profile as it is)'} [{lever.mode}]")
    print("  batch=8, 16, ... until one does not fit; twice the largest with grad_checkpointing")


# ---- the BENCHMARKS.md section ----------------------------------------------------------------
def _row(r: dict, base: dict | None) -> list[str]:
    sets = " ".join(r.get("sets", [])) or "-"
    if "error" in r:
        why = "out of memory" if r.get("oom") else r["error"][:80]
        return [r["lever"], sets, "", f"not measured: {why}", "", "", "", "", ""]
    gib = f"{r['peak_bytes'] / 2**30:.1f} GiB" if r.get("peak_bytes") else "-"
    util = f"{r['gpu_util_mean']:.0f} % (min {r['gpu_util_min']:.0f})" if r.get("gpu_util_mean") else "-"  # fmt: skip
    speed = f"{base['micro_step_s'] / r['micro_step_s'] * r['batch'] / base['batch']:.2f}x" if base else "-"  # fmt: skip
    return [r["lever"], sets, f"{r['batch']}x{r['grad_accum']}", f"{r['micro_step_s'] * 1e3:.0f} ms",
            f"{r['tokens_per_s']:,.0f}", f"{r['mfu']:.1%}" if r.get("mfu") else "-", gib, util,
            speed]  # fmt: skip


def _profile_notes(p: dict) -> list[str]:
    shares = ", ".join(f"{k} {v:.0%}" for k, v in p["categories"].items() if v >= 0.005)
    top = "; ".join(f"{k['name'][:70]} {k['share']:.0%}" for k in p["top"][:5])
    sdpa = "; ".join(f"{k}: {', '.join(f'{b} x{n}' for b, n in v.items())}"
                     for k, v in p["sdpa"].items())  # fmt: skip
    return [f"baseline profile ({p['micro_steps']} micro-steps, {p['time_ms_per_micro_step']:.0f} "
            f"ms of kernels per micro-step): {shares}", f"top kernels: {top}",
            f"SDPA kernel per attention call (forward): {sdpa}"]  # fmt: skip


def run() -> Section:
    """BENCHMARKS.md section from the recorded GPU check (no GPU needed to render it)."""
    if not RECORDED.exists():
        return Section(
            title="GPU check (make gpu-check): not yet run",
            method=("No recorded result in bench/recorded/gpu_check.json: `make gpu-check` has not "
                    "run on a GPU since it was written. It measures the full profile's baseline, "
                    "a profiler summary, each throughput lever alone (perf.* config keys, "
                    "train.compile, the micro-batch) and evaluation's share of a run. Run it on a "
                    "CUDA machine and commit its gpu_check.json there."),  # fmt: skip
            columns=[], rows=[], notes=[], seconds=0.0,
            goals=[Goal(metric="full-profile MFU on one GPU", value="not measured",
                        goal=f">= {MFU_GOAL:.0%}", met=None)],
        )  # fmt: skip
    r = json.loads(RECORDED.read_text())
    parts = r["parts"]
    results = []
    for name in ("levers", "compiled"):
        results += ((parts.get(name) or {}).get("result") or {}).get("levers", [])
    base = next((x for x in results if x["lever"] == "baseline" and "error" not in x), None)
    rows = [_row(x, base) for x in results]
    ok = [x for x in results if "error" not in x and x.get("mfu")]
    best = max(ok, key=lambda x: x["mfu"], default=None)
    cases = (parts.get("tests") or {}).get("cases", {})
    passed = sum(c.get("outcome") == "passed" for c in cases.values())
    notes = [f"gpu tests: {passed}/{len(cases)} passed: "
             + ", ".join(f"{k} {v['outcome']}" for k, v in cases.items())]  # fmt: skip
    if base and base.get("profile"):
        notes += _profile_notes(base["profile"])
    lev = (parts.get("levers") or {}).get("result") or {}
    if lev.get("largest_batch"):
        notes.append(f"largest micro-batch that fits (bf16, ZeRO-2, no checkpointing): {lev['largest_batch']}")  # fmt: skip
    skipped = [s["lever"] for p in ("levers", "compiled")
               for s in ((parts.get(p) or {}).get("result") or {}).get("skipped", [])]  # fmt: skip
    if skipped:
        notes.append("not measured (time budget): " + ", ".join(skipped))
    e = (parts.get("eval_time") or {}).get("result")
    share = (r.get("derived") or {}).get("eval_share")
    if e:
        notes.append(
            f"evaluation ({e['preset']}, {e['shape']}, {e['ddim_steps']} DDIM steps): "
            f"{e['s_per_clip']:.2f} s per clip alone, {e['s_per_clip_batched']:.2f} s per clip in "
            f"batches of {e['batch_size']}; guidance {e['cfg_scale']}: "
            f"{e['s_per_clip_cfg_two_forwards']:.2f} s per clip in two forwards, "
            f"{e['s_per_clip_cfg_batched']:.2f} s in one batched forward")  # fmt: skip
    if share:
        notes.append(
            f"evaluation's share of a full-profile run ({share['optimizer_steps']:,} steps over "
            f"{share['train_clips']:,} clips on {share['world_size']} GPUs): {share['eval_share']:.2%} "
            f"({share['eval_s_per_rank'] / 60:.1f} min of {share['train_s_per_rank'] / 3600:.1f} h per rank)")  # fmt: skip
    notes.append(
        ", ".join(f"{k} {v.get('seconds')} s (rc {v.get('rc')})" for k, v in parts.items())
    )
    return Section(
        title=f"GPU check on {r['device']} ({r['date']})",
        method=(
            f"`make gpu-check` (bench/gpu_check.py) on {r['device']}, torch {r['torch']} CUDA "
            f"{r['cuda']}: the `full` profile's DiT (d14, 16x64x64), bf16, DeepSpeed ZeRO-2, one "
            "rank; each lever is a config override measured alone (bench/gpu_levers.py: one "
            "accumulation cycle of warm-up, median of the timed cycles); MFU = model FLOPs / "
            "the measured bf16 matmul peak; speed-up in samples/s against the baseline. "
            "Recorded file: bench/recorded/gpu_check.json."
        ),
        columns=[
            "lever",
            "config",
            "batch x accum",
            "micro-step",
            "tokens/s",
            "MFU",
            "torch peak",
            "GPU util (NVML)",
            "samples/s vs baseline",
        ],  # fmt: skip
        rows=rows,
        goals=[
            Goal(
                metric="full-profile MFU on one GPU (best lever)",
                value=f"{best['mfu']:.1%} ({best['lever']})" if best else "not measured",
                goal=f">= {MFU_GOAL:.0%}",
                met=(best["mfu"] >= MFU_GOAL) if best else None,
            ),
            Goal(
                metric="GPU utilisation during the baseline step",
                value=f"{base['gpu_util_mean']:.0f} %"
                if base and base.get("gpu_util_mean")
                else "not measured",
                goal=f">= {UTIL_GOAL:.0f} %",
                met=(base["gpu_util_mean"] >= UTIL_GOAL)
                if base and base.get("gpu_util_mean")
                else None,
            ),
            Goal(
                metric="evaluation's share of a full-profile run",
                value=f"{share['eval_share']:.2%}" if share else "not measured",
                goal=f"<= {EVAL_SHARE_GOAL:.0%}",
                met=(share["eval_share"] <= EVAL_SHARE_GOAL) if share else None,
            ),
        ],  # fmt: skip
        notes=notes,
        seconds=0.0,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/t2s-gpu-check")))
    ap.add_argument("--plan", action="store_true", help="print what it runs and exit")
    args = ap.parse_args()
    if args.plan:
        plan()
        return
    sys.exit(check(args.out))


if __name__ == "__main__":
    main()
