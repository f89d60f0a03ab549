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
dotnet test LinuxKit.Testing.sln --configuration Release --logger "console;verbosity=normal" "$@"
