#!/usr/bin/env python3
"""flash-linear-attention's chunked RWKV-6 and RWKV-7 kernels timed on this GPU (issue 7).

usage: bench/cuda/side_by_side_wkv.py [--small] [--budget-s S] [--compile-workers N]
                                      [--autotune-ms M]

Times fla's chunk_rwkv6 and chunk_rwkv7 (Triton) at the shape bench_cuda_wkv times our
kernels at, B=8 T=4096 C=4096 (H=64 heads of N=64), in bf16 and then fp32 inputs:
forward alone, and forward + backward with a random upstream gradient on the output;
backward = the difference. Each timing: 2 warm-up calls (the first compiles and
autotunes), then the median of 20 calls, each timed with CUDA events, as bench_cuda_wkv
does. Every row is also checked against the float64 recurrence below on a small slice
(output and every input gradient, relative L2 error), so the table times the right
computation. Published for comparison (H100, bf16): RWKV-LM's WKV6 kernel 9.7 ms
forward + 46.4 ms backward, fla's chunked WKV6 13.1 + 40.8 ms; for WKV7 a hand-written
chunked CUDA kernel about 8 ms forward + backward, RWKV-LM's about 17 ms.

The definitions fla's arguments are matched to (state S of one head is [N keys, N values]):
  RWKV-6 (RWKV-LM RWKV-v5/cuda/wkv6_cuda.cu): y_t = r_t (S_{t-1} + diag(u) k_t^T v_t),
    S_t = diag(w_t) S_{t-1} + k_t^T v_t, w_t = exp(lw_t), lw_t = -exp(decay logit) < 0;
    fla: chunk_rwkv6(r, k, v, w=lw, u, scale=1), as fla.layers.rwkv6 calls it.
  RWKV-7 (RWKV-LM RWKV-v7/train_temp/src/model.py and its kernels): S_t = diag(w_t) S_{t-1}
    + b_t^T (a_t S_{t-1}) + k_t^T v_t, y_t = r_t S_t, with a = -kk, b = kk * sigmoid(.),
    kk L2-normalised per head, lw_t = -exp(-0.5) sigmoid(.) (RWKV-LM's
    w = -softplus(-x) - 0.5, decay exp(-exp(w))); fla: chunk_rwkv7(r, w=lw, k, v, a, b,
    scale=1, safe_gate=True, lower_bound=-exp(-0.5), chunk_size=64), as
    fla.layers.rwkv7 calls it (fla.ops.generalized_delta_rule.dplr underneath).

Fails soft, for scripts/gpu_check.sh: no CUDA device, fla missing or a kernel that throws
is reported in the table and the script goes on and exits 0. A case that would not end
within --budget-s is skipped and reported. Rows go to stdout as they finish, and to
$OUT/side_by_side_wkv.{json,md} when OUT is set. --small runs tiny shapes (B=2 T=256
H=4): a quick self-check.

Time: fla autotunes hundreds of Triton configurations per dtype on first use, at the
shape it is called with; compiling them one after another takes minutes. Before each
dtype, --compile-workers processes (each tuning its own share of every kernel's
configurations at T=512, which compiles the same binaries: T is not a compile-time
constant of fla's kernels) fill Triton's on-disk cache in parallel, and the timed
process then autotunes at the full shape from that cache. Autotuning measures each
configuration for 5 + 20 ms instead of Triton's 25 + 100 ms (--autotune-ms).
"""
import argparse
import functools
import importlib.metadata
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import types

WARMUP, REPS = 2, 20
FULL = (8, 4096, 64, 64)  # B, T, H, N
SMALL = (2, 256, 4, 64)
CHECK = (1, 128, 2, 64)  # the slice checked against the float64 recurrence
PREWARM_T = 512  # T of the compile workers (the rest of the shape as timed)
# Worst relative L2 error (over the output and every input gradient) against the
# float64 recurrence for a row to be "ok": bf16 inputs and bf16 intermediates; fp32
# inputs with Triton's default tf32 dot products.
TOLERANCE = {"bf16": 2e-2, "fp32": 5e-3}
DEVICE = "cuda"


def short(e):
    """One line for an exception: its type and the first line of its message."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


# ----------------------------------------------------------------------------- inputs
# Random inputs like a trained model's, never zeros: r, k, v, the bonus u and the
# upstream gradient uniform in [-1, 1); decays and a, b as described in the docstring.

def uniform(torch, gen, lo, hi, size, device):
    return torch.empty(size, device=device).uniform_(lo, hi, generator=gen)


def rwkv6_inputs(torch, gen, shape, device):
    B, T, H, N = shape
    x = {name: uniform(torch, gen, -1.0, 1.0, (B, T, H, N), device) for name in "rkv"}
    # RWKV-LM's RWKV-6 inits the decay logit in [-6, -1] (time_decay); training widens it.
    x["w"] = -torch.exp(uniform(torch, gen, -6.0, 0.0, (B, T, H, N), device))  # [-1, -0.0025]
    x["u"] = uniform(torch, gen, -1.0, 1.0, (H, N), device)
    return x


def rwkv7_inputs(torch, gen, shape, device):
    B, T, H, N = shape
    x = {name: uniform(torch, gen, -1.0, 1.0, (B, T, H, N), device) for name in "rkv"}
    # RWKV-LM's RWKV-7 inits w0 in about [-6.5, -1.5], plus the LoRA term.
    x["w"] = -math.exp(-0.5) * torch.sigmoid(uniform(torch, gen, -7.0, 1.0, (B, T, H, N), device))
    kk = torch.randn((B, T, H, N), device=device, generator=gen)
    kk = kk / kk.norm(dim=-1, keepdim=True)
    gate = torch.sigmoid(uniform(torch, gen, -3.0, 3.0, (B, T, H, N), device))  # a in (0, 1)
    x["a"], x["b"] = -kk, kk * gate
    return x


def rwkv6_call(fn, x):
    o, _ = fn(x["r"], x["k"], x["v"], x["w"], x["u"], scale=1.0)
    return o  # [B, T, H, N]


def rwkv7_call(fn, x):
    o, _ = fn(x["r"], x["w"], x["k"], x["v"], x["a"], x["b"], scale=1.0, safe_gate=True,
              lower_bound=-math.exp(-0.5), chunk_size=64)
    return o  # [B, T, H, N]


# ------------------------------------------------------------- float64 recurrences

def rwkv6_reference(torch, r, k, v, w, u):
    """y_t = r_t (S_{t-1} + diag(u) k_t^T v_t), S_t = diag(exp(w_t)) S_{t-1} + k_t^T v_t."""
    B, T, H, N = r.shape
    S = r.new_zeros(B, H, N, N)  # [B, H, keys, values]
    ys = []
    for t in range(T):
        kv = k[:, t, :, :, None] * v[:, t, :, None, :]  # [B, H, N, N]
        ys.append(torch.einsum("bhk,bhkv->bhv", r[:, t], S + u[None, :, :, None] * kv))
        S = S * torch.exp(w[:, t])[..., None] + kv
    return torch.stack(ys, 1)  # [B, T, H, N]


def rwkv7_reference(torch, r, w, k, v, a, b):
    """S_t = diag(exp(w_t)) S_{t-1} + b_t^T (a_t S_{t-1}) + k_t^T v_t, y_t = r_t S_t."""
    B, T, H, N = r.shape
    S = r.new_zeros(B, H, N, N)  # [B, H, keys, values]
    ys = []
    for t in range(T):
        sa = torch.einsum("bhk,bhkv->bhv", a[:, t], S)  # [B, H, N]
        S = (S * torch.exp(w[:, t])[..., None] + b[:, t, :, :, None] * sa[:, :, None, :]
             + k[:, t, :, :, None] * v[:, t, :, None, :])
        ys.append(torch.einsum("bhk,bhkv->bhv", r[:, t], S))
    return torch.stack(ys, 1)  # [B, T, H, N]


# kernel name, fla function name, inputs, call, reference (same argument order as inputs)
CASES = [
    ("fla chunk_rwkv6", "chunk_rwkv6", rwkv6_inputs, rwkv6_call,
     lambda torch, x: rwkv6_reference(torch, x["r"], x["k"], x["v"], x["w"], x["u"])),
    ("fla chunk_rwkv7", "chunk_rwkv7", rwkv7_inputs, rwkv7_call,
     lambda torch, x: rwkv7_reference(torch, x["r"], x["w"], x["k"], x["v"], x["a"], x["b"])),
]


# ------------------------------------------------------------------- fla, triton

def import_fla():
    """fla's two kernels, and fla-core's version. fla/__init__.py imports fla.models and
    fla/ops/__init__.py every op; neither is needed here and fla.models needs a newer
    transformers than a machine may have, so both packages are entered bare (their
    directories on __path__, their __init__ not run) and only the two ops are imported."""
    spec = importlib.util.find_spec("fla")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("no 'fla' package on sys.path (flash-linear-attention is not installed)")
    try:
        version = importlib.metadata.version("fla-core")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    fla = types.ModuleType("fla")
    fla.__path__ = list(spec.submodule_search_locations)
    fla.__spec__ = spec
    fla.__version__ = version  # fla.utils.decorators reads it
    sys.modules["fla"] = fla
    ops = types.ModuleType("fla.ops")
    ops.__path__ = [os.path.join(p, "ops") for p in fla.__path__]
    ops.__spec__ = importlib.util.spec_from_file_location(
        "fla.ops", os.path.join(ops.__path__[0], "__init__.py"),
        submodule_search_locations=ops.__path__)
    sys.modules["fla.ops"] = ops
    from fla.ops.rwkv6 import chunk_rwkv6
    from fla.ops.rwkv7 import chunk_rwkv7
    return version, {"chunk_rwkv6": chunk_rwkv6, "chunk_rwkv7": chunk_rwkv7}


def shorten_autotune_bench(ms):
    """Triton's autotuner measures each configuration with triton.testing.do_bench
    (25 ms warm-up, 100 ms of repetitions); ms = 25 gives 5 + 20."""
    import triton.testing
    full = triton.testing.do_bench
    triton.testing.do_bench = functools.wraps(full)(
        lambda fn, warmup=None, rep=None, **kw: full(fn, warmup=ms / 5, rep=ms * 4 / 5, **kw))


def tune_only_share(shard, count):
    """In a compile worker: every autotuned kernel tries only its share of the
    configurations (and one more, so that it still picks among two), compiling them."""
    from triton.runtime.autotuner import Autotuner
    full = Autotuner.prune_configs

    def share(self, kwargs):
        configs = full(self, kwargs)
        mine = configs[shard::count]
        return mine + [c for c in configs if c not in mine][:max(0, 2 - len(mine))]
    Autotuner.prune_configs = share


# -------------------------------------------------------------------------- timing

def time_ms(torch, fn):
    """(median ms of REPS calls after WARMUP, seconds the warm-up took)."""
    t0 = time.time()
    for _ in range(WARMUP):
        fn()
    torch.cuda.synchronize()
    warm_s = time.time() - t0
    ms = []
    for _ in range(REPS):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        ms.append(start.elapsed_time(stop))
    return sorted(ms)[REPS // 2], warm_s


def make_leaves(torch, make_inputs, shape, dtype, device, seed):
    """Inputs as leaf tensors of dtype that require grad, and a random upstream gradient."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    x = {n: t.to(dtype).requires_grad_() for n, t in make_inputs(torch, gen, shape, device).items()}
    do = uniform(torch, gen, -1.0, 1.0, shape, device).to(dtype)
    return x, do


def rel_l2(torch, got, want):
    diff = (got.double() - want).flatten()
    return float(torch.linalg.norm(diff) / torch.linalg.norm(want.flatten()))


def check(torch, fn, x, call, reference):
    """{tensor: relative L2 error} of fla's output and input gradients against the float64
    recurrence on the CHECK slice (batch 0, the first tokens and heads) of the timed
    inputs. The upstream gradient is random on the slice and zero elsewhere, so the
    gradients on the slice are those of the slice alone (the recurrence is causal and
    batches and heads are independent); the call keeps the timed shape, so it runs the
    binaries just compiled and tuned."""
    _, Tc, Hc, _ = CHECK

    def part(t):  # [B, T, H, N] -> [1, Tc, Hc, N]; [H, N] -> [Hc, N]
        return t[:1, :Tc, :Hc] if t.dim() == 4 else t[:Hc]
    gen = torch.Generator(device=x["r"].device)
    gen.manual_seed(7)
    do = torch.zeros_like(x["r"])
    part(do).uniform_(-1.0, 1.0, generator=gen)
    y = call(fn, x)
    grads = torch.autograd.grad(y, list(x.values()), do)
    x64 = {n: part(t).detach().double().requires_grad_() for n, t in x.items()}
    y64 = reference(torch, x64)
    grads64 = torch.autograd.grad(y64, list(x64.values()), part(do).double())
    err = {"y": rel_l2(torch, part(y), y64)}
    for n, g, g64 in zip(x, grads, grads64):
        err["d" + n] = rel_l2(torch, part(g), g64)
    return err


def run_case(torch, fn, case, dtype_name, shape, device):
    """One row: timings, warm-up seconds and the reference check; what failed, in "error"."""
    name, _, make_inputs, call, reference = case
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    row = {"kernel": name, "dtype": dtype_name}
    try:
        x, do = make_leaves(torch, make_inputs, shape, dtype, device, seed=1)
        leaves = list(x.values())
        row["forward_ms"], warm_f = time_ms(torch, lambda: call(fn, x))
        row["fwd_bwd_ms"], warm_b = time_ms(
            torch, lambda: torch.autograd.grad(call(fn, x), leaves, do))
        row["backward_ms"] = row["fwd_bwd_ms"] - row["forward_ms"]
        row["warmup_s"] = warm_f + warm_b
        err = check(torch, fn, x, call, reference)
    except Exception as e:  # fail soft: the row says what failed
        row["error"] = short(e)
        return row
    worst = max(err, key=err.get)
    row["check"] = err
    row["check_ok"] = err[worst] <= TOLERANCE[dtype_name]
    row["check_text"] = (f"{'ok' if row['check_ok'] else 'MISMATCH'} {err[worst]:.1e} ({worst}; "
                         f"tol {TOLERANCE[dtype_name]:.0e})")
    return row


# --------------------------------------------------------------------------- report

HEADER = ("| kernel | dtype | forward ms | fwd+bwd ms | backward ms | check: worst rel. L2 vs "
          "fp64 | warm-up s |")


def row_text(row):
    def cell(key, fmt):
        return format(row[key], fmt) if key in row else "-"
    return (f"| {row['kernel']} | {row['dtype']} | {cell('forward_ms', '.3f')} | "
            f"{cell('fwd_bwd_ms', '.3f')} | {cell('backward_ms', '.3f')} | "
            f"{row.get('error') or row.get('check_text', '-')} | {cell('warmup_s', '.0f')} |")


class Report:
    """Prints the header and each row as it comes; rewrites $OUT's files after each."""

    def __init__(self, info):
        self.info, self.rows = info, []
        print(f"side_by_side_wkv: {info['title']}")
        for note in info["notes"]:
            print(f"  {note}")
        print(HEADER)
        print("|" + " --- |" * 7, flush=True)
        self.write()

    def add(self, row):
        self.rows.append(row)
        print(row_text(row), flush=True)
        self.write()

    def note(self, text):
        self.info["notes"].append(text)
        print(f"  {text}", flush=True)
        self.write()

    def write(self):
        out = os.environ.get("OUT")
        if not out:
            return
        try:
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, "side_by_side_wkv.json"), "w") as f:
                json.dump({**self.info, "rows": self.rows}, f, indent=1)
            with open(os.path.join(out, "side_by_side_wkv.md"), "w") as f:
                lines = [self.info["title"], ""] + [f"- {n}" for n in self.info["notes"]]
                lines += ["", HEADER, "|" + " --- |" * 7] + [row_text(r) for r in self.rows]
                f.write("\n".join(lines) + "\n")
        except OSError as e:
            print(f"side_by_side_wkv: cannot write to OUT={out}: {short(e)}", flush=True)


# ---------------------------------------------------------------------------- main

def prewarm(args, shape, dtype_name, timeout_s):
    """Runs the compile workers for one dtype; returns a line saying how it went."""
    t0 = time.time()
    warm_shape = (shape[0], min(shape[1], PREWARM_T), shape[2], shape[3])
    # Their tuning results stay off Triton's on-disk autotune cache: one measured at T=512
    # for a share that happens to be all of a kernel's configurations would be taken as
    # the result at the full shape.
    env = dict(os.environ, FLA_CACHE_RESULTS="0")
    workers = []
    for i in range(args.compile_workers):
        log = tempfile.TemporaryFile()
        cmd = [sys.executable, os.path.abspath(__file__), "--compile-shard",
               f"{i}/{args.compile_workers}", "--dtype", dtype_name, "--shape",
               ",".join(map(str, warm_shape)), "--autotune-ms", str(args.autotune_ms)]
        workers.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env), log))
    deadline = t0 + timeout_s
    failed, killed, last_error = 0, 0, ""
    for proc, log in workers:
        try:
            rc = proc.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed += 1
            rc = 0
        if rc != 0:
            failed += 1
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()
            last_error = lines[-1][:200] if lines else f"exit status {rc}"
        log.close()
    text = (f"{dtype_name}: {args.compile_workers} compile workers at T={warm_shape[1]}, "
            f"{time.time() - t0:.0f} s")
    if killed:
        text += f", {killed} stopped at the {timeout_s:.0f} s limit"
    if failed:
        text += f", {failed} failed (last: {last_error})"
    return text


def compile_worker(args):
    """--compile-shard i/n: autotune this share of every kernel's configurations once."""
    import torch
    shard, count = map(int, args.compile_shard.split("/"))
    _, kernels = import_fla()
    shorten_autotune_bench(args.autotune_ms)
    tune_only_share(shard, count)
    shape = tuple(map(int, args.shape.split(",")))
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    failures = 0
    for name, fn_name, make_inputs, call, _ in CASES:
        try:
            x, do = make_leaves(torch, make_inputs, shape, dtype, DEVICE, seed=1)
            torch.autograd.grad(call(kernels[fn_name], x), list(x.values()), do)
            torch.cuda.synchronize()
        except Exception as e:  # a worker only fills the cache
            print(f"{name} {args.dtype}: {short(e)}", file=sys.stderr)
            failures += 1
        torch.cuda.empty_cache()
    return 1 if failures else 0


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true",
                    help="tiny shapes (B=2 T=256 H=4), a self-check")
    ap.add_argument("--budget-s", type=float, default=210.0,
                    help="skip what would end later than this many seconds from the start")
    ap.add_argument("--compile-workers", type=int,
                    default=min(12, max(0, (os.cpu_count() or 1) - 2)),
                    help="parallel compile processes before each dtype (0: none)")
    ap.add_argument("--autotune-ms", type=float, default=25.0,
                    help="milliseconds autotuning measures each Triton configuration for")
    ap.add_argument("--compile-shard", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", help=argparse.SUPPRESS)
    ap.add_argument("--shape", help=argparse.SUPPRESS)
    return ap.parse_args()


def bench(args):
    t_start = time.time()
    shape = SMALL if args.small else FULL
    B, T, H, N = shape
    info = {"title": f"flash-linear-attention at B={B} T={T} C={H * N} H={H} N={N}",
            "shape": {"B": B, "T": T, "H": H, "N": N}, "notes": []}
    dtypes = ["bf16", "fp32"]

    def fail_all(reason):
        report = Report(info)
        for d in dtypes:
            for name, *_ in CASES:
                report.add({"kernel": name, "dtype": d, "error": reason})

    try:
        import torch
    except Exception as e:  # fail soft
        return fail_all(f"torch cannot be imported: {short(e)}")
    if not torch.cuda.is_available():
        return fail_all(f"no CUDA device (torch {torch.__version__}: "
                        "torch.cuda.is_available() is False)")
    info["device"], info["torch"] = torch.cuda.get_device_name(0), torch.__version__
    info["title"] += f" on {info['device']}"
    try:
        fla_version, kernels = import_fla()
        import triton
        shorten_autotune_bench(args.autotune_ms)
    except Exception as e:  # fail soft
        return fail_all(f"fla cannot be imported: {short(e)}")
    info["fla"], info["triton"] = fla_version, triton.__version__
    info["title"] += (f": fla-core {fla_version}, triton {triton.__version__}, "
                      f"torch {torch.__version__}")
    info["notes"].append(f"{WARMUP} warm-up calls (the first compiles and autotunes) + median of "
                         f"{REPS} timed with CUDA events; backward = fwd+bwd - forward")
    report = Report(info)

    # A dtype starts only if it would end within the budget, judged by the first one's
    # time; a case only if the budget is not spent.
    skipped = f"skipped: would end past the {args.budget_s:.0f} s budget"
    group_s = None
    for dtype_name in dtypes:
        t_group = time.time()
        if group_s is not None and t_group - t_start + group_s > args.budget_s:
            for name, *_ in CASES:
                report.add({"kernel": name, "dtype": dtype_name, "error": skipped})
            continue
        if args.compile_workers > 0:
            left = args.budget_s - (t_group - t_start)
            report.note(prewarm(args, shape, dtype_name, timeout_s=max(10.0, left / 2)))
        for case in CASES:
            if time.time() - t_start > args.budget_s:
                report.add({"kernel": case[0], "dtype": dtype_name, "error": skipped})
                continue
            report.add(run_case(torch, kernels[case[1]], case, dtype_name, shape, DEVICE))
            torch.cuda.empty_cache()
        if group_s is None:
            group_s = time.time() - t_group
    print(f"side_by_side_wkv: done in {time.time() - t_start:.0f} s", flush=True)


def main():
    args = parse_args()
    if args.compile_shard:
        return compile_worker(args)
    try:
        bench(args)
    except Exception as e:  # the GPU check must not lose its other results
        print(f"side_by_side_wkv: {short(e)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
