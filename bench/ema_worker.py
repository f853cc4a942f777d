"""One rank of the sharded-EMA check: a tiny DiT under DeepSpeed, its EMA and a reference EMA.

Launched as ``torchrun --nproc_per_node 2 -m bench.ema_worker --stage S --out PREFIX`` by
``tests/integration/test_ema_zero.py`` and ``bench.ema_memory``. Trains ``--steps`` steps with
``EMA.from_engine`` and, beside it, an unsharded reference EMA of the full fp32 masters (DeepSpeed's
``safe_get_full_fp32_param``; ZeRO-0's unfused optimizer has no such helper, there its
``fp32_groups``) and one of the bf16 weights the model computes with. Under ZeRO-3 it then saves a
checkpoint at step ``--steps``, trains 2 more steps, builds a second engine from the checkpoint and
trains the same 2 steps. Writes ``PREFIX.pt`` (rank 0: the EMAs as full fp32 CPU dicts) and
``PREFIX.rank<k>.json`` (bytes held and saved by this rank).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch

from bench.common import init_cpu_worker

FRAMES, SIZE, BATCH, TEXT_LEN, TEXT_DIM = 2, 8, 2, 8, 64
DECAY = 0.5  # large steps: the EMA moves visibly, so fp32 and bf16 sources differ


def build(stage: int, bf16: bool) -> Any:
    import deepspeed

    from text2sign.models.dit import DIT_PRESETS, VideoDiT

    torch.manual_seed(0)
    model = VideoDiT(DIT_PRESETS["tiny"], num_frames=FRAMES, image_size=SIZE, text_dim=TEXT_DIM)
    ds = {
        "train_micro_batch_size_per_gpu": BATCH,
        "gradient_accumulation_steps": 1,
        "train_batch_size": BATCH * int(os.environ["WORLD_SIZE"]),
        "gradient_clipping": 1.0,
        "bf16": {"enabled": bf16},
        "zero_optimization": {"stage": stage},
        "steps_per_print": 10**6,
    }
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=ds)
    return engine


def train_step(engine: Any, step: int, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1000 * int(os.environ["RANK"]) + step)
    x = torch.randn(BATCH, FRAMES, 3, SIZE, SIZE, generator=g)
    y = torch.randn(BATCH, TEXT_LEN, TEXT_DIM, generator=g)
    t = torch.randint(0, 1000, (BATCH,), generator=g)
    mask = torch.ones(BATCH, TEXT_LEN, dtype=torch.bool)
    out = engine(x.to(dtype), t, y.to(dtype), mask)
    engine.backward((out.float() - x).pow(2).mean())
    engine.step()


def full_masters(engine: Any) -> dict[str, torch.Tensor]:
    """Full fp32 master weights (collective), the reference EMA's source."""
    from deepspeed.utils import safe_get_full_fp32_param

    opt = engine.optimizer
    unfused = {}
    if hasattr(opt, "fp16_groups") and hasattr(opt, "fp32_groups"):  # ZeRO-0 + bf16
        for lp_group, hp_group in zip(opt.fp16_groups, opt.fp32_groups, strict=True):
            unfused.update({id(lp): hp for lp, hp in zip(lp_group, hp_group, strict=True)})
    out = {}
    for name, p in engine.module.named_parameters():
        full = safe_get_full_fp32_param(p)
        if full is None:
            full = unfused.get(id(p), p)
        out[name] = full.detach().float().cpu().clone()
    return out


def bf16_weights(engine: Any) -> dict[str, torch.Tensor]:
    import deepspeed

    params = dict(engine.module.named_parameters())
    zero3 = any(hasattr(p, "ds_id") for p in params.values())
    ctx = deepspeed.zero.GatheredParameters(list(params.values())) if zero3 else _Null()
    with ctx:
        return {n: p.detach().float().cpu().clone() for n, p in params.items()}


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def lerp_all(ema: dict[str, torch.Tensor], src: dict[str, torch.Tensor]) -> None:
    for name, t in ema.items():
        t.lerp_(src[name], 1.0 - DECAY)


def nbytes(tensors: Any) -> int:
    if isinstance(tensors, torch.Tensor):
        return tensors.numel() * tensors.element_size()
    if isinstance(tensors, dict):
        return sum(nbytes(v) for v in tensors.values())
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", type=int, required=True)
    ap.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    init_cpu_worker()

    from text2sign.models.ema import EMA
    from text2sign.run import weights
    from text2sign.training import checkpoint

    rank, bf16 = int(os.environ["RANK"]), args.precision == "bf16"
    dtype = torch.bfloat16 if bf16 else torch.float32
    engine = build(args.stage, bf16)
    ema = EMA.from_engine(engine, DECAY)
    ref, ref_bf16 = full_masters(engine), bf16_weights(engine)
    for step in range(1, args.steps + 1):
        train_step(engine, step, dtype)
        ema.update(engine, step)
        lerp_all(ref, full_masters(engine))
        lerp_all(ref_bf16, bf16_weights(engine))
    result: dict[str, Any] = {"ema": ema.full_state_dict(), "reference": ref, "bf16": ref_bf16}
    fresh = EMA.from_engine(engine, DECAY)  # a full EMA (old checkpoints, ZeRO 0-2) loads too
    fresh.load_state_dict(result["ema"])
    result["from_full"] = fresh.full_state_dict()
    stats = {
        "rank": rank,
        "stage": args.stage,
        "sharded": ema.sharded,
        "ema_bytes": nbytes(ema.shadow),
        "full_copy_bytes": sum(4 * s.numel() for s in ema.shapes.values()),
    }
    if args.stage == 3:
        ckpt = Path(f"{args.out}.ckpt")
        client = {"step": args.steps, "world_size": 2, "config_hash": "h", "ema": ema.state_dict()}
        tag = checkpoint.save(engine, ckpt, step=args.steps, rank=rank, client_state=client, keep=1)
        stats["checkpoint_ema_bytes"] = nbytes(client["ema"]["shards"])
        result["offline"] = weights.read_ema(ckpt, tag)  # what sampling reads, no engine
        result["saved"] = ema.full_state_dict()
        for step in range(args.steps + 1, args.steps + 3):
            train_step(engine, step, dtype)
            ema.update(engine, step)
        result["continued"] = ema.full_state_dict()
        resumed = build(args.stage, bf16)
        ema2 = EMA.from_engine(resumed, DECAY)
        loaded = checkpoint.load(resumed, ckpt, tag, rank=rank, config_hash="h")
        ema2.load_state_dict(loaded["ema"])
        for step in range(args.steps + 1, args.steps + 3):
            train_step(resumed, step, dtype)
            ema2.update(resumed, step)
        result["resumed"] = ema2.full_state_dict()
    if rank == 0:
        torch.save(result, f"{args.out}.pt")
    Path(f"{args.out}.rank{rank}.json").write_text(json.dumps(stats))


if __name__ == "__main__":
    main()
