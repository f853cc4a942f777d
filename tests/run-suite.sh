#!/usr/bin/env bash
# `make test`'s pytest: the whole suite as three pytest processes at once.
#   1. tests/cluster, in order (its modules submit their studies together and then mostly wait
#      on SLURM: requeue delays, dependencies, job start-up);
#   2. tests/container, in order (the same, inside the image), then tests/pose (MediaPipe; it
#      filled the container process's idle end instead of lengthening the third: measured
#      2026-12-07, the third ran 1,421 s with it, the container one 392 s without), then the
#      halving studies of tests/cluster/test_halving.py (~400 s of waiting on SLURM: in CI on
#      2026-12-07 the cluster process ran 1,799 s, the container one 933 s);
#   3. everything else, which keeps the CPUs busy meanwhile.
# Each has its own temporary folder; the background ones' logs are printed when all are done,
# and the suite fails if any fails. Paths among the arguments (a subset of the tests), or
# T2S_TEST_SERIAL=1, run one plain pytest instead.
# Usage: tests/run-suite.sh PYTHON [pytest arguments...]
set -uo pipefail
py=$1
shift
flags=(-q -rs --durations=15 "$@")
background=(cluster container)
declare -A paths=([cluster]="tests/cluster --ignore=tests/cluster/test_halving.py"
                  [container]="tests/container tests/pose tests/cluster/test_halving.py")

serial=${T2S_TEST_SERIAL:-0}
for arg in "$@"; do [[ $arg == -* ]] || serial=1; done
if [[ $serial == 1 ]]; then
  exec "$py" -m pytest "${flags[@]}"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/t2s-tests.XXXXXX")
declare -A pids
ignore=()
for group in "${background[@]}"; do
  read -ra these <<<"${paths[$group]}"
  "$py" -m pytest "${flags[@]}" --basetemp="$tmp/$group" "${these[@]}" >"$tmp/$group.log" 2>&1 &
  pids[$group]=$!
  for path in "${these[@]}"; do [[ $path == -* ]] || ignore+=("--ignore=$path"); done
done
echo "tests: ${paths[*]} in the background (logs: $tmp/*.log), the rest here"
"$py" -m pytest "${flags[@]}" --basetemp="$tmp/rest" "${ignore[@]}"
rc=$?
summary="the rest exited $rc"
for group in "${background[@]}"; do
  wait "${pids[$group]}"
  group_rc=$?
  echo
  echo "==================== ${paths[$group]} (exit $group_rc) ===================="
  cat "$tmp/$group.log"
  summary+=", tests/$group exited $group_rc"
  ((group_rc == 0)) || rc=1
done
echo "tests: $summary"
if ((rc == 0)); then
  rm -rf "$tmp"
  exit 0
fi
echo "tests: failed; their temporary files are kept in $tmp" >&2
exit 1
