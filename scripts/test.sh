#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every ctest test
# (labels unit, mpi, gpu; gpu tests skip with the reason when there is no GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
./scripts/setup.sh --test
./scripts/build.sh
# Open MPI refuses root unless told; CI and containers run as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
echo "test.sh: done in $(( $(date +%s) - start )) s"
