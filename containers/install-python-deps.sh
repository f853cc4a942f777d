#!/bin/sh
# The one install recipe of every image (%post of text2sign.def, text2sign-cpu.def and
# text2sign-dockerhub.def), the same order as the Makefile's venv:
#   1. torch at the Makefile's pin (a no-op where the base image already has that version, as
#      the Docker Hub PyTorch base does: 2.13.0+cu128 satisfies torch==2.13.0);
#   2. DeepSpeed at setup.cfg's pin, without build isolation (its setup.py imports torch);
#   3. the project from its source tree, with exactly setup.cfg's pins;
#   4. the pose environment beside it (below).
# Then it writes the installed versions into the image's labels (`apptainer inspect`).
#
#   install-python-deps.sh PYTHON SRC TORCH_REQUIREMENT [any|cpu|cuda]
#
# The build of torch: `any` (default) takes what pip resolves; `cuda` asks for exactly the pin's
# version string (torch===X: PyPI's Linux wheel, which is the CUDA build, never a local "X+cpu"
# wheel that a configured wheel folder may also offer and that pip would rank higher) and fails
# unless the installed torch is a CUDA build; `cpu` fails unless it is a CPU build.
#
# pip: nothing cached in the image (smaller image). A pip config at /.t2s-build/conf/pip.conf
# (bound in by containers/build-image.sh on machines whose pip uses local wheel folders) is used
# when present, and a writable pip cache at /.t2s-build/cache (build-image.sh binds the host's
# image-build cache there) keeps downloads and built wheels between builds, outside the image.
set -eu
PY=$1
SRC=$2
TORCH=$3
KIND=${4:-any}

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
if [ -d /.t2s-build/cache ] && [ -w /.t2s-build/cache ]; then
  export PIP_CACHE_DIR=/.t2s-build/cache
else
  export PIP_NO_CACHE_DIR=1
fi
if [ -f /.t2s-build/conf/pip.conf ]; then
  export PIP_CONFIG_FILE=/.t2s-build/conf/pip.conf
fi
case $KIND in
  any | cpu) TORCH_REQ=$TORCH ;;
  cuda) TORCH_REQ=$(printf '%s' "$TORCH" | sed 's/^torch==\([^=]\)/torch===\1/') ;;
  *) echo "install-python-deps: the torch build must be any, cpu or cuda, not '$KIND'" >&2; exit 2 ;;
esac
# The single source of the DeepSpeed pin: setup.cfg's install_requires.
DEEPSPEED=$(sed -n 's/^[[:space:]]*\(deepspeed==[0-9][0-9.]*\)[[:space:]]*$/\1/p' "$SRC/setup.cfg")
[ -n "$DEEPSPEED" ] || { echo "install-python-deps: no deepspeed==X pin in $SRC/setup.cfg" >&2; exit 1; }

# setup.cfg's long_description reads README.md: the images do not carry it (a README edit would
# otherwise rebuild them), so an empty one stands in.
[ -f "$SRC/README.md" ] || : >"$SRC/README.md"
"$PY" -m pip install -q --upgrade "pip>=23" "setuptools>=64" wheel
"$PY" -m pip install -q "$TORCH_REQ"
"$PY" - "$KIND" <<'EOF'
import sys

import torch

kind, cuda = sys.argv[1], torch.version.cuda
if (kind == "cuda" and cuda is None) or (kind == "cpu" and cuda is not None):
    sys.exit(f"install-python-deps: wanted a {kind} build of torch, got {torch.__version__} "
             f"(CUDA {cuda}); check which torch wheels the pip configuration offers")
print(f"install-python-deps: torch {torch.__version__}, CUDA {cuda}")
EOF
"$PY" -m pip install -q hjson msgpack ninja py-cpuinfo packaging
# Never DeepSpeed from the wheel cache: its build depends on the torch it is built against and on
# DS_BUILD_* (the CPU image prebuilds an op, the CUDA image none), which the cache's key ignores.
"$PY" -m pip install -q --no-cache-dir --no-build-isolation "$DEEPSPEED"
"$PY" -m pip install -q "$SRC"
"$PY" -m pip check

# 4. The pose environment, the trainer environment's sibling (PREFIX-pose: text2sign/pose/env.py
#    looks there): MediaPipe Holistic through pose-format, pinned in text2sign/pose/requirements.txt
#    (mediapipe 0.10.21 pins numpy<2 and protobuf<5, which the trainer cannot share).
#    mediapipe's OpenCV loads libGL and GLib: Debian's libgl1 and libglib2.0-0 (a base image
#    without apt-get must carry them; the last line below checks that the models load).
gl_libs() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libgl1 libglib2.0-0 >/dev/null; }
if command -v apt-get >/dev/null; then
  gl_libs || { apt-get update -q >/dev/null && gl_libs; }
fi
POSE=$("$PY" -c 'import sys; print(sys.prefix)')-pose
"$PY" -m venv "$POSE"
"$POSE/bin/python" -m pip install -q --upgrade "pip>=23"
"$POSE/bin/python" -m pip install -q -r "$SRC/text2sign/pose/requirements.txt"
"$POSE/bin/python" -m pip check
"$POSE/bin/python" -c "import mediapipe, pose_format.utils.holistic"  # the models load (libGL)

# Labels: the pins asked for and the versions installed.
if [ -n "${APPTAINER_LABELS:-}" ]; then
  "$PY" - "$TORCH" "$DEEPSPEED" >>"$APPTAINER_LABELS" <<'EOF'
import sys
from importlib.metadata import version

import torch

print(f"org.text2sign.pin.torch {sys.argv[1]}")
print(f"org.text2sign.pin.deepspeed {sys.argv[2]}")
for name in ("torch", "deepspeed", "transformers", "nvidia-ml-py", "text2sign"):
    print(f"org.text2sign.installed.{name} {version(name)}")
print(f"org.text2sign.torch.cuda {torch.version.cuda or 'none'}")
print(f"org.text2sign.python {sys.version.split()[0]}")
EOF
  "$POSE/bin/python" - >>"$APPTAINER_LABELS" <<'EOF'
from importlib.metadata import version

for name in ("mediapipe", "pose-format"):
    print(f"org.text2sign.pose.{name} {version(name)}")
EOF
fi
