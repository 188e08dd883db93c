#!/usr/bin/env bash
# slurm/train.sbatch under a real one-node Slurm (scripts/slurm_local.sh): 2 ranks
# train, `scancel --signal=USR1` (what --signal=USR1@120 sends before a time limit)
# makes them checkpoint and exit 3, the script requeues the job, and the requeued
# job resumes from the checkpoint and finishes. Exit 77 (skipped) without root or Slurm.
# usage: test_train_sbatch.sh SOURCE_DIR RWKV_BINARY WORK_DIR
set -euo pipefail
src=$1 rwkv=$2 work=$3
if [[ $(id -u) -ne 0 ]] || ! command -v slurmctld >/dev/null || ! command -v sbatch >/dev/null; then
  echo "SKIP: needs root and Slurm (slurm-wlm, munge; scripts/setup.sh --test installs them)"
  exit 77
fi
"$src/scripts/slurm_local.sh" start >/dev/null

rm -rf "$work" && mkdir -p "$work/corpus"
for i in $(seq 1 300); do
  printf '{"text": "Document %d: the quick brown fox jumps over the lazy dog. Grüße, привет, 你好。"}\n' "$i"
done >"$work/corpus/a.jsonl"
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  "$rwkv" preprocess "$work/corpus" -o "$work/data" --val-fraction 0.05 >/dev/null
cat >"$work/run.yaml" <<YAML
model: {preset: tiny, ctx_len: 64}
data: {path: $work/data}
train: {micro_batch_size: 4, steps: 400, eval_every: 0, threads: 1}
checkpoint: {save_every_steps: 1000}
log: {run_dir: $work/run, every_steps: 20}
YAML

wait_for() {  # wait_for PATTERN SECONDS: until the job log matches
  for _ in $(seq "$2"); do
    grep -q "$1" "$work/job.out" 2>/dev/null && return 0
    sleep 1
  done
  echo "timed out waiting for '$1' in the job log:" >&2
  cat "$work/job.out" >&2 || true
  return 1
}

cd "$work"
jid=$(RWKV="$rwkv" sbatch --parsable --output="$work/job.out" "$src/slurm/train.sbatch" "$work/run.yaml")
trap 'scancel "$jid" 2>/dev/null || true' EXIT
wait_for "^step " 120
scancel --signal=USR1 "$jid"
wait_for "requeueing job" 60
# A requeued job waits (BeginTime, about two minutes) before it may start again. Once it
# is pending and slurmd has cleaned up its first run, let it start now.
for _ in $(seq 60); do
  [[ "$(squeue -h -j "$jid" -o %T 2>/dev/null)" == PENDING ]] && break
  sleep 1
done
sleep 10
scontrol update JobId="$jid" StartTime=now
wait_for "training complete at step 400" 180
grep -q "saved .*(stop signal)" job.out
grep -q "restart 1" job.out
grep -q "resuming from .*step-" job.out
cat job.out
trap - EXIT
echo "slurm train with preemption and requeue: OK"
