#!/usr/bin/env bash
# The quick start: boots the bundled LinuxKit test image, runs `uname -a` in it, prints the
# output and cleans up. Installs QEMU and builds the image first when they are missing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

build/install-prerequisites.sh
image=$(build/test-image/build.sh)
dotnet run --project samples/QuickStart --configuration Release -- "$image"
