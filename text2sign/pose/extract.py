"""Keypoints for many videos at once: pose workers in parallel, each clip once, cached by content.

A clip's key is a hash of its decoded frames (the uint8 array the model sees, with its shape)
and of the estimator's settings, so the same frames are never estimated twice, whichever dataset,
run or manifest they come from, and any change to the decoding gives new keys. Its keypoints are
``OUT/<key>.pose``; the workers write them through a rename, so an interrupted extraction resumes
where it stopped. Workers (``worker.py`` under the pose environment's Python) get the clips
round-robin, one worker per CPU of the allocation (:func:`text2sign.runtime.threads.allocation`).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from text2sign.pose.env import PoseEnv

WORKER = Path(__file__).with_name("worker.py")
ENLARGE_TO = 256  # px, the longer side of a frame given to MediaPipe (worker.py says why)
ESTIMATOR = "mediapipe-holistic-0.10.21-full-track-nosmooth"  # part of every key


def content_key(video: np.ndarray, size: int = ENLARGE_TO) -> str:
    """The cache key of one uint8 (T, H, W, 3) clip: its bytes, shape and the estimator."""
    h = hashlib.sha256(f"{ESTIMATOR}|{size}|{video.shape}|".encode())
    h.update(np.ascontiguousarray(video, dtype=np.uint8).tobytes())
    return h.hexdigest()[:32]


@dataclass
class Extraction:
    """What one call did: per key, the worker's line (found counts) or the reason it failed."""

    done: dict[str, dict] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def frames(self) -> int:
        return sum(int(r.get("frames", 0)) for r in self.done.values())


def _chunks(items: list, n: int) -> list[list]:
    return [c for c in (items[i::n] for i in range(n)) if c]


def extract(
    videos_npy: Path,
    keys: dict[int, str],
    out: Path,
    env: PoseEnv,
    *,
    workers: int = 1,
    size: int = ENLARGE_TO,
    progress: Callable[[int, int], None] | None = None,
) -> Extraction:
    """Estimate videos ``keys`` (index into ``videos_npy`` → key) whose ``OUT/<key>.pose`` is
    missing, with ``workers`` pose processes. Never raises for a clip: failures are reported
    (an exception in the estimator, or a worker that died on the clip and was restarted)."""
    if not env.ok:
        raise RuntimeError(env.reason)
    out.mkdir(parents=True, exist_ok=True)
    result = Extraction()
    todo: dict[str, int] = {}
    for index, key in keys.items():
        if (out / f"{key}.pose").exists():
            result.cached.append(key)
        else:
            todo.setdefault(key, index)  # the same frames twice: estimated once
    jobs = [{"index": i, "key": k} for k, i in todo.items()]
    total, started = len(jobs), time.monotonic()
    lock = threading.Lock()

    def run(chunk: list[dict], tmp: Path, n: int) -> None:
        """One worker over ``chunk``; a worker that dies on a clip (a crash, not an exception:
        those the worker reports itself) fails that clip and is restarted for the rest."""
        left, attempt = list(chunk), 0
        while left:
            spec = tmp / f"jobs{n}.{attempt}.json"
            spec.write_text(json.dumps(left))
            cmd = [env.python, str(WORKER), "--videos", str(videos_npy), "--jobs", str(spec),
                   "--out", str(out), "--size", str(size)]  # fmt: skip
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            err: list[str] = []
            drain = threading.Thread(target=err.extend, args=(proc.stderr,), daemon=True)
            drain.start()
            answered, current = set(), None
            for line in proc.stdout:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a library's own print: not ours
                if row.get("started"):
                    current = row["key"]
                    continue
                answered.add(row["key"])
                with lock:
                    if row.get("cached"):
                        result.cached.append(row["key"])
                    elif row.get("error"):
                        result.failed[row["key"]] = row["error"]
                    else:
                        result.done[row["key"]] = row
                    if progress:
                        progress(len(result.done) + len(result.failed), total)
            proc.wait()
            drain.join()
            left = [j for j in left if j["key"] not in answered]
            if not left:
                return
            lines = [
                ln.strip() for ln in err if ln.strip() and not ln.startswith(("W0000", "I0000"))
            ]
            reason = f"pose worker exit {proc.returncode}: {lines[-1] if lines else 'no message'}"
            with lock:  # the clip it died on fails; without one, the whole rest does
                dead = [j for j in left if j["key"] == current] or left
                for job in dead:
                    if not (out / f"{job['key']}.pose").exists():
                        result.failed[job["key"]] = reason
            left = [j for j in left if j not in dead]
            attempt += 1

    with tempfile.TemporaryDirectory(prefix="t2s-pose-") as tmp:
        threads = [threading.Thread(target=run, args=(c, Path(tmp), n))
                   for n, c in enumerate(_chunks(jobs, max(1, workers)))]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    result.seconds = time.monotonic() - started
    return result
