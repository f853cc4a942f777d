"""jobs/ has no import circle, and submit time and job time meet only at the shared bottom.

What runs on the compute node (launcher, supervisor, ending, sbatch_job) and what runs at submit
time (study, sweep, sbatch_params, record, inputs) never import each other: both import the shared
modules (spec, studyfile, container, snapshot). The doors on top (the command-line scripts and
submitit_study, which hands the job entry points to submitit) may import either side. Same
walker as text2sign's (tests/unit/test_layout.py): every import, at any depth, counts.
"""

from __future__ import annotations

from tests.unit.test_layout import REPO, cycles, graph, modules, stage_of, violations

JOBS = REPO / "jobs"
JOB_LAYERS: tuple[dict[str, tuple[str, ...]], ...] = (
    {
        "doors": (
            "jobs.submit",
            "jobs.sbatch_study",
            "jobs.submitit_study",
            "jobs.status",
            "jobs.bootstrap",
            "jobs.decider",
            "jobs.sbatch_decider",
        )
    },  # fmt: skip
    {
        "submit time": (
            "jobs.study",
            "jobs.sweep",
            "jobs.sbatch_params",
            "jobs.record",
            "jobs.inputs",
            "jobs.prepare",
            "jobs.halving_plan",
        ),  # fmt: skip
        "job time": (
            "jobs.launcher",
            "jobs.supervisor",
            "jobs.ending",
            "jobs.sbatch_job",
            "jobs.prepare_job",
        ),  # fmt: skip
    },
    {"shared": ("jobs.spec", "jobs.studyfile", "jobs.container", "jobs.snapshot", "jobs")},
)


def test_jobs_has_no_import_circle():
    assert not cycles(graph(JOBS, "jobs"))


def test_every_jobs_module_has_a_side():
    unplaced = [m for m in modules(JOBS) if stage_of(m, JOB_LAYERS) is None]
    assert not unplaced, f"add these to a side of JOB_LAYERS: {unplaced}"


def test_submit_time_and_job_time_import_only_the_shared_bottom():
    assert not violations(graph(JOBS, "jobs"), JOB_LAYERS, "jobs")


def test_the_jobs_checks_fail_on_a_circle_and_on_a_side_importing_the_other():
    g = {
        "jobs.ending": {"jobs.record"},
        "jobs.record": {"jobs.launcher"},
        "jobs.launcher": {"jobs.ending"},
    }  # fmt: skip  (the circle this layout removed)
    assert cycles(g) == ["jobs.ending → jobs.record → jobs.launcher → jobs.ending"]
    assert violations(g, JOB_LAYERS, "jobs") == [
        "jobs.ending (job time) imports jobs.record (submit time), a sibling stage",
        "jobs.record (submit time) imports jobs.launcher (job time), a sibling stage",
    ]
