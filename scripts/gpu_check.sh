#!/usr/bin/env bash
# GPU check in one run, for a machine with an NVIDIA GPU, CUDA, cmake and python3
# but none of the Debian libraries (no MPI, HDF5, yaml-cpp, Boost, GoogleTest).
#
#   scripts/gpu_check.sh prepare   on a development machine: copies what the GPU
#                                  machine lacks into .gpu/ (GoogleTest sources,
#                                  nccl.h, the reference BLAS and LAPACK that the
#                                  CPU kernels and the model's init the gpu tests
#                                  compare against link to; about 15 MB); send
#                                  .gpu/ along with the run
#   scripts/gpu_check.sh           on the GPU machine: builds the CUDA backend and
#                                  its gpu tests for sm_90 (RWKV_GPU_ONLY), runs
#                                  them, runs the GPU benchmarks, prints a table
#
# Logs and the table go to $OUT (or .gpu/out when OUT is unset). Record every run in
# docs/gpu-results.md (date, card, commit, each verdict, each benchmark).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "prepare" ]]; then
  rm -rf .gpu/googletest .gpu/include .gpu/blas .gpu/deb
  mkdir -p .gpu/include .gpu/blas/include .gpu/blas/lib .gpu/deb
  cp -r /usr/src/googletest .gpu/googletest
  cp "$(dirname "$(command -v nvcc)")/../include/nccl.h" .gpu/include/
  # Netlib's reference BLAS with CBLAS (Debian libblas3/libblas-dev, 0.5 MB):
  # OpenBLAS is 36 MB, and speed does not matter for the CPU side of the checks. The
  # model's orthogonal init needs LAPACK (dgeqrf_, dorgqr_: netlib's liblapack3, 7 MB)
  # and its Fortran runtime (libgfortran5, libquadmath0).
  (cd .gpu/deb && apt-get download libblas3 libblas-dev liblapack3 libgfortran5 libquadmath0 \
    >/dev/null 2>&1) ||
    { echo "prepare: apt-get download of the BLAS and LAPACK packages failed" >&2; exit 1; }
  for f in .gpu/deb/*.deb; do dpkg -x "$f" .gpu/deb/root; done
  inc=.gpu/deb/root/usr/include/x86_64-linux-gnu
  lib=.gpu/deb/root/usr/lib/x86_64-linux-gnu
  cp "$inc/cblas-netlib.h" .gpu/blas/include/cblas.h
  cp "$inc/cblas_mangling.h" .gpu/blas/include/
  cp -L "$lib/blas/libblas.so.3" "$lib/lapack/liblapack.so.3" "$lib/libgfortran.so.5" \
    "$lib/libquadmath.so.0" .gpu/blas/lib/
  ln -sf libblas.so.3 .gpu/blas/lib/libblas.so
  ln -sf liblapack.so.3 .gpu/blas/lib/liblapack.so
  rm -rf .gpu/deb
  git rev-parse HEAD >.gpu/commit 2>/dev/null || true
  du -sh .gpu
  exit 0
fi

out=${OUT:-.gpu/out}
mkdir -p "$out"
log=$out/gpu_check.log
exec > >(tee "$log") 2>&1
arch=${CUDA_ARCH:-90}

echo "== machine"
date -u +"%Y-%m-%d %H:%M UTC"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
nvcc --version | tail -2
echo "commit: $(cat .gpu/commit 2>/dev/null || git rev-parse HEAD 2>/dev/null || echo unknown)"

# NCCL: the toolkit's, else the one PyTorch ships (pip nvidia-nccl), with the
# header carried in .gpu/include when the machine has none.
nccl_lib=""
for d in "$(dirname "$(command -v nvcc)")/../lib64" /usr/lib/x86_64-linux-gnu; do
  [[ -e $d/libnccl.so ]] && nccl_lib=$d/libnccl.so && break
done
if [[ -z $nccl_lib ]]; then
  nccl_lib=$(find /opt /usr/local /usr/lib -name 'libnccl.so*' 2>/dev/null | head -1)
fi
nccl_inc=$(dirname "$(find "$(dirname "$(command -v nvcc)")/../include" "$PWD/.gpu/include" \
  -name nccl.h 2>/dev/null | head -1)")
echo "nccl: $nccl_lib (header in $nccl_inc)"
export LD_LIBRARY_PATH="$(dirname "$nccl_lib"):$PWD/.gpu/blas/lib:${LD_LIBRARY_PATH:-}"

echo "== build (sm_$arch, RWKV_GPU_ONLY)"
t0=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DRWKV_GPU_ONLY=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" -DRWKV_WERROR=ON \
  -DRWKV_GTEST_SOURCE_DIR="$PWD/.gpu/googletest" -DRWKV_BLAS_DIR="$PWD/.gpu/blas" \
  -DRWKV_NCCL_LIBRARY="$nccl_lib" -DRWKV_NCCL_INCLUDE_DIR="$nccl_inc" >"$out/configure.log" 2>&1 \
  || { cat "$out/configure.log"; echo "RESULT: configure FAILED"; exit 1; }
if ! cmake --build build-gpu -j "$(nproc)" >"$out/build.log" 2>&1; then
  tail -50 "$out/build.log"
  echo "RESULT: build FAILED"
  exit 1
fi
echo "built in $(( $(date +%s) - t0 )) s"

echo "== gpu tests"
ctest --test-dir build-gpu -L gpu -V --timeout 120 -j 4 >"$out/ctest.log" 2>&1
rc=$?
grep -E "^\s*[0-9]+: (\[  |cuda |.*nccl)" "$out/ctest.log" | head -40

echo "== gpu benchmarks"
benches=$(find build-gpu/bench -maxdepth 1 -type f -executable -name 'bench_*' 2>/dev/null | sort)
if [[ -z $benches ]]; then
  echo "(no GPU benchmarks are built yet)"
fi
for b in $benches; do
  echo "-- $b"
  timeout 150 "$b" 2>&1 | tee -a "$out/bench.log"
done

echo "== results"
grep -E "Test +#[0-9]+: " "$out/ctest.log" | sed -E 's/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: //; s/ \.+/ /' \
  | tr -d '*' | awk '{printf "| %-55s | %s |\n", $1, $2}' | tee "$out/results.md"
grep -E "tests passed|tests failed" "$out/ctest.log"
echo "RESULT: gpu tests $([[ $rc -eq 0 ]] && echo PASSED || echo FAILED)"
exit $rc
