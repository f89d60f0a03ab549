#!/usr/bin/env bash
# Speed and memory benchmark: prints ratios against plain QEMU + ssh (and fast stops against
# graceful ones) measured in the same run, on the dropbear and the OpenSSH test image.
# Usage: build/benchmark.sh [ROUNDS [PARTS]]   (PARTS: boot,warm,firmware,baked,exec,memory,xunit; default all)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
build/install-prerequisites.sh
image=$(build/test-image/build.sh)
dotnet build tests/LinuxKit.Testing.Benchmarks.TenFixtures --configuration Release >/dev/null
dotnet run --project tests/LinuxKit.Testing.Benchmarks --configuration Release -- "$image" "$(dirname "$image")/linuxkit-sshd" "$@"
