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
#                                  It also builds, here, the `rwkv` binary and the
#                                  trainer's gpu test for sm_90 and packs them with
#                                  every shared library they need that is not glibc
#                                  or CUDA's own (Open MPI with the components a
#                                  singleton needs, HDF5, yaml-cpp, Boost, ...) into
#                                  .gpu/trainer.tar.xz (~20 MB): the GPU machine has
#                                  no MPI, so the trainer can only run there this way
#   scripts/gpu_check.sh           on the GPU machine: builds the CUDA backend and
#                                  its gpu tests for sm_90 (RWKV_GPU_ONLY), runs
#                                  them, runs the GPU benchmarks and flash-linear-
#                                  attention's chunked RWKV-6/7 kernels side by side
#                                  (bench/cuda/side_by_side_wkv.py, wheels carried in
#                                  .gpu/whl), then the carried
#                                  trainer: its gpu test and `rwkv train` of the
#                                  0.4B preset at ctx 4096 with the sequential and
#                                  the chunked WKV kernels, with bf16 activations,
#                                  and at micro-batch 8 recomputing activations;
#                                  compute-sanitizer on
#                                  the small chunked WKV cases and the backend's ops; prints a table
#   SIDE_BY_SIDE=0 scripts/gpu_check.sh   the same without flash-linear-attention (its
#                                  autotuning takes ~110 s of the device time), for a
#                                  second run in a lease that has already measured it
#   SANITIZE=0 scripts/gpu_check.sh the same without compute-sanitizer's racecheck and
#                                  memcheck of the small chunked WKV cases (run last,
#                                  before the table; 1-3 minutes where it reaches the GPU)
#   NCU=0 scripts/gpu_check.sh      the same without Nsight Compute's per-kernel times of
#                                  the chunked WKV kernels (~30-60 s where ncu reaches
#                                  the GPU)
#   TRAINER=0 scripts/gpu_check.sh  the same without the carried trainer (~60 s), when
#                                  its bundle predates the commit under test (prepare
#                                  rebuilds it: ~5 minutes here)
#   BUDGET_S=N scripts/gpu_check.sh seconds the whole check may take (default 540, for
#                                  a 600 s device call): a stage after the benchmarks
#                                  (side by side, the trainer's test and each of its
#                                  runs, ncu, each sanitizer run) that would not end
#                                  within what is left is skipped, saying so, so that
#                                  the table and the key numbers are always printed
#
# Logs and the table go to $OUT (or .gpu/out when OUT is unset). Record every run in
# docs/gpu-results.md (date, card, commit, each verdict, each benchmark).
set -uo pipefail
cd "$(dirname "$0")/.."

# Libraries the GPU machine has or must provide itself: glibc's, and CUDA's (its
# toolkit's cudart and cuBLAS, the NCCL that PyTorch ships). OpenBLAS is carried (36 MB,
# 9 MB packed): the model's orthogonal init of the 0.4B preset needs its LAPACK speed.
not_carried='^(libc|libm|libdl|libpthread|librt|libresolv|ld-linux-x86-64|linux-vdso|libcuda|libcudart|libcublas|libcublasLt|libnccl)\.so'
# Open MPI components a singleton (MPI_Init without mpirun) loads, the fabric ones aside.
ompi_components="allocator_basic allocator_bucket bml_r2 btl_self btl_sm btl_tcp btl_vader
  coll_adapt coll_basic coll_han coll_inter coll_libnbc coll_self coll_sm coll_sync coll_tuned
  errmgr_default_app ess_singleton mpool_hugepage op_avx osc_rdma osc_sm pmix_isolated pml_cm
  pml_ob1 rcache_grdma reachable_weighted schizo_ompi schizo_orte shmem_mmap shmem_posix
  shmem_sysv state_app"

# The trainer bundle (see the header): built in build-gpu-trainer, packed into
# .gpu/trainer.tar.xz with bin/ (rwkv, test_train_cuda) and lib/ (the libraries;
# lib/openmpi3 the components).
pack_trainer() {
  local b=build-gpu-trainer stage=.gpu/trainer-stage ompi=/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3
  cmake -S . -B $b -G Ninja -DCMAKE_BUILD_TYPE=Release -DRWKV_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null ||
    { echo "prepare: configure of $b failed" >&2; return 1; }
  ninja -C $b -j "$(nproc)" rwkv test_train_cuda >/dev/null ||
    { echo "prepare: build of rwkv / test_train_cuda failed" >&2; return 1; }
  rm -rf $stage && mkdir -p $stage/bin $stage/lib/openmpi3
  cp $b/cli/rwkv $b/tests/trainer/test_train_cuda $stage/bin/
  local objs=($stage/bin/rwkv $stage/bin/test_train_cuda)
  for c in $ompi_components; do
    cp $ompi/mca_$c.so $stage/lib/openmpi3/ && objs+=($stage/lib/openmpi3/mca_$c.so)
  done
  # Every library any of them needs, transitively (ldd resolves the whole closure).
  ldd "${objs[@]}" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
    while read -r name path; do
      [[ $name =~ $not_carried ]] || cp -L "$path" $stage/lib/
    done
  tar -C $stage -cJf .gpu/trainer.tar.xz . && rm -rf $stage
}

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
  # flash-linear-attention's wheels for bench/cuda/side_by_side_wkv.py (pure Python, 1.5 MB;
  # the GPU machine has torch, triton, einops and transformers but no internet; fla-core
  # imports packaging without declaring it). Offline, .gpu/whl stays as it was, and
  # without wheels the benchmark reports fla missing while the rest of the check runs.
  rm -rf .gpu/whl.new && mkdir -p .gpu/whl.new
  if python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/whl.new flash-linear-attention==0.6.0 fla-core==0.6.0 packaging==26.0 >/dev/null 2>&1; then
    rm -rf .gpu/whl && mv .gpu/whl.new .gpu/whl
  else
    rm -rf .gpu/whl.new
    echo "prepare: pip download of flash-linear-attention failed (offline?); .gpu/whl left as it was" >&2
  fi
  pack_trainer || exit 1
  git rev-parse HEAD >.gpu/commit 2>/dev/null || true
  du -sh .gpu
  exit 0
fi

out=${OUT:-.gpu/out}
mkdir -p "$out"
budget=${BUDGET_S:-540}
# enough_time N WHAT: whether N more seconds fit the budget (SECONDS: since the start);
# if not, says that WHAT is skipped.
enough_time() {
  (( SECONDS + $1 <= budget )) && return 0
  echo "(skipped: $2 takes up to $1 s; $(( budget - SECONDS )) s of the ${budget} s budget left)"
  return 1
}
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
echo "host compiler: $(c++ --version 2>/dev/null | head -1)"
t0=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DRWKV_GPU_ONLY=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" -DRWKV_WERROR=OFF \
  -DRWKV_GTEST_SOURCE_DIR="$PWD/.gpu/googletest" -DRWKV_BLAS_DIR="$PWD/.gpu/blas" \
  -DRWKV_NCCL_LIBRARY="$nccl_lib" -DRWKV_NCCL_INCLUDE_DIR="$nccl_inc" >"$out/configure.log" 2>&1 \
  || { cat "$out/configure.log"; echo "RESULT: configure FAILED"; exit 1; }
if ! cmake --build build-gpu -j "$(nproc)" >"$out/build.log" 2>&1; then
  tail -50 "$out/build.log"
  echo "RESULT: build FAILED"
  exit 1
fi
echo "built in $(( $(date +%s) - t0 )) s"
# Warnings do not stop the check here (CI builds with RWKV_WERROR=ON; this machine's host
# compiler may differ), but they are counted, register spills among them.
echo "build warnings: $(grep -c -i "warning" "$out/build.log"), register spills: $(grep -c -i "spilled" "$out/build.log")"

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

# flash-linear-attention's chunked RWKV-6 / RWKV-7 Triton kernels on the same card (issue
# 7): its wheels, carried in .gpu/whl by prepare, go to /tmp/site, on PYTHONPATH for this
# command only. The script fails soft and keeps to its own time budget (170 s here: the
# whole check must stay within one 600 s device call).
echo "== side by side (flash-linear-attention)"
rm -rf /tmp/site
side_by_side=${SIDE_BY_SIDE:-1}
if [[ $side_by_side == 0 ]]; then
  echo "(skipped: SIDE_BY_SIDE=0)"
elif ! enough_time 200 "flash-linear-attention"; then
  side_by_side=0
elif compgen -G ".gpu/whl/*.whl" >/dev/null; then
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --no-index --no-deps --no-compile \
    --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl 2>&1 | tail -3
else
  echo "(no wheels in .gpu/whl: run 'scripts/gpu_check.sh prepare' here first)"
fi
if [[ $side_by_side != 0 ]]; then
  PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" OUT="$out" \
    timeout 200 python3 bench/cuda/side_by_side_wkv.py --budget-s 170 2>&1 | tee -a "$out/bench.log"
fi

# The trainer, carried as built here (see prepare): its gpu test, then `rwkv train` of
# the rwkv7-0.4b preset at ctx 4096 (bytes of generated text; bf16 products), MFU
# against the bf16 GEMM rate bench_cuda_train measured above.
trainer_rc=0 trainer_ran=0
ld_path_before_trainer=$LD_LIBRARY_PATH
echo "== trainer (carried build)"
if [[ ${TRAINER:-1} == 0 ]]; then
  echo "(skipped: TRAINER=0)"
elif ! enough_time 120 "the carried trainer"; then
  :
elif [[ -f .gpu/trainer.tar.xz ]]; then
  trainer_ran=1
  tb=/tmp/rwkv-trainer
  rm -rf $tb && mkdir -p $tb && tar -xJf .gpu/trainer.tar.xz -C $tb
  cuda_lib="$(dirname "$(command -v nvcc)")/../lib64"
  export LD_LIBRARY_PATH="$tb/lib:$cuda_lib:$LD_LIBRARY_PATH"
  export OMPI_MCA_ess_singleton_isolated=1 OMPI_MCA_mca_base_component_path=$tb/lib/openmpi3
  export OMPI_MCA_mca_base_component_show_load_errors=0 OMPI_ALLOW_RUN_AS_ROOT=1
  export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  timeout $(( budget - SECONDS > 300 ? 300 : budget - SECONDS )) $tb/bin/test_train_cuda \
    >"$out/train_cuda.log" 2>&1
  trainer_rc=$?
  grep -E "^\[ +(OK|FAILED|SKIPPED) +\]|Failure|error" "$out/train_cuda.log" | head -20
  peak=$(grep -oE "GEMM 8192\^3 [^:]*: [0-9.]+" "$out/bench.log" 2>/dev/null | grep -oE "[0-9.]+$" | head -1)
  work=/tmp/rwkv-e2e
  rm -rf $work && mkdir -p $work
  python3 - "$work/corpus.jsonl" <<'PY'
import json, random, sys
random.seed(1)
words = ["river", "stone", "light", "garden", "window", "morning", "music", "letter", "bridge",
         "forest", "harbour", "winter", "silver", "market", "candle", "number", "quiet", "yellow"]
with open(sys.argv[1], "w") as f:
    for d in range(3000):
        text = " ".join(random.choice(words) for _ in range(random.randint(60, 200)))
        f.write(json.dumps({"text": text, "lang": "en"}) + "\n")
PY
  $tb/bin/rwkv preprocess "$work/corpus.jsonl" -o "$work/data" --tokenizer bytes \
    >"$out/e2e_preprocess.log" 2>&1 || { tail -5 "$out/e2e_preprocess.log"; trainer_rc=1; }
  # The 0.4B preset for 6 steps with each WKV form (train.wkv: the sequential kernels,
  # auto's pick on a GPU, then the chunked ones), micro-batch 2; with bf16 activations
  # (train.activations: bf16); then micro-batch 8 with activation recomputation
  # (train.recompute: full; 138.9 GiB of activations without it).
  for run in "sequential 2 none fp32" "chunked 2 none fp32" "sequential 2 none bf16" \
    "sequential 8 full fp32"; do
    read -r wkv mb recompute acts <<<"$run"
    name=${wkv}_b${mb}_${recompute}_$acts
    enough_time 90 "rwkv train ($name)" || continue
    timeout $(( budget - SECONDS > 150 ? 150 : budget - SECONDS )) $tb/bin/rwkv train \
      --set model.preset=rwkv7-0.4b --set model.ctx_len=4096 \
      --set data.path="$work/data" --set log.run_dir="$work/run_$name" --set train.device=cuda \
      --set train.matmul_precision=bf16 --set train.wkv=$wkv --set train.micro_batch_size=$mb \
      --set train.recompute=$recompute --set train.activations=$acts \
      --set train.steps=6 --set train.eval_every=0 \
      --set checkpoint.save_every_steps=0 --set log.peak_flops="${peak:-0}e12" \
      >"$out/e2e_train_$name.log" 2>&1 || trainer_rc=1
    echo "-- rwkv train, train.wkv=$wkv, micro-batch $mb, train.recompute=$recompute," \
      "train.activations=$acts"
    grep -E "^model|^activations|^step|error" "$out/e2e_train_$name.log" | tail -7
  done
  rm -rf $work
else
  echo "(no .gpu/trainer.tar.xz: run 'scripts/gpu_check.sh prepare' here first)"
fi
# The bundle's libraries (Debian's libstdc++ among them, older than a newer host
# compiler's) serve the carried binaries only, not those built here that run below.
export LD_LIBRARY_PATH=$ld_path_before_trainer

# Nsight Compute's duration of each chunked WKV kernel (prep, scan, gradients) at the
# benchmark's shapes, which bench_cuda_wkv's events see only summed per forward or
# backward: the benchmark once more with every kernel called once (RWKV_BENCH_ONCE=1),
# the table made by bench/cuda/ncu_kernel_times.py. ncu reads the GPU on some machines
# only (the device library's KINDS.md: Firecracker yes, gVisor no): "no kernel times" is
# no failure. NCU=0 skips it (~30-60 s).
# A CUDA tool ($1): on the PATH, beside nvcc, or in Nsight Compute's own directory.
find_cuda_tool() {
  command -v "$1" && return
  local c
  for c in "$(dirname "$(command -v nvcc)")/$1" /opt/nvidia/nsight-compute/*/"$1"; do
    [[ -x $c ]] && echo "$c" && return
  done
  return 1
}
echo "== ncu: the chunked WKV kernels stage by stage"
if [[ ${NCU:-1} == 0 ]]; then
  echo "(skipped: NCU=0)"
elif ! ncu=$(find_cuda_tool ncu); then
  echo "(no ncu on the PATH, beside nvcc or in /opt/nvidia/nsight-compute)"
elif [[ ! -x build-gpu/bench/bench_cuda_wkv ]]; then
  echo "(bench_cuda_wkv was not built)"
elif enough_time 90 "ncu"; then
  RWKV_BENCH_ONCE=1 timeout 90 "$ncu" --clock-control none -k regex:chunk \
    --metrics gpu__time_duration.sum --csv --log-file "$out/ncu.log" \
    build-gpu/bench/bench_cuda_wkv >"$out/ncu_wkv.csv" 2>&1
  r=$?
  python3 bench/cuda/ncu_kernel_times.py "$out/ncu_wkv.csv" | tee -a "$out/bench.log" \
    || { echo "(ncu gave no kernel times: rc $r)"; tail -5 "$out/ncu.log" "$out/ncu_wkv.csv"; }
fi

# compute-sanitizer on the small chunked WKV cases (B 3, T 100; WKV7 at splits 1 and 8,
# WKV5/6 at 4: the tensor-core tiles and the multiply-add scan; and the bf16 kernels'
# small cases, chunked and sequential; last, every other op of the backend in fp32 and
# bf16, test_cuda_backend_ops): races in shared memory (racecheck) and accesses
# out of bounds (memcheck) as the GPU runs them, which the CPU emulator of the kernel
# bodies cannot see. It reaches the GPU on some machines only (the device library's
# KINDS.md): "did not run" is no failure, errors found are.
# SANITIZE=0 skips it (~1-3 minutes).
san_rc=0 san_runs=0
echo "== compute-sanitizer (small chunked WKV cases, the backend's ops)"
if [[ ${SANITIZE:-1} == 0 ]]; then
  echo "(skipped: SANITIZE=0)"
elif ! san=$(find_cuda_tool compute-sanitizer); then
  echo "(no compute-sanitizer on the PATH, beside nvcc or in /opt/nvidia/nsight-compute)"
else
  for run in "racecheck test_cuda_wkv7 CudaWkv7.Deterministic" \
             "racecheck test_cuda_wkv6 CudaWkv6.Deterministic" \
             "memcheck test_cuda_wkv7 CudaWkv7.Deterministic" \
             "memcheck test_cuda_wkv7 CudaWkv7.*Bf16IsFp32RoundedOnce" \
             "memcheck test_cuda_wkv6 CudaWkv6.*Bf16IsFp32RoundedOnce" \
             "memcheck test_cuda_backend_ops CudaBackendOps.*"; do
    read -r tool bin filter <<<"$run"
    enough_time 60 "$tool $filter" || continue
    log="$out/sanitizer_${tool}_${filter//\*/_}.log"
    timeout 60 "$san" --tool "$tool" --error-exitcode 17 \
      "build-gpu/tests/kernels/$bin" --gtest_filter="$filter" >"$log" 2>&1
    r=$?
    case $r in
      0) verdict="clean"; san_runs=$(( san_runs + 1 )) ;;
      17) verdict="ERRORS FOUND"; san_rc=1; san_runs=$(( san_runs + 1 )) ;;
      124) verdict="timed out (60 s)" ;;
      *) verdict="did not run or the test failed (rc $r)" ;;
    esac
    echo "-- $tool $bin $filter: $verdict"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Device not supported|FAILED" "$log" | head -4
  done
fi

echo "== results"
grep -E "Test +#[0-9]+: " "$out/ctest.log" | sed -E 's/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: //; s/ \.+/ /' \
  | tr -d '*' | awk '{printf "| %-55s | %s |\n", $1, $2}' | tee "$out/results.md"
grep -E "tests passed|tests failed" "$out/ctest.log"
# The numbers the next decisions rest on (chunked or sequential WKV by default, the bf16
# products' path), gathered from the logs above; also in $out/key_numbers.txt.
echo "== key numbers"
{
  grep -E "^wkv[467] |^products of the step|^train bf16( activations)? |^rwkv7-0\.4b .*B=" \
    "$out/bench.log" 2>/dev/null
  for f in "$out"/e2e_train_*.log; do
    [[ -f $f ]] && echo "$(basename "$f" .log): $(grep -E "^step" "$f" | tail -1)"
  done
} | tee "$out/key_numbers.txt"
echo "RESULT: gpu tests $([[ $rc -eq 0 ]] && echo PASSED || echo FAILED)"
echo "RESULT: trainer $( ((trainer_ran == 0)) && echo "not run" ||
  { [[ $trainer_rc -eq 0 ]] && echo PASSED || echo FAILED; })"
echo "RESULT: compute-sanitizer $( ((san_runs == 0)) && echo "not run" ||
  { [[ $san_rc -eq 0 ]] && echo "no errors found ($san_runs runs)" || echo FAILED; })"
exit $(( rc != 0 || trainer_rc != 0 || san_rc != 0 ))
