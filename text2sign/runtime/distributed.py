"""The one module that owns rank, world size and device.

Launch modes, all ending in the same ``torch.distributed`` environment variables:

* ``torchrun`` / ``deepspeed`` launchers set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT;
* ``srun`` (one task per GPU) sets SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID; the job layer
  (submitit's TorchDistributedEnvironment, or the sbatch script) exports MASTER_ADDR/PORT;
* a plain ``python -m text2sign train`` is a world of one on a free local port.

The device comes from LOCAL_RANK modulo the visible devices, never from the global rank, so
multi-node runs and sites that bind one GPU per task pick the right GPU.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import torch

from text2sign.errors import UsageError


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Return the torch.distributed variables for this process (pure: testable without SLURM)."""
    env = dict(os.environ if environ is None else environ)
    if "RANK" in env and "WORLD_SIZE" in env:
        out = {k: env[k] for k in ("RANK", "WORLD_SIZE") if k in env}
        out["LOCAL_RANK"] = env.get("LOCAL_RANK", "0")
    elif "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        out = {
            "RANK": env["SLURM_PROCID"],
            "WORLD_SIZE": env["SLURM_NTASKS"],
            "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
        }
        if "MASTER_ADDR" not in env:
            raise UsageError(
                "SLURM multi-task run without MASTER_ADDR: launch through jobs/submit.py or "
                "slurm/train.sbatch, which export it"
            )
    else:
        out = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}
    out["MASTER_ADDR"] = env.get("MASTER_ADDR", "127.0.0.1")
    out["MASTER_PORT"] = env.get("MASTER_PORT") or str(_free_port())
    return out


def pick_device(local_rank: int, visible: int) -> torch.device:
    """CUDA device ``local_rank mod visible`` (CPU when none is visible).

    A site that binds one GPU per task (``--gpus-per-task=1``, or CUDA_VISIBLE_DEVICES set per
    task) shows every rank a single device 0; a whole-node launch shows all of them.
    """
    if visible <= 0:
        return torch.device("cpu")
    return torch.device("cuda", local_rank % visible)


def init(*, deepspeed_backend: bool = True) -> DistEnv:
    """Initialise torch.distributed (gloo on CPU, NCCL on CUDA); return rank, world, device.

    The trainer initialises through DeepSpeed; ``evaluate``/``sample`` under ``torchrun`` pass
    ``deepspeed_backend=False`` (plain torch.distributed, no DeepSpeed import). A world of one
    initialises nothing there.
    """
    os.environ.update(resolve_env())
    cuda = torch.cuda.is_available()
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    device = pick_device(local_rank, torch.cuda.device_count() if cuda else 0)
    if cuda:
        torch.cuda.set_device(device)
    backend = "nccl" if cuda else "gloo"
    if deepspeed_backend:
        if not cuda:
            # DeepSpeed would guess the CPU accelerator anyway, with a warning; say it explicitly.
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        import deepspeed  # imported late: after DS_ACCELERATOR is set

        if world == 1 and not torch.distributed.is_initialized():
            _init_alone(backend)  # DeepSpeed then adopts this group
        deepspeed.init_distributed(dist_backend=backend, verbose=False)
    elif world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
    return DistEnv(
        rank=int(os.environ["RANK"]),
        world_size=world,
        local_rank=local_rank,
        device=device,
        backend=backend,
    )


def _init_alone(backend: str) -> None:
    """A world of one through an in-process store: no port to pick, so trainers started side by
    side on one node (a local study, SLURM jobs sharing a node) never race for the same port."""
    store = torch.distributed.HashStore()
    torch.distributed.init_process_group(backend, store=store, rank=0, world_size=1)


def current() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without torch.distributed."""
    if not torch.distributed.is_initialized():
        return 0, 1
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def shard(n: int, rank: int, world: int) -> list[int]:
    """Indices of ``range(n)`` this rank handles: strided, so ranks differ by at most one item."""
    return list(range(rank, n, world))


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` (picklable) on rank 0, in rank order; None on the other ranks.

    Collective: every rank must call it, also when its own work failed (send the error as the
    object). Objects travel through the process group (NCCL: via the current CUDA device).
    """
    if not torch.distributed.is_initialized():
        return [obj]
    rank, world = current()
    out: list[Any] | None = [None] * world if rank == 0 else None
    torch.distributed.gather_object(obj, out, dst=0)
    return out


def barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


def _comm_tensor(values: list[float]) -> torch.Tensor:
    """fp64 (1, K) tensor of ``values`` on the device the process group's backend needs."""
    t = torch.tensor([values], dtype=torch.float64)
    return t.cuda() if torch.distributed.get_backend() == "nccl" else t


def all_reduce_max(value: float) -> float:
    """Max of a float over all ranks (the NaN flag, agreed on before backward); identity alone."""
    if not torch.distributed.is_initialized():
        return value
    t = _comm_tensor([value])
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return float(t.item())


def all_gather_floats(values: list[float]) -> torch.Tensor:
    """Every rank's ``values`` in one collective: fp64 (world_size, len(values)), row = rank.

    The train loop's per-step statistics (loss, peak memory, stop flag) need different reductions
    (mean, max, max); gathering them together costs one round trip instead of three.
    """
    if not torch.distributed.is_initialized():
        return torch.tensor([values], dtype=torch.float64)  # (1, K)
    t = _comm_tensor(values)  # (1, K)
    out = [torch.empty_like(t) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(out, t)
    return torch.cat(out).cpu()  # (world, K)


def shutdown() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


class PeerFailed(UsageError):
    """Another rank failed at start-up; that rank's own error says why."""


def on_main_then_all(main_fn, all_fn=None):
    """Run ``main_fn`` on rank 0 first, then ``all_fn`` on the other ranks (default: the same).

    Collective. If rank 0 fails, it re-raises its error and every other rank raises
    ``PeerFailed`` instead of waiting forever in a barrier for a rank that has gone.
    """
    result, error = None, None
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        try:
            result = main_fn()
        except Exception as e:
            error = e
    if all_reduce_max(1.0 if error else 0.0) > 0:
        if error is not None:
            raise error
        raise PeerFailed("rank 0 failed at start-up; see its error")
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        result = (all_fn or main_fn)()
    return result
