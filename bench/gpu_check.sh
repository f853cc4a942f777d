#!/usr/bin/env bash
# make gpu-check: every GPU check in one call, under 8 minutes on one H100/H200 (bench/gpu_check.py
# says what runs). On a machine without CUDA it prints "skipped: no CUDA", lists the GPU tests and
# the levers it would run (so they are never silently absent) and exits 0.
#
# A bare GPU machine with PyTorch needs the wheels that its image lacks, in .whl/ (no network
# there; README "Benchmarks" says how to build them): DeepSpeed (pip wheel --no-deps
# --no-build-isolation deepspeed), pydantic, pydantic-core, annotated-types, typing-inspection,
# hjson, submitit, pytest (+ pluggy, iniconfig). They are installed into a private folder, never
# into the machine's Python.
set -u
PY=${PY:-python3}
OUT=${OUT:-/tmp/t2s-gpu-check}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "skipped: no CUDA"
  echo "the GPU tests it runs on a CUDA machine:"
  $PY -m pytest --collect-only -q -m gpu tests/gpu -p no:cacheprovider 2>&1 | grep -E "::|collected|selected"
  PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" $PY -m bench.gpu_check --plan
  exit 0
fi
if ls .whl/*.whl >/dev/null 2>&1; then
  SITE=${TMPDIR:-/tmp}/t2s-gpu-site
  missing=$($PY - <<'PY'
import importlib.util as u
print(" ".join(m for m in ("deepspeed", "pydantic", "hjson", "submitit", "pytest") if u.find_spec(m) is None))
PY
)
  if [ -n "$missing" ]; then
    echo "[gpu-check] installing from .whl/ into $SITE (missing: $missing)"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" .whl/*.whl || exit 1
    export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi -L 2>/dev/null
exec $PY -m bench.gpu_check --out "$OUT"
