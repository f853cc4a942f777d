"""Sweeps (jobs/sweep.py and jobs.study.plan): grid and zip, point names, validation before
anything is submitted, the reference point, --mail-user, per-point resources, study.json."""

from __future__ import annotations

import json
import os

import pytest

from jobs import record, sweep
from jobs.sbatch_params import check_mail, groups
from jobs.study import NAME_RE, plan
from tests.conftest import REPO
from tests.unit.jobs.test_sbatch_study import plan_cmd
from tests.unit.jobs.test_submit import no_slurm_env, normalise, submit
from text2sign.errors import UsageError


def make_plan(tmp_path, *sweeps: str, variants: str = "baseline", seeds: str = "0", **kw):
    return plan(variants=variants, seeds=seeds, profile="tiny", study="s", results=str(tmp_path),
                overrides=kw.pop("overrides", []), config_file=None, executor="local",
                resume=kw.pop("resume", False), input_check=False, sweeps=list(sweeps), **kw)  # fmt: skip


def points(p) -> list[str]:
    return list(dict.fromkeys(r.spec.name for r in p.runs))


# -- grammar and expansion ----------------------------------------------------------------------


def test_grid_is_the_cartesian_product_in_flag_order():
    axes = sweep.parse(["train.lr=1e-4,3e-4,1e-3", "ema.decay=0.99,0.999"])
    got = sweep.expand(axes)
    assert len(got) == 6
    assert got[0] == (("train.lr", "1e-4"), ("ema.decay", "0.99"))
    assert got[1] == (("train.lr", "1e-4"), ("ema.decay", "0.999"))
    assert got[-1] == (("train.lr", "1e-3"), ("ema.decay", "0.999"))
    assert sweep.expand([]) == [()]  # no sweep: one point, the plain variant


def test_zip_pairs_the_values_element_by_element():
    axes = sweep.parse(["train.lr=1e-4,3e-4", "ema.decay=0.99,0.999"])
    assert sweep.expand(axes, zipped=True) == [
        (("train.lr", "1e-4"), ("ema.decay", "0.99")),
        (("train.lr", "3e-4"), ("ema.decay", "0.999")),
    ]


def test_zip_of_unequal_lengths_is_one_line():
    axes = sweep.parse(["train.lr=1e-4,3e-4,1e-3", "ema.decay=0.99,0.999"])
    with pytest.raises(UsageError) as e:
        sweep.expand(axes, zipped=True)
    assert str(e.value) == (
        "--zip: every --sweep needs as many values (train.lr has 3, ema.decay has 2)"
    )


def test_values_with_commas_inside_brackets_or_quotes_stay_whole():
    assert sweep.split_values("[0.9,0.99],[0.8,0.9]") == ["[0.9,0.99]", "[0.8,0.9]"]
    assert sweep.split_values("'a,b', c") == ["'a,b'", "c"]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("train.lrr=1e-3", "--sweep: unknown key 'train.lrr' (did you mean 'train.lr'?)"),
        ("ema.decy=0.9", "--sweep: unknown key 'ema.decy' (did you mean 'ema.decay'?)"),
        ("zzz=1", "--sweep: unknown key 'zzz'"),
        ("train.seed=1,2", "--sweep train.seed: not sweepable; use --seeds"),
        ("train.lr", "--sweep 'train.lr': expected KEY=V1,V2,..."),
        ("train.lr=1e-3,", "--sweep train.lr: empty value in '1e-3,'"),
    ],
)
def test_bad_sweep_flags_are_one_line_usage_errors(item, message):
    with pytest.raises(UsageError) as e:
        sweep.parse([item])
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_key_given_twice_or_also_with_set_is_refused():
    with pytest.raises(UsageError, match="given twice"):
        sweep.parse(["train.lr=1e-3", "train.lr=3e-3"])
    with pytest.raises(UsageError, match="also given with --set"):
        sweep.parse(["train.lr=1e-3"], ["train.lr=0.1"])


# -- names ---------------------------------------------------------------------------------------


def test_point_names_are_readable_safe_and_stable(tmp_path):
    p = make_plan(tmp_path, "train.lr=1e-3,3e-4", "ema.decay=0.99,0.999")
    names = points(p)
    assert names == [
        "baseline__lr1e-3__decay0.99",
        "baseline__lr1e-3__decay0.999",
        "baseline__lr3e-4__decay0.99",
        "baseline__lr3e-4__decay0.999",
    ]
    assert all(NAME_RE.match(n) and ".." not in n for n in names)
    again = make_plan(tmp_path, "train.lr=1e-3,3e-4", "ema.decay=0.99,0.999")
    assert points(again) == names  # same input, same names
    assert [r.spec.run_dir.split("/")[-2] for r in p.runs] == names  # the run dir is the name


def test_values_that_resolve_alike_get_the_same_name_and_twice_is_refused(tmp_path):
    a = points(make_plan(tmp_path, "train.lr=1e-3"))
    b = points(make_plan(tmp_path, "train.lr=0.001"))
    c = points(make_plan(tmp_path, "train.lr=1.0e-3"))
    assert a == b == c == ["baseline__lr1e-3"]
    with pytest.raises(UsageError) as e:
        make_plan(tmp_path, "train.lr=1e-3,0.001")
    assert "train.lr=0.001 is the same point as train.lr=1e-3" in str(e.value)


def test_distinct_values_get_distinct_safe_names():
    short = {"data.root": "root", "slurm.extra": "extra"}
    names = {
        sweep.point_name("baseline", [("data.root", v)], short)
        for v in ("/a/b", "a/b", "a-b", "/a b", "a_b")
    }
    assert len(names) == 5 and all(NAME_RE.match(n) and ".." not in n for n in names)
    lossy = sweep.point_name("baseline", [("data.root", "/a/b")], short)
    assert lossy.startswith("baseline__root-a-b-") and lossy == sweep.point_name(
        "baseline", [("data.root", "/a/b")], short
    )
    listy = sweep.point_name("baseline", [("slurm.extra", ["--exclusive"])], short)
    assert NAME_RE.match(listy)


def test_keys_that_end_alike_keep_their_section():
    assert sweep.short_keys(["train.lr", "text.lr", "ema.decay"]) == {
        "train.lr": "train.lr",
        "text.lr": "text.lr",
        "ema.decay": "decay",
    }


def test_long_names_are_cut_with_a_hash():
    long = [(f"k{i}", "x" * 20) for i in range(8)]
    short = {k: k for k, _ in long}
    a = sweep.point_name("baseline", long, short)
    b = sweep.point_name("baseline", long[:-1] + [("k7", "y" * 20)], short)
    assert len(a) == sweep.MAX_NAME and len(b) == sweep.MAX_NAME and a != b


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.001, "1e-3"), (0.0003, "3e-4"), (2.5e-05, "2.5e-5"), (0.99, "0.99"), (1.0, "1.0"),
     (1e20, "1e20"), (3, "3"), (True, "true"), (None, "null"), ("x", "x")],
)  # fmt: skip
def test_canonical_values(value, text):
    assert sweep.canonical(value) == text


# -- plan: variants x points x seeds, values, reference, resources -----------------------------


def test_each_variant_times_each_point_times_each_seed(tmp_path):
    p = make_plan(tmp_path, "train.lr=1e-3,3e-3", variants="baseline,no_ema", seeds="0,1,2")
    assert len(p.runs) == 2 * 2 * 3
    assert points(p) == ["baseline__lr1e-3", "baseline__lr3e-3", "no_ema__lr1e-3", "no_ema__lr3e-3"]
    run = next(r for r in p.runs if r.spec.name == "no_ema__lr3e-3" and r.spec.seed == 2)
    assert run.spec.variant == "no_ema" and run.overrides == {"train.lr": "3e-3"}
    assert run.spec.overrides[-1] == "train.lr=3e-3" and run.spec.run_dir.endswith(
        "s/no_ema__lr3e-3/seed2"
    )
    assert p.sweep == {"mode": "grid", "keys": ["train.lr"]}


def test_a_bad_sweep_value_names_key_and_value(tmp_path):
    with pytest.raises(UsageError) as e:
        make_plan(tmp_path, "train.lr=1e-3,5")
    msg = str(e.value)
    assert msg.startswith("--sweep train.lr=5: ") and "less than 1" in msg and "\n" not in msg
    with pytest.raises(UsageError, match=r"--sweep ema.enabled=maybe: "):
        make_plan(tmp_path, "ema.enabled=true,maybe")


def test_reference_is_reference_flag_else_baseline_else_first(tmp_path):
    assert make_plan(tmp_path, variants="all").reference == ("baseline", "baseline")
    assert make_plan(tmp_path, variants="no_ema,text_finetuned").reference == (
        "no_ema",
        "first point",
    )
    p = make_plan(tmp_path, "train.lr=1e-3,3e-3", reference="baseline__lr3e-3")
    assert p.reference == ("baseline__lr3e-3", "--reference")
    assert make_plan(tmp_path, "train.lr=1e-3,3e-3").reference == (
        "baseline__lr1e-3",
        "first point",
    )
    with pytest.raises(UsageError) as e:
        make_plan(tmp_path, "train.lr=1e-3,3e-3", reference="baseline")
    assert str(e.value) == (
        "--reference 'baseline': not a point of this study (baseline__lr1e-3, baseline__lr3e-3)"
    )


@pytest.mark.parametrize("address", ["me@example.org", "first.last+t2s@uni-x.ac.uk", "root@n1"])
def test_plausible_mail_addresses_pass(address):
    assert check_mail(address) == address


@pytest.mark.parametrize("address", ["me", "me@", "@example.org", "a b@x.org", "me@x.org;id"])
def test_implausible_mail_addresses_are_refused(address):
    with pytest.raises(UsageError, match=r"--mail-user .*not an e-mail address"):
        check_mail(address)


def test_slurm_sweep_points_get_their_own_arrays(tmp_path):
    p = make_plan(tmp_path, "slurm.gpus_per_node=0,1", "train.lr=1e-3,3e-3", seeds="0,1")
    gs = groups(p.runs)
    assert len(gs) == 2 and sorted(len(g) for g in gs) == [4, 4]
    assert {r.slurm.gpus_per_node for r in gs[0]} == {0} and {r.slurm.gpus_per_node for r in gs[1]} == {1}  # fmt: skip
    assert all(len({r.config_hash for r in g if r.spec.seed == 0}) == 2 for g in gs)  # lr differs
    assert len(groups(make_plan(tmp_path, "train.lr=1e-3,3e-3", seeds="0,1").runs)) == 1


def test_study_json_carries_points_overrides_reference_sweep_code_mail(tmp_path):
    p = make_plan(tmp_path, "train.lr=1e-3,3e-3", "ema.decay=0.99", seeds="0,1",
                  zipped=False, mail_user="me@example.org")  # fmt: skip
    p.dir.mkdir()
    record.write_runs(p, record.study_record(p))
    rec = json.loads((p.dir / "study.json").read_text())
    assert rec["reference"] == "baseline__lr1e-3__decay0.99"
    assert rec["reference_source"] == "first point"
    assert rec["sweep"] == {"mode": "grid", "keys": ["train.lr", "ema.decay"]}
    assert rec["mail_user"] == "me@example.org"
    assert set(rec["code"]) == {"commit", "dirty", "diff_sha256", "untracked_ignored", "snapshot"}
    run = rec["runs"][-1]
    assert run["point"] == run["variant"] == "baseline__lr3e-3__decay0.99"
    assert run["base_variant"] == "baseline" and run["seed"] == 1
    assert run["overrides"] == {"train.lr": "3e-3", "ema.decay": "0.99"}
    assert run["run_dir"] == "baseline__lr3e-3__decay0.99/seed1"
    assert "-P" in run["command"] and "train.lr=3e-3" in run["command"]


def test_plain_variants_have_no_overrides_and_the_baseline_reference(tmp_path):
    p = make_plan(tmp_path, variants="all")
    p.dir.mkdir()
    record.write_runs(p, record.study_record(p))
    rec = json.loads((p.dir / "study.json").read_text())
    assert [(r["point"], r["base_variant"], r["overrides"]) for r in rec["runs"]] == [
        (v, v, {}) for v in ("baseline", "no_ema", "text_finetuned")
    ]
    assert rec["reference"] == "baseline" and rec["reference_source"] == "baseline"
    assert rec["sweep"] == {"mode": None, "keys": []} and rec["mail_user"] is None


# -- the real CLI: one line, exit 2, nothing written -------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sweep", "train.lrr=1e-3,3e-3"], "unknown key 'train.lrr' (did you mean 'train.lr'?)"),
        (["--sweep", "train.lr=1e-3,2"], "--sweep train.lr=2: key 'train.lr'"),
        (["--sweep", "train.lr=1e-3,3e-3", "--sweep", "ema.decay=0.9", "--zip"], "--zip: every"),
        (["--zip"], "--zip needs --sweep"),
        (["--sweep", "train.lr=1e-3", "--reference", "nope"], "--reference 'nope': not a point"),
        (["--mail-user", "nobody"], "--mail-user 'nobody': not an e-mail address"),
    ],
)
def test_bad_sweep_input_is_one_line_exit_2_and_writes_nothing(tmp_path, synth_data, args, message):
    proc = submit("--results", str(tmp_path), "--study", "sw-bad", "--executor", "local",
                  "--variants", "baseline", "--set", f"data.root={synth_data}", *args,
                  env=no_slurm_env())  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert list(tmp_path.iterdir()) == []


# -- what SLURM would get: one array per resources, the mail on the collector only ------------

GOLDEN = REPO / "tests" / "golden" / "sbatch_sweep.txt"
SWEEP_DRY = ["--variants", "baseline", "--sweep", "train.lr=1e-3,3e-3", "--sweep",
             "slurm.time_min=30,60", "--seeds", "0", "--mail-user", "me@example.org",
             "--study", "golden", "--dry-run", "--no-input-check"]  # fmt: skip


def test_dry_run_of_a_resource_sweep_prints_the_pinned_scripts(tmp_path):
    proc = submit(*SWEEP_DRY, "--results", str(tmp_path), "--executor", "slurm", env=no_slurm_env())
    assert proc.returncode == 0, proc.stderr
    text = normalise(proc.stdout, tmp_path)
    if os.environ.get("T2S_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "sbatch text changed: review, then T2S_UPDATE_GOLDEN=1"
    scripts = text.split("#!/bin/bash")[1:]
    assert len(scripts) == 3  # time 30, time 60, the collector
    assert ["#SBATCH --time=30" in scripts[0], "#SBATCH --time=60" in scripts[1]] == [True, True]
    assert all("--array=0-1%" in s for s in scripts[:2])  # 2 lr values each
    assert [("--mail-user=me@example.org" in s, "--mail-type=END,FAIL" in s) for s in scripts] == [
        (False, False), (False, False), (True, True)
    ]  # fmt: skip
    assert not (tmp_path / "golden").exists()


def test_plain_sbatch_door_takes_the_same_sweep_flags(tmp_path):
    proc = plan_cmd(*SWEEP_DRY, "--results", str(tmp_path), "--runtime", "none")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and "--time=30" in lines[0] and "--time=60" in lines[1]
    assert all("--array=0-1%" in line for line in lines[:2])
    assert "--mail-type=END,FAIL --mail-user=me@example.org" in lines[2]
    assert not any("--mail" in line for line in lines[:2])
    assert all("/.code/" in line for line in lines)  # every job starts in the snapshot
    bad = plan_cmd(
        "--sweep", "train.lrr=1", "--results", str(tmp_path), "--study", "x", "--dry-run"
    )
    assert bad.returncode == 2 and "(did you mean 'train.lr'?)" in bad.stderr
    assert list(tmp_path.iterdir()) == []


def test_resume_of_a_sweep_study_resubmits_only_the_points_not_completed(tmp_path):
    from text2sign.config import load_config
    from text2sign.run.rundir import RunDir

    first = make_plan(tmp_path, "train.lr=1e-3,3e-3", seeds="0,1")
    first.dir.mkdir()
    record.write_runs(first, record.study_record(first))
    done = next(r for r in first.runs if r.spec.name == "baseline__lr3e-3" and r.spec.seed == 1)
    cfg = load_config(profile="tiny", variant="baseline",
                      overrides=["train.lr=3e-3", "train.seed=1"])  # fmt: skip
    run = RunDir(done.spec.run_dir)
    run.prepare(cfg)
    run.write_status("COMPLETED")
    (run.path / "evaluation_metrics.json").write_text("{}")  # done: trained and evaluated
    again = make_plan(tmp_path, "train.lr=1e-3,3e-3", seeds="0,1", resume=True)
    assert [(r.spec.name, r.spec.seed) for r in again.runs] == [
        ("baseline__lr1e-3", 0), ("baseline__lr1e-3", 1), ("baseline__lr3e-3", 0)
    ]  # fmt: skip
    with pytest.raises(UsageError, match="holds a different config"):  # same point, other --set
        make_plan(tmp_path, "train.lr=3e-3", seeds="1", resume=True,
                  overrides=["train.weight_decay=0.5"])  # fmt: skip
