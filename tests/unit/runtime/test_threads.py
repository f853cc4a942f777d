"""CPU threads come from the job's allocation, never from the host's core count."""

from __future__ import annotations

from text2sign.runtime.threads import allocation, plan


def test_slurm_cpus_per_task_wins_over_a_larger_affinity():
    assert allocation({"SLURM_CPUS_PER_TASK": "2"}, affinity=64) == (2, "SLURM_CPUS_PER_TASK=2")


def test_a_task_bound_to_fewer_cpus_than_slurm_cpus_per_task_uses_what_it_has():
    """srun of SLURM 22.05-23.02 does not inherit --cpus-per-task: a task bound to one CPU still
    sees SLURM_CPUS_PER_TASK=8 (review item 12: it ran 8 threads on one CPU)."""
    n, source = allocation({"SLURM_CPUS_PER_TASK": "8"}, affinity=1)
    assert (
        n == 1 and source == "CPU affinity (1 CPUs) / 1 local rank(s), below SLURM_CPUS_PER_TASK=8"
    )
    t = plan(4, {"SLURM_CPUS_PER_TASK": "8"}, affinity=1)
    assert (t.torch, t.workers) == (1, 0)


def test_affinity_is_shared_by_the_local_ranks_of_one_launcher():
    n, source = allocation({"LOCAL_WORLD_SIZE": "4"}, affinity=16)
    assert n == 4 and "affinity (16 CPUs) / 4 local rank" in source
    assert allocation({"LOCAL_WORLD_SIZE": "4"}, affinity=2)[0] == 1  # never 0


def test_omp_num_threads_is_honoured_below_the_allocation_and_capped_above():
    assert plan(0, {"SLURM_CPUS_PER_TASK": "4", "OMP_NUM_THREADS": "1"}, affinity=64).torch == 1
    capped = plan(0, {"SLURM_CPUS_PER_TASK": "2", "OMP_NUM_THREADS": "32"}, affinity=64)
    assert (capped.torch, capped.allocated, capped.omp_env) == (2, 2, "32")


def test_without_omp_the_allocation_sets_the_threads():
    t = plan(0, {"SLURM_CPUS_PER_TASK": "3"}, affinity=64)
    assert (t.torch, t.source) == (3, "SLURM_CPUS_PER_TASK=3")


def test_dataloader_workers_leave_the_trainer_one_cpu():
    assert plan(8, {"SLURM_CPUS_PER_TASK": "4"}, affinity=64).workers == 3
    assert plan(8, {"SLURM_CPUS_PER_TASK": "1"}, affinity=64).workers == 0
    assert plan(2, {"SLURM_CPUS_PER_TASK": "16"}, affinity=64).workers == 2  # never more than asked
