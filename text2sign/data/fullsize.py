"""Datasets of the real size, laid out as How2Sign and PHOENIX-2014T ship: test and benchmark
fixtures for what breaks only at scale (planning, binds, listing, importing, sharded preparing).

* :func:`how2sign`: ``how2sign_realigned_<split>.csv`` (tab-separated, the release's columns)
  with 31,128 rows (the train split's count) over recordings of ~14 sentences, and either the
  sentence clips ``rgb_front_clips/<SENTENCE_NAME>.mp4`` or, with ``raw``, the long recordings
  ``raw_videos/<VIDEO_NAME>.mp4`` that the rows cut in seconds. Names start with an 11-character
  video id, as How2Sign's do (``--7E2sU6zP4_10-5-rgb_front``), so the alphabetically first clips
  come from a handful of recordings.
* :func:`phoenix`: ``features/fullFrame-210x260px/<split>/<name>/images0001.png …`` (7,096 frame
  folders in train) and the pipe-separated corpus; names are ``<date>_<show>-<n>`` (the
  broadcast, then the clip), one signer per broadcast, 9 signers.

Two kinds of clips:

* **count-only** (the default): a pool of a few distinct short clips of a real person
  (:mod:`text2sign.data.person`'s astronaut under a moving camera) hard-linked under every
  name, so 31,128 files cost seconds and little disk. Use them where only counts matter.
* **realistic** (``realistic=True``): every clip its own, at the release's size and rate
  (How2Sign: 1280 x 720, 24 fps, ~6 s of H.264; PHOENIX: 210 x 260 PNG frames at 25 fps), a
  person on a green backdrop with sensor-like noise, so decoding and estimation cost what they
  cost on the real data. Use a few dozen of them where per-clip cost matters.

Nothing here has exact keypoints: to the toolkit these are real-data datasets (a keypoints
stage, estimated DTW-MJE). Write them outside the project folder and import them into a
manifest elsewhere to get the shared-storage layout real users have.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from text2sign.atomic import write_text
from text2sign.data.shaped import (
    HOW2SIGN_COLUMNS,
    PHOENIX_COLUMNS,
    PHOENIX_FRAMES,
    _table,
    phoenix_corpus,
)

HOW2SIGN_TRAIN_ROWS = 31_128  # sentences in How2Sign's realigned train split
PHOENIX_TRAIN_FOLDERS = 7_096  # sequences in PHOENIX-2014T's train split
PHOENIX_SIGNERS = 9
HOW2SIGN_SENTENCES_PER_VIDEO = 14  # ~31k sentences over ~2.2k videos (our assumption, see docs)
PHOENIX_CLIPS_PER_BROADCAST = 18  # ~7.1k clips over ~400 weather broadcasts (our assumption)

#: The release's sizes: (width, height, fps, frames) of a realistic clip.
HOW2SIGN_REAL = (1280, 720, 24, 144)  # 6 s sentences of 720p
PHOENIX_REAL = (210, 260, 25, 120)  # PHOENIX frames, ~5 s

_POOL = 8  # distinct count-only clips (one per camera motion of the real-person clips)
_SMALL = (64, 64, 10, 8)  # count-only How2Sign clip: 64 x 64, 10 fps, 8 frames
_SMALL_PHOENIX = (42, 52, 8)  # count-only PHOENIX frames: 42 x 52 (210:260), 8 frames
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class FullSize:
    """What a generator wrote: the annotation file, the folder of clips, rows and recordings."""

    annotations: Path
    clips: Path
    rows: int
    recordings: int
    signers: int


# -- the pixels -----------------------------------------------------------------------------


def _person(motion: int, frames: int, height: int, width: int, rng: np.random.Generator,
            noise: float = 0.0) -> np.ndarray:  # fmt: skip
    """uint8 (frames, height, width, 3): the real person of :mod:`text2sign.data.person` under a
    camera pan (right or down, by ``motion``'s parity), centred on a green backdrop (a studio's
    green screen) when the frame is wider than tall, with Gaussian sensor noise of ``noise``
    grey levels (what makes real footage cost bits and decoding time).

    The photo is enlarged once and the window moves over it: rendering every 720p frame by an
    affine warp, as :func:`text2sign.data.person.clip` does, would take minutes per clip."""
    from PIL import Image

    from text2sign.data import person

    side = min(height, width)
    travel = side // 2  # the window moves half its side over the clip
    big = np.asarray(Image.fromarray(person.photo()).resize((side + travel,) * 2,
                                                           Image.Resampling.BICUBIC))  # fmt: skip
    out = np.empty((frames, height, width, 3), dtype=np.uint8)
    out[:] = (40, 160, 70)
    top, left = (height - side) // 2, (width - side) // 2
    for t in range(frames):
        shift = round(travel * t / max(frames - 1, 1))
        y, x = (0, shift) if motion % 2 == 0 else (shift, 0)
        out[t, top : top + side, left : left + side] = big[y : y + side, x : x + side]
    half = round(noise * 3**0.5)  # uniform on [-half, half] has standard deviation ~noise
    for frame in out if noise > 0 else ():  # frame by frame: a 720p clip is 400 M values
        grain = rng.integers(-half, half + 1, frame.shape, dtype=np.int16)
        frame[:] = np.clip(frame + grain, 0, 255)
    return out


def _write_mp4(path: Path, video: np.ndarray, fps: int, crf: int = 23) -> None:
    """H.264 (libx264, yuv420p) at ``fps``, as sentence clips are distributed. A realistic
    How2Sign clip (noise 4, crf 20) comes out at ~4.3 Mbit/s and decodes in ~0.38 s here, as
    the issue measured real 6 s sentences (0.3-0.44 s)."""
    import av

    tmp = path.with_name(f".{path.name}.tmp.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps,
                                      options={"crf": str(crf), "preset": "veryfast"})  # fmt: skip
        stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
        for t, image in enumerate(video):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    os.replace(tmp, path)


def _write_pngs(folder: Path, video: np.ndarray) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t, frame in enumerate(video, start=1):
        paths.append(folder / f"images{t:04d}.png")
        Image.fromarray(frame).save(paths[-1])
    return paths


def _link(src: Path, dst: Path) -> None:
    """A hard link (same file system: free), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


# -- How2Sign ---------------------------------------------------------------------------------


def _video_ids(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct 11-character YouTube-like ids, sorted (as a directory listing shows)."""
    ids: set[str] = set()
    while len(ids) < n:
        ids.add("".join(rng.choice(list(_ID_CHARS), 11)))
    return sorted(ids)


def how2sign(
    out: str | os.PathLike,
    *,
    rows: int = HOW2SIGN_TRAIN_ROWS,
    per_video: int = HOW2SIGN_SENTENCES_PER_VIDEO,
    raw: bool = False,
    realistic: bool = False,
    split: str = "train",
    seed: int = 0,
) -> FullSize:
    """A How2Sign-shaped dataset of ``rows`` sentences in ``out`` (see the module doc)."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    videos = _video_ids(-(-rows // per_video), rng)
    width, height, fps, frames = HOW2SIGN_REAL if realistic else _SMALL
    seconds = frames / fps
    clip_dir = out / ("raw_videos" if raw else "rgb_front_clips")
    clip_dir.mkdir(parents=True, exist_ok=True)
    pool: list[Path] = []
    if not realistic:  # the few distinct clips every name links to
        pool_dir = out / ".pool"
        pool_dir.mkdir(exist_ok=True)
        length = frames * (per_video if raw else 1)  # a raw video holds all its sentences
        for k in range(_POOL):
            pool.append(pool_dir / f"{k}.mp4")
            _write_mp4(pool[-1], _person(k, length, height, width, rng), fps)
    table = []
    for i in range(rows):
        vid, k = videos[i // per_video], i % per_video
        video_name, sentence = f"{vid}-5-rgb_front", f"{vid}_{k}-5-rgb_front"
        start = k * seconds if raw else 0.0
        table.append({
            "VIDEO_ID": vid, "VIDEO_NAME": video_name, "SENTENCE_ID": f"{vid}_{k}",
            "SENTENCE_NAME": sentence, "START_REALIGNED": f"{start:.2f}",
            "END_REALIGNED": f"{start + seconds:.2f}", "SENTENCE": _sentence(i, rng),
        })  # fmt: skip
        target = clip_dir / f"{video_name if raw else sentence}.mp4"
        if target.exists():
            continue
        if realistic:
            _write_mp4(target, _person(i, frames, height, width, rng, noise=4.0), fps, crf=20)
        else:
            _link(pool[i % _POOL], target)
    csv_path = out / f"how2sign_realigned_{split}.csv"
    write_text(csv_path, _table(HOW2SIGN_COLUMNS, table, "\t"))
    return FullSize(csv_path, clip_dir, rows, len(videos), len(videos))


_WORDS = ("so", "now", "we", "are", "going", "to", "take", "the", "brush", "and", "paint", "this",
          "side", "of", "box", "then", "you", "want", "make", "sure", "it", "is", "dry")  # fmt: skip


def _sentence(i: int, rng: np.random.Generator) -> str:
    words = rng.choice(_WORDS, int(rng.integers(4, 14)))
    return " ".join(words).capitalize() + "."


# -- PHOENIX-2014T ----------------------------------------------------------------------------


def _broadcasts(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct ``01April_2010_Thursday_heute``-like broadcast names."""
    names: set[str] = set()
    while len(names) < n:
        day, month, year = int(rng.integers(1, 29)), _MONTHS[rng.integers(12)], rng.integers(9, 12)
        weekday, show = _DAYS[rng.integers(7)], ("tagesschau", "heute")[rng.integers(2)]
        names.add(f"{day:02d}{month}_20{year:02d}_{weekday}_{show}")
    return sorted(names)


def phoenix(
    out: str | os.PathLike,
    *,
    folders: int = PHOENIX_TRAIN_FOLDERS,
    signers: int = PHOENIX_SIGNERS,
    per_broadcast: int = PHOENIX_CLIPS_PER_BROADCAST,
    realistic: bool = False,
    split: str = "train",
    seed: int = 0,
) -> FullSize:
    """A PHOENIX-2014T-shaped dataset of ``folders`` frame folders in ``out`` (module doc)."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    broadcasts = _broadcasts(-(-folders // per_broadcast), rng)
    signer_of = {b: f"Signer{1 + j % signers:02d}" for j, b in enumerate(broadcasts)}
    frames_dir = out / PHOENIX_FRAMES / split
    frames_dir.mkdir(parents=True, exist_ok=True)
    pool: list[list[Path]] = []
    if not realistic:
        width, height, frames = _SMALL_PHOENIX
        for k in range(_POOL):
            pool.append(_write_pngs(out / ".pool" / str(k), _person(k, frames, height, width, rng)))
    rows = []
    for i in range(folders):
        broadcast = broadcasts[i // per_broadcast]
        name = f"{broadcast}-{1 + i % per_broadcast}"
        folder = frames_dir / name
        if not folder.is_dir():
            if realistic:
                width, height, _, frames = PHOENIX_REAL
                _write_pngs(folder, _person(i, frames, height, width, rng))  # ~75 KB a PNG
            else:
                folder.mkdir()
                for src in pool[i % _POOL]:
                    _link(src, folder / src.name)
        words = rng.choice(_WORDS, int(rng.integers(4, 12)))
        rows.append({
            "name": name, "video": f"{name}/1/*.png", "start": "-1", "end": "-1",
            "speaker": signer_of[broadcast], "orth": " ".join(words).upper(),
            "translation": " ".join(words),
        })  # fmt: skip
    corpus = phoenix_corpus(out, split)
    corpus.parent.mkdir(parents=True, exist_ok=True)
    write_text(corpus, _table(PHOENIX_COLUMNS, rows, "|"))
    return FullSize(corpus, frames_dir, folders, len(broadcasts), min(signers, len(broadcasts)))
