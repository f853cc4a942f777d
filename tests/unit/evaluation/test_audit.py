"""The conditioning audit measures whether the caption drives the video, in both directions.

* A stand-in "perfect model" that returns each caption's reference clip shows a large gap with a
  significant test over recordings: wrong captions put the hands elsewhere.
* The real DiT with its caption path cut (text projections zeroed) shows no gap at all: the
  earlier project's text-blind model could not have passed this audit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from text2sign.config import load_config
from text2sign.data import generate, open_dataset
from text2sign.evaluation.clips import draw
from text2sign.evaluation.evaluate import audit
from text2sign.evaluation.sampling import make_diffusion, sample_videos
from text2sign.models.build import build_model


@pytest.fixture(scope="module")
def val_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    generate(root, 96, frames=8, size=32, seed=0, num_signers=12)
    _, val = open_dataset(root, num_frames=8, size=16, val_fraction=0.5)  # 6 signers
    drawn = draw(val, 12, seed=0)  # 2 clips from each of the 6 signers (their recordings)
    items = [val[i] for i in drawn.positions]
    videos = np.stack(
        [((it["video"].permute(0, 2, 3, 1) + 1) * 127.5).round().byte().numpy() for it in items]
    )
    kps = [
        np.asarray(json.loads((root / f"{it['name']}.keypoints.json").read_text())["xy"])
        for it in items
    ]
    return root, [it["caption"] for it in items], videos, kps, drawn.recordings


def test_a_model_that_follows_the_caption_shows_a_significant_gap(val_clips):
    _, captions, videos, kps, recordings = val_clips
    assert len(set(captions)) == len(captions)
    by_caption = dict(zip(captions, videos, strict=True))
    blank = np.full_like(videos[0], videos[0].reshape(-1, 3).min(0))  # background only

    def perfect_model(caps: list[str]) -> np.ndarray:  # stand-in: the reference clip of a caption
        return np.stack([by_caption.get(c, blank) for c in caps])

    metrics, detail, _ = audit(perfect_model, captions, kps, seed=0, clusters=recordings)
    assert metrics["dtw_mje"].value < 0.02  # the detector finds the true hands
    # every recording worse shuffled: the exact one-sided p over 6 recordings is 2^-6
    assert metrics["audit_gap"].value > 0.05 and metrics["audit_p"].value == 1 / 64
    assert metrics["audit_recordings"].value == 6
    assert detail["clustered_test"]["n_clips"] == 12
    assert metrics["dtw_mje_empty"].value > metrics["dtw_mje"].value  # no hands: centre, far off
    assert all(i != p for i, p in enumerate(detail["permutation"]))


def test_a_model_with_the_caption_path_cut_shows_no_gap(val_clips):
    root, captions, _, kps, recordings = val_clips
    cfg = load_config(overrides=[f"data.root={root}", "diffusion.sample_steps=3"])
    built = build_model(cfg, None, captions)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in built.model.dit.parameters():  # a non-trivial (not zero-init) network
            p.add_(torch.randn_like(p) * 0.05)
        for mlp in (built.model.dit.text_embedder, built.model.dit.text_pooler):
            mlp.fc2.weight.zero_()  # cut: the caption no longer reaches cross-attention or adaLN
            mlp.fc2.bias.zero_()
    diffusion = make_diffusion(cfg)

    def text_blind(caps: list[str]) -> np.ndarray:
        return sample_videos(built, diffusion, caps, cfg=cfg, seed=7)

    metrics, detail, _ = audit(text_blind, captions, kps, seed=0, clusters=recordings)
    assert metrics["audit_gap"].value == pytest.approx(0.0, abs=1e-9)
    assert metrics["audit_p"].value == 1.0  # every sign assignment reaches a zero sum
    assert detail["per_video"]["correct"] == detail["per_video"]["shuffled"]


def test_clips_of_one_recording_give_no_test(val_clips):
    """The same stand-in with every clip from one recording: a gap, but no p-value, and why."""
    _, captions, videos, kps, _ = val_clips
    by_caption = dict(zip(captions, videos, strict=True))
    blank = np.full_like(videos[0], videos[0].reshape(-1, 3).min(0))

    def perfect_model(caps: list[str]) -> np.ndarray:
        return np.stack([by_caption.get(c, blank) for c in caps])

    metrics, _, _ = audit(perfect_model, captions, kps, seed=0, clusters=["one"] * 12)
    assert metrics["audit_gap"].value > 0.05
    assert metrics["audit_p"].is_na
    assert metrics["audit_p"].reason == "all 12 clips come from 1 recording: no test across " \
        "recordings"  # fmt: skip


def test_exact_keypoints_follow_the_frames_the_cache_took(tmp_path):
    """A uniformly sampled clip is scored against the keypoints of the frames it was made of."""
    from text2sign.evaluation.evaluate import _reference_keypoints

    generate(tmp_path, 6, frames=12, size=16, fmt="mp4")
    train, _ = open_dataset(tmp_path / "manifest.csv", num_frames=4, size=16, val_fraction=0.0,
                            frame_sampling="uniform")  # fmt: skip
    j = 0
    xy = np.asarray(
        json.loads((tmp_path / f"{train.cache.names[j]}.keypoints.json").read_text())["xy"]
    )
    got = _reference_keypoints(train.cache, j)
    assert got.shape == (4, *xy.shape[1:])
    assert np.array_equal(got, xy[[1, 4, 7, 10]])  # (i + 0.5) * 12 / 4


@pytest.mark.parametrize("cut", [("start_frame", "end_frame", 3, 11), ("start", "end", 0.3, 1.1)])
def test_exact_keypoints_follow_a_cut_in_frames_or_in_seconds(tmp_path, cut):
    """A seconds cut used to be scored against frames 0, 1, ... of the source (only start_frame
    shifted them)."""
    from text2sign.evaluation.evaluate import _reference_keypoints

    generate(tmp_path, 6, frames=12, size=16, fmt="mp4")  # 10 fps: 0.3 s is frame 3
    lo, hi, a, b = cut
    rows = (tmp_path / "manifest.csv").read_text().splitlines()
    cols = rows[0].split(",")
    cut_rows = [rows[0] + f",{lo},{hi}"] + [r + f",{a},{b}" for r in rows[1:]]
    (tmp_path / "cut.csv").write_text("\n".join(cut_rows) + "\n")
    train, _ = open_dataset(tmp_path / "cut.csv", num_frames=4, size=16, val_fraction=0.0)
    name = train.cache.names[0]
    xy = np.asarray(json.loads((tmp_path / f"{name}.keypoints.json").read_text())["xy"])
    assert "video" in cols
    assert np.array_equal(_reference_keypoints(train.cache, 0), xy[[3, 4, 5, 6]])
