#!/usr/bin/env bash
# Configures and builds into build/ (Release). Extra arguments go to ninja
# (e.g. a target name). RWKV_WERROR=ON turns warnings into errors (CI sets it);
# RWKV_CUDA_ARCHS: the GPU architectures to compile for (default "80;90").
set -euo pipefail
cd "$(dirname "$0")/.."
werror=${RWKV_WERROR:-OFF}
[[ "${CI:-}" == "true" ]] && werror=ON
mkdir -p build
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DRWKV_WERROR="$werror" \
  -DRWKV_CUDA="${RWKV_CUDA:-AUTO}" -DCMAKE_CUDA_ARCHITECTURES="${RWKV_CUDA_ARCHS:-80;90}" \
  >build/configure.log 2>&1 || {
  cat build/configure.log >&2
  exit 1
}
ninja -C build -j "$(nproc)" "$@"
