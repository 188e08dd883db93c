#!/usr/bin/env bash
# rwkv preprocess with a SentencePiece tokenizer vs SentencePiece's own
# spm_encode on the same documents, and 2 ranks vs 1 (docs/performance.md).
# Usage: bench/bench_preprocess.sh [RWKV_BINARY] [MEGABYTES]
# Needs python3, spm_encode (Debian: sentencepiece) and mpirun.
set -euo pipefail
RWKV=${1:-build/cli/rwkv}
MB=${2:-100}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rwkv-bench-preprocess.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none

# A synthetic multilingual corpus: Zipf-distributed words of five scripts, one
# document per line (corpus.txt, for spm_encode) and the same documents as
# JSONL (corpus.jsonl, for rwkv preprocess).
python3 - "$WORK" "$MB" <<'PY'
import json, random, sys
work, mb = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
alphabets = {"en": "abcdefghijklmnopqrstuvwxyz", "ru": "абвгдежзийклмнопрстуфхцчшщыьэюя",
             "el": "αβγδεζηθικλμνξοπρστυφχψω", "de": "abcdefghijklmnopqrstuvwxyzäöüß",
             "zh": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年"}
vocab = {l: ["".join(rng.choice(a) for _ in range(rng.randint(1, 3) if l == "zh" else rng.randint(2, 9)))
             for _ in range(5000)] for l, a in alphabets.items()}
weights = [1.0 / (i + 1) for i in range(5000)]
with open(f"{work}/corpus.txt", "w") as txt, open(f"{work}/corpus.jsonl", "w") as js:
    size = 0
    while size < mb * 1_000_000:
        lang = rng.choice(list(alphabets))
        sep = "" if lang == "zh" else " "
        words = rng.choices(vocab[lang], weights, k=rng.randint(50, 800))
        doc = sep.join(words) + ("。" if lang == "zh" else ".")
        txt.write(doc + "\n")
        js.write(json.dumps({"text": doc, "lang": lang}, ensure_ascii=False) + "\n")
        size += len(doc.encode())
PY
BYTES=$(stat -c %s "$WORK/corpus.txt")
head -c 8000000 "$WORK/corpus.jsonl" | sed '$d' > "$WORK/sample.jsonl"
"$RWKV" preprocess "$WORK/sample.jsonl" -o "$WORK/sp" --train-sentencepiece --vocab-size 8000 > /dev/null 2>&1
MODEL="$WORK/sp/tokenizer.model"

# Wall and CPU seconds of each run (/usr/bin/time): on a shared machine the CPU
# seconds show whether 2 ranks did the same total work as 1.
run() { /usr/bin/time -f "%e %U %S" -o "$WORK/$1.time" "${@:2}" > /dev/null 2>&1; }
run spm sh -c "spm_encode --model '$MODEL' --output_format=id < '$WORK/corpus.txt'"
run one "$RWKV" preprocess "$WORK/corpus.jsonl" -o "$WORK/one" --tokenizer sentencepiece \
  --tokenizer-file "$MODEL" --unit-bytes 2000000
run two mpirun -np 2 "$RWKV" preprocess "$WORK/corpus.jsonl" -o "$WORK/two" --tokenizer sentencepiece \
  --tokenizer-file "$MODEL" --unit-bytes 2000000
python3 - "$BYTES" "$WORK" <<'PY'
import sys
b, work = int(sys.argv[1]), sys.argv[2]
t = {k: list(map(float, open(f"{work}/{k}.time").read().split()[-3:])) for k in ("spm", "one", "two")}
rate = {k: b / v[0] / 1e6 for k, v in t.items()}
cpu = {k: v[1] + v[2] for k, v in t.items()}
print(f"text: {b / 1e6:.1f} MB")
print(f"spm_encode:               {rate['spm']:6.2f} MB/s  cpu {cpu['spm']:6.1f} s")
print(f"rwkv preprocess, 1 rank:  {rate['one']:6.2f} MB/s  cpu {cpu['one']:6.1f} s  ({rate['one'] / rate['spm']:.2f} x spm_encode)")
print(f"rwkv preprocess, 2 ranks: {rate['two']:6.2f} MB/s  cpu {cpu['two']:6.1f} s  ({rate['two'] / rate['one']:.2f} x 1 rank)")
PY
