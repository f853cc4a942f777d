"""GIF folders, bad data, signer split, decoded cache and the Dataset."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from text2sign.data import cache as cache_mod
from text2sign.data import gif_folder
from text2sign.data.cache import DecodedCache, VideoTextDataset, open_dataset
from text2sign.data.check import check_report
from text2sign.data.gif_folder import Pair, load_gif, scan_folder, signer_of, split_by_signer
from text2sign.errors import DataError, UsageError

RED, GREEN, BLUE, GREY = (255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128)
SIZE = 8


# Helpers --------------------------------------------------------------------------------------


def solid_video(colours: list[tuple[int, int, int]], h: int = SIZE, w: int = SIZE) -> np.ndarray:
    """One solid frame per colour: uint8 (T, h, w, 3)."""
    return np.stack([np.full((h, w, 3), c, np.uint8) for c in colours])


def write_gif(path: Path, video: np.ndarray) -> Path:
    iio.imwrite(path, video, duration=100, loop=0)
    return path


def add_pair(root: Path, name: str, caption: str = "hello yes", colours=(RED, GREEN)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.txt").write_text(caption, encoding="utf-8")
    return write_gif(root / f"{name}.gif", solid_video(list(colours)))


def make_folder(root: Path, signers: int = 3, per_signer: int = 2) -> Path:
    for s in range(signers):
        for i in range(per_signer):
            add_pair(root, f"s{s}_{i:03d}", caption=f"caption {s} {i}", colours=(RED, BLUE))
    return root


def fake_pairs(signer_counts: dict[str, int]) -> list[Pair]:
    return [
        Pair(f"{s}_{i:03d}", Path(f"{s}_{i:03d}.gif"), "c")
        for s, n in sorted(signer_counts.items())
        for i in range(n)
    ]


# Loading one GIF ------------------------------------------------------------------------------


def test_signer_of():
    assert signer_of("s3_00012") == "s3"
    assert signer_of("alice_clip_7") == "alice"
    assert signer_of("nounderscore") == "nounderscore"


def test_load_gif_pads_with_the_last_frame(tmp_path):
    gif = write_gif(tmp_path / "a.gif", solid_video([RED, GREEN, BLUE]))
    video = load_gif(gif, num_frames=5, size=SIZE)
    assert video.shape == (5, SIZE, SIZE, 3) and video.dtype == np.uint8
    assert [tuple(video[t, 0, 0]) for t in range(5)] == [RED, GREEN, BLUE, BLUE, BLUE]


def test_load_gif_truncates_to_the_first_frames(tmp_path):
    gif = write_gif(tmp_path / "a.gif", solid_video([RED, GREEN, BLUE, GREY]))
    video = load_gif(gif, num_frames=2, size=SIZE)
    assert [tuple(video[t, 0, 0]) for t in range(2)] == [RED, GREEN]


def test_load_gif_resizes_shorter_side_and_centre_crops(tmp_path):
    # 40 wide x 20 high: red | green (middle 20 columns) | blue. Size 10: resized to 20 x 10,
    # and the centre crop keeps exactly the green middle.
    frame = np.zeros((20, 40, 3), np.uint8)
    frame[:, :10], frame[:, 10:30], frame[:, 30:] = RED, GREEN, BLUE
    gif = write_gif(tmp_path / "wide.gif", np.stack([frame, frame[::-1]]))
    video = load_gif(gif, num_frames=2, size=10)
    assert video.shape == (2, 10, 10, 3)
    assert (video[..., 1] > 200).all() and (video[..., [0, 2]] < 50).all()


def test_load_gif_enlarges_small_gifs(tmp_path):
    gif = write_gif(tmp_path / "small.gif", solid_video([RED, GREEN], h=4, w=6))
    video = load_gif(gif, num_frames=2, size=12)
    assert video.shape == (2, 12, 12, 3)
    assert tuple(video[0, 6, 6]) == RED and tuple(video[1, 6, 6]) == GREEN


def test_load_gif_converts_greyscale_and_drops_alpha(tmp_path):
    Image.new("L", (SIZE, SIZE), 77).save(tmp_path / "grey.gif")
    grey = load_gif(tmp_path / "grey.gif", num_frames=1, size=SIZE)
    assert grey.shape == (1, SIZE, SIZE, 3) and (grey == 77).all()
    Image.new("RGBA", (SIZE, SIZE), (0, 0, 255, 255)).save(tmp_path / "rgba.gif")
    assert load_gif(tmp_path / "rgba.gif", num_frames=1, size=SIZE).shape[-1] == 3


# Scanning and bad data ------------------------------------------------------------------------


def _noise_gif_cut(root: Path, keep) -> str:
    """A noisy (incompressible) 3-frame GIF with only ``keep(len)`` of its bytes left."""
    frames = [np.random.default_rng(t).integers(0, 255, (16, 16, 3), np.uint8) for t in range(3)]
    write_gif(root / "bad_x.gif", np.stack(frames))
    data = (root / "bad_x.gif").read_bytes()
    (root / "bad_x.gif").write_bytes(data[: keep(len(data))])
    (root / "bad_x.txt").write_text("hello")
    return "bad_x.gif"


def _truncated_gif(root: Path) -> str:
    return _noise_gif_cut(root, lambda n: n * 2 // 3)  # cut inside the second frame


def _truncated_last_frame(root: Path) -> str:
    return _noise_gif_cut(root, lambda n: n - 40)  # only decoding the last frame notices


def _corrupt_gif(root: Path) -> str:
    (root / "bad_x.gif").write_bytes(b"GIF89a" + b"\x00garbage" * 10)
    (root / "bad_x.txt").write_text("hello")
    return "bad_x.gif"


def _not_a_gif(root: Path) -> str:
    Image.new("RGB", (SIZE, SIZE)).save(root / "bad_x.gif", format="PNG")
    (root / "bad_x.txt").write_text("hello")
    return "bad_x.gif"


def _no_caption(root: Path) -> str:
    write_gif(root / "bad_x.gif", solid_video([RED, GREEN]))
    return "bad_x.gif"


def _empty_caption(root: Path) -> str:
    write_gif(root / "bad_x.gif", solid_video([RED, GREEN]))
    (root / "bad_x.txt").write_text("  \n\t ")
    return "bad_x.txt"


def _non_utf8_caption(root: Path) -> str:
    write_gif(root / "bad_x.gif", solid_video([RED, GREEN]))
    (root / "bad_x.txt").write_bytes(b"caf\xe9 \xff")  # Latin-1, not UTF-8
    return "bad_x.txt"


def _unreadable_gif(root: Path) -> str:
    (root / "bad_x.gif").symlink_to(root / "missing.gif")  # a broken link: works as root too
    (root / "bad_x.txt").write_text("hello")
    return "bad_x.gif"


BAD_CASES = {
    "truncated": (_truncated_gif, "corrupt GIF"),
    "truncated_last_frame": (_truncated_last_frame, "corrupt GIF"),
    "corrupt": (_corrupt_gif, "corrupt GIF"),
    "not_a_gif": (_not_a_gif, "corrupt GIF"),
    "no_caption": (_no_caption, "no caption"),
    "empty_caption": (_empty_caption, "empty caption"),
    "non_utf8": (_non_utf8_caption, "not valid UTF-8"),
    "unreadable": (_unreadable_gif, "unreadable"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_file_is_skipped_with_one_warning(tmp_path, caplog, case):
    make_bad, reason = BAD_CASES[case]
    add_pair(tmp_path, "good_0")
    bad_name = make_bad(tmp_path)
    with caplog.at_level(logging.WARNING, logger="text2sign"):
        result = scan_folder(tmp_path)
    assert [p.name for p in result.pairs] == ["good_0"]
    assert len(result.bad) == 1 and result.bad[0][0] == bad_name and reason in result.bad[0][1]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 1 bad files" in warnings[0].getMessage()
    assert bad_name in warnings[0].getMessage() and reason in warnings[0].getMessage()


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_file_raises_when_strict(tmp_path, case):
    make_bad, reason = BAD_CASES[case]
    add_pair(tmp_path, "good_0")
    bad_name = make_bad(tmp_path)
    with pytest.raises(DataError, match=bad_name) as err:
        scan_folder(tmp_path, strict=True)
    assert reason in str(err.value)


def test_many_bad_files_make_one_truncated_warning(tmp_path, caplog):
    add_pair(tmp_path, "good_0")
    for i in range(gif_folder._MAX_LISTED + 5):
        write_gif(tmp_path / f"orphan_{i:02d}.gif", solid_video([RED, GREEN]))
    with caplog.at_level(logging.WARNING, logger="text2sign"):
        scan_folder(tmp_path)
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"skipped {gif_folder._MAX_LISTED + 5} bad files" in record.getMessage()
    assert "and 5 more" in record.getMessage() and "\n" not in record.getMessage()


def test_scan_sorts_pairs_and_ignores_side_files(tmp_path, caplog):
    for name in ("s1_b", "s0_a", "s1_a"):
        add_pair(tmp_path, name, caption=f"  two\n words {name} ")
    (tmp_path / "s0_a.keypoints.json").write_text("{}")
    (tmp_path / "lonely.txt").write_text("a caption without a GIF")
    (tmp_path / ".t2s_cache").mkdir()
    with caplog.at_level(logging.WARNING, logger="text2sign"):
        result = scan_folder(tmp_path)
    assert [p.name for p in result.pairs] == ["s0_a", "s1_a", "s1_b"]
    assert result.pairs[0].caption == "two words s0_a"  # whitespace collapsed
    assert (result.pairs[0].num_frames, result.pairs[0].width) == (2, SIZE)
    assert result.bad == [] and not caplog.records


def test_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        scan_folder(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value)


def test_file_instead_of_folder_is_a_data_error(tmp_path):
    (tmp_path / "file.gif").write_bytes(b"x")
    with pytest.raises(DataError, match="not a folder"):
        scan_folder(tmp_path / "file.gif")


def test_empty_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no valid") as err:
        scan_folder(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_folder_of_only_bad_files_is_a_data_error(tmp_path):
    _no_caption(tmp_path)
    with pytest.raises(DataError, match=r"no valid .*bad_x\.gif \(no caption\)"):
        scan_folder(tmp_path)


# Signer split ---------------------------------------------------------------------------------


def test_split_is_signer_disjoint_and_deterministic():
    pairs = fake_pairs({f"s{i}": 10 + i for i in range(8)})
    train, val = split_by_signer(pairs, 0.25, seed=3)
    train_signers = {signer_of(p.name) for p in train}
    val_signers = {signer_of(p.name) for p in val}
    assert train_signers and val_signers and not train_signers & val_signers
    assert sorted(p.name for p in train + val) == sorted(p.name for p in pairs)
    assert abs(len(val) / len(pairs) - 0.25) < 0.1
    assert split_by_signer(pairs, 0.25, seed=3) == (train, val)
    seeds = {tuple(p.name for p in split_by_signer(pairs, 0.25, seed=s)[1]) for s in range(5)}
    assert len(seeds) > 1  # the seed picks the val signers


def test_split_keeps_one_signer_on_each_side():
    pairs = fake_pairs({"a": 5, "b": 5})
    train, val = split_by_signer(pairs, 0.01)
    assert len(val) == 5 and len(train) == 5  # a tiny fraction still gets one signer
    train, val = split_by_signer(pairs, 0.99)
    assert len(val) == 5 and len(train) == 5  # a huge fraction still leaves one for training


def test_split_without_validation():
    pairs = fake_pairs({"a": 2, "b": 2})
    assert split_by_signer(pairs, 0.0) == (pairs, [])
    with pytest.raises(UsageError):
        split_by_signer(pairs, 1.0)


def test_single_signer_goes_to_train_with_a_warning(caplog):
    pairs = fake_pairs({"only": 4})
    with caplog.at_level(logging.WARNING, logger="text2sign"):
        train, val = split_by_signer(pairs, 0.2)
    assert (train, val) == (pairs, [])
    assert "one signer" in caplog.text


# Decoded cache and Dataset --------------------------------------------------------------------


@pytest.fixture
def count_builds(monkeypatch):
    calls = []
    real_build = cache_mod._build

    def counting_build(*args, **kwargs):
        calls.append(args)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(cache_mod, "_build", counting_build)
    return calls


def _open(root: Path, num_frames: int = 3, size: int = SIZE) -> DecodedCache:
    pairs = scan_folder(root).pairs
    return DecodedCache.load_or_build(
        pairs, num_frames=num_frames, size=size, cache_dir=root / "cache"
    )


def test_cache_is_built_once_and_reused(tmp_path, count_builds):
    make_folder(tmp_path)
    first = _open(tmp_path)
    second = _open(tmp_path)
    assert len(count_builds) == 1
    assert first.path == second.path
    assert first.videos.shape == (6, 3, SIZE, SIZE, 3) and first.videos.dtype == np.uint8
    assert isinstance(second.videos, np.memmap)
    assert first.names == [p.name for p in scan_folder(tmp_path).pairs]
    assert first.captions[0] == "caption 0 0"


def test_changed_source_gif_invalidates_the_cache(tmp_path, count_builds):
    make_folder(tmp_path)
    old = _open(tmp_path)
    gif = tmp_path / "s1_000.gif"
    write_gif(gif, solid_video([GREEN, GREEN, GREY]))
    stat = gif.stat()
    os.utime(gif, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # robust to coarse mtimes
    new = _open(tmp_path)
    assert len(count_builds) == 2 and new.path != old.path
    j = new.names.index("s1_000")
    assert tuple(new.videos[j, 0, 0, 0]) == GREEN and tuple(old.videos[j, 0, 0, 0]) == RED


def test_touching_a_source_gif_invalidates_the_cache(tmp_path, count_builds):
    make_folder(tmp_path)
    old = _open(tmp_path)
    os.utime(tmp_path / "s0_001.gif", ns=(10**18, 10**18))
    assert _open(tmp_path).path != old.path and len(count_builds) == 2


@pytest.mark.parametrize("change", ["caption", "added", "removed"])
def test_changed_sample_set_invalidates_the_cache(tmp_path, count_builds, change):
    make_folder(tmp_path)
    old = _open(tmp_path)
    if change == "caption":
        (tmp_path / "s0_000.txt").write_text("a new caption")
    elif change == "added":
        add_pair(tmp_path, "s9_000")
    else:
        (tmp_path / "s2_001.gif").unlink()
    new = _open(tmp_path)
    assert new.path != old.path and len(count_builds) == 2
    assert len(new) == {"caption": 6, "added": 7, "removed": 5}[change]


def test_other_decoding_settings_use_another_cache(tmp_path, count_builds):
    make_folder(tmp_path)
    paths = {
        _open(tmp_path, 3, SIZE).path,
        _open(tmp_path, 4, SIZE).path,
        _open(tmp_path, 3, 4).path,
    }
    assert len(paths) == 3 and len(count_builds) == 3


def test_losing_the_rename_race_uses_the_winners_cache(tmp_path, monkeypatch):
    make_folder(tmp_path)
    real_build = cache_mod._build

    def build_then_another_job_finishes_first(pairs, sources, num_frames, size, out):
        real_build(pairs, sources, num_frames, size, out)
        final = tmp_path / "cache" / cache_mod.cache_key(sources, num_frames, size)
        final.mkdir()
        real_build(pairs, sources, num_frames, size, final)

    monkeypatch.setattr(cache_mod, "_build", build_then_another_job_finishes_first)
    cache = _open(tmp_path)
    assert len(cache) == 6
    leftovers = [p.name for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_failed_build_leaves_no_cache_behind(tmp_path, monkeypatch):
    make_folder(tmp_path)

    def failing_load(*args, **kwargs):
        raise DataError("boom")

    monkeypatch.setattr(cache_mod, "load_gif", failing_load)
    with pytest.raises(DataError, match="boom"):
        _open(tmp_path)
    assert [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_dataset_items_are_scaled_tensors_and_do_not_decode(tmp_path, monkeypatch):
    make_folder(tmp_path, signers=2, per_signer=1)
    cache = _open(tmp_path)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the Dataset must read the cache, not decode GIFs")

    monkeypatch.setattr(cache_mod, "load_gif", no_decoding)
    monkeypatch.setattr(gif_folder, "load_gif", no_decoding)
    dataset = VideoTextDataset(cache, [1])
    item = dataset[0]
    video = item["video"]
    assert video.shape == (3, 3, SIZE, SIZE) and video.dtype == torch.float32  # (T, C, H, W)
    assert video.min() >= -1.0 and video.max() <= 1.0
    # Frames 0-1 red, frame 2 padded with the last (blue): exact -1 / +1 at the extremes.
    assert video[0, :, 0, 0].tolist() == [1.0, -1.0, -1.0]
    assert video[2, :, 0, 0].tolist() == [-1.0, -1.0, 1.0]
    assert (item["name"], item["caption"], item["index"]) == ("s1_000", "caption 1 0", 1)
    assert len(dataset) == 1 and dataset.captions == ["caption 1 0"]


def test_cache_pickles_without_its_array(tmp_path):
    import pickle

    make_folder(tmp_path, signers=1, per_signer=1)
    cache = _open(tmp_path)
    _ = cache.videos
    clone = pickle.loads(pickle.dumps(cache))
    assert clone._videos is None and np.array_equal(clone.videos, cache.videos)


def test_open_dataset_splits_by_signer_over_one_cache(tmp_path):
    make_folder(tmp_path, signers=4, per_signer=2)
    train, val = open_dataset(tmp_path, num_frames=3, size=SIZE, val_fraction=0.25)
    assert len(train) + len(val) == 8 and len(val) == 2
    assert not {signer_of(n) for n in train.names} & {signer_of(n) for n in val.names}
    assert train.cache is val.cache and (tmp_path / ".t2s_cache").is_dir()
    # The cache folder inside the dataset does not disturb the next scan.
    train2, _ = open_dataset(tmp_path, num_frames=3, size=SIZE, val_fraction=0.25)
    assert train2.cache.path == train.cache.path and train2.names == train.names


def test_check_report_counts_pairs_signers_and_bad_files(tmp_path):
    make_folder(tmp_path, signers=3, per_signer=2)
    _no_caption(tmp_path)
    report = check_report(tmp_path)
    assert "pairs: 6" in report and "signers: 3" in report
    assert "captions: 6 (6 unique)" in report
    assert "frames per GIF: min 2 / median 2 / max 2" in report
    assert f"{SIZE}x{SIZE} (6)" in report
    assert "bad files: 1" in report and "bad_x.gif: no caption" in report
    with pytest.raises(DataError):
        check_report(tmp_path, strict=True)
