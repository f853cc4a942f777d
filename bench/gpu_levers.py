"""The throughput levers of the `full` profile, each measured on its own against the baseline.

``python -m bench.gpu_levers --json OUT.json`` (``make gpu-check`` runs it twice: the eager
levers, then ``--only compiled`` in a process of its own) measures, in this order and until its
time budget (``--deadline-s``) is spent:

1. the baseline (the profile as it is) and a torch.profiler summary of one accumulation cycle
   of its micro-steps (bench/gpu_profile.py);
2. the attention levers (``LEVERS``: each a config override, the key a run would set), with the
   SDPA kernel each attention call ran on;
3. the micro-batch sweep: batch 2 → 4 → 8 → ... (gradient accumulation keeping 16 samples per
   optimizer step) until one does not fit (bf16, ZeRO-2), one step between the last fit and the
   first that did not, then twice the largest fit with activation checkpointing;
4. the other levers: fused adaLN, AdamW's kernel, checkpointing, the trainer's step with its
   DataLoader (workers, pinned memory);
5. with ``--only compiled``: ``train.compile`` per block (regional), then of the whole model.

Each lever: one accumulation cycle of warm-up, then ``--cycles`` timed cycles (default one; the
baseline two; the median micro-step time), NVML GPU utilisation sampled meanwhile, the
allocator's peak. An out-of-memory or any
other error is recorded and the next lever runs. The JSON is rewritten after every lever, so a
time limit still leaves what was measured. Without CUDA: ``skipped: no CUDA`` (``--allow-cpu``
runs it on the CPU with ``--profile tiny``, to check the script, not to measure).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

from bench.gpu_harness import Harness, Lever, matmul_peak
from bench.gpu_profile import profile_micro_steps

SAMPLES_PER_STEP = 16  # the full profile's batch 2 x 8 accumulation, kept through the sweep
LEVERS = (
    Lever("cross_attention=grouped", ("perf.cross_attention=grouped",),
          note="mask-free cross-attention, keys cut to each caption's length"),
    Lever("attention_backend=flash", ("perf.attention_backend=flash", "perf.cross_attention=grouped"),
          note="FlashAttention-2 everywhere (takes no mask: grouped cross-attention)"),
    Lever("attention_backend=cudnn", ("perf.attention_backend=cudnn",), note="cuDNN attention"),
    Lever("attention_backend=efficient", ("perf.attention_backend=efficient",),
          note="memory-efficient attention"),
    Lever("fused_adaln", ("perf.fused_adaln=true",), note="LayerNorm + modulation compiled as one"),
    Lever("fused_adamw=false", ("perf.fused_adamw=false",),
          note="foreach AdamW instead of the fused kernel: what fusing it is worth"),
    Lever("grad_checkpointing", ("model.grad_checkpointing=true",),
          note="recompute every block: what it costs at a batch that fits without it"),
    Lever("trainer step", (), mode="trainer",
          note="the trainer's micro-step, DataLoader with data.num_workers of the profile"),
    Lever("trainer step, pin_memory", ("perf.pin_memory=true",), mode="trainer",
          note="pinned batches, non-blocking copies"),
    Lever("trainer step, num_workers=0", ("data.num_workers=0",), mode="trainer",
          note="batches decoded in the training process"),
)  # fmt: skip
COMPILED = (
    Lever("compile, blocks", ("train.compile=true", "perf.compile_scope=blocks"),
          note="each block compiled alone (regional)"),
    Lever("compile, model", ("train.compile=true",), note="the whole DiT compiled"),
)  # fmt: skip
ATTENTION_LEVERS = {"cross_attention=grouped", "attention_backend=flash", "attention_backend=cudnn",
                    "attention_backend=efficient"}  # fmt: skip


def batch_lever(batch: int, *extra: str) -> Lever:
    accum = max(1, SAMPLES_PER_STEP // batch)
    name = f"batch={batch}" + (", grad_checkpointing" if extra else "")
    return Lever(name, (f"train.batch_size={batch}", f"train.grad_accum={accum}", *extra))


def is_oom(error: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # older torch: cuda's
    return isinstance(error, oom) or "out of memory" in str(error).lower()


class Runner:
    """Runs levers one after another within a deadline, writing the JSON after each."""

    def __init__(self, out: Path, *, profile: str, sets: tuple[str, ...], cycles: int,
                 deadline_s: float, data_root: Path | None) -> None:  # fmt: skip
        self.out, self.profile, self.sets, self.cycles = out, profile, sets, cycles
        self.deadline = time.monotonic() + deadline_s
        self.data_root = data_root
        cuda = torch.cuda.is_available()
        self.peak = matmul_peak(torch.device("cuda", 0)) if cuda else None
        self.report: dict = {
            "device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
            "cuda": torch.version.cuda, "profile": profile, "sets": list(sets),
            "bf16_peak_flops": self.peak, "levers": [], "skipped": [],
        }  # fmt: skip
        self.last_s = 0.0

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.report, indent=2))
        tmp.replace(self.out)

    def run(self, lever: Lever, *, profile: bool = False, sdpa: bool = False, cost: float = 1.2,
            cycles: int | None = None):  # fmt: skip
        """Measure one lever (None when skipped); ``cost``: the wall time it needs, in units of
        the last lever's, for the deadline check."""
        if self.left() < cost * self.last_s:
            self.report["skipped"].append({"lever": lever.name, "reason": "time budget spent"})
            self.save()
            return None
        print(f"[gpu-levers] {lever.name} ({self.left():.0f} s left)", flush=True)
        t0, harness, result = time.monotonic(), None, None
        try:
            harness = Harness(lever, profile=self.profile, base_sets=self.sets,
                              data_root=self.data_root)  # fmt: skip
            result = harness.measure(cycles=cycles or self.cycles, peak=self.peak)
            if profile:  # one whole accumulation cycle: the optimizer's step counts once in it
                result["profile"] = profile_micro_steps(harness, harness.accum)
            elif sdpa:
                result["sdpa"] = profile_micro_steps(harness, 1)["sdpa"]
        except Exception as e:  # an OOM or a kernel that cannot run: recorded, next lever
            result = {"lever": lever.name, "sets": list(lever.sets), "mode": lever.mode,
                      "note": lever.note, "error": f"{type(e).__name__}: {str(e)[:400]}",
                      "oom": is_oom(e)}  # fmt: skip
            if not is_oom(e):
                traceback.print_exc()
        finally:
            left = harness.close() if harness is not None else _free()
        result["seconds"] = round(time.monotonic() - t0, 1)
        result["device_bytes_left"] = left
        self.last_s = result["seconds"]
        self.report["levers"].append(result)
        self.save()
        print(f"[gpu-levers]   {_line(result)}", flush=True)
        return result

    def eager(self, only: set[str] | None = None) -> None:
        """Baseline (two timed cycles, profiled), the attention levers, the sweep, the rest;
        ``only``: just these lever names (and "sweep") after the baseline."""
        base = self.run(Lever("baseline", note="the profile as it is"), profile=True, cycles=2)
        chosen = [lv for lv in LEVERS if only is None or lv.name in only]
        for lever in chosen:
            if lever.name in ATTENTION_LEVERS:
                self.run(lever, sdpa=True)
        if only is None or "sweep" in only:
            self.sweep(base)
        for lever in chosen:
            if lever.name not in ATTENTION_LEVERS:
                self.run(lever)

    def sweep(self, base: dict | None) -> None:
        """Micro-batch 2, 4, 8, ... until one does not fit; a step between; 2x with checkpointing."""
        fits = [2] if base and "error" not in base else []
        failed, batch, cost = None, 4, 2.0
        while failed is None and batch <= 256:
            r = self.run(batch_lever(batch), cost=cost)
            if r is None:
                break
            if "error" in r:
                failed = batch
            else:
                fits.append(batch)
            batch *= 2
        if failed and fits and failed - fits[-1] > 1:
            mid = (fits[-1] + failed) // 2
            r = self.run(batch_lever(mid), cost=cost)
            if r is not None and "error" not in r:
                fits.append(mid)
        self.report["largest_batch"] = max(fits) if fits else None
        if failed and fits:
            self.run(batch_lever(2 * max(fits), "model.grad_checkpointing=true"), cost=2 * cost)

    def compiled(self) -> None:
        for lever in COMPILED:
            self.run(lever, cost=1.0)


def _free() -> int:
    """After a lever that failed to build: what the device still holds once garbage is freed."""
    import gc

    gc.collect()
    if not torch.cuda.is_available():
        return 0
    torch.cuda.empty_cache()
    return int(torch.cuda.memory_allocated())


def _line(r: dict) -> str:
    if "error" in r:
        return f"error: {r['error'][:160]}"
    mfu = f", MFU {r['mfu']:.1%}" if r.get("mfu") else ""
    return (f"{r['micro_step_s'] * 1e3:.1f} ms/micro-step, {r['samples_per_s']:.2f} samples/s"
            f"{mfu}, {r['seconds']} s")  # fmt: skip


def synth_data(root: Path, profile: str, sets: tuple[str, ...]) -> Path:
    """A synthetic set at the profile's clip shape for the trainer-step levers (local disk)."""
    from text2sign.config import load_config
    from text2sign.data.synth import generate

    cfg = load_config(profile=profile, overrides=["text.encoder=tiny", *sets])
    if not (root / ".complete").exists():
        generate(root, 48, frames=cfg.data.num_frames, size=cfg.data.image_size, seed=0)
        (root / ".complete").touch()
    return root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--only", choices=["eager", "compiled"], default="eager")
    ap.add_argument("--profile", default="full")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override")
    ap.add_argument(
        "--cycles",
        type=int,
        default=1,
        help="timed accumulation cycles per lever (the baseline: two)",
    )
    ap.add_argument("--deadline-s", type=float, default=200.0)
    ap.add_argument("--data", type=Path, default=None, help="synthetic set for the trainer step")
    ap.add_argument(
        "--levers",
        default=None,
        help="comma-separated lever names (and 'sweep') to run after the baseline; default: all",
    )
    ap.add_argument("--allow-cpu", action="store_true", help="run on the CPU (a check, no numbers)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("skipped: no CUDA")
        return 0
    data = args.data or Path(os.environ.get("TMPDIR", "/tmp")) / f"t2s-levers-{args.profile}"
    sets = tuple(args.sets)
    eager = args.only == "eager"  # only the eager levers have trainer steps, which need data
    runner = Runner(args.json, profile=args.profile, sets=sets, cycles=args.cycles,
                    deadline_s=args.deadline_s,
                    data_root=synth_data(data, args.profile, sets) if eager else None)  # fmt: skip
    only = set(args.levers.split(",")) if args.levers else None
    runner.eager(only) if eager else runner.compiled()
    runner.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
