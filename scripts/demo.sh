#!/usr/bin/env bash
# The end-to-end demo: installs what is missing, builds `rwkv`, then
#   1. gathers a multilingual corpus that ships with Debian (the fortunes-* packages:
#      Czech, German, Spanish, Italian, Polish, Russian and Chinese quotations),
#   2. preprocesses it (byte tokenizer, 1% of the documents for validation),
#   3. trains the `tiny` RWKV-7 on the CPU with 2 data-parallel ranks, stops it half
#      way with SIGUSR1 (as Slurm does before a time limit), resumes from the
#      checkpoint it wrote and finishes,
#   4. plots the loss curves and prints where everything is.
# About 3 minutes on 2 cores once built. RWKV_DEMO_DIR (default runs/demo/, git-ignored)
# holds the corpus, the dataset and the run; RWKV_DEMO_STEPS (default 600) sets the length.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh rwkv
rwkv=$PWD/build/cli/rwkv
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
demo=${RWKV_DEMO_DIR:-$PWD/runs/demo}
steps=${RWKV_DEMO_STEPS:-600}
fortunes=/usr/share/games/fortunes
run=$demo/run

if [[ ! -d $fortunes/de || ! -d $fortunes/ru ]]; then
  echo "demo: $fortunes is missing; install fortunes-de fortunes-ru fortunes-zh fortunes-es" \
    "fortunes-it fortunes-pl fortunes-cs (scripts/setup.sh does)" >&2
  exit 1
fi

echo "== 1. corpus: the fortunes-* packages, one directory per language"
mkdir -p "$demo"
if [[ ! -d $demo/corpus ]]; then
  mkdir -p "$demo/corpus.tmp"
  for lang in cs de es it pl ru; do
    mkdir -p "$demo/corpus.tmp/$lang"
    for f in "$fortunes/$lang"/*; do
      case $f in *.dat | *.u8) continue ;; esac  # indexes and symlinks to the same text
      [[ -f $f && -s $f ]] && cp -L "$f" "$demo/corpus.tmp/$lang/"
    done
  done
  mkdir -p "$demo/corpus.tmp/zh"
  cp -L "$fortunes/chinese" "$fortunes/tang300" "$fortunes/song100" "$demo/corpus.tmp/zh/"
  mv "$demo/corpus.tmp" "$demo/corpus"
fi
du -sh "$demo/corpus"/* | sed 's/^/  /'

echo "== 2. rwkv preprocess (fortunes are separated by lines holding '%')"
if [[ ! -f $demo/data/manifest.yaml ]]; then
  "$rwkv" preprocess "$demo/corpus" -o "$demo/data" --lang-from-path --doc-delimiter '\n%\n' \
    --tokenizer bytes --val-fraction 0.01
fi

cat >"$demo/run.yaml" <<YAML
# The demo run: the tiny preset over 256-byte windows; 2 ranks x 4 windows per step.
model:
  preset: tiny
  ctx_len: 256
data:
  path: $demo/data
train:
  micro_batch_size: 4
  steps: $steps
  eval_every: 50
  eval_batches: 4
  threads: 1
optimizer:
  lr_init: 4e-3
  lr_final: 4e-4
  warmup_steps: 20
checkpoint:
  save_every_steps: 100
log:
  run_dir: $run
  every_steps: 10
YAML
as_root=()
[[ $(id -u) -eq 0 ]] && as_root=(--allow-run-as-root)
train=(mpirun -q "${as_root[@]}" --oversubscribe -np 2 "$rwkv" train "$demo/run.yaml")
rm -rf "$run"

half=$((steps / 2))
echo "== 3a. rwkv train on 2 ranks; SIGUSR1 once step $half is logged"
"${train[@]}" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  last=$(grep -o '"kind":"train","step":[0-9]*' "$run/metrics.jsonl" 2>/dev/null | tail -1 |
    grep -o '[0-9]*$' || true)
  if [[ -n $last && $last -ge $half ]]; then
    echo "demo: sending SIGUSR1 (mpirun forwards it to every rank)"
    kill -USR1 "$pid"
    break
  fi
  sleep 1
done
rc=0
wait "$pid" || rc=$?
if [[ $rc -ne 3 ]]; then
  echo "demo: expected exit status 3 (stopped after a checkpoint), got $rc" >&2
  exit 1
fi

echo "== 3b. the same command again: resumes from the newest checkpoint and finishes"
"${train[@]}"

echo "== 4. loss curves"
png=$run/loss.png
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  /usr/bin/python3 scripts/plot_metrics.py "$run" -o "$png"
else
  png="(not drawn: python3-matplotlib is not installed)"
fi

# The validation losses, in order (sed reads all its input: no SIGPIPE under pipefail).
val_losses() { sed -n 's/^{"kind":"eval","step":[0-9]*,"loss":\([0-9.]*\).*/\1/p' "$run/metrics.jsonl"; }
first=$(val_losses | sed -n 1p)
last=$(val_losses | sed -n '$p')
echo
echo "demo: done. Validation loss (nats per token; a token is a byte here) $first at step 0,"
echo "      $last at step $steps (bits per byte and the per-language losses: metrics.jsonl)."
echo "  run directory  $run"
echo "  metrics        $run/metrics.jsonl"
echo "  TensorBoard    $run/events.out.tfevents.* (tensorboard --logdir $run)"
echo "  checkpoints    $(cd "$run/checkpoints" && echo step-*.h5)"
echo "  loss curves    $png"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5) }' || {
  echo "demo: the validation loss did not fall by 0.5" >&2
  exit 1
}
