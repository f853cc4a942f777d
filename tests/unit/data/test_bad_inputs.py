"""Every bad input of a dataset: named in one warning line and skipped, the other samples used
whole; refused with ``strict``; a dataset without a usable sample is one line (exit 2 at the
CLI). Each case is a real broken file (truncated by bytes, zero bytes, a codec FFmpeg lacks, ...)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.unit.data.media import (
    GREEN,
    RED,
    numbered_video,
    solid_video,
    write,
    write_mp4_with_keyframes,
)
from text2sign.data.cache import DEFAULT_CACHE_SUBDIR, open_dataset
from text2sign.data.manifest import write_manifest
from text2sign.data.sources import list_samples
from text2sign.data.video import load_path
from text2sign.errors import DataError

FRAMES, SIZE = 4, 16


def good_set(root: Path) -> dict[str, Path]:
    """Two good clips of two signers (an mp4 and a GIF): name -> source."""
    return {
        "g1_a": write(root, "g1_a", numbered_video(6, SIZE), "mp4", "hello yes"),
        "g2_b": write(root, "g2_b", numbered_video(5, SIZE)[::-1].copy(), "gif", "thanks no"),
    }


def _cut_bytes(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def noise(n: int = 10) -> np.ndarray:
    """Incompressible frames, so that cutting bytes cuts frames."""
    return np.random.default_rng(0).integers(0, 255, (n, SIZE, SIZE, 3), np.uint8)


# Folder cases: each writes its bad entry into ``root`` and returns (label, reason) -------------


def gif_truncated(root):
    _cut_bytes(write(root, "bad_x", noise(3), "gif"), 2 / 3)
    return "bad_x.gif", "corrupt GIF"


def gif_truncated_last_frame(root):
    path = write(root, "bad_x", noise(3), "gif")
    path.write_bytes(path.read_bytes()[:-40])  # only decoding the last frame notices
    return "bad_x.gif", "corrupt GIF"


def gif_garbage(root):
    (root / "bad_x.gif").write_bytes(b"GIF89a" + b"\x00garbage" * 10)
    (root / "bad_x.txt").write_text("hello")
    return "bad_x.gif", "corrupt GIF"


def png_named_gif(root):
    Image.new("RGB", (SIZE, SIZE)).save(root / "bad_x.gif", format="PNG")
    (root / "bad_x.txt").write_text("hello")
    return "bad_x.gif", "corrupt GIF: not a GIF but PNG"


def no_caption(root):
    write(root, "bad_x", solid_video([RED, GREEN]), "mp4", caption=None)
    return "bad_x.mp4", "no caption"


def empty_caption(root):
    write(root, "bad_x", solid_video([RED, GREEN]), "gif", caption="  \n\t ")
    return "bad_x.txt", "empty caption"


def non_utf8_caption(root):
    write(root, "bad_x", solid_video([RED, GREEN]), "webm", caption=None)
    (root / "bad_x.txt").write_bytes(b"caf\xe9 \xff")  # Latin-1, not UTF-8
    return "bad_x.txt", "not valid UTF-8"


def broken_link(root):
    (root / "bad_x.mp4").symlink_to(root / "missing.mp4")  # unreadable, even for root
    (root / "bad_x.txt").write_text("hello")
    return "bad_x.mp4", "unreadable: broken link"


def zero_byte_mp4(root):
    (root / "bad_x.mp4").write_bytes(b"")
    (root / "bad_x.txt").write_text("hello")
    return "bad_x.mp4", "empty file (0 bytes)"


def zero_byte_gif(root):
    (root / "bad_x.gif").write_bytes(b"")
    (root / "bad_x.txt").write_text("hello")
    return "bad_x.gif", "empty file (0 bytes)"


def mp4_truncated(root):  # the index (moov) is written last: a cut file has none
    _cut_bytes(write(root, "bad_x", noise(), "mp4"), 0.6)
    return "bad_x.mp4", "corrupt MP4: Invalid data found when processing input"


def mp4_truncated_faststart(root):  # the index comes first: the frames run out mid-stream
    path = write_mp4_with_keyframes(root / "bad_x.mp4", noise(), every=5, faststart=True)
    (root / "bad_x.txt").write_text("hello")
    _cut_bytes(path, 0.6)
    return "bad_x.mp4", "corrupt MP4"


def webm_truncated(root):  # FFmpeg reads the rest without an error: the duration tells
    _cut_bytes(write(root, "bad_x", noise(20), "webm"), 0.5)
    return "bad_x.webm", "truncated: decoded"


def mp4_unknown_codec(root):
    path = write(root, "bad_x", solid_video([RED, GREEN]), "mp4")
    path.write_bytes(path.read_bytes().replace(b"avc1", b"zzz9"))  # a codec FFmpeg lacks
    return "bad_x.mp4", "unsupported codec"


def mp4_not_a_video(root):
    (root / "bad_x.mp4").write_bytes(os.urandom(3000))
    (root / "bad_x.txt").write_text("hello")
    return "bad_x.mp4", "corrupt MP4"


def frames_corrupt_png(root):
    folder = write(root, "bad_x", solid_video([RED, GREEN, RED]), "frames")
    _cut_bytes(folder / "001.png", 0.5)
    return "bad_x/", "corrupt frame 001.png"


def frames_none(root):
    (root / "bad_x").mkdir()
    (root / "bad_x" / "readme.md").write_text("no frames here")
    (root / "bad_x.txt").write_text("hello")
    return "bad_x/", "frame folder holds no .png/.jpg frames"


def duplicate_name(root):
    write(root, "g1_a", solid_video([RED, GREEN]), "webm", caption=None)  # g1_a.mp4 exists
    return "g1_a.webm", "duplicate name 'g1_a': g1_a.mp4 has it too"


FOLDER_CASES = [
    gif_truncated, gif_truncated_last_frame, gif_garbage, png_named_gif, no_caption,
    empty_caption, non_utf8_caption, broken_link, zero_byte_mp4, zero_byte_gif, mp4_truncated,
    mp4_truncated_faststart, webm_truncated, mp4_unknown_codec, mp4_not_a_video,
    frames_corrupt_png, frames_none, duplicate_name,
]  # fmt: skip


# Manifest cases: each returns (manifest text or rows, reason); the good rows come first ---------

GOOD_ROWS = "video,caption,signer\ng1_a.mp4,hello yes,g1\ng2_b.gif,thanks no,g2\n"

MANIFEST_CASES = {
    "missing_file": ("nowhere.mp4,hello,s9\n", "nowhere.mp4: file missing"),
    "zero_byte_file": ("empty.mp4,hello,s9\n", "empty.mp4: empty file (0 bytes)"),
    "start_past_the_end": (None, "g1_a.mp4 (start 30 s is past the end (last frame at 0.50 s))"),
    "malformed_csv_fields": ("only.mp4,two fields\n", "malformed CSV: 2 fields, the header has 3"),
    "malformed_csv_quote": ('g1_a.mp4,"bad"quote,s9\n', "malformed CSV: ',' expected after '\"'"),
    "end_before_start": (None, "end 1 s is not after start 2 s"),
    "not_a_number": (None, "start 'soon' is not a number of seconds"),
    "both_cut_units": (None, "give start/end (seconds) or start_frame/end_frame, not both"),
    "seconds_on_frames": (None, "a frame folder has no timestamps"),
    "no_signer": ("g1_a.mp4,hello,\n", "no signer"),
    "empty_caption": ("g1_a.mp4,  ,s9\n", "empty caption"),
    "unsupported_type": ("notes.avi,hello,s9\n", "notes.avi: unsupported file type"),
    "duplicate_name": ("g1_a.mp4,again,s9\n", "duplicate name 'g1_a' (manifest.csv line 2 too)"),
}

CUT_ROWS = {  # cases with a cut: the full manifest (name,video,caption,signer,start,end,...)
    "start_past_the_end": "c1,g1_a.mp4,hello,s9,30,,,",
    "end_before_start": "c1,g1_a.mp4,hello,s9,2,1,,",
    "not_a_number": "c1,g1_a.mp4,hello,s9,soon,,,",
    "both_cut_units": "c1,g1_a.mp4,hello,s9,1,,2,",
    "seconds_on_frames": "c1,frames_clip,hello,s9,0.5,,,",
}


def write_case_manifest(root: Path, case: str) -> Path:
    extra, _ = MANIFEST_CASES[case]
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.avi").write_bytes(b"not a video")
    write(root, "frames_clip", solid_video([RED, GREEN]), "frames", caption=None)
    path = root / "manifest.csv"
    if case in CUT_ROWS:
        head = "name,video,caption,signer,start,end,start_frame,end_frame\n"
        rows = "g1_a,g1_a.mp4,hello yes,g1,,,,\ng2_b,g2_b.gif,thanks no,g2,,,,\n"
        path.write_text(head + rows + CUT_ROWS[case] + "\n")
    else:
        path.write_text(GOOD_ROWS + extra)
    return path


# The checks ----------------------------------------------------------------------------------


def assert_skipped_once(caplog, label: str, reason: str) -> None:
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "skipped 1 bad entries" in warnings[0] and "\n" not in warnings[0]
    assert label in warnings[0] and reason in warnings[0], warnings[0]


def assert_good_ones_whole(train, val, good: dict[str, Path]) -> None:
    """Exactly the good samples, each decoded exactly as on its own."""
    cache = train.cache
    assert sorted(train.names + val.names) == sorted(good) == cache.names
    for j, name in enumerate(cache.names):
        expected = load_path(good[name], FRAMES, SIZE)
        assert np.array_equal(cache.videos[j], expected), name
        assert cache.sources[j] == good[name].absolute()


def open_it(root, **kw):
    return open_dataset(root, num_frames=FRAMES, size=SIZE, val_fraction=0.5, **kw)


@pytest.mark.parametrize("case", FOLDER_CASES, ids=lambda f: f.__name__)
def test_folder_bad_entry_is_named_once_and_the_rest_is_used(tmp_path, caplog, case):
    good = good_set(tmp_path)
    label, reason = case(tmp_path)
    with caplog.at_level(logging.WARNING, logger="text2sign"):
        train, val = open_it(tmp_path)
    assert_skipped_once(caplog, label, reason)
    assert_good_ones_whole(train, val, good)
    caplog.clear()  # the cache remembers what it skipped: named again, nothing decoded again
    with caplog.at_level(logging.WARNING, logger="text2sign"):
        again, _ = open_it(tmp_path)
    assert again.cache.path == train.cache.path
    assert_skipped_once(caplog, label, reason)


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_manifest_bad_row_is_named_once_and_the_rest_is_used(tmp_path, caplog, case):
    good = good_set(tmp_path)
    manifest = write_case_manifest(tmp_path, case)
    with caplog.at_level(logging.WARNING, logger="text2sign"):
        train, val = open_it(manifest)
    assert_skipped_once(caplog, "manifest.csv line 4", MANIFEST_CASES[case][1])
    assert_good_ones_whole(train, val, good)
    assert {train.cache.signers[j] for j in range(2)} == {"g1", "g2"}


def _case_root(tmp_path: Path, case) -> tuple[Path, str, str]:
    good_set(tmp_path)
    if callable(case):
        label, reason = case(tmp_path)
        return tmp_path, label, reason
    return write_case_manifest(tmp_path, case), "manifest.csv line 4", MANIFEST_CASES[case][1]


@pytest.mark.parametrize(
    "case", [*FOLDER_CASES, *sorted(MANIFEST_CASES)], ids=lambda c: getattr(c, "__name__", c)
)
def test_strict_refuses_the_bad_entry_and_keeps_other_caches(tmp_path, case):
    root, label, reason = _case_root(tmp_path, case)
    cache_dir = tmp_path / "cache"
    earlier, _ = open_dataset(root, num_frames=2, size=8, val_fraction=0.5, cache_dir=cache_dir)
    before = {p: p.read_bytes() for p in earlier.cache.path.iterdir()}
    with pytest.raises(DataError) as err:
        open_it(root, cache_dir=cache_dir, strict=True)
    message = str(err.value)
    assert label in message and reason in message and "\n" not in message
    kept = sorted(p.name for p in cache_dir.iterdir() if not p.name.endswith(".lock"))
    assert kept == [earlier.cache.path.name]  # no half-built cache, the other one untouched
    assert {p: p.read_bytes() for p in earlier.cache.path.iterdir()} == before


@pytest.mark.parametrize("jsonl,reason", [
    ('{"video": "g1_a.mp4", "caption": "x", "signer": "s"\n', "not JSON"),
    ('["g1_a.mp4", "x", "s"]\n', "not a JSON object"),
    ('{"video": "g1_a.mp4", "caption": "x", "signer": "s", "strat": 1}\n', "unknown key 'strat'"),
    ('{"video": "nowhere.webm", "caption": "x", "signer": "s"}\n', "nowhere.webm: file missing"),
])  # fmt: skip
def test_jsonl_bad_line_is_named_once(tmp_path, caplog, jsonl, reason):
    good = good_set(tmp_path)
    lines = '{"video": "g1_a.mp4", "caption": "hello yes", "signer": "g1"}\n\n'
    lines += '{"video": "g2_b.gif", "caption": "thanks no", "signer": "g2", "start": null}\n'
    (tmp_path / "m.jsonl").write_text(lines + jsonl)
    with caplog.at_level(logging.WARNING, logger="text2sign"):
        train, val = open_it(tmp_path / "m.jsonl")
    assert_skipped_once(caplog, "m.jsonl line 4", reason)
    assert_good_ones_whole(train, val, good)


# Nothing usable: one line, exit 2 -----------------------------------------------------------


@pytest.mark.parametrize("text,message", [
    ("video,caption,signer\nnowhere.mp4,hello,s1\nempty.mp4,hi,s2\n",
     "no usable row in manifest {m} (2 bad: manifest.csv line 2 (nowhere.mp4: file missing), "
     "manifest.csv line 3 (empty.mp4: empty file (0 bytes)))"),
    ("video,caption,signer\n", "no usable row in manifest {m}"),
    ("", "manifest {m} is empty (expected a header: video, caption, signer)"),
    ("video,caption\nx.mp4,hi\n", "manifest {m}: no 'signer' column (columns: name, video,"),
    ("video,caption,signer,strat\n", "manifest {m}: unknown column 'strat'"),
])  # fmt: skip
def test_manifest_without_a_usable_row_is_one_line(tmp_path, text, message):
    (tmp_path / "empty.mp4").write_bytes(b"")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(text)
    with pytest.raises(DataError) as err:
        list_samples(manifest)
    assert message.format(m=manifest) in str(err.value) and "\n" not in str(err.value)


def test_rows_that_all_fail_to_decode_are_one_line_and_leave_no_cache(tmp_path):
    (tmp_path / "a.mp4").write_bytes(os.urandom(500))
    _cut_bytes(write(tmp_path, "b", noise(), "mp4", caption=None), 0.5)
    write_manifest(tmp_path / "m.csv", [
        {"video": "a.mp4", "caption": "x", "signer": "s1"},
        {"video": "b.mp4", "caption": "y", "signer": "s2"},
        {"video": "c.mp4", "caption": "z", "signer": "s3"},
    ])  # fmt: skip
    with pytest.raises(DataError, match=r"no usable row in manifest .*m\.csv \(3 bad: ") as err:
        open_it(tmp_path / "m.csv")
    assert "m.csv line 4 (c.mp4: file missing)" in str(err.value)
    assert "m.csv line 2: a.mp4 (corrupt MP4" in str(err.value)
    assert [
        p.name for p in (tmp_path / DEFAULT_CACHE_SUBDIR).iterdir() if ".lock" not in p.name
    ] == []


def test_data_check_on_an_unusable_manifest_is_one_line_exit_2(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("video,caption,signer\nnowhere.mp4,hello,s1\n")
    proc = subprocess.run([sys.executable, "-m", "text2sign", "data", "check", str(manifest)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        f"text2sign: error: no usable row in manifest {manifest} "
        "(1 bad: manifest.csv line 2 (nowhere.mp4: file missing))\n"
    )


def test_missing_manifest_and_wrong_root_are_one_line(tmp_path):
    with pytest.raises(DataError, match=r"manifest .*nope\.csv does not exist"):
        list_samples(tmp_path / "nope.csv")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="is not a folder or a manifest"):
        list_samples(tmp_path / "notes.txt")
    (tmp_path / "latin1.csv").write_bytes(b"video,caption,signer\na.mp4,caf\xe9,s\n")
    with pytest.raises(DataError, match=r"latin1\.csv is not UTF-8 \(byte 30\)"):
        list_samples(tmp_path / "latin1.csv")
