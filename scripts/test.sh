#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every ctest test
# (labels unit, mpi, gpu; gpu tests skip with the reason when there is no GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
./scripts/setup.sh --test
# Without a GPU the gpu tests only need to compile (they skip; their emulated twins run
# on the CPU): for sm_90 alone, the GPU machines' (half the CUDA compile time of "80;90").
if ! nvidia-smi -L >/dev/null 2>&1; then
  export RWKV_CUDA_ARCHS=${RWKV_CUDA_ARCHS:-90}
fi
./scripts/build.sh
# Open MPI refuses root unless told; CI and containers run as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
echo "test.sh: done in $(( $(date +%s) - start )) s"
