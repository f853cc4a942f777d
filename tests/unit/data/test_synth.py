"""The synthetic generator: determinism, ground-truth keypoints, caption-determined motion."""

from __future__ import annotations

import itertools
import json

import imageio.v3 as iio
import numpy as np
import pytest

from text2sign.data import synth
from text2sign.data.samples import keypoints_path, signer_of
from text2sign.data.sources import list_samples
from text2sign.data.video import load_path
from text2sign.data.writers import write_gif
from text2sign.errors import UsageError

SIZE = 32
FRAMES = 4


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_generate_is_deterministic_for_a_seed(tmp_path):
    a = synth.generate(tmp_path / "a", 3, frames=FRAMES, size=SIZE, seed=1)
    b = synth.generate(tmp_path / "b", 3, frames=FRAMES, size=SIZE, seed=1)
    c = synth.generate(tmp_path / "c", 3, frames=FRAMES, size=SIZE, seed=2)
    assert a == b == c
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a") != _files(tmp_path / "c")  # the seed changes the nuisance


def test_generate_writes_named_triples_with_all_signers(tmp_path):
    names = synth.generate(tmp_path, 8, frames=FRAMES, size=SIZE, num_signers=4)
    assert names == sorted(names, key=lambda n: n.split("_")[1])
    assert {signer_of(n) for n in names} == {"s0", "s1", "s2", "s3"}
    for name in names:
        assert iio.imread(tmp_path / f"{name}.gif", index=None).shape[:3] == (FRAMES, SIZE, SIZE)
        caption = (tmp_path / f"{name}.txt").read_text().strip()
        synth.parse_caption(caption)  # raises if it is not two glosses
        record = json.loads((tmp_path / f"{name}.keypoints.json").read_text())
        assert record["names"] == list(synth.KEYPOINT_NAMES)
        assert np.asarray(record["xy"]).shape == (FRAMES, len(synth.KEYPOINT_NAMES), 2)


def test_every_signer_sees_every_caption_after_enough_cycles():
    # The assignment rule of generate(): combo i % 64, signer shifted by one per cycle.
    n_combos, signers = len(synth.all_captions()), 3
    seen = {(i % n_combos, (i % n_combos + i // n_combos) % signers) for i in range(n_combos * 3)}
    assert len(seen) == n_combos * signers


@pytest.mark.parametrize("frames", [1, 12])
def test_gif_keeps_its_frame_count(tmp_path, frames):
    (name,) = synth.generate(tmp_path, 1, frames=frames, size=16)
    assert iio.imread(tmp_path / f"{name}.gif", index=None).shape[0] == frames


def test_static_frames_are_not_merged_by_the_gif_writer(tmp_path):
    # Pillow drops a frame identical to the previous one; _render must prevent that.
    still = np.repeat(synth.caption_keypoints("hello yes", 1), 3, axis=0)
    video = synth._render(still, 16, synth._Signer((0, 0), 1.0, 20))
    write_gif(tmp_path / "still.gif", video)
    assert iio.imread(tmp_path / "still.gif", index=None).shape[0] == 3


def _blob_centroid(frame: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """(x, y) in pixel indices: centroid weighted by how much the blob's channel dominates."""
    channel = int(np.argmax(colour))  # the colours are pure: one channel at 255
    others = np.delete(frame, channel, axis=-1).max(-1)
    weight = np.clip(frame[..., channel] - others, 0, None).astype(float)  # ~ disc coverage
    rows, cols = np.indices(weight.shape)
    return np.array([(weight * cols).sum(), (weight * rows).sum()]) / weight.sum()


def test_keypoints_match_the_drawn_blobs(tmp_path):
    names = synth.generate(tmp_path, 6, frames=FRAMES, size=SIZE)
    for name in names:
        video = iio.imread(tmp_path / f"{name}.gif", index=None)[..., :3].astype(int)
        xy = np.asarray(json.loads((tmp_path / f"{name}.keypoints.json").read_text())["xy"])
        for k, part in enumerate(synth.KEYPOINT_NAMES):
            for t in range(FRAMES):
                found = _blob_centroid(video[t], synth.BLOB_COLOURS[part])
                expected = xy[t, k] * SIZE - 0.5  # normalised -> pixel index
                assert np.allclose(found, expected, atol=0.25), (name, part, t, found, expected)


def test_same_caption_different_signers_give_near_identical_keypoints(tmp_path):
    n_combos = len(synth.all_captions())
    names = synth.generate(tmp_path, n_combos + 1, frames=2, size=SIZE)
    first, again = names[0], names[n_combos]  # same caption, next signer
    assert signer_of(first) != signer_of(again)
    caps = [(tmp_path / f"{n}.txt").read_text() for n in (first, again)]
    assert caps[0] == caps[1]
    kps = [
        np.asarray(json.loads((tmp_path / f"{n}.keypoints.json").read_text())["xy"])
        for n in (first, again)
    ]
    # At most the signer offset plus jitter apart, on both sides: far below the word spacing.
    tolerance = 2 * (synth._MAX_OFFSET_PX + synth._SAMPLE_JITTER_PX) / SIZE
    assert np.abs(kps[0] - kps[1]).max() <= tolerance
    assert tolerance < 0.12


def test_first_word_moves_right_hand_second_word_left_hand():
    base = synth.caption_keypoints("hello yes", 8)
    right = synth.caption_keypoints("thanks yes", 8)
    left = synth.caption_keypoints("hello no", 8)
    right_idx, left_idx = (
        synth.KEYPOINT_NAMES.index("right_hand"),
        synth.KEYPOINT_NAMES.index("left_hand"),
    )
    assert np.linalg.norm(base[:, right_idx] - right[:, right_idx], axis=-1).min() > 0.1
    np.testing.assert_allclose(base[:, left_idx], right[:, left_idx])
    assert np.linalg.norm(base[:, left_idx] - left[:, left_idx], axis=-1).min() > 0.1
    np.testing.assert_allclose(base[:, right_idx], left[:, right_idx])


@pytest.mark.parametrize("frames", [1, 2, 8, 16])
def test_every_word_has_its_own_position_in_every_frame(frames):
    paths = {w: synth._right_hand_path(w, frames) for w in synth.GLOSSES}
    gaps = [
        np.linalg.norm(paths[a] - paths[b], axis=-1).min()
        for a, b in itertools.combinations(synth.GLOSSES, 2)
    ]
    assert min(gaps) >= 0.1
    every = np.concatenate(list(paths.values()))
    assert every.min() > synth._HAND_RADIUS and every.max() < 1 - synth._HAND_RADIUS  # in frame
    assert every[:, 0].min() > 0.5  # right hand stays in the right half, the mirror in the left


def test_unknown_caption_is_a_usage_error():
    with pytest.raises(UsageError, match="hello"):
        synth.caption_keypoints("good morning", 4)
    with pytest.raises(UsageError):
        synth.caption_keypoints("hello", 4)


def test_generate_rejects_bad_arguments(tmp_path):
    with pytest.raises(UsageError):
        synth.generate(tmp_path, 0)
    with pytest.raises(UsageError, match="unknown format 'avi'"):
        synth.generate(tmp_path, 1, fmt="avi")
    with pytest.raises(UsageError, match="even frame sides"):
        synth.generate(tmp_path, 1, size=15, fmt="mp4")


@pytest.mark.parametrize("fmt", ["gif", "mp4", "webm", "frames"])
def test_every_format_keeps_frames_keypoints_and_a_manifest(tmp_path, fmt):
    names = synth.generate(tmp_path, 4, frames=FRAMES, size=SIZE, fmt=fmt)
    listing = list_samples(tmp_path)  # the folder view
    by_manifest = list_samples(tmp_path / "manifest.csv")  # the manifest view, same samples
    assert [s.name for s in listing.samples] == names == [s.name for s in by_manifest.samples]
    for folder_s, manifest_s in zip(listing.samples, by_manifest.samples, strict=True):
        assert folder_s.source == manifest_s.source and folder_s.kind == fmt
        assert (folder_s.caption, folder_s.signer) == (manifest_s.caption, manifest_s.signer)
        record = json.loads(keypoints_path(folder_s.source).read_text())  # the lookup rule
        assert np.asarray(record["xy"]).shape == (FRAMES, len(synth.KEYPOINT_NAMES), 2)
    # The decoded frames match the rendering: exactly for lossless kinds, closely for codecs
    # (4:2:0 chroma halves the colour resolution at the blob rims: ~4 grey levels on average).
    clip = next(synth.clips(1, frames=FRAMES, size=SIZE))
    decoded = load_path(listing.samples[0].source, FRAMES, SIZE).astype(int)
    error = np.abs(decoded - clip.video.astype(int)).mean()
    assert error == 0 if fmt in ("gif", "frames") else error < 6, error


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_encoded_formats_are_deterministic(tmp_path, fmt):
    synth.generate(tmp_path / "a", 3, frames=FRAMES, size=SIZE, fmt=fmt)
    synth.generate(tmp_path / "b", 3, frames=FRAMES, size=SIZE, fmt=fmt)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
