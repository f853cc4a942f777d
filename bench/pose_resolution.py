"""How often MediaPipe Holistic finds the body and each hand of a real person, by frame size.

Real people, three photographs: skimage's astronaut (waist up; her hands hold a helmet), and two
of OpenCV's sample images from Debian's ``opencv-doc`` package (fetched with ``apt-get download``
into a cache folder, never committed): ``basketball1.png`` (a man holding a ball at chest height,
hands visible) and ``messi5.jpg`` (a footballer, arms out). Each photo is filmed by the eight
camera motions of :mod:`text2sign.data.person` (pan, tilt, zoom, rotation; 8 frames each), at
64, 96, 128 and 256 px, and every clip goes through the project's pose path exactly as evaluation
uses it (enlarged to 256 px, tracking across the clip). A cell is the share of frames in which
the estimator found that part.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Goal, Section
from text2sign.data import person
from text2sign.pose import env as pose_env
from text2sign.pose.extract import content_key, extract
from text2sign.pose.joints import read

SIZES = (64, 96, 128, 256)
FRAMES = 8
CACHE = Path.home() / ".cache" / "text2sign" / "opencv-doc"
OPENCV = {  # file in opencv-doc's examples/data → the first window (centre x, y, side) on it
    "basketball1.png": (100.0, 180.0, 320.0),
    "messi5.jpg": (300.0, 160.0, 300.0),
}
#: A size "works" when, for every photo and part, the estimator finds it about as often as at
#: 256 px (within this many points): resolution is then no longer what limits the keypoints.
TOLERANCE = 0.10


def opencv_photos() -> tuple[dict[str, np.ndarray], str]:
    """OpenCV's sample photos from Debian's opencv-doc (downloaded once), or the reason why not."""
    import imageio.v3 as iio

    paths = {name: CACHE / name for name in OPENCV}
    if not all(p.exists() for p in paths.values()):
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            got = subprocess.run(["apt-get", "download", "-q", "opencv-doc"], cwd=tmp,
                                 capture_output=True, text=True)  # fmt: skip
            debs = list(Path(tmp).glob("opencv-doc_*.deb"))
            if got.returncode != 0 or not debs:
                return {}, f"apt-get download opencv-doc failed: {got.stderr.strip()[-200:]}"
            subprocess.run(["dpkg-deb", "-x", str(debs[0]), tmp], check=True)
            data = Path(tmp) / "usr/share/doc/opencv-doc/examples/data"
            for name, dest in paths.items():
                dest.write_bytes((data / name).read_bytes())
    photos = {}
    for name, path in paths.items():
        img = np.asarray(iio.imread(path))
        photos[name] = np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img[..., :3]
    return photos, ""


def run() -> Section:
    start = time.perf_counter()
    env = pose_env.find()
    if not env.ok:
        raise RuntimeError(env.reason)
    photos: dict[str, tuple[np.ndarray, tuple[float, float, float]]] = {
        "astronaut (skimage)": (person.photo(), person.START)
    }
    extra, why = opencv_photos()
    photos.update({f"{n} (opencv-doc)": (img, OPENCV[n]) for n, img in extra.items()})
    clips, where = [], []
    for label, (img, first) in photos.items():
        for size in SIZES:
            for motion in person.MOTIONS:
                clips.append(person.clip(motion, FRAMES, size, image=img, start=first))
                where.append((label, size))
    rows, rates = [], {}
    with tempfile.TemporaryDirectory(prefix="t2s_pose_res_") as tmp:
        # one array per size (clips of one size stack); every size through the same extraction
        keys_of: list[str] = []
        for size in SIZES:
            idx = [i for i, (_, s) in enumerate(where) if s == size]
            np.save(Path(tmp) / f"{size}.npy", np.stack([clips[i] for i in idx]))
            keys = {k: content_key(clips[i]) for k, i in enumerate(idx)}
            done = extract(Path(tmp) / f"{size}.npy", keys, Path(tmp) / "kp", env, workers=2)
            if done.failed:
                raise RuntimeError(f"pose extraction failed: {done.failed}")
        keys_of = [content_key(c) for c in clips]
        for label in photos:
            for size in SIZES:
                found = [read(Path(tmp) / "kp" / f"{keys_of[i]}.pose").detection()
                         for i, w in enumerate(where) if w == (label, size)]  # fmt: skip
                rate = {k: float(np.mean([f[k] for f in found])) for k in found[0]}
                rates[(label, size)] = rate
                rows.append([label, f"{size} px", f"{rate['body']:.0%}", f"{rate['left_hand']:.0%}",
                             f"{rate['right_hand']:.0%}"])  # fmt: skip
    top = SIZES[-1]
    works = [s for s in SIZES if all(rates[(lb, s)][k] >= rates[(lb, top)][k] - TOLERANCE
                                     for lb in photos for k in rates[(lb, s)])]  # fmt: skip
    smallest = min(works)
    notes = [] if not why else [f"OpenCV photos not measured: {why}"]
    notes.append(f"Pose environment: {env.versions}.")
    return Section(
        title="Pose estimation by frame size: body and hands of real people",
        method=__doc__.split("\n\n", 1)[1].replace("\n", " ").strip(),
        columns=["photo", "frame size", "body found", "left hand found", "right hand found"],
        rows=rows,
        goals=[
            Goal(
                metric="smallest frame size at which every part of every photo is found within "
                f"{TOLERANCE:.0%} of its {top} px rate",
                value=f"{smallest} px",
                goal="the size of the profile for DTW-MJE on real signers (`full128`)",
                met=None,
            )
        ],
        notes=notes,
        seconds=time.perf_counter() - start,
    )


if __name__ == "__main__":  # python -m bench.pose_resolution: this benchmark alone
    import json

    print(json.dumps(run(), indent=1))
