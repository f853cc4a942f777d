"""The How2Sign and PHOENIX-2014T importers on files shaped like the real releases (the
synthetic set exported by ``text2sign.data.shaped``): the manifest they write, the signer they
take, and their bad rows."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest

from text2sign.data import synth
from text2sign.data.cache import open_dataset
from text2sign.data.importers import import_how2sign, import_phoenix
from text2sign.data.samples import keypoints_path
from text2sign.data.shaped import (
    HOW2SIGN_COLUMNS,
    PHOENIX_COLUMNS,
    PHOENIX_FRAMES,
    phoenix_corpus,
    write_how2sign,
    write_phoenix,
)
from text2sign.data.sources import list_samples
from text2sign.data.video import load_path
from text2sign.data.writers import write_video
from text2sign.errors import DataError

NUM, FRAMES, SIZE = 12, 6, 16
SYNTH = dict(frames=FRAMES, size=SIZE, num_signers=4)


@pytest.fixture(scope="module")
def how2sign(tmp_path_factory) -> tuple[Path, Path]:
    return write_how2sign(tmp_path_factory.mktemp("h2s"), NUM, **SYNTH)


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phoenix") / "PHOENIX-2014-T"
    write_phoenix(root, NUM, **SYNTH)
    return root


# The shapes are the real ones ---------------------------------------------------------------


def test_how2sign_shape_is_the_release_tab_separated_csv(how2sign):
    csv_path, clips = how2sign
    lines = csv_path.read_text().splitlines()
    assert lines[0].split("\t") == list(HOW2SIGN_COLUMNS) and len(lines) == NUM + 1
    first = dict(zip(HOW2SIGN_COLUMNS, lines[1].split("\t"), strict=True))
    assert first["SENTENCE_NAME"] == "s0_00000-1-rgb_front" and first["VIDEO_ID"] == "s0"
    assert (clips / "s0_00000-1-rgb_front.mp4").is_file()
    assert keypoints_path(clips / "s0_00000-1-rgb_front.mp4").is_file()


def test_phoenix_shape_is_the_release_layout(phoenix):
    corpus = phoenix_corpus(phoenix, "train")
    assert corpus == phoenix / "annotations/manual/PHOENIX-2014-T.train.corpus.csv"
    lines = corpus.read_text().splitlines()
    assert lines[0] == "|".join(PHOENIX_COLUMNS)
    assert lines[1] == "s0_00000|s0_00000/1/*.png|-1|-1|Signer00|HELLO HELLO|hello hello"
    folder = phoenix / PHOENIX_FRAMES / "train" / "s0_00000"
    assert sorted(p.name for p in folder.iterdir()) == [f"images{i:04d}.png" for i in range(1, 7)]
    assert keypoints_path(folder) == folder.parent / "s0_00000.keypoints.json"


# How2Sign -----------------------------------------------------------------------------------


def test_how2sign_clips_import_writes_a_manifest_and_copies_nothing(how2sign, tmp_path):
    csv_path, clips = how2sign
    before = sorted(p.name for p in clips.iterdir())
    out = tmp_path / "h2s.csv"
    assert import_how2sign(csv_path, out, clips=clips) == NUM
    assert sorted(p.name for p in clips.iterdir()) == before and list(tmp_path.iterdir()) == [out]
    samples = list_samples(out).samples
    assert [s.name for s in samples][:2] == ["s0_00000-1-rgb_front", "s0_00004-1-rgb_front"]
    first = samples[0]
    assert first.signer == "s0" and first.caption == "hello hello" and first.cut == {}
    assert first.source == clips / "s0_00000-1-rgb_front.mp4"  # absolute, into --clips
    assert {s.signer for s in samples} == {"s0", "s1", "s2", "s3"}  # VIDEO_ID


def test_how2sign_import_trains_the_same_clips_as_the_folder(how2sign, tmp_path):
    csv_path, clips = how2sign
    import_how2sign(csv_path, tmp_path / "h2s.csv", clips=clips)
    train, val = open_dataset(tmp_path / "h2s.csv", num_frames=FRAMES, size=SIZE, val_fraction=0.25)
    cache = train.cache
    assert len(train) + len(val) == NUM and val.indices
    assert not {cache.signers[j] for j in train.indices} & {cache.signers[j] for j in val.indices}
    rendered = {c.name: c.video for c in synth.clips(NUM, **SYNTH)}
    for j, name in enumerate(cache.names):
        assert np.array_equal(cache.videos[j], load_path(cache.sources[j], FRAMES, SIZE))
        error = np.abs(cache.videos[j].astype(int) - rendered[name.split("-")[0]]).mean()
        assert error < 10, (name, error)  # H.264 4:2:0 of the rendering, at 16 px


def test_how2sign_raw_videos_are_cut_to_the_realigned_seconds(tmp_path):
    # Two raw videos of numbered frames; the CSV cuts sentences out of them in seconds.
    from tests.unit.data.media import frame_number, numbered_video

    raw = tmp_path / "raw"
    for vid in ("vidA", "vidB"):
        write_video(raw / f"{vid}-1-rgb_front", numbered_video(60), "mp4")
    rows = [("vidA", 0, 1.0, 2.0, "first sentence"), ("vidA", 1, 2.5, 3.1, "second one"),
            ("vidB", 0, 0.3, 0.8, "third")]  # fmt: skip
    lines = ["\t".join(HOW2SIGN_COLUMNS)]
    for vid, k, start, end, text in rows:
        name = f"{vid}-1-rgb_front"
        lines.append(f"{vid}\t{name}\t{vid}_{k}\t{vid}_{k}-1-rgb_front\t{start}\t{end}\t{text}")
    (tmp_path / "h.csv").write_text("\n".join(lines) + "\n")
    assert import_how2sign(tmp_path / "h.csv", tmp_path / "m.csv", raw=raw) == 3
    samples = {s.name: s for s in list_samples(tmp_path / "m.csv").samples}
    assert samples["vidA_1-1-rgb_front"].cut == {"start": 2.5, "end": 3.1}
    train, _ = open_dataset(tmp_path / "m.csv", num_frames=4, size=16, val_fraction=0.0)
    got = {
        n: [frame_number(f) for f in train.cache.videos[j]] for j, n in enumerate(train.cache.names)
    }
    assert got == {"vidA_0-1-rgb_front": [10, 11, 12, 13], "vidA_1-1-rgb_front": [25, 26, 27, 28],
                   "vidB_0-1-rgb_front": [3, 4, 5, 6]}  # fmt: skip


def _h2s_rows(how2sign) -> list[str]:
    return how2sign[0].read_text().splitlines()


def test_how2sign_bad_rows_are_named_once_and_skipped(how2sign, tmp_path, caplog):
    csv_path, clips = how2sign
    lines = _h2s_rows(how2sign)[:4]
    lines.append("s9\ts9-1-rgb_front\ts9_1\ts9_1-1-rgb_front\t0\t1\tno clip for this one")
    lines.append("too\tfew\tfields")
    lines.append(lines[1])  # a repeated SENTENCE_NAME
    (tmp_path / "h.csv").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="text2sign"):
        assert import_how2sign(tmp_path / "h.csv", tmp_path / "m.csv", clips=clips) == 3
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "skipped 3 bad rows of" in warning and "\n" not in warning
    assert "h.csv line 5 (s9_1-1-rgb_front.mp4: file missing in" in warning
    assert "h.csv line 6 (malformed: 3 fields, the header has 7)" in warning
    assert "h.csv line 7 (SENTENCE_NAME 's0_00000-1-rgb_front' appears twice)" in warning
    with pytest.raises(DataError, match=r"3 bad rows in .*h\.csv: h\.csv line 5"):
        import_how2sign(tmp_path / "h.csv", tmp_path / "strict.csv", clips=clips, strict=True)
    assert not (tmp_path / "strict.csv").exists()


@pytest.mark.parametrize("text,message", [
    ("VIDEO_ID,VIDEO_NAME,SENTENCE_ID,SENTENCE_NAME,START_REALIGNED,END_REALIGNED,SENTENCE\n",
     r"no 'VIDEO_ID' column \(tab-separated header expected"),  # comma-separated: one column
    ("", "no 'VIDEO_ID' column"),
    ("\t".join(HOW2SIGN_COLUMNS) + "\n", "no usable row in"),
])  # fmt: skip
def test_how2sign_unusable_csv_is_one_line(how2sign, tmp_path, text, message):
    (tmp_path / "h.csv").write_text(text)
    with pytest.raises(DataError, match=message) as err:
        import_how2sign(tmp_path / "h.csv", tmp_path / "m.csv", clips=how2sign[1])
    assert "\n" not in str(err.value) and not (tmp_path / "m.csv").exists()


# PHOENIX ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["translation", "orth"])
def test_phoenix_import_takes_speaker_and_the_chosen_text(phoenix, tmp_path, text):
    out = tmp_path / "p.csv"
    assert import_phoenix(phoenix, "train", out, text=text) == NUM
    samples = list_samples(out).samples
    first = samples[0]
    assert (first.name, first.signer, first.kind) == ("s0_00000", "Signer00", "frames")
    assert first.caption == ("hello hello" if text == "translation" else "HELLO HELLO")
    assert first.source == phoenix / PHOENIX_FRAMES / "train" / "s0_00000"
    train, val = open_dataset(out, num_frames=FRAMES, size=SIZE, val_fraction=0.25)
    for j, source in enumerate(train.cache.sources):  # PNG frames: exactly the rendering
        assert np.array_equal(train.cache.videos[j], load_path(source, FRAMES, SIZE))
    assert len(train) + len(val) == NUM


def test_phoenix_2014_layout_with_a_1_subfolder_is_found(tmp_path):
    root = tmp_path / "P"
    write_phoenix(root, 2, **SYNTH)
    split = root / PHOENIX_FRAMES / "train"
    (split / "s0_00000").rename(tmp_path / "moved")
    (split / "s0_00000").mkdir()
    (tmp_path / "moved").rename(split / "s0_00000" / "1")
    assert import_phoenix(root, "train", tmp_path / "p.csv") == 2
    assert list_samples(tmp_path / "p.csv").samples[0].source == split / "s0_00000" / "1"


def test_phoenix_bad_rows_are_named_once_and_skipped(phoenix, tmp_path, caplog):
    corpus = phoenix_corpus(phoenix, "train").read_text().splitlines()
    root = tmp_path / "P"
    (root / PHOENIX_FRAMES).mkdir(parents=True)
    (root / PHOENIX_FRAMES / "dev").symlink_to(phoenix / PHOENIX_FRAMES / "train")
    lines = corpus[:3] + [
        "ghost|ghost/1/*.png|-1|-1|Signer01|GHOST|ghost",
        "s2_00002|s2_00002/1/*.png|10|50|Signer02|X|x",
        "s3_00003|only|four|fields",
        "s0_00004|s0_00004/1/*.png|-1|-1||HELLO|hello",
    ]
    phoenix_corpus(root, "dev").parent.mkdir(parents=True)
    phoenix_corpus(root, "dev").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="text2sign"):
        assert import_phoenix(root, "dev", tmp_path / "p.csv") == 2
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "skipped 4 bad rows" in warning and "\n" not in warning
    assert "line 4 (ghost: no frame folder with PNG frames in" in warning
    assert "line 5 (start/end other than -1 (whole clip) are not supported)" in warning
    assert "line 6 (malformed: 4 fields, the header has 7)" in warning
    assert "line 7 (empty name, speaker or translation)" in warning


def test_phoenix_missing_split_or_columns_is_one_line(phoenix, tmp_path):
    with pytest.raises(DataError, match=r"no corpus for split 'test': .*PHOENIX-2014-T\.test"):
        import_phoenix(phoenix, "test", tmp_path / "p.csv")
    root = tmp_path / "P"
    phoenix_corpus(root, "train").parent.mkdir(parents=True)
    phoenix_corpus(root, "train").write_text("name,video,speaker\n")
    with pytest.raises(DataError, match=r"no 'name' column \('\|'-separated header expected"):
        import_phoenix(root, "train", tmp_path / "p.csv")


def test_importer_manifest_is_a_plain_csv_manifest(how2sign, tmp_path):
    import_how2sign(how2sign[0], tmp_path / "m.csv", clips=how2sign[1])
    with open(tmp_path / "m.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["name", "video", "caption", "signer", "recording"]
    assert Path(rows[0]["video"]).is_absolute()
    assert rows[0]["recording"] == rows[0]["signer"]  # How2Sign: the source video (VIDEO_ID)


def test_phoenix_clips_are_grouped_by_broadcast():
    from text2sign.data.importers import phoenix_recording

    assert phoenix_recording("01April_2010_Thursday_heute-6694") == "01April_2010_Thursday_heute"
    assert phoenix_recording("no_number_here") == "no_number_here"
    assert phoenix_recording("x-y") == "x-y"  # not a clip number: the whole name


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_an_importer_writes_the_manifest_kind_its_name_says(how2sign, tmp_path, suffix):
    from text2sign.data.sources import list_samples

    out = tmp_path / f"m{suffix}"
    n = import_how2sign(how2sign[0], out, clips=how2sign[1])
    listing = list_samples(out)
    assert len(listing.samples) == n and not listing.bad
