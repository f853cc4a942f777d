#!/bin/sh
# The one install recipe of both images (%post of text2sign.def and text2sign-cpu.def), the same
# order as the Makefile's venv:
#   1. torch at the Makefile's pin (a no-op where the base image already has that version, as
#      the CUDA PyTorch base does: 2.13.0+cu128 satisfies torch==2.13.0);
#   2. DeepSpeed at setup.cfg's pin, without build isolation (its setup.py imports torch);
#   3. the project from its source tree, with exactly setup.cfg's pins.
# Then it writes the installed versions into the image's labels (`apptainer inspect`).
#
#   install-python-deps.sh PYTHON SRC TORCH_REQUIREMENT
#
# pip: no cache (smaller image). A pip config at /.t2s-build/conf/pip.conf (bound in by
# containers/build-image.sh on machines whose pip uses local wheel folders) is used when present.
set -eu
PY=$1
SRC=$2
TORCH=$3

export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
if [ -f /.t2s-build/conf/pip.conf ]; then
  export PIP_CONFIG_FILE=/.t2s-build/conf/pip.conf
fi
# The single source of the DeepSpeed pin: setup.cfg's install_requires.
DEEPSPEED=$(sed -n 's/^[[:space:]]*\(deepspeed==[0-9][0-9.]*\)[[:space:]]*$/\1/p' "$SRC/setup.cfg")
[ -n "$DEEPSPEED" ] || { echo "install-python-deps: no deepspeed==X pin in $SRC/setup.cfg" >&2; exit 1; }

# setup.cfg's long_description reads README.md: the images do not carry it (a README edit would
# otherwise rebuild them), so an empty one stands in.
[ -f "$SRC/README.md" ] || : >"$SRC/README.md"
"$PY" -m pip install -q --upgrade "pip>=23" "setuptools>=64" wheel
"$PY" -m pip install -q "$TORCH"
"$PY" -m pip install -q hjson msgpack ninja py-cpuinfo packaging
"$PY" -m pip install -q --no-build-isolation "$DEEPSPEED"
"$PY" -m pip install -q "$SRC"
"$PY" -m pip check

# Labels: the pins asked for and the versions installed.
if [ -n "${APPTAINER_LABELS:-}" ]; then
  "$PY" - "$TORCH" "$DEEPSPEED" >>"$APPTAINER_LABELS" <<'EOF'
import sys
from importlib.metadata import version

print(f"org.text2sign.pin.torch {sys.argv[1]}")
print(f"org.text2sign.pin.deepspeed {sys.argv[2]}")
for name in ("torch", "deepspeed", "transformers", "text2sign"):
    print(f"org.text2sign.installed.{name} {version(name)}")
print(f"org.text2sign.python {sys.version.split()[0]}")
EOF
fi
