"""Decode any sample (GIF, mp4, webm, a folder of frames) to uint8 frames, cut and sampled.

* GIFs and frame images are read with Pillow; ``.mp4`` and ``.webm`` with PyAV, whose wheel
  carries FFmpeg's libraries, in-process (docs/data.md, "Decoding", says why not a subprocess).
* A cut is half-open: seconds keep the frames whose presentation time ``t`` (from the first
  frame) has ``start <= t < end``; frames keep indices ``start_frame <= i < end_frame``. An end
  past the last frame keeps up to the last frame; a start past it is an error.
* The whole cut is always decoded, since truncated data only fails when decoded: a clip is
  either used whole or skipped.
* ``first`` keeps the cut's first ``num_frames`` frames and pads with the last one; ``uniform``
  keeps the frame at the middle of each of ``num_frames`` equal segments of the cut (frames
  repeat when the cut is shorter).

Every problem with a source is a ``BadVideo`` whose message is the one-line reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageSequence

from text2sign.data.samples import FRAME_SUFFIXES, Sample, kind_of

FRAME_SAMPLING: tuple[str, ...] = ("first", "uniform")
#: FFmpeg decoding threads per clip (0: FFmpeg's choice, which uses every core of the host; the
#: parallel decoder's workers set 1, since they are one process per CPU).
DECODER_THREADS = 0
_GIF_DEFAULT_MS = 100  # a GIF frame without a duration (browsers show ~10 fps)
_EPS = 1e-6  # seconds: float rounding of presentation times


class BadVideo(ValueError):
    """A source that cannot be decoded (or cut); the message is the one-line reason."""


@dataclass(frozen=True)
class ClipInfo:
    """What a decoded cut holds: frame count, the source's frame size, seconds if timed."""

    frames: int
    width: int
    height: int
    seconds: float | None


# A frame as it comes out of a reader: (its index in the source, presentation time in seconds
# or None, getter of the RGB image). The getter must be called before the reader moves on (GIF frames are reused); its
# optional argument is the shorter side wanted, which a reader may already shrink to (FFmpeg
# scales while it converts from YUV, several times faster than converting, then resizing).
_Getter = Callable[..., Image.Image]
_Frame = tuple[int, float | None, _Getter]


def _first_line(e: BaseException) -> str:
    """The error's message: FFmpeg's text without the errno and the file name PyAV adds."""
    if isinstance(e, av.FFmpegError) and e.strerror:
        return str(e.strerror)
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def frame_files(folder: Path) -> list[Path]:
    """The frame images of a folder, in natural order (``2.png`` before ``10.png``)."""

    def key(p: Path) -> list:
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]

    return sorted((p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=key)


def _gif_frames(path: Path) -> Iterator[_Frame]:
    try:
        with Image.open(path) as im:
            if im.format != "GIF":
                raise BadVideo(f"corrupt GIF: not a GIF but {im.format}")
            t = 0.0
            for index, frame in enumerate(ImageSequence.Iterator(im)):
                frame.load()
                yield index, t, lambda _=None, f=frame: f.convert("RGB")  # palette, grey -> RGB
                t += frame.info.get("duration", _GIF_DEFAULT_MS) / 1000.0
    except BadVideo:
        raise
    except (PermissionError, FileNotFoundError) as e:
        raise BadVideo(f"unreadable: {e.strerror}") from e
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, EOFError, ...)
        raise BadVideo(f"corrupt GIF: {_first_line(e)}") from e


def _folder_frames(folder: Path) -> Iterator[_Frame]:
    try:
        files = frame_files(folder)
    except OSError as e:
        raise BadVideo(f"unreadable: {e.strerror or e}") from e
    if not files:
        raise BadVideo("frame folder holds no .png/.jpg frames")
    for index, path in enumerate(files):
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")  # convert() loads, so a truncated image fails here
        except Exception as e:
            raise BadVideo(f"corrupt frame {path.name}: {_first_line(e)}") from e
        yield index, None, lambda _=None, image=image: image


def _av_frames(path: Path, kind: str, seek: float) -> Iterator[_Frame]:
    """Frames of an mp4/webm, after seeking to the keyframe at or before ``seek`` seconds.

    When decoding ends early (truncated data that FFmpeg reads without an error), the duration
    of the stream (or of the file) in the header tells, and it is a BadVideo.
    """
    label = kind.upper()
    try:
        container = av.open(str(path))
    except (PermissionError, FileNotFoundError) as e:
        raise BadVideo(f"unreadable: {e.strerror}") from e
    except av.FFmpegError as e:
        raise BadVideo(f"corrupt {label}: {_first_line(e)}") from e
    with container:
        if not container.streams.video:
            raise BadVideo(f"corrupt {label}: no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise BadVideo(f"unsupported codec: FFmpeg has no decoder for {label} stream 0")
        if DECODER_THREADS:
            stream.thread_count = DECODER_THREADS
        tb = stream.time_base or Fraction(1, 1)
        origin = stream.start_time or 0
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        decoded, last = 0, None
        scaler = av.video.reformatter.VideoReformatter()  # one per clip: its scaler is reused
        try:
            if seek > 0:
                container.seek(int(seek / tb) + origin, stream=stream, backward=True)
            for frame in container.decode(stream):
                t = float((frame.pts - origin) * tb) if frame.pts is not None else decoded / rate
                decoded, last = decoded + 1, t
                # the index from the time: frames skipped by a seek still count (constant rate)
                yield (
                    round(t * rate),
                    t,
                    lambda shorter=None, f=frame: _av_image(f, shorter, scaler),
                )
        except av.error.DecoderNotFoundError as e:
            raise BadVideo(f"unsupported codec: {_first_line(e)}") from e
        except av.FFmpegError as e:
            raise BadVideo(f"corrupt {label}: {_first_line(e)}") from e
        # Not the frame count of the index: a clip cut by stream copy (``ffmpeg -ss X -c copy``)
        # keeps the packets from the keyframe before X and an edit list that hides them, so
        # the index counts more frames than a valid file shows. The duration is what it shows.
        expected = _expected_seconds(container, stream, tb)
        if last is not None and expected is not None:
            got = last + 1.0 / rate
            if got < expected - max(2.0 / rate, 0.1):
                raise BadVideo(f"truncated: decoded {got:.2f} s of {expected:.2f} s")


def _scaled_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """The size with the shorter side ``shorter`` (aspect kept, as ``resize_and_crop``)."""
    scale = shorter / min(width, height)
    return max(shorter, round(width * scale)), max(shorter, round(height * scale))


def _av_image(frame: av.VideoFrame, shorter: int | None, scaler) -> Image.Image:
    """RGB of a decoded frame; shrunk by FFmpeg (area averaging) when ``shorter`` asks less."""
    width, height = frame.width, frame.height
    if shorter is not None and shorter < min(width, height):
        width, height = _scaled_size(width, height, shorter)
    rgb = scaler.reformat(frame, width=width, height=height, format="rgb24", interpolation="AREA")
    return rgb.to_image()


def _expected_seconds(container, stream, tb) -> float | None:
    """The video's length from the headers: the stream's, or the file's for a lone stream."""
    if stream.duration:
        return float(stream.duration * tb)
    if container.duration and len(container.streams) == 1:
        return container.duration / av.time_base
    return None


def _frames(sample: Sample) -> Iterator[_Frame]:
    if sample.kind == "gif":
        return _gif_frames(sample.source)
    if sample.kind == "frames":
        return _folder_frames(sample.source)
    return _av_frames(sample.source, sample.kind, sample.start or 0.0)


def iter_cut(sample: Sample) -> Iterator[tuple[int, float | None, _Getter]]:
    """(index within the cut, time, image getter) of every frame of the sample's cut.

    Decodes the whole cut (and checks the source) even when the caller keeps only some frames.
    """
    for kept, _, t, get in iter_cut_indexed(sample):
        yield kept, t, get


def iter_cut_indexed(sample: Sample) -> Iterator[tuple[int, int, float | None, _Getter]]:
    """(index within the cut, index in the source, time, image getter) of every frame of the
    cut: :func:`iter_cut` with where each frame sits in the whole source (what exact keypoints
    of the whole source are indexed by)."""
    seconds = sample.start is not None or sample.end is not None
    start = sample.start or 0.0
    kept, seen, last_t = 0, 0, None
    for index, t, get in _frames(sample):
        seen += 1
        if seconds:
            if t is None:
                raise BadVideo(
                    "a frame folder has no timestamps: cut it with start_frame/end_frame"
                )
            last_t = t
            if t < start - _EPS:
                continue
            if sample.end is not None and t >= sample.end - _EPS:
                break
        else:
            if sample.start_frame is not None and index < sample.start_frame:
                continue
            if sample.end_frame is not None and index >= sample.end_frame:
                break
        yield kept, index, t, get
        kept += 1
    if kept:
        return
    if seen == 0:
        raise BadVideo("no frames")
    if seconds and sample.start is not None and (last_t is None or last_t < start - _EPS):
        raise BadVideo(f"start {sample.start:g} s is past the end (last frame at {last_t:.2f} s)")
    if not seconds and sample.start_frame is not None and seen <= sample.start_frame:
        raise BadVideo(f"start_frame {sample.start_frame} is past the end ({seen} frames)")
    what = f"end {sample.end:g} s" if seconds else f"end_frame {sample.end_frame}"
    where = (
        "the first frame"
        if (sample.start if seconds else sample.start_frame) is None
        else "its start"
    )
    raise BadVideo(f"the cut holds no frame ({what} is at or before {where})")


def probe(sample: Sample) -> ClipInfo:
    """Decode the whole cut: its frame count, the frame size and the seconds it spans."""
    frames, width, height, first, last = 0, 0, 0, None, None
    for i, t, get in iter_cut(sample):
        if i == 0:
            width, height = get().size
            first = t
        frames, last = i + 1, t
    seconds = None if first is None or last is None else last - first
    return ClipInfo(frames, width, height, seconds)


def resize_and_crop(frame: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size``, then centre-crop to ``size`` x ``size``."""
    w, h = frame.size
    scale = size / min(w, h)
    new_w, new_h = _scaled_size(w, h, size)
    if (new_w, new_h) != (w, h):
        # BOX (area averaging) when shrinking avoids aliasing; bilinear when enlarging.
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        frame = frame.resize((new_w, new_h), resample)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return frame.crop((left, top, left + size, top + size))


def sample_indices(n: int, num_frames: int, sampling: str) -> np.ndarray:
    """Which of a cut's ``n`` frames make the ``num_frames`` of a clip (see the module doc)."""
    if sampling == "first":
        return np.minimum(np.arange(num_frames), n - 1)
    if sampling == "uniform":
        return ((np.arange(num_frames) + 0.5) * n / num_frames).astype(np.int64)
    raise ValueError(f"frame_sampling {sampling!r}: expected one of {', '.join(FRAME_SAMPLING)}")


def decode_clip(
    sample: Sample, num_frames: int, size: int, sampling: str = "first"
) -> tuple[np.ndarray, int, int]:
    """Decode, cut and sample a clip: (uint8 (num_frames, size, size, 3) RGB, frames in the cut,
    the index in the source of the cut's first frame).

    Raises ``BadVideo`` (the one-line reason) for a source that cannot be decoded or cut.
    """
    if sampling not in FRAME_SAMPLING:
        raise ValueError(
            f"frame_sampling {sampling!r}: expected one of {', '.join(FRAME_SAMPLING)}"
        )
    frames: list[np.ndarray] = []
    n, first = 0, 0
    for i, index, _, get in iter_cut_indexed(sample):
        n, first = i + 1, index if i == 0 else first
        if sampling == "uniform" or i < num_frames:  # uniform needs n first: keep all, small
            frames.append(np.asarray(resize_and_crop(get(size), size)))
    if sampling == "first":
        keep = sample_indices(len(frames), num_frames, "first")
        return np.stack([frames[i] for i in keep]), n, first
    return np.stack([frames[i] for i in sample_indices(n, num_frames, sampling)]), n, first


def load_video(sample: Sample, num_frames: int, size: int, sampling: str = "first") -> np.ndarray:
    """Decode, cut and sample a clip to uint8 (num_frames, size, size, 3) RGB (see decode_clip)."""
    return decode_clip(sample, num_frames, size, sampling)[0]


def load_path(path: str | Path, num_frames: int, size: int, sampling: str = "first") -> np.ndarray:
    """Decode a whole GIF, mp4, webm or frame folder by path (the kind from its suffix)."""
    path = Path(path)
    kind = kind_of(path)
    if kind is None:
        raise BadVideo(f"{path}: not a .gif/.mp4/.webm file or a frame folder")
    sample = Sample(path.stem, path.absolute(), "-", "-", kind, label=path.name)
    return load_video(sample, num_frames, size, sampling)
