#!/usr/bin/env bash
# slurm/preprocess.sbatch under a real one-node Slurm (scripts/slurm_local.sh):
# 2 tasks started by srun --mpi=pmix preprocess a 3-language corpus, and the
# dataset is complete. Exit 77 (ctest: skipped) without root or Slurm.
# usage: test_preprocess_sbatch.sh SOURCE_DIR RWKV_BINARY WORK_DIR
set -euo pipefail
src=$1 rwkv=$2 work=$3
if [[ $(id -u) -ne 0 ]] || ! command -v slurmctld >/dev/null || ! command -v sbatch >/dev/null; then
  echo "SKIP: needs root and Slurm (slurm-wlm, munge; scripts/setup.sh --test installs them)"
  exit 77
fi
"$src/scripts/slurm_local.sh" start >/dev/null

rm -rf "$work" && mkdir -p "$work"/corpus/{de,ru,zh}
for i in $(seq 1 100); do
  printf '{"text": "Grüße aus München, Dokument %d: über die Straße."}\n' "$i" >>"$work/corpus/de/a.jsonl"
  printf '{"text": "Привет из Москвы, документ %d: мы идём по улице."}\n' "$i" >>"$work/corpus/ru/a.jsonl"
  printf '{"text": "来自北京的问候，文档 %d：我们走在街上。"}\n' "$i" >>"$work/corpus/zh/a.jsonl"
done

cd "$work"
RWKV="$rwkv" timeout 300 sbatch --wait --ntasks=2 --output="$work/job.out" \
  "$src/slurm/preprocess.sbatch" "$work/out" "$work/corpus/*/*.jsonl" --lang-from-path --unit-bytes 4096
cat "$work/job.out"
grep -q "2 ranks" "$work/job.out"
grep -q "documents: 300" "$work/job.out"
test -s "$work/out/manifest.yaml"
for l in de ru zh; do grep -q "$l" "$work/out/manifest.yaml"; done
echo "slurm preprocess: OK"
