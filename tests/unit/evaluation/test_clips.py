"""The evaluated clips: a seeded draw stratified over recordings, not the first n by name."""

from __future__ import annotations

from collections import Counter

import pytest

from text2sign.data import generate, open_dataset
from text2sign.evaluation.clips import draw, draw_positions


def how2sign_like(sizes: dict[str, int]) -> tuple[list[str], list[str]]:
    """Names that start with their recording's id, as How2Sign's do: sorted by name, the first
    clips all come from the first recordings."""
    names, recs = [], []
    for rec, n in sizes.items():
        for i in range(n):
            names.append(f"{rec}_{i:02d}-rgb_front")
            recs.append(rec)
    return names, recs


SIZES = {"-0a1": 14, "-3xQ": 12, "0Zk": 9, "2Fg": 15, "5Ab": 3, "9Lm": 11, "Bc2": 7, "xY7": 13}


def test_every_recording_gives_a_clip_before_any_gives_two():
    names, recs = how2sign_like(SIZES)
    first = sorted(range(len(names)), key=lambda i: names[i])[:12]
    assert len({recs[i] for i in first}) == 1  # the first 12 by name: one recording
    pos = draw_positions(names, recs, 12, seed=1234)
    counts = Counter(recs[i] for i in pos)
    assert len(pos) == 12 == len(set(pos)) and set(counts) == set(SIZES)  # all 8 recordings
    assert sorted(counts.values()) == [1, 1, 1, 1, 2, 2, 2, 2]
    # a recording with fewer clips than rounds gives all it has, the others share the rest
    small = Counter(recs[i] for i in draw_positions(names, recs, 40, seed=1234))
    assert small["5Ab"] == 3 and max(small.values()) - min(v for k, v in small.items()
                                                           if k != "5Ab") <= 1  # fmt: skip


def test_the_draw_is_seeded_and_independent_of_the_listing_order():
    names, recs = how2sign_like(SIZES)
    a = draw_positions(names, recs, 16, seed=7)
    assert draw_positions(names, recs, 16, seed=7) == a
    rev = draw_positions(names[::-1], recs[::-1], 16, seed=7)
    assert [names[::-1][i] for i in rev] == [names[i] for i in a]
    assert draw_positions(names, recs, 16, seed=8) != a
    everything = draw_positions(names, recs, 10_000, seed=7)
    assert sorted(everything) == list(range(len(names)))  # n above the split: every clip once


def test_draw_on_a_decoded_dataset_reports_clips_recordings_and_signers(tmp_path):
    generate(tmp_path / "s", 40, frames=2, size=16, num_signers=2)
    rows = ["name,video,caption,signer,recording"]
    for k, gif in enumerate(sorted((tmp_path / "s").glob("*.gif"))):
        signer = gif.stem.split("_")[0]
        rec = f"{signer}rec{k % 5}"  # 5 recordings per signer
        caption = (gif.with_suffix(".txt")).read_text().strip()
        rows.append(f"{rec}_{k:03d},s/{gif.name},{caption},{signer},{rec}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    _, val = open_dataset(tmp_path / "manifest.csv", num_frames=2, size=16, val_fraction=0.5)
    drawn = draw(val, 6, seed=1234)
    assert drawn.counts == {"clips": 6, "recordings": 5, "signers": 1}
    assert [val.cache.names[val.indices[i]] for i in drawn.positions] == drawn.names
    assert all(n.startswith(r) for n, r in zip(drawn.names, drawn.recordings, strict=True))
    info = drawn.to_json(1234)
    assert info["clips"] == 6 and sum(info["clips_per_recording"].values()) == 6
    assert info["seed"] == 1234 and "round-robin" in info["rule"]


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="recordings"):
        draw_positions(["a", "b"], ["r"], 1, seed=0)
