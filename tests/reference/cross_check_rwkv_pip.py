"""Cross-checks the committed fixtures against the official RWKV inference package.

The `rwkv` PyPI package (BlinkDL/ChatRWKV's rwkv_pip_package, pure-PyTorch CPU path) is
independent of rwkv_reference.py. This loads each fixture's params/ as a checkpoint,
runs the package on the fixture's idx (whole sequence, then one token at a time) in
float32, and compares with the fixture's float64 logits: max |difference| must stay
below 1e-5 (float32 rounding; measured about 4e-7 with rwkv 0.8.32 and torch 1.13).

Manual, not part of ctest (the package is not a project dependency):
  python3 -m pip download rwkv==0.8.32 --no-deps -d /tmp/rwkv_pip
  (cd /tmp/rwkv_pip && python3 -m zipfile -e rwkv-0.8.32-py3-none-any.whl .)
  /usr/bin/python3 tests/reference/cross_check_rwkv_pip.py --rwkv-path /tmp/rwkv_pip
"""
import argparse
import os
import subprocess
import sys
import tempfile

TOL = 1e-5  # max |logits_package(float32) - logits_fixture(float64)|
HERE = os.path.dirname(os.path.abspath(__file__))


def check_version(version, fixtures):
    """Runs in its own process: the package reads RWKV_V7_ON when it is imported."""
    os.environ["RWKV_JIT_ON"] = "0"
    os.environ["RWKV_CUDA_ON"] = "0"
    os.environ["RWKV_V7_ON"] = "1" if version == 7 else "0"
    import h5py
    import numpy as np
    import torch
    if "mmap" not in torch.load.__code__.co_varnames:  # torch < 2.1; the package passes mmap=True
        load = torch.load
        torch.load = lambda *args, mmap=None, **kwargs: load(*args, **kwargs)
    from rwkv.model import RWKV

    with h5py.File(os.path.join(fixtures, f"rwkv{version}_tiny.h5"), "r") as f:
        weights = {name: torch.tensor(f["params"][name][()]).float() for name in f["params"]}
        idx, logits = f["idx"][()], f["logits"][()]
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(weights, os.path.join(tmp, "model.pth"))
        model = RWKV(model=os.path.join(tmp, "model"), strategy="cpu fp32")
    worst = 0.0
    for b in range(idx.shape[0]):
        tokens = [int(t) for t in idx[b]]
        seq, _ = model.forward(tokens, None, full_output=True)
        state, steps = None, []
        for t in tokens:
            out, state = model.forward([t], state)
            steps.append(out)
        for got in (seq, torch.stack(steps)):
            worst = max(worst, float(np.abs(got.double().numpy() - logits[b]).max()))
    verdict = "ok" if worst < TOL else "FAIL"
    print(f"rwkv{version}: rwkv package (float32) vs fixture logits: max abs diff {worst:.2e} "
          f"(tolerance {TOL:g}) {verdict}")
    return worst < TOL


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rwkv-path", help="folder holding the unpacked rwkv package")
    parser.add_argument("--fixtures", default=os.path.join(HERE, "fixtures"))
    parser.add_argument("--version", type=int, choices=(4, 5, 6, 7), help="check only this one")
    args = parser.parse_args()
    if args.rwkv_path:
        sys.path.insert(0, args.rwkv_path)
    if args.version:
        sys.exit(0 if check_version(args.version, args.fixtures) else 1)
    failed = []
    for version in (4, 5, 6, 7):
        cmd = [sys.executable, __file__, "--fixtures", args.fixtures, "--version", str(version)]
        if args.rwkv_path:
            cmd += ["--rwkv-path", args.rwkv_path]
        out = subprocess.run(cmd, capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith(f"rwkv{version}:")]
        print("\n".join(lines) if lines else f"rwkv{version}: failed to run\n{out.stdout}{out.stderr}")
        if out.returncode != 0:
            failed.append(version)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
