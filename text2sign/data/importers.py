"""Importers: turn a How2Sign or PHOENIX-2014T download into a manifest; nothing is copied.

* **How2Sign** (``import_how2sign``): the tab-separated ``how2sign_realigned_<split>.csv``
  (read like the public loaders' ``pd.read_csv(sep="\\t")``) and either the sentence clips
  (``--clips``: ``<SENTENCE_NAME>.mp4``, already cut) or the raw videos (``--raw``:
  ``<VIDEO_NAME>.mp4``, cut to ``START_REALIGNED``/``END_REALIGNED`` seconds). Caption =
  ``SENTENCE``; name = ``SENTENCE_NAME``; signer = ``VIDEO_ID``: the CSV does not name the
  participant, and all sentences of one source video were signed by one person, so grouping by
  video keeps a recording out of both splits (it does not stop one person from being on both
  sides: edit the manifest's ``signer`` column where participant ids are known); recording =
  ``VIDEO_ID``.
* **PHOENIX-2014T** (``import_phoenix``): the pipe-separated
  ``annotations/manual/PHOENIX-2014-T.<split>.corpus.csv`` and the frame folders
  ``features/fullFrame-210x260px/<split>/<name>/`` (or their ``1/`` sub-folder, PHOENIX-2014's
  layout). Caption = ``translation`` (or ``orth``, the glosses); signer = ``speaker``; recording
  = the broadcast, the name without its ``-<number>`` (:func:`phoenix_recording`).

A row whose video is missing, or that is malformed, is skipped and named in one warning
(``strict``: an error); video paths are written absolute, so the manifest can live anywhere.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from text2sign.data.manifest import check_manifest_name, write_manifest
from text2sign.data.samples import FRAME_SUFFIXES, Bad, format_bad
from text2sign.data.shaped import HOW2SIGN_COLUMNS, PHOENIX_FRAMES, phoenix_corpus
from text2sign.errors import DataError

log = logging.getLogger("text2sign")

PHOENIX_TEXT = ("translation", "orth")


def _read_table(
    path: Path, delimiter: str, required: tuple[str, ...]
) -> list[tuple[int, dict | str]]:
    """(line, row dict) per data row, or (line, why) for a malformed one; the header is checked."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except OSError as e:
        raise DataError(f"{path}: unreadable: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 (byte {e.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in required if c not in header]
    if missing:
        sep = "tab" if delimiter == "\t" else repr(delimiter)
        raise DataError(
            f"{path}: no {missing[0]!r} column ({sep}-separated header expected: "
            f"{', '.join(required)}; found: {', '.join(header) or 'nothing'})"
        )
    rows: list[tuple[int, dict | str]] = []
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return rows
        except csv.Error as e:
            rows.append((line, f"malformed: {e}"))
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            rows.append((line, f"malformed: {len(row)} fields, the header has {len(header)}"))
            continue
        rows.append((line, dict(zip(header, row, strict=True))))


def _finish(out: Path, rows: list[dict], bad: list[Bad], source: Path, strict: bool) -> int:
    if bad and strict:
        raise DataError(f"{len(bad)} bad rows in {source}: {format_bad(bad, 3)}")
    if not rows:
        detail = f" ({len(bad)} bad: {format_bad(bad, 3)})" if bad else ""
        raise DataError(f"no usable row in {source}{detail}")
    if bad:
        log.warning("skipped %d bad rows of %s: %s", len(bad), source, format_bad(bad))
    write_manifest(out, rows)
    return len(rows)


def import_how2sign(
    csv_path: Path, out: Path, *, clips: Path | None = None, raw: Path | None = None,
    strict: bool = False,
) -> int:  # fmt: skip
    """Write a manifest over How2Sign's sentence clips (or raw videos); return the row count."""
    check_manifest_name(out)
    if (clips is None) == (raw is None):
        raise DataError("give the sentence clips (--clips DIR) or the raw videos (--raw DIR)")
    folder = (clips or raw).absolute()  # type: ignore[union-attr]
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    rows, bad, seen = [], [], set()
    for line, row in _read_table(csv_path, "\t", HOW2SIGN_COLUMNS):
        label = f"{csv_path.name} line {line}"
        if isinstance(row, str):
            bad.append(Bad(label, row))
            continue
        name, video_id = row["SENTENCE_NAME"].strip(), row["VIDEO_ID"].strip()
        if not name or not video_id or not row["SENTENCE"].strip():
            bad.append(Bad(label, "empty SENTENCE_NAME, VIDEO_ID or SENTENCE"))
            continue
        if name in seen:
            bad.append(Bad(label, f"SENTENCE_NAME {name!r} appears twice"))
            continue
        video = folder / f"{(name if clips else row['VIDEO_NAME'].strip())}.mp4"
        if not video.is_file():
            bad.append(Bad(label, f"{video.name}: file missing in {folder}"))
            continue
        entry = {"name": name, "video": str(video), "caption": row["SENTENCE"], "signer": video_id,
                 "recording": video_id}  # fmt: skip
        if raw is not None:
            try:
                start, end = float(row["START_REALIGNED"]), float(row["END_REALIGNED"])
            except ValueError:
                bad.append(Bad(label, "START_REALIGNED/END_REALIGNED are not seconds"))
                continue
            if not 0 <= start < end:
                bad.append(Bad(label, f"START_REALIGNED {start} is not before END {end}"))
                continue
            entry |= {"start": f"{start:g}", "end": f"{end:g}"}
        seen.add(name)
        rows.append(entry)
    return _finish(out, rows, bad, csv_path, strict)


def phoenix_recording(name: str) -> str:
    """The broadcast a PHOENIX clip was cut from: its name without the ``-<number>`` suffix
    (``01April_2010_Thursday_heute-6694`` -> ``01April_2010_Thursday_heute``)."""
    stem, sep, number = name.rpartition("-")
    return stem if sep and stem and number.isdigit() else name


def _phoenix_frames(split_dir: Path, name: str) -> Path | None:
    """The frame folder of ``name``: ``<name>/`` or, holding the frames, ``<name>/1/``."""
    for folder in (split_dir / name, split_dir / name / "1"):
        if folder.is_dir() and any(p.suffix.lower() in FRAME_SUFFIXES for p in folder.iterdir()):
            return folder
    return None


def import_phoenix(
    root: Path, split: str, out: Path, *, text: str = "translation", strict: bool = False
) -> int:
    """Write a manifest over PHOENIX-2014T's frame folders of ``split``; return the row count."""
    check_manifest_name(out)
    if text not in PHOENIX_TEXT:
        raise DataError(f"caption column {text!r}: expected one of {', '.join(PHOENIX_TEXT)}")
    root = root.absolute()
    corpus = phoenix_corpus(root, split)
    if not corpus.is_file():
        raise DataError(f"no corpus for split {split!r}: {corpus} does not exist")
    split_dir = root / PHOENIX_FRAMES / split
    rows, bad, seen = [], [], set()
    for line, row in _read_table(corpus, "|", ("name", "speaker", "orth", "translation")):
        label = f"{corpus.name} line {line}"
        if isinstance(row, str):
            bad.append(Bad(label, row))
            continue
        name, speaker = row["name"].strip(), row["speaker"].strip()
        if not name or not speaker or not row[text].strip():
            bad.append(Bad(label, f"empty name, speaker or {text}"))
            continue
        if name in seen:
            bad.append(Bad(label, f"name {name!r} appears twice"))
            continue
        if row.get("start", "-1").strip() != "-1" or row.get("end", "-1").strip() != "-1":
            bad.append(Bad(label, "start/end other than -1 (whole clip) are not supported"))
            continue
        folder = _phoenix_frames(split_dir, name)
        if folder is None:
            bad.append(Bad(label, f"{name}: no frame folder with PNG frames in {split_dir}"))
            continue
        seen.add(name)
        rows.append({"name": name, "video": str(folder), "caption": row[text], "signer": speaker,
                     "recording": phoenix_recording(name)})  # fmt: skip
    return _finish(out, rows, bad, corpus, strict)
