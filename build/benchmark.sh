#!/usr/bin/env bash
# Speed and memory benchmark: prints ratios against plain QEMU + ssh measured in the same run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
build/install-prerequisites.sh
image=$(build/test-image/build.sh)
dotnet run --project tests/LinuxKit.Testing.Benchmarks --configuration Release -- "$image" "$@"
