"""CPU threads from the job's allocation, never from the host's core count.

``os.cpu_count()`` and torch's default thread count see every core of the node, so three 1-CPU
jobs on one node each start a thread per core and fight over the cores (issue 9 measured 5.6×
less aggregate throughput). The allocation is the smallest of what is known:

1. ``SLURM_CPUS_PER_TASK`` (set by ``--cpus-per-task``; per rank);
2. the process's CPU affinity (cgroup/cpuset, SLURM's task binding or ``taskset``): the CPUs the
   task really has. It is this rank's own when srun bound the task (``SLURM_CPU_BIND_TYPE`` is
   set and not ``none``: one srun task per rank, each with its mask) or when it holds no more
   CPUs than ``SLURM_CPUS_PER_TASK``; otherwise the ranks on this node share it
   (``LOCAL_WORLD_SIZE``, e.g. torchrun's workers) and each takes its share. srun of SLURM
   22.05–23.02 does not inherit ``--cpus-per-task`` from the batch job, so a task bound to one
   CPU may still see ``SLURM_CPUS_PER_TASK=8``;
3. ``os.cpu_count()`` only where the platform has no affinity call (macOS).

An ``OMP_NUM_THREADS`` in the environment is honoured when it is at most the allocation (the
user asked for fewer) and capped to it otherwise. torch's intra-op threads, the DataLoader workers
(at most allocation − 1, so the trainer keeps one core) and the sampler (same process) follow;
``metadata.json`` records the numbers and where they came from.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Threads:
    allocated: int  # CPUs this rank may use
    source: str  # where ``allocated`` came from, for metadata.json
    torch: int  # torch intra-op threads
    workers: int  # DataLoader workers actually used
    omp_env: str | None  # OMP_NUM_THREADS as found in the environment
    affinity: int | None = None  # CPUs in the process's affinity mask (None: no affinity call)
    cpus: list[int] | None = None  # which CPUs the mask holds (None: no affinity call)
    shared_by: int | None = None  # ranks the mask is divided among (1: this rank's own mask)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _affinity() -> int | None:
    cpus = _cpu_list()
    return None if cpus is None else len(cpus)


def _cpu_list() -> list[int] | None:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def own_mask(env: dict[str, str], cpus: int) -> bool:
    """Whether the affinity mask of ``cpus`` CPUs is this rank's alone (see the module doc)."""
    bind = env.get("SLURM_CPU_BIND_TYPE", "").strip().rstrip(":").lower()
    if bind and bind != "none":  # srun bound this task: its mask is its own
        return True
    cpt = env.get("SLURM_CPUS_PER_TASK", "")
    return cpt.isdigit() and 0 < cpus <= int(cpt)


def allocation(
    environ: dict[str, str] | None = None, affinity: int | None = None
) -> tuple[int, str]:
    """(CPUs for this rank, where the number came from). Pure given its inputs: testable."""
    env = os.environ if environ is None else environ
    cpus = affinity if affinity is not None else _affinity()
    local = env.get("LOCAL_WORLD_SIZE", "")
    share = int(local) if local.isdigit() and int(local) > 0 else 1
    if cpus is not None and own_mask(env, cpus):
        n, source = cpus, f"CPU affinity ({cpus} CPUs, this rank's own mask)"
    elif cpus is not None:
        n, source = max(1, cpus // share), f"CPU affinity ({cpus} CPUs) / {share} local rank(s)"
    else:
        n = max(1, (os.cpu_count() or 1) // share)
        source = f"os.cpu_count() / {share} local rank(s) (no affinity call on this platform)"
    cpt = env.get("SLURM_CPUS_PER_TASK", "")
    if cpt.isdigit() and int(cpt) > 0:
        if int(cpt) <= n:
            return int(cpt), f"SLURM_CPUS_PER_TASK={cpt}"
        return n, f"{source}, below SLURM_CPUS_PER_TASK={cpt}"
    return n, source


def plan(
    workers_wanted: int, environ: dict[str, str] | None = None, affinity: int | None = None
) -> Threads:
    """The thread counts for this process (nothing is applied)."""
    env = os.environ if environ is None else environ
    cpus, source = allocation(env, affinity)
    omp = env.get("OMP_NUM_THREADS")
    n = cpus
    if omp and omp.isdigit() and int(omp) > 0:
        n = min(int(omp), cpus)
    workers = min(workers_wanted, max(0, cpus - 1))
    mask = affinity if affinity is not None else _affinity()
    listed = _cpu_list() if affinity is None else None
    local = env.get("LOCAL_WORLD_SIZE", "")
    shared = None
    if mask is not None:
        shared = 1 if own_mask(env, mask) or not local.isdigit() else max(1, int(local))
    return Threads(allocated=cpus, source=source, torch=n, workers=workers, omp_env=omp,
                   affinity=mask, cpus=listed, shared_by=shared)  # fmt: skip


def apply(workers_wanted: int = 0) -> Threads:
    """Size torch's intra-op pool from the allocation; return what was decided."""
    import torch

    t = plan(workers_wanted)
    torch.set_num_threads(t.torch)
    # Child processes (DataLoader workers, tokenizers) inherit the same budget.
    os.environ["OMP_NUM_THREADS"] = str(t.torch)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return t
