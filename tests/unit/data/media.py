"""Small real media for the data tests: solid-colour clips in every kind, written for real
(GIF through imageio, mp4/webm through FFmpeg in PyAV, PNG frames through Pillow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from text2sign.data.writers import write_video

RED, GREEN, BLUE, GREY = (255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128)
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
SIZE = 8
KINDS = ("gif", "mp4", "webm", "frames")


def solid_video(colours, h: int = SIZE, w: int = SIZE) -> np.ndarray:
    """One solid frame per colour: uint8 (T, h, w, 3)."""
    return np.stack([np.full((h, w, 3), c, np.uint8) for c in colours])


def numbered_video(n: int, size: int = 16) -> np.ndarray:
    """Frame ``t`` shows ``t`` in binary as 8 vertical bars (white = 1): survives lossy codecs."""
    video = np.zeros((n, size, size, 3), np.uint8)
    bar = size // 8
    for t in range(n):
        for b in range(8):
            if (t >> b) & 1:
                video[t, :, b * bar : (b + 1) * bar] = 255
    return video


def frame_number(frame: np.ndarray) -> int:
    """The number a ``numbered_video`` frame shows (read at the bars' centres)."""
    size = frame.shape[1]
    bar = size // 8
    return sum(1 << b for b in range(8) if frame[size // 2, b * bar + bar // 2].mean() > 127)


def write(root: Path, name: str, video: np.ndarray, kind: str, caption: str | None = "hi yes"):
    """``root/NAME.<kind>`` (or the frame folder) and, unless None, the caption ``NAME.txt``."""
    root.mkdir(parents=True, exist_ok=True)
    path = write_video(root / name, video, kind)
    if caption is not None:
        (root / f"{name}.txt").write_text(caption, encoding="utf-8")
    return path


def make_folder(root: Path, kinds=KINDS, signers: int = 3, per_signer: int = 2) -> Path:
    """A folder of ``signers`` x ``per_signer`` clips, kinds taken in turn: names s<k>_<i>."""
    n = 0
    for s in range(signers):
        for i in range(per_signer):
            kind = kinds[n % len(kinds)]
            write(root, f"s{s}_{i:03d}", solid_video([RED, BLUE], 16, 16), kind, f"caption {s} {i}")
            n += 1
    return root


def write_mp4_with_keyframes(
    path: Path, video: np.ndarray, every: int, fps: int = 10, faststart: bool = False
) -> Path:
    """An H.264 mp4 with a keyframe every ``every`` frames (so seeking lands mid-stream);
    ``faststart`` puts the index (moov) before the frames, as streaming sites do."""
    import av

    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "15"})
        stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
        stream.codec_context.gop_size = every
        for image in video:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path
