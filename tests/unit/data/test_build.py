"""Building the decoded cache: in parallel (every CPU of the allocation), in parts that a job
array can share, resumable, then merged; what a build in parts gives equals a build in one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from text2sign.data import build, decode_pool
from text2sign.data.cache import DecodedCache, make_plan
from text2sign.data.sources import list_samples
from text2sign.data.synth import generate


@pytest.fixture(scope="module")
def mp4s(tmp_path_factory):
    """40 synthetic mp4 clips and 2 that do not decode: more than the pool's minimum."""
    root = tmp_path_factory.mktemp("mp4s")
    generate(root, 40, frames=6, size=16, fmt="mp4")
    for name in ("zz_bad1", "zz_bad2"):
        (root / f"{name}.mp4").write_bytes(b"\x00" * 300)
        (root / f"{name}.txt").write_text("hello yes")
    return root


def _plan(root, cache_dir):
    samples = list_samples(root).samples
    return make_plan(samples, num_frames=4, size=16, cache_dir=cache_dir, root=root,
                     frame_sampling="uniform")  # fmt: skip


def test_two_workers_decode_what_one_decodes(mp4s, tmp_path):
    samples = list_samples(mp4s).samples
    assert len(samples) >= decode_pool.POOL_MIN_CLIPS
    args = dict(num_frames=4, size=16, sampling="uniform")
    one = decode_pool.decode_into(samples, tmp_path / "one.npy", workers=1, **args)
    two = decode_pool.decode_into(samples, tmp_path / "two.npy", workers=2, **args)
    assert one == two and [d.row for d in two] == list(range(len(samples)))
    assert sum(d.error is not None for d in two) == 2
    assert np.array_equal(np.load(tmp_path / "one.npy"), np.load(tmp_path / "two.npy"))


def test_a_cache_built_in_parts_equals_one_built_whole(mp4s, tmp_path):
    whole = _plan(mp4s, tmp_path / "a")
    build.ensure(whole, workers=1)
    parts = _plan(mp4s, tmp_path / "b")
    n = 3
    for k in (2, 0, 1):  # any order, as array tasks finish
        part = build.build_part(parts, k, n, workers=2, quiet=True)
        assert not build.merge(parts, n)  # not done yet: the part's keypoints may be pending
        build.mark_done(part)
        assert build.merge(parts, n) == (k == 1)  # the last one merges
    a, b = DecodedCache(whole.final), DecodedCache(parts.final)
    assert a.names == b.names and len(a) == 40
    assert a.records == b.records and np.array_equal(a.videos, b.videos)
    assert [s.label for s in a.skipped] == [s.label for s in b.skipped]
    assert not parts.parts_dir.exists()  # merged parts are removed


def test_a_built_part_is_never_decoded_again(mp4s, tmp_path, monkeypatch):
    plan = _plan(mp4s, tmp_path)
    build.build_part(plan, 1, 4, workers=1, quiet=True)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(build, "decode_into", no_decoding)
    again = build.build_part(plan, 1, 4, workers=1, quiet=True)  # a requeued task
    assert len(again.records) == len(plan.shard(1, 4))


def test_a_finished_set_of_parts_is_merged_by_the_next_reader(mp4s, tmp_path):
    """The stage's last task died between its part and the merge: the trainer merges."""
    plan = _plan(mp4s, tmp_path)
    for k in range(2):
        build.mark_done(build.build_part(plan, k, 2, workers=1, quiet=True))
    train = DecodedCache.load_or_build(list_samples(mp4s).samples, num_frames=4, size=16,
                                       cache_dir=tmp_path, root=mp4s, frame_sampling="uniform")  # fmt: skip
    assert train.path == plan.final and len(train) == 40
    index = json.loads((plan.final / "index.json").read_text())
    assert {s["name"] for s in index["skipped"]} == {"zz_bad1", "zz_bad2"}


def test_a_trainer_that_waited_while_another_built_the_cache_uses_it(mp4s, tmp_path, monkeypatch):
    """Regression (CI, 2026-12-07): trainers starting together on a fresh dataset each built part
    0; the first to merge removed the parts folder, and the next crashed with FileNotFoundError
    on its temporary file. Now the second waits for the first and decodes nothing."""
    import threading

    plan = _plan(mp4s, tmp_path)
    errors: list[BaseException] = []

    def second_trainer():
        try:
            build.ensure(plan, workers=1)
        except BaseException as e:  # noqa: BLE001 - the test reports it
            errors.append(e)

    with build._lock(build.ensure_lock(plan)):  # the first trainer is building
        waiting = threading.Thread(target=second_trainer)
        waiting.start()
        part = build.build_part(plan, 0, 1, workers=1, quiet=True)
        build.mark_done(part)
        assert build.merge(plan, 1)

        def no_decoding(*args, **kwargs):
            raise AssertionError("decoded again")

        monkeypatch.setattr(build, "decode_into", no_decoding)
    waiting.join(timeout=60)
    assert not waiting.is_alive() and not errors, errors
    assert len(DecodedCache(plan.final)) == 40
