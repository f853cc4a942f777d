"""The one file that runs in the pose environment: MediaPipe Holistic over videos, written as .pose.

    POSE_PYTHON text2sign/pose/worker.py --videos VIDEOS.npy --jobs JOBS.json --out DIR

``VIDEOS.npy`` is a uint8 (N, T, H, W, 3) array (the decoded cache's ``videos.npy``, or a run's
saved evaluation samples); ``JOBS.json`` lists ``{"index": i, "key": KEY}``: video ``i`` is
estimated and written to ``DIR/KEY.pose`` (pose-format, the sign language field's container),
through a temporary name and a rename, so a killed worker leaves whole files only. A key whose
file exists is skipped: re-running resumes. One JSON line per clip on stdout says what was found,
or why the clip failed (an exception is that clip's failure: the worker goes on with the next;
a ``started`` line before each clip lets the parent name the clip a crash died on).

It imports nothing of text2sign, so the pose environment (``make pose-venv``; ``/opt/venv-pose``
in the images) needs only ``text2sign/pose/requirements.txt``: mediapipe 0.10.21 carries its
Holistic models in the wheel (no download), and pins numpy<2 and protobuf<5, which the trainer's
environment cannot share.

Small frames are enlarged to ``--size`` pixels on their longer side with bicubic interpolation
before estimation (MediaPipe's pose landmark model works on 256 x 256 crops of the person).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

#: MediaPipe Holistic settings: the ``full`` models are the ones the wheel carries
#: (model_complexity 0 and 2 would download theirs); tracking across the frames of a clip.
HOLISTIC = {"model_complexity": 1, "static_image_mode": False, "smooth_landmarks": False}
FPS = 25.0  # written into the .pose header; the clips are resampled to T frames anyway
FAULT_ENV = "T2S_POSE_FAULT_KEY"  # tests: the worker dies (SIGSEGV) on the clip of this key


def enlarge(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 → bicubic-enlarged so the longer side is ``size`` (never shrunk)."""
    import cv2

    t, h, w, _ = frames.shape
    scale = size / max(h, w)
    if scale <= 1.0:
        return np.ascontiguousarray(frames)
    dims = (round(w * scale), round(h * scale))
    return np.stack([cv2.resize(f, dims, interpolation=cv2.INTER_CUBIC) for f in frames])


def found(pose, component: str) -> int:
    """Frames in which the component was found (pose-format: confidence 0 where absent)."""
    names = [c.name for c in pose.header.components]
    start = sum(len(c.points) for c in pose.header.components[: names.index(component)])
    count = len(pose.header.components[names.index(component)].points)
    conf = np.asarray(pose.body.confidence)[:, 0, start : start + count]  # (T, points)
    return int((conf > 0).any(axis=1).sum())


def estimate(frames: np.ndarray, size: int):
    """One clip → a pose_format ``Pose`` (holistic components, pixel coordinates of the
    enlarged frame, confidence 0 where MediaPipe found nothing)."""
    from pose_format.utils.holistic import load_holistic

    big = enlarge(frames, size)
    _, h, w, _ = big.shape
    return load_holistic(list(big), fps=FPS, width=w, height=h,
                         additional_holistic_config=dict(HOLISTIC))  # fmt: skip


def write(pose, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        pose.write(f)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", required=True, help="uint8 (N, T, H, W, 3) .npy")
    ap.add_argument("--jobs", required=True, help='JSON list of {"index": i, "key": KEY}')
    ap.add_argument("--out", required=True, help="folder of KEY.pose files")
    ap.add_argument("--size", type=int, default=256, help="enlarge the longer side to this")
    args = ap.parse_args(argv)
    videos = np.load(args.videos, mmap_mode="r")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for job in json.loads(Path(args.jobs).read_text()):
        path = out / f"{job['key']}.pose"
        if path.exists():
            print(json.dumps({"key": job["key"], "cached": True}), flush=True)
            continue
        print(json.dumps({"key": job["key"], "started": True}), flush=True)
        if job["key"] == os.environ.get(FAULT_ENV):  # fault injection for tests: a hard crash
            os.kill(os.getpid(), signal.SIGSEGV)
        try:  # one clip that makes the estimator raise is named; the others go on
            frames = np.asarray(videos[job["index"]])
            pose = estimate(frames, args.size)
            write(pose, path)
        except Exception as e:  # any library error is this clip's failure
            line = (str(e).strip().splitlines() or [type(e).__name__])[0]
            print(json.dumps({"key": job["key"], "error": f"{type(e).__name__}: {line}"}),
                  flush=True)  # fmt: skip
            continue
        print(json.dumps({
            "key": job["key"], "frames": len(frames),
            "body": found(pose, "POSE_LANDMARKS"),
            "left_hand": found(pose, "LEFT_HAND_LANDMARKS"),
            "right_hand": found(pose, "RIGHT_HAND_LANDMARKS"),
        }), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
