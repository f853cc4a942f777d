"""A manifest: a CSV (``*.csv``, comma-separated, a header row) or JSON-lines (``*.jsonl``, one
object per line) file with one sample per row.

Columns (keys): ``video`` (a .gif/.mp4/.webm file or a folder of frames, relative to the
manifest's folder or absolute), ``caption``, ``signer`` (all required); ``name`` (default: the
video's file or folder name without suffix; unique); ``recording`` (the recording or session
the clip was cut from, default: the signer; evaluation treats clips of one recording as one
cluster); a cut, either ``start``/``end`` in seconds
or ``start_frame``/``end_frame`` in frames (0-based, end excluded), each end optional.

A row that is not a usable sample (a missing file, a malformed CSV line, a bad cut, ...) is a
``Bad`` named ``manifest.csv line N``; a file that cannot be a manifest at all (no such file,
not UTF-8, a header without a required column or with an unknown one) raises ``DataError``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

from text2sign.atomic import write_text
from text2sign.data.samples import (
    VIDEO_SUFFIXES,
    Bad,
    Sample,
    clean_caption,
    kind_of,
    source_problem,
)
from text2sign.errors import DataError

COLUMNS: tuple[str, ...] = (
    "name", "video", "caption", "signer", "recording", "start", "end", "start_frame", "end_frame",
)  # fmt: skip
REQUIRED: tuple[str, ...] = ("video", "caption", "signer")
MANIFEST_SUFFIXES: tuple[str, ...] = (".csv", ".jsonl")


def is_manifest(path: Path) -> bool:
    """Whether ``path`` names a manifest file (by suffix) rather than a dataset folder."""
    return path.suffix.lower() in MANIFEST_SUFFIXES and not path.is_dir()


def _text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"manifest {path} does not exist") from None
    except OSError as e:
        raise DataError(f"manifest {path}: unreadable: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"manifest {path} is not UTF-8 (byte {e.start})") from None


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, dict | str]]:
    """(line, fields) per data row, or (line, why) for a malformed one; the header is checked."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(
            f"manifest {path} is empty (expected a header: {', '.join(REQUIRED)})"
        ) from None
    except csv.Error as e:
        raise DataError(f"manifest {path} line 1: malformed CSV header: {e}") from None
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing:
        problem = f"unknown column {unknown[0]!r}" if unknown else f"no {missing[0]!r} column"
        raise DataError(f"manifest {path}: {problem} (columns: {', '.join(COLUMNS)})")
    if len(set(header)) != len(header):
        raise DataError(f"manifest {path}: a column is named twice in the header")
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # bad quoting; an unclosed quote swallows the rest of the file
            yield line, f"malformed CSV: {e}"
            continue
        if not row or row == [""]:
            continue  # a blank line
        if len(row) != len(header):
            yield line, f"malformed CSV: {len(row)} fields, the header has {len(header)}"
            continue
        yield line, dict(zip(header, row, strict=True))


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[int, dict | str]]:
    # Lines end at "\n" only (JSON lines): str.splitlines() would also split at U+2028,
    # U+0085 and other characters a caption may hold unescaped.
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            yield line, f"not JSON: {e.msg} (column {e.colno})"
            continue
        if not isinstance(obj, dict):
            yield line, "not a JSON object"
            continue
        unknown = [k for k in obj if k not in COLUMNS]
        if unknown:
            yield line, f"unknown key {unknown[0]!r} (keys: {', '.join(COLUMNS)})"
            continue
        yield line, {k: ("" if v is None else str(v)) for k, v in obj.items()}


def _number(fields: dict, key: str, integer: bool) -> float | int | None:
    """The cut value of ``key``: None when empty; ValueError (why) when not a valid number."""
    raw = fields.get(key, "").strip()
    if not raw:
        return None
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number of frames" if integer else "a number of seconds"
        raise ValueError(f"{key} {raw!r} is not {kind}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{key} {raw!r} must be >= 0")
    return value


def _cut(fields: dict, kind: str) -> dict:
    """The row's cut as Sample keyword arguments; ValueError (why) when it is not valid."""
    start, end = _number(fields, "start", False), _number(fields, "end", False)
    first, stop = _number(fields, "start_frame", True), _number(fields, "end_frame", True)
    seconds, frames = (start, end) != (None, None), (first, stop) != (None, None)
    if seconds and frames:
        raise ValueError("give start/end (seconds) or start_frame/end_frame, not both")
    if seconds and kind == "frames":
        raise ValueError("a frame folder has no timestamps: cut it with start_frame/end_frame")
    lo, hi, unit = (start, end, " s") if seconds else (first, stop, " frames")
    if hi == 0:
        raise ValueError(
            f"{'end' if seconds else 'end_frame'} 0 keeps no frame (the end is excluded)"
        )
    if lo is not None and hi is not None and hi <= lo:
        raise ValueError(f"end {hi:g}{unit} is not after start {lo:g}{unit}")
    return {"start": start, "end": end, "start_frame": first, "end_frame": stop}


def _row_sample(fields: dict, label: str, base: Path, seen: dict[str, str]) -> Sample | Bad:
    video = fields.get("video", "").strip()
    if not video:
        return Bad(label, "no video path")
    try:
        caption = clean_caption(fields.get("caption", ""))
    except ValueError as e:
        return Bad(label, str(e))
    signer = fields.get("signer", "").strip()
    if not signer:
        return Bad(label, "no signer")
    path = Path(video).expanduser()
    path = path if path.is_absolute() else base / path
    kind = kind_of(path)
    if kind is None:
        if path.suffix.lower() not in VIDEO_SUFFIXES and path.exists():
            return Bad(label, f"{video}: unsupported file type (gif, mp4, webm or a frame folder)")
        return Bad(label, f"{video}: file missing")
    problem = source_problem(path)
    if problem:
        return Bad(label, f"{video}: {problem}")
    try:
        cut = _cut(fields, kind)
    except ValueError as e:
        return Bad(label, str(e))
    name = fields.get("name", "").strip() or (path.name if kind == "frames" else path.stem)
    if name in seen:
        return Bad(label, f"duplicate name {name!r} ({seen[name]} too): give a name column")
    seen[name] = label
    source = Path(os.path.abspath(path))  # absolute, ".." folded, links kept as written
    recording = fields.get("recording", "").strip()
    return Sample(name, source, caption, signer, kind, **cut, label=f"{label}: {video}",
                  recording=recording)  # fmt: skip


def iter_manifest(path: Path) -> Iterator[Sample | Bad]:
    """Every sample of a manifest, or the reason a row is not one, in file order."""
    text = _text(path)
    rows = _jsonl_rows(path, text) if path.suffix.lower() == ".jsonl" else _csv_rows(path, text)
    seen: dict[str, str] = {}
    for line, fields in rows:
        label = f"{path.name} line {line}"
        yield (
            Bad(label, fields)
            if isinstance(fields, str)
            else _row_sample(fields, label, path.parent, seen)
        )


def check_manifest_name(path: Path) -> Path:
    """``path`` if it names a manifest (``.csv`` or ``.jsonl``); DataError otherwise: a file
    of another name would be refused later as "not a folder or a manifest"."""
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise DataError(
            f"{path}: a manifest's name ends in {' or '.join(MANIFEST_SUFFIXES)} (e.g. {path}.csv)"
        )
    return path


def write_manifest(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` (dicts over ``COLUMNS``) as a manifest, atomically: JSON lines for a
    ``.jsonl`` name (unset values left out), else CSV.

    Only the columns some row uses are written, in ``COLUMNS`` order.
    """
    if Path(path).suffix.lower() == ".jsonl":
        lines = [json.dumps({c: row[c] for c in COLUMNS if row.get(c) not in (None, "")},
                            ensure_ascii=False) for row in rows]  # fmt: skip
        write_text(path, "".join(f"{line}\n" for line in lines))
        return
    used = [
        c for c in COLUMNS if c in REQUIRED or any(row.get(c) not in (None, "") for row in rows)
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=used, extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row[c] for c in used})
    write_text(path, buffer.getvalue())


def video_folders(path: Path) -> set[Path]:
    """The folders that hold a manifest's videos (rows parsed, files not checked).

    A frame folder counts as itself.
    """
    text = _text(path)
    rows = _jsonl_rows(path, text) if path.suffix.lower() == ".jsonl" else _csv_rows(path, text)
    folders: set[Path] = set()
    for _, fields in rows:
        video = "" if isinstance(fields, str) else fields.get("video", "").strip()
        if video:
            p = Path(video).expanduser()
            p = p if p.is_absolute() else path.parent / p
            p = Path(os.path.abspath(p))
            folders.add(p if p.suffix.lower() not in VIDEO_SUFFIXES else p.parent)
    return folders
