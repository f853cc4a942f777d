#!/usr/bin/env bash
# Build an Apptainer image from a definition file, cached by content (`make container`,
# `make container-cpu`):
#
#   containers/build-image.sh DEF SIF TORCH_REQUIREMENT
#
# * The image is rebuilt only when its inputs change: the def file, the shared install recipe,
#   these build scripts, setup.cfg, pyproject.toml, the package sources, the torch pin and the
#   apt mirror. Their hash is kept in SIF.stamp; a matching stamp is a no-op.
# * Build args: COMMIT (git HEAD, "-dirty" when the checkout has changes), TORCH, VERSION, MIRROR
#   (the mirror the host's apt uses, for `Bootstrap: debootstrap`).
# * Where the host's pip is configured with local wheel folders or file:// indexes (no PyPI),
#   they are bound into the build read-only (containers/pip-for-build.py) with a pip.conf naming
#   them, which containers/install-python-deps.sh uses. Only empty mount points stay in the image.
# * A pip cache outside the image (T2S_IMAGE_PIP_CACHE; /var/cache/t2s-image-pip as root, else
#   ~/.cache/t2s-image-pip; "none" turns it off) is bound writable into the build: a rebuild
#   after a source change does not download the CUDA image's several GB of wheels again.
# * Each build writes SIF.build.json: seconds, bytes, the pip cache before the build (cold =
#   empty), the load average at its start and end, the commit and the installed versions
#   (bench/image_build.py reports it).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
(($# == 3)) || { echo "usage: $0 DEF SIF TORCH_REQUIREMENT" >&2; exit 2; }
DEF=$1
SIF=$2
TORCH=$3
log() { printf '[image] %s\n' "$*" >&2; }
command -v apptainer >/dev/null || { log "ERROR: no apptainer on PATH: run \`make apptainer\` (Debian) or load your site's module"; exit 1; }
cd "$REPO"
[[ -f $DEF ]] || { log "ERROR: $DEF not found"; exit 1; }

MIRROR=""
if grep -q '^Bootstrap:[[:space:]]*debootstrap' "$DEF"; then
  MIRROR=$("$HERE/apt-mirror.sh")
fi
hash=$(
  {
    printf '%s\n' "$TORCH" "$MIRROR"
    find "$DEF" containers/install-python-deps.sh containers/build-image.sh \
      containers/pip-for-build.py setup.cfg pyproject.toml text2sign -type f ! -name '*.pyc' ! -path '*/__pycache__/*' \
      -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -d' ' -f1
)
if [[ -f $SIF && -f $SIF.stamp && $(cat "$SIF.stamp") == "$hash" ]]; then
  log "$SIF is up to date (inputs $hash)"
  exit 0
fi

COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || COMMIT="$COMMIT-dirty"
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' text2sign/__init__.py)

# The host's pip configuration, made usable inside the build: its local folders are bound
# read-only at /.t2s-build/srcN (mount points made by the defs' %setup from BUILD_MOUNTS), a
# pip.conf naming them at /.t2s-build/conf/pip.conf.
PIPDIR=$(mktemp -d)
trap 'rm -rf "$PIPDIR"' EXIT
BINDS=(--bind "$PIPDIR:/.t2s-build/conf:ro")
MOUNTS="conf"
if ((EUID == 0)); then default_cache=/var/cache/t2s-image-pip; else default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/t2s-image-pip; fi
CACHE=${T2S_IMAGE_PIP_CACHE:-$default_cache}
cache_before=0
if [[ $CACHE != none ]]; then
  mkdir -p "$CACHE"
  cache_before=$(find "$CACHE" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
  BINDS+=(--bind "$CACHE:/.t2s-build/cache")
  MOUNTS="$MOUNTS cache"
fi
if python3 -m pip --version >/dev/null 2>&1; then
  i=0
  while IFS= read -r path; do
    BINDS+=(--bind "$path:/.t2s-build/src$i:ro")
    MOUNTS="$MOUNTS src$i"
    i=$((i + 1))
  done < <(python3 "$HERE/pip-for-build.py" "$PIPDIR")
fi

log "building $SIF from $DEF (commit $COMMIT, $TORCH${MIRROR:+, mirror $MIRROR})"
start=$SECONDS
load_start=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
tmp="$SIF.partial"
rm -f "$tmp"
args=(--build-arg "COMMIT=$COMMIT" --build-arg "TORCH=$TORCH" --build-arg "VERSION=$VERSION"
  --build-arg "BUILD_MOUNTS=$MOUNTS")
[[ -z $MIRROR ]] || args+=(--build-arg "MIRROR=$MIRROR")
# The build's own output (debootstrap, pip, %post traced) goes to SIF.build.log.
apptainer build --force "${BINDS[@]}" "${args[@]}" "$tmp" "$DEF" >"$SIF.build.log" 2>&1 ||
  { grep -v -e '^I: ' -e 'is ignored: it is neither' "$SIF.build.log" | tail -n 40 >&2
    log "ERROR: apptainer build failed (full log: $SIF.build.log)"; exit 1; }
# Read the labels whole before matching: `inspect | grep -q` under pipefail fails whenever grep
# exits before inspect has written everything (SIGPIPE), which a loaded machine showed once.
labels=$(apptainer inspect --labels "$tmp")
[[ $labels == *org.text2sign.pin.torch* ]] || { log "ERROR: $tmp lacks the pin labels"; exit 1; }
mv -f "$tmp" "$SIF"
seconds=$((SECONDS - start))
# The build's own record (bench/image_build.py): what was built, how long it took, how big it is.
load_end=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
python3 - "$SIF.build.json" "$DEF" "$SIF" "$seconds" "$CACHE" "$cache_before" "$COMMIT" "$labels" \
  "$load_start" "$load_end" <<'EOF'
import datetime as dt
import json
import os
import sys
from pathlib import Path

out, definition, sif, seconds, cache, before, commit, labels, load0, load1 = sys.argv[1:]
record = {
    "def": definition, "image": Path(sif).name, "seconds": int(seconds),
    "bytes": os.path.getsize(sif), "commit": commit, "cpus": os.cpu_count(),
    "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    "pip_cache": "none" if cache == "none" else ("warm" if int(before) else "cold"),
    "pip_cache_bytes_before": int(before),
    "loadavg": [float(load0), float(load1)],  # 1-minute load at start and end: other tenants
    "labels": dict(line.split(": ", 1) for line in labels.splitlines() if ": " in line),
}
Path(out).write_text(json.dumps(record, indent=2) + "\n")
EOF
echo "$hash" >"$SIF.stamp"
log "built $SIF ($(du -h "$SIF" | cut -f1)) in $seconds s (pip cache before: $cache_before bytes)"
