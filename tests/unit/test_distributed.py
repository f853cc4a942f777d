"""Rank/world/device resolution from torchrun or SLURM variables (pure function)."""

from __future__ import annotations

import pytest

from text2sign.distributed import resolve_env
from text2sign.errors import UsageError


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
