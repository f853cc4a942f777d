"""Rank/world/device resolution from torchrun or SLURM variables, and the step-statistics gather."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

from text2sign.errors import UsageError
from text2sign.runtime.distributed import (
    all_gather_floats,
    all_reduce_max,
    gather_to_main,
    pick_device,
    resolve_env,
    shard,
)


def test_torchrun_variables_win():
    env = resolve_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h",
                       "MASTER_PORT": "123", "SLURM_PROCID": "0", "SLURM_NTASKS": "8"})  # fmt: skip
    assert env == {
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "h",
        "MASTER_PORT": "123",
    }


def test_srun_tasks_map_to_ranks_and_local_rank_comes_from_slurm_localid():
    env = resolve_env({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
                       "MASTER_ADDR": "n1", "MASTER_PORT": "29500"})  # fmt: skip
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == ("5", "8", "1")


def test_srun_without_master_addr_is_a_clear_error():
    with pytest.raises(UsageError, match="without MASTER_ADDR"):
        resolve_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"})


def test_plain_process_is_a_world_of_one_on_a_free_port():
    env = resolve_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"})
    assert (env["RANK"], env["WORLD_SIZE"]) == ("0", "1") and int(env["MASTER_PORT"]) > 0


def test_gather_without_process_group_is_one_row():
    assert all_gather_floats([1.5, 2.0]).tolist() == [[1.5, 2.0]]
    assert all_reduce_max(3.0) == 3.0


def _gather_worker(rank: int, port: int, queue) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
    )
    try:
        rows = all_gather_floats([0.5 + rank, 100.0 * (rank + 1), float(rank == 1)])
        queue.put((rank, rows.tolist(), all_reduce_max(float(rank))))
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_ranks_gather_every_rank_in_rank_order():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_gather_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict((r, (rows, m)) for r, rows, m in (queue.get(timeout=60) for _ in procs))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    expected = [[0.5, 100.0, 0.0], [1.5, 200.0, 1.0]]  # row = rank; the trainer reduces columns
    assert results[0] == (expected, 1.0) and results[1] == (expected, 1.0)


def test_device_is_local_rank_modulo_the_visible_devices():
    # A site binding one GPU per task shows every rank a single device 0.
    assert pick_device(local_rank=3, visible=1) == torch.device("cuda", 0)
    assert pick_device(local_rank=5, visible=4) == torch.device("cuda", 1)
    assert pick_device(local_rank=2, visible=8) == torch.device("cuda", 2)
    assert pick_device(local_rank=3, visible=0) == torch.device("cpu")


def test_shards_cover_every_item_once_and_differ_by_at_most_one():
    for n in (0, 1, 5, 8):
        parts = [shard(n, r, 3) for r in range(3)]
        assert sorted(i for p in parts for i in p) == list(range(n))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert shard(5, 0, 2) == [0, 2, 4] and shard(5, 1, 2) == [1, 3]


def test_gather_to_main_without_process_group_is_the_object():
    assert gather_to_main({"a": 1}) == [{"a": 1}]


def test_a_world_of_one_needs_no_port():
    """Side-by-side trainers on one node used to pick a port each and could collide ("address
    already in use"); alone, the process group lives in an in-process store."""
    import subprocess
    import sys

    code = (
        "import os, torch, text2sign.runtime.distributed as d\n"
        "env = d.init()\n"
        "assert env.world_size == 1 and torch.distributed.is_initialized()\n"
        "t = torch.ones(1); torch.distributed.all_reduce(t); assert t.item() == 1.0\n"
        "print('ok', os.environ['MASTER_PORT'])\n"
        "d.shutdown()\n"  # as the CLI does: left to interpreter exit, gloo may abort (-6)
    )
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}  # fmt: skip
    with socket.socket() as taken:  # the port the trainer is told to use is already taken
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env.update(MASTER_PORT=str(port), DS_ACCELERATOR="cpu")
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == f"ok {port}"
