"""The embedded synthetic dataset: procedural sign-like clips whose motion the caption determines.

Each video shows two "hand" blobs (pure red and green) and a static "head" blob (pure blue) on a
dark background. A caption is two words from ``GLOSSES``:

* word 1 sets the right hand's trajectory, which lives in the image's right half;
* word 2 sets the left hand's trajectory: the mirror image (x -> 1 - x) of the same word's
  right-hand trajectory, so it lives in the left half.

Every word starts from its own point of a 2 x 4 grid and moves along its own short line or arc.
The start points are far apart compared to the motion, so the hand positions identify the caption
in *every* frame: a model that ignores the caption cannot place the hands (DESIGN.md: the first
prototype barely used its caption). Signers ``s0 .. s{n-1}`` only add nuisance (a pixel of offset,
blob radius, background brightness), never a different trajectory.

Coordinates are normalised to [0, 1] of width/height with pixel ``i`` covering ``[i, i+1) / W``,
so keypoints are resolution-independent: pixel index ~= ``x * W - 0.5``.

``generate`` writes a flat folder in any format (``text2sign.data.writers``);
``text2sign.data.shaped`` lays the same clips out as How2Sign and PHOENIX-2014T ship theirs.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from text2sign.atomic import write_text
from text2sign.data.manifest import write_manifest
from text2sign.data.writers import FORMATS, write_video
from text2sign.errors import UsageError

#: Signers of the embedded set. Clips of one signer share its nuisance (background, blob size,
#: offset): evaluation treats them as one cluster, and the audit's test needs >= 5 clusters to
#: reach p < 0.05 (an exact sign-flip test over 5 has p >= 1/32). With 32 signers, 384 clips and
#: val_fraction 0.2 the validation split holds 6 signers (72 clips): p can reach 1/64.
SIGNERS = 32

GLOSSES: tuple[str, ...] = ("hello", "thanks", "please", "sorry", "yes", "no", "help", "friend")

#: Keypoint order in ``caption_keypoints`` and in ``NAME.keypoints.json``.
KEYPOINT_NAMES: tuple[str, ...] = ("right_hand", "left_hand", "head")

#: Pure, saturated RGB colours, so evaluation can find each blob by colour alone.
BLOB_COLOURS: dict[str, tuple[int, int, int]] = {
    "right_hand": (255, 0, 0),
    "left_hand": (0, 255, 0),
    "head": (0, 0, 255),
}

# Geometry, as fractions of the frame. The grid spacing (0.18 and 0.22) is large compared to the
# motions (<= 0.08), so no two words ever share a position.
_GRID_X = (0.62, 0.84)  # right-hand grid columns; the left hand mirrors them
_GRID_Y = (0.30, 0.48, 0.66, 0.84)  # grid rows, below the head
_HEAD_XY = (0.5, 0.12)
_HAND_RADIUS = 0.08  # blob radius as a fraction of the frame size
_HEAD_RADIUS = 0.10

# Per word: (dx, dy) from start to end, and a bulge perpendicular to that line (0 = straight,
# +-: an arc to one side). Every word moves in its own direction; the set was picked by a small
# search so that any two words stay >= 0.12 apart at every moment (a unit test pins >= 0.1).
_MOTIONS: dict[str, tuple[float, float, float]] = {
    "hello": (0.065, 0.0, 0.04),
    "thanks": (0.0, -0.065, 0.04),
    "please": (0.046, 0.046, 0.0),
    "sorry": (0.0, 0.065, 0.04),
    "yes": (-0.046, -0.046, 0.0),
    "no": (-0.065, 0.0, 0.0),
    "help": (0.046, -0.046, 0.04),
    "friend": (-0.046, 0.046, -0.04),
}

_BG_RANGE = (12, 40)  # background grey level range across signers (dark)
_RADIUS_SCALE_RANGE = (0.9, 1.1)  # blob radius scale across signers
_MAX_OFFSET_PX = 1  # signer offset, in pixels of the generated size
_SAMPLE_JITTER_PX = 0.3  # per-sample sub-pixel jitter, so repeats are not byte-identical


@dataclass(frozen=True)
class _Signer:
    """Nuisance parameters of one synthetic signer."""

    offset_px: tuple[int, int]
    radius_scale: float
    background: int


def _word_start(word: str) -> tuple[float, float]:
    k = GLOSSES.index(word)
    return _GRID_X[k % len(_GRID_X)], _GRID_Y[k // len(_GRID_X)]


def _right_hand_path(word: str, frames: int) -> np.ndarray:
    """Signer-free right-hand trajectory of ``word``: (T, 2) normalised x, y."""
    sx, sy = _word_start(word)
    dx, dy, bulge = _MOTIONS[word]
    u = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    norm = float(np.hypot(dx, dy))
    px, py = -dy / norm, dx / norm  # unit vector perpendicular to the motion
    arc = bulge * np.sin(np.pi * u)
    return np.stack([sx + dx * u + px * arc, sy + dy * u + py * arc], axis=-1)


def parse_caption(caption: str) -> tuple[str, str]:
    """Split a synthetic caption into its two glosses; raise UsageError if it is not one."""
    words = caption.lower().split()
    if len(words) != 2 or any(w not in GLOSSES for w in words):
        raise UsageError(
            f"not a synthetic caption: {caption!r}; expected two words from {', '.join(GLOSSES)}"
        )
    return words[0], words[1]


def caption_keypoints(caption: str, frames: int) -> np.ndarray:
    """Signer-free keypoints of ``caption``: float (T, K, 2), K in ``KEYPOINT_NAMES`` order."""
    right_word, left_word = parse_caption(caption)
    right = _right_hand_path(right_word, frames)
    left = _right_hand_path(left_word, frames)
    left[:, 0] = 1.0 - left[:, 0]  # mirror: the left hand moves like the right one, reflected
    head = np.broadcast_to(np.asarray(_HEAD_XY), (frames, 2))
    return np.stack([right, left, head], axis=1)


def all_captions() -> list[str]:
    """Every caption the generator uses, in the order samples cycle through them."""
    return [f"{a} {b}" for a, b in itertools.product(GLOSSES, GLOSSES)]


def _make_signers(num_signers: int, rng: np.random.Generator) -> list[_Signer]:
    signers = []
    for _ in range(num_signers):
        ox, oy = rng.integers(-_MAX_OFFSET_PX, _MAX_OFFSET_PX + 1, size=2)
        signers.append(
            _Signer(
                offset_px=(int(ox), int(oy)),
                radius_scale=float(rng.uniform(*_RADIUS_SCALE_RANGE)),
                background=int(rng.integers(_BG_RANGE[0], _BG_RANGE[1] + 1)),
            )
        )
    return signers


def _render(keypoints: np.ndarray, size: int, signer: _Signer) -> np.ndarray:
    """Draw anti-aliased discs at ``keypoints`` (T, K, 2): uint8 (T, size, size, 3)."""
    frames = keypoints.shape[0]
    centres = np.arange(size) + 0.5  # pixel centres, in pixel units
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    video = np.full((frames, size, size, 3), float(signer.background))
    radii = {"right_hand": _HAND_RADIUS, "left_hand": _HAND_RADIUS, "head": _HEAD_RADIUS}
    # Paint the head first so the hands are drawn over it when they pass in front.
    order = [KEYPOINT_NAMES.index(n) for n in ("head", "left_hand", "right_hand")]
    for t in range(frames):
        for k in order:
            name = KEYPOINT_NAMES[k]
            cx, cy = keypoints[t, k] * size
            radius = radii[name] * size * signer.radius_scale
            # Coverage ramps over one pixel at the rim; the centre pixel is the pure colour.
            alpha = np.clip(radius + 0.5 - np.hypot(xx - cx, yy - cy), 0.0, 1.0)[..., None]
            video[t] = (1.0 - alpha) * video[t] + alpha * np.asarray(BLOB_COLOURS[name])
    video = np.round(video).astype(np.uint8)
    # Pillow merges identical consecutive GIF frames, which would change the frame count:
    # nudge one corner pixel by a grey level (invisible) so that never happens.
    for t in range(1, frames):
        if np.array_equal(video[t], video[t - 1]):
            video[t, 0, 0] = video[t - 1, 0, 0] ^ 1
    return video


@dataclass(frozen=True)
class SynthClip:
    """One generated clip: name ``{signer}_{i:05d}``, caption, signer, video and keypoints."""

    name: str
    caption: str
    signer: str
    video: np.ndarray  # uint8 (T, size, size, 3)
    keypoints: np.ndarray  # float (T, K, 2), K in KEYPOINT_NAMES order, normalised


def keypoints_json(keypoints: np.ndarray) -> str:
    """The ``NAME.keypoints.json`` text of a clip's exact blob keypoints."""
    return json.dumps({"names": list(KEYPOINT_NAMES), "xy": np.round(keypoints, 5).tolist()}) + "\n"


def clips(
    num: int, *, frames: int = 8, size: int = 32, seed: int = 0, num_signers: int = SIGNERS
) -> Iterator[SynthClip]:
    """The ``num`` synthetic clips, in order; a function of the arguments only.

    Sample ``i`` gets caption ``all_captions()[i % 64]`` and a signer that shifts by one every
    cycle of 64 captions, so every signer sees every caption after ``num_signers`` cycles.
    """
    if num < 1 or frames < 1 or size < 8 or num_signers < 1:
        raise UsageError(
            f"synth needs num >= 1, frames >= 1, size >= 8, num_signers >= 1 "
            f"(got num={num}, frames={frames}, size={size}, num_signers={num_signers})"
        )
    rng = np.random.default_rng(seed)
    signers = _make_signers(num_signers, rng)
    captions = all_captions()
    for i in range(num):
        combo = i % len(captions)
        s = (combo + i // len(captions)) % num_signers
        jitter = np.random.default_rng([seed, i]).uniform(-1.0, 1.0, size=2) * _SAMPLE_JITTER_PX
        shift = (np.asarray(signers[s].offset_px) + jitter) / size  # pixels -> normalised
        keypoints = caption_keypoints(captions[combo], frames) + shift
        video = _render(keypoints, size, signers[s])
        yield SynthClip(f"s{s}_{i:05d}", captions[combo], f"s{s}", video, keypoints)


def generate(
    out_dir: str | os.PathLike,
    num: int,
    *,
    frames: int = 8,
    size: int = 32,
    seed: int = 0,
    num_signers: int = SIGNERS,
    fmt: str = "gif",
) -> list[str]:
    """Write ``num`` synthetic clips as a flat dataset folder; return their names.

    Per clip: ``NAME.gif``/``.mp4``/``.webm`` or the frame folder ``NAME/`` (``fmt``), the
    caption ``NAME.txt`` and the exact keypoints ``NAME.keypoints.json``; plus ``manifest.csv``
    over all of them (relative paths), so the folder is also a manifest dataset.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names, rows = [], []
    for clip in clips(num, frames=frames, size=size, seed=seed, num_signers=num_signers):
        source = write_video(out / clip.name, clip.video, fmt)
        write_text(out / f"{clip.name}.txt", clip.caption + "\n")
        write_text(out / f"{clip.name}.keypoints.json", keypoints_json(clip.keypoints))
        rows.append({"video": source.name, "caption": clip.caption, "signer": clip.signer})
        names.append(clip.name)
    write_manifest(out / "manifest.csv", rows)
    return names
