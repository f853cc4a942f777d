#!/usr/bin/env bash
# The lifecycle on a real GPU, in one call (under 8 minutes on one H100/H200): what the CPU tests
# cannot show. Needs CUDA PyTorch; DeepSpeed, pydantic and hjson come as wheels in .whl/ (see
# T2S_GPU_CHECK_FORCE=1 runs it on CPU, to check the script itself). Writes gpu_lifecycle.json and the logs into ${OUT:-/tmp/t2s-gpu}.
#   1. doctor: torch, CUDA device, NVML.
#   2. tiny run, bf16, DeepSpeed ZeRO-2 on the GPU: uninterrupted reference vs. SIGUSR2 at step
#      >= 40 -> exit 75 -> resume (weights-only loads of CUDA checkpoints): steps once each, losses
#      compared (exactness is not assumed on CUDA: the max abs difference is reported).
#   3. SIGKILL before the first checkpoint, then restart: one row per step in CSV and JSON lines.
#   4. NVML telemetry in metadata.json and gpu_memory.csv; CUDA peak memory in summary.json.
#   5. bench/gpu_mfu.py: the d14 DiT at 16x64x64, bf16, ZeRO-2: step time, MFU, peak memory.
set -u
OUT=${OUT:-/tmp/t2s-gpu}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_lifecycle.log") 2>&1
PY=${PY:-python3}
if [ -z "${T2S_GPU_CHECK_FORCE:-}" ] && ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "skipped: no CUDA"; exit 0
fi
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1 && [ -z "${T2S_GPU_CHECK_FORCE:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=8
nvidia-smi -L 2>/dev/null; $PY -m text2sign doctor
W=/tmp/t2s-gpu-work; rm -rf "$W"; mkdir -p "$W"
$PY -m text2sign data synth --out "$W/synth" --num 96 --frames 8 --size 16 >/dev/null
STEPS=${STEPS:-150}
SETS=(--set "data.root=$W/synth" --set train.precision=bf16 --set train.zero_stage=2
      --set train.max_steps=$STEPS --set train.checkpoint_every=1000 --set train.batch_size=8
      --set train.log_every=1 --set train.num_samples=1 --set eval.num_videos=4
      --set eval.timing_videos=1 --set diffusion.sample_steps=10)
TRAIN=("$PY" -m text2sign train --profile tiny --variant baseline "${SETS[@]}")
rows() { [ -f "$1/training_metrics.csv" ] && echo $(( $(wc -l < "$1/training_metrics.csv") - 1 )) || echo 0; }

t0=$(date +%s); "${TRAIN[@]}" --run-dir "$W/ref" > "$OUT/ref.log" 2>&1; echo "reference rc=$? in $(( $(date +%s) - t0 )) s"

"${TRAIN[@]}" --run-dir "$W/int" > "$OUT/int1.log" 2>&1 & pid=$!
until [ "$(rows "$W/int")" -ge 40 ] || ! kill -0 $pid 2>/dev/null; do sleep 0.2; done
kill -USR2 $pid; wait $pid; echo "interrupted rc=$? (75 expected) at $(rows "$W/int") rows"
"${TRAIN[@]}" --run-dir "$W/int" > "$OUT/int2.log" 2>&1; echo "resumed rc=$?"

"${TRAIN[@]}" --run-dir "$W/kill" > "$OUT/kill1.log" 2>&1 & pid=$!
until [ "$(rows "$W/kill")" -ge 20 ] || ! kill -0 $pid 2>/dev/null; do sleep 0.2; done
kill -KILL $pid; wait $pid; echo "killed rc=$? at $(rows "$W/kill") rows"
"${TRAIN[@]}" --run-dir "$W/kill" > "$OUT/kill2.log" 2>&1; echo "restarted rc=$?"

$PY - "$W" "$OUT" "$STEPS" <<'PYEOF'
import csv, json, sys
from pathlib import Path
w, out, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
def rows(d): return list(csv.DictReader(open(d / "training_metrics.csv")))
def jl(d): return [json.loads(l)["step"] for l in open(d / "training_metrics.jsonl")]
ref, res = rows(w / "ref"), rows(w / "int")
diffs = [abs(float(a["loss"]) - float(b["loss"])) for a, b in zip(ref, res)]
first = next((i + 1 for i, d in enumerate(diffs) if d), None)
meta = json.loads((w / "ref" / "metadata.json").read_text())
gpu = list(csv.DictReader(open(w / "ref" / "gpu_memory.csv")))
summary = json.loads((w / "ref" / "summary.json").read_text())
report = {
    "resume_steps_once": [int(r["step"]) for r in res] == list(range(1, steps + 1)),
    "resume_status": json.loads((w / "int" / "status.json").read_text())["state"],
    "resume_attempts": json.loads((w / "int" / "status.json").read_text())["attempts"],
    "resume_loss_max_abs_diff": max(diffs), "resume_loss_first_differing_step": first,
    "kill_restart_csv_steps_once": [int(r["step"]) for r in rows(w / "kill")] == list(range(1, steps + 1)),
    "kill_restart_jsonl_steps_once": jl(w / "kill") == list(range(1, steps + 1)),
    "kill_status": json.loads((w / "kill" / "status.json").read_text())["state"],
    "telemetry": meta.get("telemetry", {}),
    "gpu_memory_rows_with_nvml": sum(bool(r.get("memory_used_bytes")) for r in gpu),
    "gpu_memory_rows": len(gpu),
    "summary_peak_memory_bytes": summary.get("peak_memory_bytes"),
    "summary_peak_memory_kind": summary.get("peak_memory_kind"),
    "ref_step_time_s_median": summary.get("step_time_s_median"),
}
(out / "gpu_lifecycle.json").write_text(json.dumps(report, indent=2, default=str))
print(json.dumps(report, indent=2, default=str))
PYEOF
t0=$(date +%s); timeout 240 $PY -m bench.gpu_mfu --preset d14 --steps 10 > "$OUT/gpu_mfu.log" 2>&1
echo "gpu_mfu rc=$? in $(( $(date +%s) - t0 )) s"; tail -n 30 "$OUT/gpu_mfu.log"
