"""Exponential moving average (EMA) of a model's weights, in fp32, sharded the way ZeRO shards.

``EMA(module)`` keeps a full fp32 copy of a plain module's parameters. ``EMA.from_engine(engine)``
follows the DeepSpeed optimizer's fp32 *master* weights (not the bf16 copies the model computes
with), and each rank keeps the EMA of the master elements it owns, so an update never communicates:

| engine | fp32 masters read | EMA held by a rank |
| --- | --- | --- |
| ZeRO-3 | ``deepspeed.utils.safe_get_local_fp32_param`` | its partition of every parameter |
| ZeRO-1/2 (and DeepSpeed's BF16_Optimizer) | each parameter's ``_hp_mapping`` fragment | its fragments |
| ZeRO-0 with bf16 | the unfused optimizer's ``fp32_groups`` | a full copy |
| fp32 parameters outside any wrapper | the parameters | a full copy |

A piece is a run ``[start, start + numel)`` of the flattened parameter; the pieces of all ranks are
disjoint and cover it. ``full_state_dict`` assembles the full EMA on every rank (an all-reduce per
chunk of at most ``chunk_numel`` elements: collective, all ranks call it together).

Checkpoints: ``state_dict`` is what this rank's checkpoint client state holds. Under ZeRO-3 every
rank writes its own model-states file, so it is this rank's shard (:func:`is_shard`;
:func:`assemble_shards` joins the files of all ranks); otherwise rank 0 writes the one file, so it
is the full EMA (gathered, i.e. collective, on ZeRO-1/2). ``load_state_dict`` takes either form,
so checkpoints that hold a full EMA (before sharding, or from another stage) still load.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

SHARD_FORMAT = "text2sign-ema-shard-1"


@dataclass
class _Source:
    """Where one parameter's fp32 values live on this rank."""

    tensor: torch.Tensor  # the fp32 master piece (flat when sharded), or the full parameter
    start: int  # offset of the piece in the flattened parameter
    shape: torch.Size  # full shape of the parameter
    sharded: bool  # True: other ranks hold the rest; False: every rank holds all of it


def _plain_sources(module: nn.Module) -> Iterator[tuple[str, _Source]]:
    for name, p in module.named_parameters():
        if hasattr(p, "ds_id"):
            raise ValueError(f"{name} is a ZeRO-3 parameter: build the EMA with EMA.from_engine")
        yield name, _Source(p.detach(), 0, p.shape, False)


def _engine_sources(engine: Any) -> Iterator[tuple[str, _Source]]:
    """The fp32 master piece of every parameter of ``engine.module`` held by this rank."""
    opt = engine.optimizer
    unfused: dict[int, torch.Tensor] = {}  # ZeRO-0 + bf16: FP16_UnfusedOptimizer's fp32 copies
    if hasattr(opt, "fp16_groups") and hasattr(opt, "fp32_groups"):
        for lp_group, hp_group in zip(opt.fp16_groups, opt.fp32_groups, strict=True):
            unfused.update({id(lp): hp for lp, hp in zip(lp_group, hp_group, strict=True)})
    for name, p in engine.module.named_parameters():
        if hasattr(p, "ds_id"):  # ZeRO-3: this rank's partition, padded at the end of the last
            import torch.distributed as dist
            from deepspeed.utils import safe_get_local_fp32_param

            shape, numel = torch.Size(p.ds_shape), int(p.ds_numel)
            part = int(p.ds_tensor.ds_numel)
            start = min(part * dist.get_rank(group=p.ds_process_group), numel)
            local = safe_get_local_fp32_param(p) if p.requires_grad else p.ds_tensor
            yield name, _Source(local.reshape(-1)[: min(part, numel - start)], start, shape, True)
        elif hasattr(p, "_hp_mapping"):  # ZeRO-1/2: a fragment of the flat fp32 partition
            mapping = p._hp_mapping
            if mapping is None:  # the whole parameter lives on other ranks
                yield name, _Source(torch.empty(0, device=p.device), 0, p.shape, True)
            else:
                addr = mapping.lp_fragment_address
                piece = mapping.get_hp_fragment().reshape(-1)
                yield name, _Source(piece, int(addr.start), p.shape, True)
        else:
            yield name, _Source(unfused.get(id(p), p).detach(), 0, p.shape, False)


def _group(engine: Any) -> Any:
    """The data-parallel process group the ZeRO partitions are spread over (None: the world)."""
    for p in engine.module.parameters():
        group = getattr(p, "ds_process_group", None) or getattr(p, "_dp_group", None)
        if group is not None:
            return group
    return None


def is_shard(state: Any) -> bool:
    """Whether a checkpoint's EMA entry is one rank's shard (else it is the full EMA)."""
    return isinstance(state, dict) and state.get("format") == SHARD_FORMAT


def assemble_shards(shards: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Full fp32 CPU EMA from the shards of every rank (from ``state_dict`` under ZeRO-3)."""
    world = shards[0]["world_size"]
    if sorted(s["rank"] for s in shards) != list(range(world)):
        raise ValueError(f"EMA shards of ranks {[s['rank'] for s in shards]}, expected {world}")
    full = {
        name: torch.zeros(torch.Size(shape).numel(), dtype=torch.float32)
        for name, shape in shards[0]["shapes"].items()
    }
    for s in shards:
        for name, piece in s["shards"].items():
            full[name][s["starts"][name] : s["starts"][name] + piece.numel()] = piece
    return {name: t.view(shards[0]["shapes"][name]) for name, t in full.items()}


class EMA:
    """fp32 EMA of a module's (or engine's master) weights: decay * ema + (1 - decay) * param."""

    def __init__(
        self,
        module: nn.Module,
        decay: float,
        update_every: int = 1,
        *,
        device: torch.device | str | None = None,
        chunk_numel: int = 2**26,
        _engine: Any = None,
    ) -> None:
        """Copy the current parameters of a plain module (or, via ``from_engine``, the engine's
        fp32 masters) as the initial EMA. ``device``: where it lives (default: with the source).
        """
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        if update_every < 1:
            raise ValueError(f"EMA update_every must be >= 1, got {update_every}")
        self.decay = decay
        self.update_every = update_every
        self.chunk_numel = chunk_numel
        self._engine = _engine
        self._group = _group(_engine) if _engine is not None else None
        self.shadow: dict[str, torch.Tensor] = {}  # full shape, or flat when sharded
        self.starts: dict[str, int] = {}
        self.shapes: dict[str, torch.Size] = {}
        self.sharded_names: set[str] = set()
        with torch.no_grad():
            for name, src in self._sources(module):
                dev = device if device is not None else src.tensor.device
                self.shadow[name] = src.tensor.to(device=dev, dtype=torch.float32, copy=True)
                self.starts[name], self.shapes[name] = src.start, src.shape
                if src.sharded:
                    self.sharded_names.add(name)

    @classmethod
    def from_engine(cls, engine: Any, decay: float, update_every: int = 1, **kwargs: Any) -> EMA:
        """EMA of a DeepSpeed engine's fp32 master weights, sharded like them (module docstring)."""
        return cls(engine.module, decay, update_every, _engine=engine, **kwargs)

    @property
    def sharded(self) -> bool:
        """True when other ranks hold part of the EMA (ZeRO-1/2/3 engines)."""
        return bool(self.sharded_names)

    @property
    def zero3(self) -> bool:
        return self._engine is not None and any(
            hasattr(p, "ds_id") for p in self._engine.module.parameters()
        )

    def _sources(self, target: Any) -> Iterator[tuple[str, _Source]]:
        if self._engine is not None:
            if target is not self._engine and target is not self._engine.module:
                raise ValueError("this EMA follows its engine: pass the engine (or its module)")
            return _engine_sources(self._engine)
        return _plain_sources(target)

    @torch.no_grad()
    def update(self, target: Any, step: int) -> bool:
        """Fold the current weights into the EMA if ``step % update_every == 0``; local, no
        communication. ``target``: the engine (from_engine) or the module. Returns whether it
        updated. Call it on every rank after ``engine.step()``."""
        if step % self.update_every:
            return False
        weight = 1.0 - self.decay
        for name, src in self._sources(target):
            ema = self.shadow[name]
            # lerp_(end, w) = ema + w * (end - ema) = decay * ema + (1 - decay) * param
            ema.lerp_(src.tensor.reshape(ema.shape).to(ema.device, torch.float32), weight)
        return True

    @torch.no_grad()
    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The full EMA as fp32 CPU tensors keyed by parameter name, on every rank.

        Collective when sharded: every rank must call it.
        """
        if not self.sharded:
            return {n: t.detach().to("cpu", copy=True) for n, t in self.shadow.items()}
        import torch.distributed as dist

        rank = dist.get_rank(group=self._group)
        out: dict[str, torch.Tensor] = {}
        for names in self._chunks():
            sizes = [self.shapes[n].numel() for n in names]
            flat = torch.zeros(sum(sizes), dtype=torch.float32, device=self._device())
            offset = 0
            for name, size in zip(names, sizes, strict=True):
                piece = self.shadow[name].reshape(-1)
                if name in self.sharded_names or rank == 0:  # replicated pieces: rank 0 only
                    at = offset + self.starts[name]
                    flat[at : at + piece.numel()] = piece
                offset += size
            dist.all_reduce(flat, group=self._group)  # disjoint pieces: the sum is the whole
            for name, part in zip(names, flat.cpu().split(sizes), strict=True):
                out[name] = part.view(self.shapes[name]).clone()
        return out

    def _chunks(self) -> Iterator[list[str]]:
        """Parameter names in order, in runs of at most ``chunk_numel`` full elements."""
        chunk: list[str] = []
        size = 0
        for name, shape in self.shapes.items():
            if chunk and size + shape.numel() > self.chunk_numel:
                yield chunk
                chunk, size = [], 0
            chunk.append(name)
            size += shape.numel()
        if chunk:
            yield chunk

    def _device(self) -> torch.device:
        return next(iter(self.shadow.values())).device

    def state_dict(self) -> dict[str, Any]:
        """What this rank's checkpoint client state holds (module docstring): under ZeRO-3 this
        rank's shard, else the full EMA (collective on ZeRO-1/2). fp32 CPU tensors."""
        if not self.zero3:
            return self.full_state_dict()
        import torch.distributed as dist

        return {
            "format": SHARD_FORMAT,
            "rank": dist.get_rank(group=self._group),
            "world_size": dist.get_world_size(group=self._group),
            "shards": {n: t.detach().to("cpu", copy=True) for n, t in self.shadow.items()},
            "starts": dict(self.starts),
            "shapes": {n: list(s) for n, s in self.shapes.items()},
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from ``state_dict()``: this rank's shard, or a full EMA (this rank keeps its
        pieces of it). Names and shapes must match exactly."""
        shard = is_shard(state)
        values = state["shards"] if shard else state
        if set(values) != set(self.shadow):
            missing = sorted(set(self.shadow) - set(values))[:5]
            extra = sorted(set(values) - set(self.shadow))[:5]
            raise KeyError(f"EMA state does not match the model: missing {missing}, extra {extra}")
        for name, t in values.items():
            ema = self.shadow[name]
            if shard:
                if state["starts"][name] != self.starts[name] or t.numel() != ema.numel():
                    raise ValueError(f"EMA shard {name}: written by another partitioning")
                ema.copy_(t.reshape(ema.shape))
                continue
            if t.shape != self.shapes[name]:
                raise ValueError(f"EMA {name}: shape {tuple(t.shape)} != {self.shapes[name]}")
            start = self.starts[name]
            ema.copy_(t.reshape(-1)[start : start + ema.numel()].reshape(ema.shape))

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Load the EMA weights into a plain ``module`` (cast to its dtypes), e.g. for sampling.

        Collective when the EMA is sharded (it is assembled first).
        """
        names = {name for name, _ in module.named_parameters()}
        if names != set(self.shadow):
            missing = sorted(set(self.shadow) - names)[:5]
            extra = sorted(names - set(self.shadow))[:5]
            raise KeyError(f"module does not match the EMA: missing {missing}, extra {extra}")
        full = self.full_state_dict() if self.sharded else self.shadow
        for name, p in module.named_parameters():
            p.data.copy_(full[name].reshape(p.shape))

    @contextlib.contextmanager
    def swapped(self, module: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the EMA weights into a plain ``module``; restore them on exit."""
        if any(hasattr(p, "ds_id") for p in module.parameters()):
            raise ValueError("EMA.swapped needs a plain module; use copy_to on a separate copy")
        backup = {name: p.detach().clone() for name, p in module.named_parameters()}
        self.copy_to(module)
        try:
            yield module
        finally:
            with torch.no_grad():
                for name, p in module.named_parameters():
                    p.copy_(backup[name])
