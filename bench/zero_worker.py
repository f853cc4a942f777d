"""One rank of the ZeRO memory benchmark: two DeepSpeed steps and a census of its buffers.

Launched by ``bench.zero_memory`` as ``torchrun --nproc_per_node 2 -m bench.zero_worker``; writes
``<out>.rank<k>.json``. During the second step (the Adam moments exist from the first) the census
runs at three points and keeps, per point, the largest result:

* ``backward``: when the last parameter's gradient has been accumulated (after DeepSpeed's hook);
* ``reduce``: when a ZeRO gradient reduction (bucket -> this rank's partition) returns;
* ``step``: when the wrapped torch AdamW ``step`` is entered (fp32 gradients exist then).

What one census counts: every tensor reachable from DeepSpeed's optimizer wrapper (attributes,
recursively through containers and DeepSpeed/torch.optim objects, never into an ``nn.Module``),
the ``.grad`` of each such tensor and of every model parameter. Tensors are deduplicated by
storage and counted at the storage's full size (a flat buffer counts once, however many views
point into it). Storages holding the bf16 weights (parameters, ZeRO-3 partitions, ZeRO-1/2 flat
bf16 groups) are left out. The rest is split into Adam state (the torch optimizer's ``state``),
fp32 master weights (DeepSpeed's fp32 groups or partitions) and gradients (split by dtype: fp32
versus bf16, the bf16 share including the reduction buckets). Not counted: temporaries inside a single communication call.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import torch
from torch import nn

from bench.common import init_cpu_worker

MASTER_ATTRS = (
    "fp32_groups",  # FP16_(Unfused)Optimizer: fp32 copies (stage 0)
    "fp32_groups_flat",  # FP16_Optimizer (fused) variant
    "fp32_groups_flat_partition",  # BF16_Optimizer
    "single_partition_of_fp32_groups",  # ZeRO 1/2
    "fp32_partitioned_groups_flat",  # ZeRO 3
)
WEIGHT_ATTRS = ("bit16_groups_flat", "fp16_groups_flat", "bf16_groups_flat")
REDUCE_METHODS = (
    "reduce_ipg_grads",  # ZeRO 1/2
    "_DeepSpeedZeroOptimizer_Stage3__reduce_and_partition_ipg_grads",  # ZeRO 3 (name-mangled)
)
MAX_DEPTH = 6


def _walk(obj: Any, path: str, depth: int, seen: set[int]) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (path, tensor) for every tensor reachable from ``obj`` (see the module docstring)."""
    if id(obj) in seen or depth > MAX_DEPTH or isinstance(obj, nn.Module):
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        yield path, obj
        if obj.grad is not None:
            yield f"{path}.grad", obj.grad
        return
    if isinstance(obj, dict):
        items = [
            (f"{path}[{k!r}]" if not isinstance(k, torch.Tensor) else path, v)
            for k, v in obj.items()
        ]
        keys = [k for k in obj if isinstance(k, torch.Tensor)]
        items += [(f"{path}<key{i}>", k) for i, k in enumerate(keys)]
    elif isinstance(obj, list | tuple | set):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(obj)]
    elif type(obj).__module__.startswith(("deepspeed", "torch.optim")) and hasattr(obj, "__dict__"):
        items = [(f"{path}.{k}", v) for k, v in vars(obj).items()]
    else:
        return
    for sub_path, value in items:
        yield from _walk(value, sub_path, depth + 1, seen)


def _storage(t: torch.Tensor) -> tuple[int, int]:
    """(data pointer, bytes) of the storage behind ``t``."""
    s = t.untyped_storage()
    return s.data_ptr(), s.nbytes()


def census(ds_optimizer: Any, model: nn.Module) -> dict[str, Any]:
    """Bytes of Adam state, fp32 master weights and gradient buffers held by this rank."""
    weights: set[int] = set()
    for p in model.parameters():
        for t in (p.data, getattr(p, "ds_tensor", None)):
            if t is not None and t.numel():
                weights.add(_storage(t)[0])
    for attr in WEIGHT_ATTRS:
        for t in getattr(ds_optimizer, attr, None) or []:
            if isinstance(t, torch.Tensor):
                weights.add(_storage(t)[0])
    inner = ds_optimizer.optimizer
    state = {_storage(t) for s in inner.state.values() for t in s.values() if torch.is_tensor(t)}
    master = set()
    for attr in MASTER_ATTRS:
        for path, t in _walk(getattr(ds_optimizer, attr, None), attr, 0, set()):
            if not path.endswith(".grad"):  # the fp32 gradients count as gradients
                master.add(_storage(t))
    found: dict[int, tuple[int, str, bool]] = {}
    sources = [("optimizer", ds_optimizer)]
    sources += [
        (f"param:{n}.grad", p.grad) for n, p in model.named_parameters() if p.grad is not None
    ]
    seen: set[int] = set()
    for name, root in sources:
        for path, t in _walk(root, name, 0, seen):
            if t.numel() == 0 or t.device.type == "meta":
                continue
            ptr, nbytes = _storage(t)
            if ptr not in weights and ptr not in found:
                found[ptr] = (nbytes, path, t.dtype == torch.float32)
    state_ptrs = {p for p, _ in state}
    master_ptrs = {p for p, _ in master} - state_ptrs
    out = {"adam_state": 0, "fp32_master": 0, "grads": 0, "grads_fp32": 0}
    grad_paths: dict[str, int] = {}
    for ptr, (nbytes, path, fp32) in found.items():
        if ptr in state_ptrs:
            out["adam_state"] += nbytes
        elif ptr in master_ptrs:
            out["fp32_master"] += nbytes
        else:
            out["grads"] += nbytes
            out["grads_fp32"] += nbytes if fp32 else 0
            grad_paths[path] = nbytes
    top = sorted(grad_paths.items(), key=lambda kv: -kv[1])[:4]
    out["total"] = out["adam_state"] + out["fp32_master"] + out["grads"]
    out["grad_sources"] = [f"{path} ({n / 2**20:.1f} MiB)" for path, n in top]
    out["bf16_weights"] = sum(
        getattr(p, "ds_tensor", p.data).numel() * 2 for p in model.parameters()
    )  # bf16 weights held by this rank, for reference (not in the total)
    return out


def _census_around(obj: Any, name: str, take: Callable[[], None], *, before: bool) -> None:
    """Replace ``obj.name`` by a wrapper that calls ``take`` before or after it."""
    original = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if before:
            take()
        out = original(*args, **kwargs)
        if not before:
            take()
        return out

    setattr(obj, name, wrapper)


def main() -> None:
    """Build the DiT, wrap it in DeepSpeed at ``--stage``, step twice, write the census JSON."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", type=int, required=True)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--bucket", type=float, default=None, help="override reduce_bucket_size")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    init_cpu_worker()
    import deepspeed

    from text2sign.models.dit import DIT_PRESETS, VideoDiT, count_parameters

    torch.manual_seed(0)
    # Input size does not change the bytes counted (only parameter shapes do): keep it small.
    frames, size, batch, text_len, text_dim = 2, 8, 1, 16, 64
    model = VideoDiT(
        DIT_PRESETS[args.preset], num_frames=frames, image_size=size, text_dim=text_dim
    )
    n_params = count_parameters(model)[0]
    template = resources.files("text2sign") / "configs" / "deepspeed" / "default.json"
    ds = json.loads(template.read_text())  # the trainer's own template (bucket sizes included)
    ds.pop("_comment", None)
    ds.update(
        train_micro_batch_size_per_gpu=batch,
        gradient_accumulation_steps=1,
        train_batch_size=batch * int(os.environ["WORLD_SIZE"]),
        gradient_clipping=1.0,
        bf16={"enabled": True},
    )
    ds["zero_optimization"] = {**ds["zero_optimization"], "stage": args.stage}
    if args.bucket is not None:
        ds["zero_optimization"]["reduce_bucket_size"] = int(args.bucket)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=ds)
    inner = engine.optimizer.optimizer
    params = [p for p in engine.module.parameters() if p.requires_grad]
    snapshots: dict[str, dict[str, Any]] = {}
    state = {"measure": False, "grads_seen": 0}

    def take(point: str) -> None:
        if not state["measure"]:
            return
        snap = census(engine.optimizer, engine.module)
        if snap["total"] >= snapshots.get(point, {"total": -1})["total"]:
            snapshots[point] = snap  # the largest census at this point within the step

    def on_grad(_: torch.Tensor) -> None:
        state["grads_seen"] += 1  # the last parameter's gradient: the end of backward
        if state["grads_seen"] == len(params):
            take("backward")

    for p in params:  # registered after DeepSpeed's own hooks, so they run after them
        p.register_post_accumulate_grad_hook(on_grad)
    _census_around(inner, "step", lambda: take("step"), before=True)
    for name in REDUCE_METHODS:  # the ZeRO 1-3 gradient reduction: bucket -> partition
        if hasattr(engine.optimizer, name):
            _census_around(engine.optimizer, name, lambda: take("reduce"), before=False)
    for step in range(2):
        state.update(measure=step == 1, grads_seen=0)
        x = torch.randn(batch, frames, 3, size, size, dtype=torch.bfloat16)
        t = torch.randint(0, 1000, (batch,))
        y = torch.randn(batch, text_len, text_dim, dtype=torch.bfloat16)
        mask = torch.ones(batch, text_len, dtype=torch.bool)
        loss = (engine(x, t, y, mask).float() - x.float()).pow(2).mean()
        engine.backward(loss)
        engine.step()
    rank = int(os.environ["RANK"])
    result = {
        "stage": args.stage,
        "rank": rank,
        "params": n_params,
        "wrapper": type(engine.optimizer).__name__,
        "reduce_bucket_size": ds["zero_optimization"]["reduce_bucket_size"],
        "census": snapshots,  # {"backward": {...}, "reduce": {...}, "step": {...}}
    }
    with open(f"{args.out}.rank{rank}.json", "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
