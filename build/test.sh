#!/usr/bin/env bash
# Runs every test: unit tests and the integration tests that boot real VMs under QEMU.
# Installs what it needs (QEMU and the image-building tools through apt-get) and builds the
# test images first (cached in .cache/images, rebuilt only when their inputs change).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

build/install-prerequisites.sh
build/test-image/build.sh >/dev/null
export LINUXKIT_TESTING_IMAGES="$repo/.cache/images"

mkdir -p .cache
log="$repo/.cache/test-output.log"
results="$repo/.cache/test-results"
rm -rf "$results"
set +e
dotnet test LinuxKit.Testing.sln --configuration Release --logger "console;verbosity=normal" \
  --logger trx --results-directory "$results" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# The two test projects run side by side and a failure scrolls far up behind the passing
# tests, where a CI page that shows only the end of the output cannot reach it: end with each
# project's counts, the failed tests with the start of their messages, and one total line.
summary() {
  local trx project counters total=0 passed=0 failed=0 skipped=0 n p f
  echo
  echo "=== test results ==="
  for trx in "$results"/*.trx; do
    [ -e "$trx" ] || continue
    project=$(grep -o 'storage="[^"]*"' "$trx" | head -n1 | sed 's/.*\///; s/\.dll"$//')
    counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n1)
    n=$(sed -n 's/.* total="\([0-9]*\)".*/\1/p' <<<"$counters")
    p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
    f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
    n=${n:-0}; p=${p:-0}; f=${f:-0}
    total=$((total + n)); passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + n - p - f))
    echo "${project:-?}: $p passed, $f failed, $((n - p - f)) not run"
    grep -o '<UnitTestResult [^>]*outcome="Failed"[^>]*>' "$trx" | sed 's/.* testName="\([^"]*\)".*/  failed: \1/'
  done
  if [ "$status" -ne 0 ]; then
    echo
    echo "=== dotnet test failed (exit $status); the failed tests' messages ==="
    awk '/^  Failed /{show=1} /^  (Passed|Skipped) /{show=0} show' "$log" | cut -c1-400 | head -n 200
  fi
  echo
  echo "total: $passed passed, $failed failed, $skipped skipped"
}
summary
exit "$status"
