#!/usr/bin/env bash
# `make test`'s pytest: the whole suite as two pytest processes at once.
#   1. tests/cluster and tests/container, in order (their modules submit their studies together
#      and then mostly wait on SLURM: requeue delays, dependencies, job start-up);
#   2. everything else, which keeps the CPUs busy meanwhile.
# Each has its own temporary folder; the first one's log is printed when both are done, and the
# suite fails if either fails. Paths among the arguments (a subset of the tests), or
# T2S_TEST_SERIAL=1, run one plain pytest instead.
# Usage: tests/run-suite.sh PYTHON [pytest arguments...]
set -uo pipefail
py=$1
shift
flags=(-q -rs --durations=15 "$@")
slurm_tests=(tests/cluster tests/container)

serial=${T2S_TEST_SERIAL:-0}
for arg in "$@"; do [[ $arg == -* ]] || serial=1; done
if [[ $serial == 1 ]]; then
  exec "$py" -m pytest "${flags[@]}"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/t2s-tests.XXXXXX")
echo "tests: ${slurm_tests[*]} in the background (log: $tmp/slurm.log), the rest here"
"$py" -m pytest "${flags[@]}" --basetemp="$tmp/slurm" "${slurm_tests[@]}" >"$tmp/slurm.log" 2>&1 &
slurm_pid=$!
"$py" -m pytest "${flags[@]}" --basetemp="$tmp/rest" "${slurm_tests[@]/#/--ignore=}"
rest_rc=$?
wait "$slurm_pid"
slurm_rc=$?
echo
echo "==================== ${slurm_tests[*]} (exit $slurm_rc) ===================="
cat "$tmp/slurm.log"
echo "tests: the rest exited $rest_rc, ${slurm_tests[*]} exited $slurm_rc"
if ((rest_rc == 0 && slurm_rc == 0)); then
  rm -rf "$tmp"
  exit 0
fi
echo "tests: failed; their temporary files are kept in $tmp" >&2
exit 1
