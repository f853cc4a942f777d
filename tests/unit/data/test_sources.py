"""Listing a dataset: flat folders of every kind, CSV and JSON-lines manifests, the signer split,
the keypoints lookup rule and what a container binds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.data.media import BLUE, KINDS, RED, make_folder, numbered_video, solid_video, write
from text2sign.data.manifest import COLUMNS, write_manifest
from text2sign.data.samples import Bad, Sample, keypoints_path, signer_of, split_by_signer
from text2sign.data.sources import data_folders, first_valid_sample, iter_entries, list_samples
from text2sign.errors import DataError, UsageError


def fake_samples(signer_counts: dict[str, int]) -> list[Sample]:
    return [
        Sample(f"{s}_{i:03d}", Path(f"/d/{s}_{i:03d}.gif"), "c", s, "gif")
        for s, n in sorted(signer_counts.items())
        for i in range(n)
    ]


# Folders -------------------------------------------------------------------------------------


def test_signer_of():
    assert signer_of("s3_00012") == "s3"
    assert signer_of("alice_clip_7") == "alice"
    assert signer_of("nounderscore") == "nounderscore"


def test_folder_lists_every_kind_sorted_and_ignores_side_files(tmp_path):
    make_folder(tmp_path, kinds=KINDS, signers=2, per_signer=2)
    (tmp_path / "s0_000.keypoints.json").write_text("{}")
    (tmp_path / "lonely.txt").write_text("a caption without a video")
    (tmp_path / "manifest.csv").write_text("video,caption,signer\n")
    (tmp_path / ".t2s_cache").mkdir()
    (tmp_path / "not_a_sample").mkdir()  # no frames, no caption
    (tmp_path / "s0_000.txt").write_text("  two\n words ")
    listing = list_samples(tmp_path)
    assert listing.bad == []
    got = [(s.name, s.kind, s.signer, s.source.name) for s in listing.samples]
    assert got == [
        ("s0_000", "gif", "s0", "s0_000.gif"),
        ("s0_001", "mp4", "s0", "s0_001.mp4"),
        ("s1_000", "webm", "s1", "s1_000.webm"),
        ("s1_001", "frames", "s1", "s1_001"),
    ]
    assert listing.samples[0].caption == "two words"  # whitespace collapsed
    assert all(s.source.is_absolute() and s.cut == {} for s in listing.samples)


def test_missing_folder_and_empty_folder_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        list_samples(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value)
    with pytest.raises(DataError, match=r"no valid samples \(NAME.gif/.mp4/.webm or a frame"):
        list_samples(tmp_path)


def test_strict_listing_refuses_a_bad_entry(tmp_path):
    make_folder(tmp_path, kinds=("gif",), signers=1, per_signer=1)
    write(tmp_path, "orphan", solid_video([RED, BLUE]), "mp4", caption=None)
    assert [b.label for b in list_samples(tmp_path).bad] == ["orphan.mp4"]
    with pytest.raises(DataError, match=r"1 bad entries in .*: orphan.mp4 \(no caption\)"):
        list_samples(tmp_path, strict=True)


# Manifests -----------------------------------------------------------------------------------


def test_csv_manifest_paths_names_signers_and_cuts(tmp_path):
    clips = tmp_path / "clips"
    write(clips, "a", numbered_video(20), "mp4", caption=None)
    write(clips, "b", numbered_video(20), "frames", caption=None)
    elsewhere = write(tmp_path / "far", "c", numbered_video(4), "gif", caption=None)
    manifest = tmp_path / "lists" / "m.csv"
    manifest.parent.mkdir()
    manifest.write_text(
        "name,video,caption,signer,start,end,start_frame,end_frame\n"
        ',../clips/a.mp4,"hello, yes",alice,0.5,1.5,,\n'
        "b_cut,../clips/b,thanks,bob,,,2,\n"
        f'far,{elsewhere},"  no  \n  help",carol,,,,\n'  # absolute path; a two-line caption
    )
    samples = {s.name: s for s in list_samples(manifest).samples}
    assert sorted(samples) == ["a", "b_cut", "far"]
    a, b, far = samples["a"], samples["b_cut"], samples["far"]
    assert (a.kind, a.signer, a.caption) == ("mp4", "alice", "hello, yes")
    assert a.cut == {"start": 0.5, "end": 1.5}
    assert a.source == (clips / "a.mp4").absolute() and a.label == "m.csv line 2: ../clips/a.mp4"
    assert (b.kind, b.cut) == ("frames", {"start_frame": 2})
    assert far.source == elsewhere and far.caption == "no help"
    assert far.label.startswith("m.csv line 4")


def test_jsonl_manifest_takes_numbers_and_nulls(tmp_path):
    write(tmp_path, "a", numbered_video(10), "webm", caption=None)
    rows = [{"video": "a.webm", "caption": "hi", "signer": "s1", "start": None, "end": 0.5},
            {"name": "a2", "video": "a.webm", "caption": "hi", "signer": "s1", "start_frame": 3}]  # fmt: skip
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    a, a2 = list_samples(tmp_path / "m.jsonl").samples
    assert (a.name, a.cut, a2.name, a2.cut) == ("a", {"end": 0.5}, "a2", {"start_frame": 3})


@pytest.mark.parametrize("cut", ["end_frame=0", "end=0"])
def test_an_end_of_zero_is_a_bad_row_that_says_so(tmp_path, cut):
    write(tmp_path, "a", numbered_video(4), "mp4", caption=None)
    key, value = cut.split("=")
    (tmp_path / "m.csv").write_text(f"video,caption,signer,{key}\na.mp4,hi,s1,{value}\n")
    rows = list(iter_entries(tmp_path / "m.csv"))
    assert isinstance(rows[0], Bad) and "0 keeps no frame" in rows[0].reason


def test_jsonl_lines_end_at_newline_only(tmp_path):
    """JSON may carry U+2028, U+2029 and U+0085 unescaped; str.splitlines() split rows there."""
    write(tmp_path, "a", numbered_video(4), "mp4", caption=None)
    caption = "one\u2028two\u0085three\u2029four"
    row = json.dumps({"video": "a.mp4", "caption": caption, "signer": "s1"}, ensure_ascii=False)
    (tmp_path / "m.jsonl").write_text(row + "\n", encoding="utf-8")
    listing = list_samples(tmp_path / "m.jsonl")
    assert not listing.bad and len(listing.samples) == 1
    assert listing.samples[0].caption == "one two three four"  # whitespace collapsed, one row


def test_write_manifest_round_trips_and_writes_only_used_columns(tmp_path):
    write(tmp_path, "a", numbered_video(4), "mp4", caption=None)
    rows = [{"video": "a.mp4", "caption": 'say "hi", then go', "signer": "s1", "end": 0.3}]
    write_manifest(tmp_path / "m.csv", rows)
    assert (tmp_path / "m.csv").read_text().splitlines()[0] == "video,caption,signer,end"
    (sample,) = list_samples(tmp_path / "m.csv").samples
    assert sample.caption == 'say "hi", then go' and sample.cut == {"end": 0.3}
    assert set(COLUMNS) >= {"video", "caption", "signer", "start", "end", "start_frame"}


# Signer split --------------------------------------------------------------------------------


def test_split_is_signer_disjoint_and_deterministic():
    samples = fake_samples({f"s{i}": 10 + i for i in range(8)})
    train, val = split_by_signer(samples, 0.25, seed=3)
    assert {s.signer for s in train} and {s.signer for s in val}
    assert not {s.signer for s in train} & {s.signer for s in val}
    assert sorted(s.name for s in train + val) == sorted(s.name for s in samples)
    assert abs(len(val) / len(samples) - 0.25) < 0.1
    assert split_by_signer(samples, 0.25, seed=3) == (train, val)
    seeds = {tuple(s.name for s in split_by_signer(samples, 0.25, seed=k)[1]) for k in range(5)}
    assert len(seeds) > 1  # the seed picks the val signers


def test_split_uses_the_signer_field_not_the_name():
    samples = [Sample(f"clip{i}", Path(f"/d/{i}.mp4"), "c", "ab"[i % 2], "mp4") for i in range(6)]
    train, val = split_by_signer(samples, 0.5)
    assert {s.signer for s in train} | {s.signer for s in val} == {"a", "b"}
    assert not {s.signer for s in train} & {s.signer for s in val}


def test_split_keeps_one_signer_on_each_side():
    samples = fake_samples({"a": 5, "b": 5})
    train, val = split_by_signer(samples, 0.01)
    assert len(val) == 5 and len(train) == 5  # a tiny fraction still gets one signer
    train, val = split_by_signer(samples, 0.99)
    assert len(val) == 5 and len(train) == 5  # a huge fraction still leaves one for training


def test_split_without_validation_and_with_one_signer(caplog):
    samples = fake_samples({"a": 2, "b": 2})
    assert split_by_signer(samples, 0.0) == (samples, [])
    with pytest.raises(UsageError):
        split_by_signer(samples, 1.0)
    only = fake_samples({"only": 4})
    assert split_by_signer(only, 0.2) == (only, [])
    assert "one signer" in caplog.text


# Keypoints lookup, pre-submit check, container binds ----------------------------------------


def test_keypoints_lie_beside_the_source_without_its_suffix():
    assert keypoints_path(Path("clips/s3_00012.mp4")) == Path("clips/s3_00012.keypoints.json")
    assert keypoints_path(Path("d/s3_00012.GIF")) == Path("d/s3_00012.keypoints.json")
    assert keypoints_path(Path("train/01April-6694")) == Path("train/01April-6694.keypoints.json")
    name = "s0_00000-1-rgb_front"
    assert keypoints_path(Path(f"c/{name}.mp4")) == Path(f"c/{name}.keypoints.json")


def test_first_valid_sample_skips_bad_ones_and_stops_early(tmp_path, monkeypatch):
    (tmp_path / "a.mp4").write_bytes(b"\x00" * 100)
    (tmp_path / "a.txt").write_text("hi")
    make_folder(tmp_path, kinds=("mp4",), signers=2, per_signer=1)
    probed = []
    from text2sign.data import video

    real = video.probe
    monkeypatch.setattr(video, "probe", lambda s: probed.append(s.name) or real(s))
    assert first_valid_sample(tmp_path).name == "s0_000"
    assert probed == ["a", "s0_000"]  # s1_000 is never decoded
    (tmp_path / "m.csv").write_text("video,caption,signer\na.mp4,x,s\ngone.mp4,y,s\n")
    with pytest.raises(DataError, match=r"no usable row in manifest .*m\.csv \(2 bad: ") as err:
        first_valid_sample(tmp_path / "m.csv")
    assert "m.csv line 2: a.mp4 (corrupt MP4" in str(err.value)
    assert "m.csv line 3 (gone.mp4: file missing)" in str(err.value)


def test_data_folders_of_a_manifest_are_its_folder_and_its_videos_folders(tmp_path):
    (tmp_path / "d").mkdir()
    assert data_folders(tmp_path / "d") == [tmp_path / "d"]
    m = tmp_path / "lists" / "m.csv"
    m.parent.mkdir()
    m.write_text(
        "video,caption,signer\n"
        f"{tmp_path}/clips/a.mp4,x,s\n{tmp_path}/clips/sub/b.mp4,x,s\n"
        "local/c.gif,x,s\n/frames/clip7,x,s\nbad,row\n"
    )
    assert data_folders(m) == sorted([Path("/frames/clip7"), tmp_path / "clips", m.parent])
