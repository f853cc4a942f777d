"""The host's pip configuration, translated for an image build (used by build-image.sh).

    python3 containers/pip-for-build.py OUTDIR

Reads ``pip config list`` (files and PIP_* variables). Every local folder it names (find-links,
the parent of a file:// index) is printed, one per line: build-image.sh binds the N-th at /.t2s-build/srcN. A
pip.conf using those in-image paths, and copies of a constraint file and of the CA bundle pip
trusts (a site proxy's CA, say), are written to OUTDIR (bound at /.t2s-build/conf). Remote indexes are kept as they are. Prints nothing and writes no
pip.conf when pip has no such settings.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

KEYS = ("index-url", "extra-index-url", "find-links", "constraint", "cert")
COPIED = {"constraint": "constraints.txt", "cert": "cert.pem"}  # files: copied, not bound


def main(outdir: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                         text=True, check=False).stdout  # fmt: skip
    conf: dict[str, list[str]] = {}
    folders: list[str] = []
    for line in out.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name not in KEYS:
            continue
        for item in value.strip().strip("'\"").split():
            local = item.removeprefix("file://")
            if name in COPIED:
                if not Path(local).is_file():
                    continue
                shutil.copy(local, outdir / COPIED[name])
                item = f"/.t2s-build/conf/{COPIED[name]}"
            elif local.startswith("/"):
                if not Path(local).is_dir():
                    continue
                # An index's pages link to files beside it (../../files/x.whl): bind its parent.
                index = item.startswith("file://")
                folder = str(Path(local).parent) if index else local
                if folder not in folders:
                    folders.append(folder)
                inside = f"/.t2s-build/src{folders.index(folder)}"
                item = f"file://{inside}/{Path(local).name}" if index else inside
            if item not in conf.setdefault(name, []):
                conf[name].append(item)
    if conf:
        body = "".join(f"{k} = {' '.join(v)}\n" for k, v in conf.items() if v)
        (outdir / "pip.conf").write_text("[global]\n" + body)
    print("\n".join(folders))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
