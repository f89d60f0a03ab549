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
set +e
dotnet test LinuxKit.Testing.sln --configuration Release --logger "console;verbosity=normal" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# The two test projects run side by side and a failure scrolls far up behind the passing
# tests, where a CI page that shows only the end of the output cannot reach it: end with each
# test project's counts (a test's project is the part of its name up to the first name ending
# in "Tests"), the failed tests with the start of their messages, and one total line.
echo
echo "=== test results ==="
awk '
  /^  (Passed|Failed|Skipped) / {
    n = split($2, part, "."); project = ""
    for (i = 1; i <= n; i++) { project = project (i > 1 ? "." : "") part[i]; if (part[i] ~ /Tests$/) break }
    count[project, $1]++; projects[project] = 1
    if ($1 == "Failed") failed[project] = failed[project] "\n  failed: " $2
  }
  END {
    for (p in projects) {
      printf "%s: %d passed, %d failed, %d skipped%s\n", p, count[p, "Passed"], count[p, "Failed"], count[p, "Skipped"], failed[p]
      total_passed += count[p, "Passed"]; total_failed += count[p, "Failed"]; total_skipped += count[p, "Skipped"]
    }
    printf "\ntotal: %d passed, %d failed, %d skipped\n", total_passed, total_failed, total_skipped > "/dev/stderr"
  }' "$log" 2> "$log.total"
if [ "$status" -ne 0 ]; then
  echo
  echo "=== dotnet test failed (exit $status); the failed tests' messages ==="
  awk '/^  Failed /{show=1} /^  (Passed|Skipped) /{show=0} show' "$log" | cut -c1-400 | head -n 200
fi
cat "$log.total"
exit "$status"
