"""The synthetic set laid out as the real datasets ship, to test the importers end to end.

* **How2Sign**: sentence clips ``rgb_front_clips/<SENTENCE_NAME>.mp4`` and the tab-separated
  ``how2sign_realigned_<split>.csv`` with the release's columns (``HOW2SIGN_COLUMNS``). Each
  synthetic signer is one source video: ``VIDEO_ID`` = the signer (``s3``), ``SENTENCE_ID`` =
  the clip's name (``s3_00012``), ``SENTENCE_NAME`` = ``s3_00012-1-rgb_front``; START/END are
  the clip's place in a made-up raw video of the signer's clips played back to back.
* **PHOENIX-2014T**: frames ``features/fullFrame-210x260px/<split>/<name>/images0001.png`` ...
  and the pipe-separated ``annotations/manual/PHOENIX-2014-T.<split>.corpus.csv`` with
  ``PHOENIX_COLUMNS``; ``speaker`` = ``Signer03`` for ``s3``, ``orth`` = the caption in upper
  case (glosses), ``translation`` = the caption.

The exact keypoints lie beside each clip as ``<clip without suffix>.keypoints.json``.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from text2sign.atomic import write_text
from text2sign.data.synth import clips, keypoints_json
from text2sign.data.writers import FPS, write_frames, write_video

HOW2SIGN_COLUMNS: tuple[str, ...] = (
    "VIDEO_ID", "VIDEO_NAME", "SENTENCE_ID", "SENTENCE_NAME",
    "START_REALIGNED", "END_REALIGNED", "SENTENCE",
)  # fmt: skip
PHOENIX_COLUMNS: tuple[str, ...] = (
    "name", "video", "start", "end", "speaker", "orth", "translation",
)  # fmt: skip
PHOENIX_FRAMES = Path("features") / "fullFrame-210x260px"
PHOENIX_ANNOTATIONS = Path("annotations") / "manual"


def phoenix_corpus(root: Path, split: str) -> Path:
    """Where PHOENIX-2014T keeps the corpus file of ``split``."""
    return root / PHOENIX_ANNOTATIONS / f"PHOENIX-2014-T.{split}.corpus.csv"


def _table(columns: tuple[str, ...], rows: list[dict], delimiter: str) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_how2sign(
    out: str | os.PathLike, num: int, *, split: str = "train", **synth_args
) -> tuple[Path, Path]:
    """Write a How2Sign-shaped copy of ``num`` synthetic clips: (the CSV, the clips folder)."""
    out = Path(out)
    clip_dir = out / "rgb_front_clips"
    clip_dir.mkdir(parents=True, exist_ok=True)
    rows, clock = [], {}
    for clip in clips(num, **synth_args):
        sentence = f"{clip.name}-1-rgb_front"
        write_video(clip_dir / sentence, clip.video, "mp4")
        write_text(clip_dir / f"{sentence}.keypoints.json", keypoints_json(clip.keypoints))
        start = clock.get(clip.signer, 0.0)
        clock[clip.signer] = start + len(clip.video) / FPS
        rows.append({
            "VIDEO_ID": clip.signer, "VIDEO_NAME": f"{clip.signer}-1-rgb_front",
            "SENTENCE_ID": clip.name, "SENTENCE_NAME": sentence,
            "START_REALIGNED": f"{start:.2f}", "END_REALIGNED": f"{clock[clip.signer]:.2f}",
            "SENTENCE": clip.caption,
        })  # fmt: skip
    csv_path = out / f"how2sign_realigned_{split}.csv"
    write_text(csv_path, _table(HOW2SIGN_COLUMNS, rows, "\t"))
    return csv_path, clip_dir


def write_phoenix(out: str | os.PathLike, num: int, *, split: str = "train", **synth_args) -> Path:
    """Write a PHOENIX-2014T-shaped copy of ``num`` synthetic clips; return the corpus file."""
    out = Path(out)
    frames_dir = out / PHOENIX_FRAMES / split
    rows = []
    for clip in clips(num, **synth_args):
        write_frames(frames_dir / clip.name, clip.video, pattern="images{:04d}.png", first=1)
        write_text(frames_dir / f"{clip.name}.keypoints.json", keypoints_json(clip.keypoints))
        rows.append({
            "name": clip.name, "video": f"{clip.name}/1/*.png", "start": "-1", "end": "-1",
            "speaker": f"Signer{int(clip.signer[1:]):02d}", "orth": clip.caption.upper(),
            "translation": clip.caption,
        })  # fmt: skip
    corpus = phoenix_corpus(out, split)
    write_text(corpus, _table(PHOENIX_COLUMNS, rows, "|"))
    return corpus
