"""The decoded cache over every kind: built once, invalidated by what changes, the index fields,
frame sampling in the key, the Dataset, and the signer split over one cache."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.unit.data.media import (
    BLUE,
    GREEN,
    GREY,
    KINDS,
    RED,
    frame_number,
    make_folder,
    numbered_video,
    solid_video,
    write,
)
from text2sign.data import build as build_mod
from text2sign.data import video as video_mod
from text2sign.data.cache import DecodedCache, VideoTextDataset, open_dataset
from text2sign.data.sources import list_samples
from text2sign.data.video import load_path
from text2sign.errors import DataError

SIZE = 8


@pytest.fixture
def count_builds(monkeypatch):
    calls = []
    real = build_mod.build_part

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(build_mod, "build_part", counting)
    return calls


def _open(root: Path, num_frames: int = 3, size: int = SIZE, sampling: str = "first"):
    return DecodedCache.load_or_build(
        list_samples(root).samples, num_frames=num_frames, size=size, cache_dir=root / "cache",
        frame_sampling=sampling, root=root,
    )  # fmt: skip


def test_cache_is_built_once_and_reused(tmp_path, count_builds):
    make_folder(tmp_path)
    first = _open(tmp_path)
    second = _open(tmp_path)
    assert len(count_builds) == 1 and first.path == second.path
    assert first.videos.shape == (6, 3, SIZE, SIZE, 3) and first.videos.dtype == np.uint8
    assert isinstance(second.videos, np.memmap)
    assert first.names == [s.name for s in list_samples(tmp_path).samples]
    assert first.captions[0] == "caption 0 0" and first.signers == [
        "s0",
        "s0",
        "s1",
        "s1",
        "s2",
        "s2",
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_index_records_what_the_interface_promises(tmp_path, kind):
    source = write(tmp_path, "s1_a", numbered_video(12, 16), kind, caption="hello yes")
    (tmp_path / "m.csv").write_text(f"name,video,caption,signer,start_frame,end_frame\n"
                                    f"clip,{source.name},hello yes,alice,2,10\n")  # fmt: skip
    for root, name, signer, cut in [
        (tmp_path, "s1_a", "s1", {}),
        (tmp_path / "m.csv", "clip", "alice", {"start_frame": 2, "end_frame": 10}),
    ]:
        train, _ = open_dataset(root, num_frames=4, size=16, val_fraction=0.0)
        cache = train.cache
        index = json.loads((cache.path / "index.json").read_text())
        (record,) = index["samples"]
        assert index["root"] == str(tmp_path) and index["frame_sampling"] == "first"
        assert record["source"] == source.name  # relative to the dataset's folder
        assert (record["name"], record["caption"], record["signer"], record["kind"]) == (
            name, "hello yes", signer, kind,
        )  # fmt: skip
        assert {k: record[k] for k in cut} == cut and record["frames"] == (8 if cut else 12)
        assert "bytes" in record and "mtime_ns" in record and index["skipped"] == []
        assert cache.sources == [source.absolute()] and cache.signers == [signer]
        assert cache.source_frames(0).tolist() == [0, 1, 2, 3]
        assert [frame_number(f) for f in cache.videos[0]] == [2 * bool(cut) + t for t in range(4)]


def test_sources_outside_the_dataset_folder_are_recorded_absolute(tmp_path):
    far = write(tmp_path / "far", "x", numbered_video(3, 16), "mp4", caption=None)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "m.csv").write_text(f"video,caption,signer\n{far},hi,s\n")
    train, _ = open_dataset(tmp_path / "lists" / "m.csv", num_frames=2, size=16, val_fraction=0)
    index = json.loads((train.cache.path / "index.json").read_text())
    assert index["samples"][0]["source"] == str(far) and train.cache.sources == [far]
    assert train.cache.path.parent == tmp_path / "lists" / ".t2s_cache"  # beside the manifest


def test_uniform_sampling_is_part_of_the_key_and_spreads_over_the_clip(tmp_path, count_builds):
    write(tmp_path, "s0_a", numbered_video(40, 16), "mp4")
    first = _open(tmp_path, 4, 16, "first")
    uniform = _open(tmp_path, 4, 16, "uniform")
    assert first.path != uniform.path and len(count_builds) == 2
    assert [frame_number(f) for f in first.videos[0]] == [0, 1, 2, 3]
    assert [frame_number(f) for f in uniform.videos[0]] == [5, 15, 25, 35]
    assert uniform.source_frames(0).tolist() == [5, 15, 25, 35]


def test_changed_source_invalidates_the_cache(tmp_path, count_builds):
    make_folder(tmp_path, kinds=("mp4",))
    old = _open(tmp_path)
    path = tmp_path / "s1_000.mp4"
    write(tmp_path, "s1_000", solid_video([GREEN, GREEN, GREY], 16, 16), "mp4")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # robust to coarse mtimes
    new = _open(tmp_path)
    assert len(count_builds) == 2 and new.path != old.path
    j = new.names.index("s1_000")
    assert new.videos[j, 0, 0, 0, 1] > 200 and old.videos[j, 0, 0, 0, 0] > 200


def test_touching_one_frame_of_a_frame_folder_invalidates_the_cache(tmp_path, count_builds):
    make_folder(tmp_path, kinds=("frames",), signers=1, per_signer=1)
    old = _open(tmp_path)
    os.utime(tmp_path / "s0_000" / "001.png", ns=(10**18, 10**18))
    assert _open(tmp_path).path != old.path and len(count_builds) == 2


@pytest.mark.parametrize("change", ["caption", "added", "removed", "signer"])
def test_changed_sample_set_invalidates_the_cache(tmp_path, count_builds, change):
    make_folder(tmp_path)
    manifest = tmp_path / "m.csv"
    rows = [f"{s.source.name},{s.caption},{s.signer}" for s in list_samples(tmp_path).samples]
    manifest.write_text("video,caption,signer\n" + "\n".join(rows) + "\n")
    old = _open_manifest(manifest)
    if change == "caption":
        (tmp_path / "s0_000.txt").write_text("a new caption")
        rows[0] = rows[0].replace("caption 0 0", "a new caption")
    elif change == "added":
        write(tmp_path, "s9_000", solid_video([RED, BLUE]), "gif")
        rows.append("s9_000.gif,hi,s9")
    elif change == "removed":
        (tmp_path / "s2_001.mp4").unlink()
        rows.pop()
    else:
        rows[0] = rows[0].replace(",s0", ",s7")
    manifest.write_text("video,caption,signer\n" + "\n".join(rows) + "\n")
    expect = {"caption": 6, "added": 7, "removed": 5, "signer": 6}[change]
    new = _open_manifest(manifest)
    assert new.path != old.path and len(new) == expect
    if change != "signer":  # the folder view changes too
        assert len(_open(tmp_path)) == expect


def _open_manifest(manifest: Path) -> DecodedCache:
    train, _ = open_dataset(manifest, num_frames=2, size=SIZE, val_fraction=0.0)
    return train.cache


def test_other_decoding_settings_use_another_cache(tmp_path, count_builds):
    make_folder(tmp_path)
    paths = {
        _open(tmp_path, 3, SIZE).path,
        _open(tmp_path, 4, SIZE).path,
        _open(tmp_path, 3, 4).path,
    }
    assert len(paths) == 3 and len(count_builds) == 3


def test_losing_the_rename_race_uses_the_winners_cache(tmp_path, monkeypatch):
    make_folder(tmp_path, kinds=("gif",))
    real = os.rename

    def another_job_finishes_first(src, dst):
        if Path(dst).parent == tmp_path / "cache" and Path(src).name.endswith(".tmp"):
            shutil.copytree(src, dst)  # the other job's identical cache lands first
        return real(src, dst)  # ours then fails: the target exists

    monkeypatch.setattr(build_mod.os, "rename", another_job_finishes_first)
    assert len(_open(tmp_path)) == 6
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")] == []


def test_failed_build_leaves_no_cache_behind(tmp_path, monkeypatch):
    make_folder(tmp_path)

    def failing(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(video_mod, "decode_clip", failing)
    with pytest.raises(OSError, match="disk full"):
        _open(tmp_path)
    left = [p.relative_to(tmp_path / "cache") for p in (tmp_path / "cache").rglob("*")]
    assert all(p.name.endswith((".lock", ".parts")) for p in left), left


def test_read_only_cache_folder_is_a_one_line_error(tmp_path):
    make_folder(tmp_path, kinds=("gif",), signers=1, per_signer=1)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(DataError, match="cannot write the decoded cache .*data.cache_dir"):
        DecodedCache.load_or_build(list_samples(tmp_path).samples, num_frames=2, size=SIZE,
                                   cache_dir=blocker / "cache")  # fmt: skip


def test_dataset_items_are_scaled_tensors_and_do_not_decode(tmp_path, monkeypatch):
    make_folder(tmp_path, kinds=("frames",), signers=2, per_signer=1)
    cache = _open(tmp_path)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the Dataset must read the cache, not decode")

    monkeypatch.setattr(video_mod, "decode_clip", no_decoding)
    dataset = VideoTextDataset(cache, [1])
    item = dataset[0]
    video = item["video"]
    assert video.shape == (3, 3, SIZE, SIZE) and video.dtype == torch.float32  # (T, C, H, W)
    # Frames 0-1 red, then blue, frame 2 padded with the last (blue): exact -1 / +1.
    assert video[0, :, 0, 0].tolist() == [1.0, -1.0, -1.0]
    assert video[2, :, 0, 0].tolist() == [-1.0, -1.0, 1.0]
    assert (item["name"], item["caption"], item["index"]) == ("s1_000", "caption 1 0", 1)
    assert len(dataset) == 1 and dataset.captions == ["caption 1 0"]


def test_cache_pickles_without_its_array(tmp_path):
    make_folder(tmp_path, kinds=("mp4",), signers=1, per_signer=1)
    cache = _open(tmp_path)
    _ = cache.videos
    clone = pickle.loads(pickle.dumps(cache))
    assert clone._videos is None and np.array_equal(clone.videos, cache.videos)


@pytest.mark.parametrize("kinds", [("gif",), ("mp4",), ("webm",), ("frames",), KINDS])
def test_open_dataset_splits_by_signer_over_one_cache(tmp_path, kinds):
    make_folder(tmp_path, kinds=kinds, signers=4, per_signer=2)
    train, val = open_dataset(tmp_path, num_frames=3, size=SIZE, val_fraction=0.25)
    assert len(train) + len(val) == 8 and len(val) == 2
    signers = train.cache.signers
    assert not {signers[j] for j in train.indices} & {signers[j] for j in val.indices}
    assert train.cache is val.cache and (tmp_path / ".t2s_cache").is_dir()
    for j, source in enumerate(train.cache.sources):  # every kind decodes as on its own
        assert np.array_equal(train.cache.videos[j], load_path(source, 3, SIZE))
    # The cache folder inside the dataset does not disturb the next listing.
    again, _ = open_dataset(tmp_path, num_frames=3, size=SIZE, val_fraction=0.25)
    assert again.cache.path == train.cache.path and again.names == train.names
