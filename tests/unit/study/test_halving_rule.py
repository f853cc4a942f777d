"""The successive-halving rule (text2sign/study/halving.py): paired evidence against the best,
clustered by seed × recording, Holm over the points, the cap, missing evidence kept."""

from __future__ import annotations

import math

import pytest

from text2sign.study.halving import Clip, Rung, RunValue, decide, min_keep, rung_steps, survivors

RUNG = Rung(index=0, steps=100, final_steps=900, seeds=2)


def run(values: list[float], recordings: int = 6) -> RunValue:
    """A run with one clip per value, clip i from recording i mod ``recordings``."""
    clips = tuple(Clip(f"c{i}", f"r{i % recordings}", v) for i, v in enumerate(values))
    return RunValue(value=sum(values) / len(values), clips=clips)


def point(offsets: list[float], base: float = 1.0, clips: int = 6) -> dict[int, RunValue]:
    """Seed s: every clip at base + offsets[s] (+ a clip-specific pattern shared by all points)."""
    return {s: run([base + o + 0.01 * i for i in range(clips)]) for s, o in enumerate(offsets)}


def by_point(decisions):
    return {d.point: d for d in decisions}


def test_a_point_worse_in_every_clip_and_seed_is_dropped_with_its_evidence():
    values = {"good": point([0.0, 0.0]), "bad": point([0.5, 0.4])}
    d = by_point(decide(values, metric="dtw_mje", better="lower", alpha=0.05, eta=2, rung=RUNG))
    assert d["good"].keep and d["good"].why == "best"
    bad = d["bad"]
    assert not bad.keep and bad.why.startswith("worse than good")
    assert bad.effect == pytest.approx(0.45)  # mean of the 12 seed × recording means
    assert bad.ci95[0] < 0.45 < bad.ci95[1] and bad.ci95[0] > 0
    # 12 clusters (2 seeds × 6 recordings), every one worse: exact p = 1/2^12; one test: Holm = p
    assert (bad.n_seeds, bad.n_clusters, bad.n_clips) == (2, 12, 12)
    assert bad.p == pytest.approx(2**-12) and bad.p_holm == pytest.approx(2**-12)
    assert bad.steps_not_spent == 2 * 800 and d["good"].steps_not_spent == 0
    assert bad.to_json()["ci95"] == list(bad.ci95)


def test_higher_is_better_turns_the_test_around():
    values = {"good": point([0.0, 0.0]), "bad": point([-0.5, -0.4])}  # lower PSNR: worse
    d = by_point(decide(values, metric="psnr", better="higher", alpha=0.05, eta=2, rung=RUNG))
    assert d["good"].keep and not d["bad"].keep
    assert d["bad"].effect == pytest.approx(-0.45)
    assert d["bad"].ci95[1] < 0


def test_a_point_not_worse_is_kept():
    values = {"a": point([0.0, 0.0]), "b": point([0.002, -0.001])}
    d = by_point(decide(values, metric="m", better="lower", alpha=0.05, eta=2, rung=RUNG))
    assert d["a"].keep and d["b"].keep
    assert d["b"].p is not None and d["b"].p_holm >= 0.05


def test_two_seeds_without_clips_cannot_drop_anything():
    values = {"a": {0: RunValue(1.0), 1: RunValue(1.0)}, "b": {0: RunValue(9.0), 1: RunValue(9.0)}}
    d = by_point(decide(values, metric="final_loss", better="lower", alpha=0.05, eta=2, rung=RUNG))
    assert d["b"].keep and d["b"].p == 0.25 and d["b"].n_clusters == 2


def test_a_failed_run_is_missing_evidence_never_worse():
    failed = RunValue(None, reason="run FAILED: exit 1")
    values = {
        "a": point([0.0, 0.0]),
        "dead": {0: failed, 1: failed},
        "half": {0: point([0.5])[0], 1: failed},  # one seed left: 6 clusters
    }
    d = by_point(decide(values, metric="m", better="lower", alpha=0.05, eta=3, rung=RUNG))
    assert d["dead"].keep and d["dead"].why.startswith("no evidence")
    assert "run FAILED: exit 1" in d["dead"].why and d["dead"].p is None
    assert d["half"].n_seeds == 1 and d["half"].missing == ["seed1: run FAILED: exit 1"]
    assert d["half"].p == pytest.approx(2**-6)  # seed 0 alone, every recording worse
    assert not d["half"].keep  # p Holm (one test) 1/64 < 0.05: the evidence of seed 0 suffices


def test_holm_over_the_points_keeps_what_one_test_alone_would_drop():
    # 5 recordings × 1 seed, all worse: p = 1/32 = 0.031 < 0.05 for one point; three such points
    # are a family of 3: Holm 0.094 each, so none is dropped.
    one_seed = Rung(index=0, steps=10, final_steps=90, seeds=1)

    def p5(off):
        return {0: run([1.0 + off + 0.01 * i for i in range(5)], recordings=5)}

    alone = decide({"a": p5(0), "b": p5(0.3)}, metric="m", better="lower", alpha=0.05, eta=2,
                   rung=one_seed)  # fmt: skip
    assert not by_point(alone)["b"].keep
    three = by_point(decide({"a": p5(0), "b": p5(0.3), "c": p5(0.2), "d": p5(0.1)}, metric="m",
                            better="lower", alpha=0.05, eta=2, rung=one_seed))  # fmt: skip
    for p in "bcd":
        assert three[p].p == pytest.approx(1 / 32)
        assert three[p].p_holm == pytest.approx(3 / 32) and three[p].keep


def test_a_margin_keeps_a_point_worse_by_less():
    # 5 % worse in every clip and seed: dropped at margin 0 and 2 %, kept at 10 % (the effect
    # and its interval are reported as they are, whatever the margin)
    values = {"a": point([0.0, 0.0]), "b": point([0.05, 0.05])}
    for margin, keep in ((0.0, False), (0.02, False), (0.10, True)):
        d = by_point(decide(values, metric="m", better="lower", alpha=0.05, eta=2, rung=RUNG,
                            margin=margin))  # fmt: skip
        assert d["b"].keep is keep and d["b"].effect == pytest.approx(0.05), margin
    with pytest.raises(ValueError, match="margin"):
        decide(values, metric="m", better="lower", alpha=0.05, eta=2, rung=RUNG, margin=-0.1)


def test_worse_by_one_seed_only_is_kept():
    # Seed 0 much worse on every recording, seed 1 a little better on every one: the 12
    # cluster means give p = 1/64 < 0.05, but the point is not worse in every seed.
    values = {"a": point([0.0, 0.0]), "b": point([1.0, -0.01])}
    d = by_point(decide(values, metric="m", better="lower", alpha=0.05, eta=2, rung=RUNG))
    assert d["b"].p == pytest.approx(1 / 64) and d["b"].worse_in_every_seed is False
    assert d["b"].keep and "not worse in every matched seed" in d["b"].why


def test_the_cap_keeps_at_least_n_over_eta():
    values = {"a": point([0.0, 0.0]), "b": point([0.5, 0.5]), "c": point([0.3, 0.3]),
              "d": point([0.9, 0.9])}  # fmt: skip
    d = decide(values, metric="m", better="lower", alpha=0.05, eta=2, rung=RUNG)
    assert min_keep(4, 2) == 2 and len(survivors(d)) == 2
    back = [x for x in d if x.keep and x.point != "a"]
    assert len(back) == 1 and "kept by the cap" in back[0].why
    assert all(x.p_holm < 0.05 for x in d if x.point != "a")  # all three were shown worse


def test_the_budget_caps_the_survivors_and_never_drops_the_best():
    values = {"a": point([0.0, 0.0]), "b": point([0.002, -0.001]), "c": point([0.003, 0.0])}
    d = by_point(decide(values, metric="m", better="lower", alpha=0.05, eta=3, rung=RUNG,
                        max_keep=1))  # fmt: skip
    assert [p for p, x in d.items() if x.keep] == ["a"]
    assert "dropped by the budget" in d["b"].why and d["b"].steps_not_spent == 1600


def test_no_value_anywhere_keeps_everything():
    failed = RunValue(None, reason="N/A")
    d = decide({"a": {0: failed}, "b": {0: failed}}, metric="m", better="lower", alpha=0.05,
               eta=2, rung=RUNG)  # fmt: skip
    assert all(x.keep and x.why.startswith("no evidence") for x in d)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="better"):
        decide({}, metric="m", better="up", alpha=0.05, eta=2, rung=RUNG)
    with pytest.raises(ValueError, match="alpha"):
        decide({}, metric="m", better="lower", alpha=1.5, eta=2, rung=RUNG)
    with pytest.raises(ValueError, match="eta"):
        decide({}, metric="m", better="lower", alpha=0.05, eta=1, rung=RUNG)


def test_rung_budgets_grow_by_eta_and_end_at_the_final_budget():
    assert rung_steps(900, 3, 3) == [100, 300, 900]
    assert rung_steps(2000, 3, 2, first=200) == [200, 2000]
    assert rung_steps(50, 2, 1) == [50]
    with pytest.raises(ValueError, match="do not grow"):
        rung_steps(100, 3, 3, first=60)
    assert math.isclose(min_keep(9, 3), 3) and min_keep(1, 3) == 1
