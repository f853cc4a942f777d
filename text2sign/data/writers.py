"""Write a uint8 (T, H, W, 3) video as a GIF, an ``.mp4`` (H.264), a ``.webm`` (VP9) or a
folder of PNG frames; every writer goes through a temporary name and a rename.

The mp4 and webm encoders are FFmpeg's libx264 and libvpx-vp9 inside the PyAV wheel, in 4:2:0
chroma like most real clips (so frame sides must be even); one encoder thread, so that the same
arguments give the same bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import imageio.v3 as iio
import numpy as np
from PIL import Image

from text2sign.errors import UsageError

FORMATS: tuple[str, ...] = ("gif", "mp4", "webm", "frames")
FPS = 10  # frames per second of every written video (GIF: 100 ms a frame)
_CODECS = {"mp4": ("libx264", {"crf": "15", "preset": "medium"}),
           "webm": ("libvpx-vp9", {"crf": "20", "b": "0", "deadline": "good", "cpu-used": "4"})}  # fmt: skip


def write_gif(path: str | os.PathLike, video: np.ndarray, fps: int = FPS) -> None:
    """Write uint8 (T, H, W, 3) as a looping GIF at ``fps`` and check the frame count."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.gif")
    iio.imwrite(tmp, video, duration=1000 // fps, loop=0)
    with Image.open(tmp) as im:
        written = im.n_frames
    if written != len(video):
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"{path}: wrote {written} GIF frames, expected {len(video)}")
    os.replace(tmp, path)


def write_encoded(path: str | os.PathLike, video: np.ndarray, fmt: str, fps: int = FPS) -> None:
    """Write uint8 (T, H, W, 3) as an ``mp4`` (H.264) or ``webm`` (VP9) at ``fps``."""
    path = Path(path)
    frames, height, width = video.shape[:3]
    if height % 2 or width % 2:
        raise UsageError(f"{fmt} needs even frame sides (4:2:0 chroma), got {width}x{height}")
    codec, options = _CODECS[fmt]
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        with av.open(str(tmp), "w", format=fmt, options={"fflags": "+bitexact"}) as container:
            stream = container.add_stream(codec, rate=fps, options=options)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.thread_count = 1
            for t, image in enumerate(video):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = t, Fraction(1, fps)
                container.mux(stream.encode(frame))
            container.mux(stream.encode())  # flush the encoder's delayed frames
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_frames(
    folder: str | os.PathLike, video: np.ndarray, pattern: str = "{:03d}.png", first: int = 0
) -> None:
    """Write uint8 (T, H, W, 3) as PNG files ``pattern.format(first + t)`` in a new ``folder``.

    An existing folder is replaced whole (the frames are written next to it, then renamed).
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for t, frame in enumerate(video):
            Image.fromarray(frame).save(tmp / pattern.format(first + t))
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_video(stem: str | os.PathLike, video: np.ndarray, fmt: str) -> Path:
    """Write ``video`` as ``stem.gif``/``stem.mp4``/``stem.webm`` or the folder ``stem/``."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "frames":
        write_frames(stem, video)
        return stem
    path = stem.with_name(f"{stem.name}.{fmt}")
    if fmt == "gif":
        write_gif(path, video)
    elif fmt in _CODECS:
        write_encoded(path, video, fmt)
    else:
        raise UsageError(f"unknown video format {fmt!r}; valid: {', '.join(FORMATS)}")
    return path
