"""Record real learning curves for the halving simulation (bench/halving_sim.py).

An lr × EMA-decay sweep at the ``tiny`` profile, several seeds; each run is trained by the real
trainer in rungs (``halving.stop_at`` = every step in ``--at``), evaluated at each (the rung
evaluation: ``--clips`` clips, the same for every run), and resumed from its checkpoint; the
per-clip DTW-MJE with each clip's recording is kept. Writes one small JSON:

    python -m bench.halving_record --out bench/recorded/halving_curves.json   # ~25 min, 2 cores

Runs go 2 at a time (``--jobs``), one CPU thread each, in ``--work`` (deleted unless --keep).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

LRS = (3e-4, 1e-3, 3e-3)
DECAYS = (0.9, 0.99)
SEEDS = (0, 1, 2)
AT = (67, 200, 600)  # eval steps (eta 3: 600/9, 600/3, 600); the last is the final budget
CLIPS = 16


def record_one(run_dir: Path, lr: float, decay: float, seed: int, at: list[int], clips: int,
               data: str) -> dict:  # fmt: skip
    """Train one run to ``at[-1]`` in stops at ``at``; its rung evaluations' per-clip values."""
    from text2sign.config import load_config
    from text2sign.training.train import train

    curve = []
    for step in at:
        cfg = load_config(profile="tiny", variant="baseline", overrides=[
            f"train.lr={lr}", f"ema.decay={decay}", f"train.seed={seed}",
            f"train.max_steps={at[-1] + 1}", f"halving.stop_at={step}",
            f"halving.eval_clips={clips}", f"data.root={data}", "train.num_samples=0",
            f"train.checkpoint_every={at[-1] + 1}", "train.log_every=50", "eval.timing_videos=1",
        ])  # fmt: skip
        code = train(cfg, run_dir)
        ev = run_dir / "rungs" / f"step{step}" / "evaluation_metrics.json"
        if code != 0 or not ev.exists():
            curve.append({"step": step, "failed": f"exit {code}"})
            break
        d = json.loads(ev.read_text())
        curve.append({
            "step": step,
            "dtw_mje": d["metrics"]["dtw_mje"]["value"],
            "clips": d["clips"]["names"],
            "recordings": d["audit"]["recordings"],
            "per_clip": [round(v, 6) for v in d["audit"]["per_video"]["correct"]],
            "loss": json.loads((run_dir / "summary.json").read_text()).get("final_loss"),
        })  # fmt: skip
    return {"lr": lr, "decay": decay, "seed": seed, "curve": curve}


def _child(args: argparse.Namespace) -> None:
    at = [int(x) for x in args.at.split(",")]
    out = record_one(Path(args.run_dir), args.lr, args.decay, args.seed, at, args.clips, args.data)
    Path(args.result).write_text(json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/recorded/halving_curves.json")
    ap.add_argument("--work", default="/tmp/t2s-halving-record")
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    ap.add_argument("--at", default=",".join(map(str, AT)))
    ap.add_argument("--clips", type=int, default=CLIPS)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--assemble", action="store_true",
                    help="write --out from the runs already in --work (no training): points "
                    "with every seed recorded; the missing runs are named in the file")  # fmt: skip
    ap.add_argument("--wall-s", type=float, default=0.0, help="with --assemble: the recording's")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for k in ("run-dir", "result"):
        ap.add_argument(f"--{k}", help=argparse.SUPPRESS)
    ap.add_argument("--lr", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--decay", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    grid = list(itertools.product(LRS, DECAYS, seeds))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    t0 = time.time()

    def one(item):
        lr, decay, seed = item
        name = f"lr{lr:g}__decay{decay:g}__seed{seed}"
        result = work / f"{name}.json"
        if not result.exists():
            cmd = [sys.executable, "-m", "bench.halving_record", "--child", "--run-dir",
                   str(work / name), "--result", str(result), "--lr", str(lr), "--decay",
                   str(decay), "--seed", str(seed), "--at", args.at, "--clips", str(args.clips),
                   "--data", args.data]  # fmt: skip
            with open(work / f"{name}.log", "w") as log:
                subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
        print(f"[{time.time() - t0:6.0f} s] {name}", flush=True)
        return json.loads(result.read_text()) if result.exists() else None

    if args.assemble:
        runs = [json.loads(f.read_text()) for f in sorted(work.glob("lr*.json"))]
    else:
        with ThreadPoolExecutor(args.jobs) as pool:
            runs = [r for r in pool.map(one, grid) if r is not None]
    have = {(r["lr"], r["decay"], r["seed"]) for r in runs if "per_clip" in r["curve"][-1]}
    whole = {(lr, dc) for lr, dc, _ in grid if all((lr, dc, s) in have for s in seeds)}
    missing = [
        f"lr {lr:g}, decay {dc:g}, seed {s}" for lr, dc, s in grid if (lr, dc, s) not in have
    ]
    runs = [r for r in runs if (r["lr"], r["decay"]) in whole]
    out = {
        "made_by": "python -m bench.halving_record (stopped before every run was recorded: see "
        "not_recorded), then --assemble" if args.assemble else
        "python -m bench.halving_record " + " ".join(argv or sys.argv[1:]),
        "how": "tiny profile, baseline variant, data/synth; each run trained by the real trainer "
        "in stops at `at` (halving.stop_at), evaluated there on `clips` validation clips (eval "
        "seed 1234, the same clips for every run) and resumed from its checkpoint; per-clip "
        "DTW-MJE (blob keypoints vs exact) with each clip's recording (signer)",
        "at": [int(x) for x in args.at.split(",")],
        "clips": args.clips, "lrs": sorted({lr for lr, _ in whole}),
        "decays": sorted({dc for _, dc in whole}), "seeds": seeds,
        "not_recorded": missing,
        "wall_s": args.wall_s or round(time.time() - t0, 1), "cpus": os.cpu_count(),
        "runs": runs,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {args.out}: {len(runs)} runs in {out['wall_s']} s")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
