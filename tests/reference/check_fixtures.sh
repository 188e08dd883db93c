#!/bin/sh
# Regenerates the RWKV reference fixtures into a temporary folder and compares them with
# the committed ones in tests/reference/fixtures (compare_fixtures.py: equal within 1e-12
# relative). Exit 0 if equal, 1 otherwise, 77 ("SKIP: ...") when Python lacks torch,
# h5py or numpy. PYTHON overrides the interpreter (default: Debian's /usr/bin/python3).
set -u
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-/usr/bin/python3}

if ! "$python" -c "import torch, h5py, numpy" >/dev/null 2>&1; then
  echo "SKIP: $python cannot import torch, h5py and numpy (apt-get install python3-torch python3-h5py python3-numpy)"
  exit 77
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
"$python" "$here/make_fixtures.py" --out "$tmp" || {
  echo "FAIL: make_fixtures.py failed"
  exit 1
}
"$python" "$here/compare_fixtures.py" "$tmp" "$here/fixtures"
