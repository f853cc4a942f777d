"""The evaluated clips as videos a person watches: the reference, the sample with its caption and
the sample with a shuffled caption, for the report's side-by-side rows and for TensorBoard.

For the first ``eval.video_clips`` evaluated clips the evaluation writes ``RUN/eval_videos/``:

- ``clipNN_<pass>.mp4`` (H.264) and ``.webm`` (VP9) for the passes ``reference``, ``correct`` and
  ``shuffled``: short looping videos at ``eval.video_fps``, upscaled by a whole factor (nearest
  neighbour, so a 32-pixel sample stays sharp and its colours survive 4:2:0 chroma) to at least
  :data:`MIN_SIDE` pixels. H.264 plays in every browser (Safari included); VP9 is the second
  source, for browsers built without H.264. Where this FFmpeg cannot encode them, GIFs instead
  (``formats`` says which, ``format_note`` why).
- On real signers, the skeleton MediaPipe estimated in each clip is drawn over it
  (:mod:`text2sign.evaluation.overlay`): what DTW-MJE compared, missing joints visibly missing.
- ``index.json``: per clip its name, recording, caption and the shuffled caption, each pass's
  DTW-MJE and detection rates, and the files.

TensorBoard gets the same clips (reference | correct | shuffled side by side) as videos.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from text2sign import atomic
from text2sign.data.writers import write_encoded, write_gif
from text2sign.evaluation import overlay
from text2sign.pose.joints import Joints

VIDEOS_DIR = "eval_videos"
INDEX = "index.json"
PASSES = ("reference", "correct", "shuffled")
FORMATS = ("mp4", "webm")
MIN_SIDE = 128  # pixels: the shorter side of a written clip is at least this


def upscale(frames: np.ndarray, min_side: int = MIN_SIDE) -> np.ndarray:
    """(T, H, W, 3) uint8 → nearest-neighbour upscaled by an even whole factor (even sides)."""
    k = max(2, math.ceil(min_side / min(frames.shape[1:3])))
    k += k % 2
    return frames.repeat(k, axis=1).repeat(k, axis=2)


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def _encode(stem: Path, frames: np.ndarray, fps: int, formats: tuple[str, ...]) -> dict[str, str]:
    files = {}
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        if fmt == "gif":
            write_gif(path, frames, fps=fps)
        else:
            write_encoded(path, frames, fmt, fps=fps)
        files[fmt] = path.name
    return files


def _formats(folder: Path, frames: np.ndarray, fps: int) -> tuple[tuple[str, ...], str]:
    """The formats this FFmpeg can write (a trial encode), else GIF and why."""
    try:
        for fmt in FORMATS:
            write_encoded(folder / f".probe.{fmt}", frames[:2], fmt, fps=fps)
            (folder / f".probe.{fmt}").unlink()
        return FORMATS, ""
    except Exception as e:  # no encoder in this FFmpeg build: the page falls back to GIF
        return ("gif",), f"H.264/VP9 encoding failed ({type(e).__name__}: {e}): GIF instead"


def write(
    run_dir: Path,
    clips: list[dict[str, Any]],
    videos: dict[str, np.ndarray],
    *,
    fps: int,
    joints: dict[str, list[Any]] | None = None,
    step: int | None = None,
    weights: str = "",
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Write ``RUN/eval_videos/`` for ``clips`` (dicts with name, recording, caption,
    shuffled_caption, dtw_mje per pass; the first len(clips) rows of every pass of ``videos``:
    uint8 (N, T, H, W, 3) under ``reference``, ``correct``, ``shuffled``). ``joints``: per pass,
    per clip, :class:`Joints` (or why there are none) to draw over the clips; None: no skeleton.
    Returns the index (also written as ``index.json``) and, per clip, its passes side by side
    as they were written (for TensorBoard)."""
    out = Path(run_dir) / VIDEOS_DIR
    out.mkdir(parents=True, exist_ok=True)
    first = upscale(videos["reference"][0])
    formats, note = _formats(out, first, fps)
    entries, rows = [], []
    for i, clip in enumerate(clips):
        files, detection, shown = {}, {}, []
        for name in PASSES:
            frames = upscale(np.asarray(videos[name][i]))
            j = (joints or {}).get(name, [None] * len(clips))[i]
            if isinstance(j, Joints):
                frames = overlay.draw(frames, j.xy)
                detection[name] = j.detection()
            elif joints is not None:
                detection[name] = {"reason": str(j or "no keypoints")}
            files[name] = _encode(out / f"clip{i:02d}_{name}", frames, fps, formats)
            shown.append(frames)
        rows.append(side_by_side(shown))
        entries.append({**clip, "files": files, "detection": detection,
                        "dtw_mje": {k: _finite(v) for k, v in clip.get("dtw_mje", {}).items()}})  # fmt: skip
    index = {
        "fps": fps, "frames": int(videos["reference"].shape[1]), "formats": list(formats),
        "format_note": note, "skeleton": "estimated" if joints is not None else "none",
        "step": step, "weights": weights, "clips": entries,
    }  # fmt: skip
    atomic.write_json(out / INDEX, index)
    return index, rows


def side_by_side(parts: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Equal-sized (T, H, W, 3) clips left to right with white gaps: (T, H, W', 3)."""
    t, h = parts[0].shape[:2]
    white = np.full((t, h, gap, 3), 255, dtype=np.uint8)
    return np.concatenate([p for part in parts for p in (part, white)][:-1], axis=2)
