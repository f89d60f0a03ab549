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
set -e

# The two test projects run side by side and a failure scrolls far up behind the passing
# tests, where a CI page that shows only the end of the output cannot reach it: repeat the
# failures, with their messages, last.
if [ "$status" -ne 0 ]; then
  echo
  echo "=== dotnet test failed (exit $status); the failed tests again ==="
  awk '/^  Failed /{show=1} /^  (Passed|Skipped) /{show=0} show' "$log" | cut -c1-400 | head -n 200
fi
exit "$status"
