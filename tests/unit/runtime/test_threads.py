"""CPU threads come from the job's allocation, never from the host's core count."""

from __future__ import annotations

from text2sign.runtime.threads import allocation, plan


def test_slurm_cpus_per_task_wins_over_a_larger_affinity():
    assert allocation({"SLURM_CPUS_PER_TASK": "2"}, affinity=64) == (2, "SLURM_CPUS_PER_TASK=2")


def test_a_task_bound_to_fewer_cpus_than_slurm_cpus_per_task_uses_what_it_has():
    """srun of SLURM 22.05-23.02 does not inherit --cpus-per-task: a task bound to one CPU still
    sees SLURM_CPUS_PER_TASK=8 (review item 12: it ran 8 threads on one CPU)."""
    n, source = allocation({"SLURM_CPUS_PER_TASK": "8"}, affinity=1)
    assert n == 1
    assert source == "CPU affinity (1 CPUs, this rank's own mask), below SLURM_CPUS_PER_TASK=8"
    t = plan(4, {"SLURM_CPUS_PER_TASK": "8"}, affinity=1)
    assert (t.torch, t.workers) == (1, 0)


def test_a_task_srun_bound_keeps_its_own_mask():
    """Issue 22: a 4-GPU run (srun: one task per rank, 8 CPUs each, bound) got 8 // 4 = 2."""
    env = {"LOCAL_WORLD_SIZE": "4", "SLURM_CPUS_PER_TASK": "8", "SLURM_CPU_BIND_TYPE": "mask_cpu:"}
    assert allocation(env, affinity=8) == (8, "SLURM_CPUS_PER_TASK=8")
    env.pop("SLURM_CPU_BIND_TYPE")  # no binding named, but the mask holds one task's CPUs
    assert allocation(env, affinity=8)[0] == 8
    bound = {"LOCAL_WORLD_SIZE": "2", "SLURM_CPU_BIND_TYPE": "mask_cpu:"}
    assert allocation(bound, affinity=3) == (3, "CPU affinity (3 CPUs, this rank's own mask)")
    assert plan(0, bound, affinity=3).shared_by == 1


def test_a_mask_the_ranks_share_is_divided():
    # no binding (task/none or cgroup only): every task sees the job's 32 CPUs
    env = {"LOCAL_WORLD_SIZE": "4", "SLURM_CPUS_PER_TASK": "8", "SLURM_CPU_BIND_TYPE": "none"}
    assert allocation(env, affinity=32)[0] == 8
    assert allocation({"LOCAL_WORLD_SIZE": "4"}, affinity=8)[0] == 2  # torchrun's 4 workers
    assert plan(0, {"LOCAL_WORLD_SIZE": "4"}, affinity=8).shared_by == 4


def test_the_plan_lists_the_cpus_of_the_mask():
    import os

    t = plan(0, {})
    assert t.cpus == sorted(os.sched_getaffinity(0)) and t.affinity == len(t.cpus)


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
