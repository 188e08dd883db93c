#!/usr/bin/env python3
"""bench/cuda/ncu_kernel_times.py on a CSV laid out as Nsight Compute writes it (the
benchmark's own line first; quoted fields; the anonymous namespace's parentheses and
template arguments in the kernel names; thousands separators; a metric in other units;
a row of another metric): one line per kernel and grid in first-launch order with the
launch count and the median in microseconds; a file without the CSV header is exit 1."""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SCRIPT = os.path.join(ROOT, "bench", "cuda", "ncu_kernel_times.py")

HEADER = ('"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream",'
          '"Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit",'
          '"Metric Value"')


def row(i, kernel, grid, name, unit, value):
    return (f'"{i}","1234","bench_cuda_wkv","127.0.0.1","{kernel}","1","7","(256, 1, 1)",'
            f'"{grid}","0","9.0","Command line profiler metrics","{name}","{unit}","{value}"')


SCAN = "void rwkv::cuda::(anonymous namespace)::wkv7_chunk_scan_kernel<64, 8>(rwkv::cuda::ScanArgs)"
GRAD = "void rwkv::cuda::(anonymous namespace)::wkv7_chunk_grad_kernel<64>(rwkv::cuda::BackArgs)"
LINES = [
    "bench_cuda_wkv on NVIDIA H200: one call of each kernel, untimed (RWKV_BENCH_ONCE=1)",
    HEADER,
    row(0, GRAD, "(8192, 1, 1)", "gpu__time_duration.sum", "nsecond", "1,500,000"),
    row(1, SCAN, "(256, 1, 1)", "gpu__time_duration.sum", "nsecond", "300,000"),
    row(2, GRAD, "(8192, 1, 1)", "gpu__time_duration.sum", "usecond", "1,700"),
    row(3, GRAD, "(8192, 1, 1)", "gpu__time_duration.sum", "msecond", "1.6"),
    row(4, GRAD, "(8192, 1, 1)", "sm__cycles_elapsed.avg", "cycle", "999"),
    row(5, GRAD, "(131072, 1, 1)", "gpu__time_duration.sum", "nsecond", "20,000,000"),
]


def run(text):
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write(text)
    try:
        return subprocess.run([sys.executable, SCRIPT, f.name], capture_output=True, text=True)
    finally:
        os.unlink(f.name)


def main():
    r = run("\n".join(LINES) + "\n")
    lines = r.stdout.splitlines()
    want = [
        ("wkv7_chunk_grad_kernel<64>", "8192,1,1", "3", "1600.0"),
        ("wkv7_chunk_scan_kernel<64, 8>", "256,1,1", "1", "300.0"),
        ("wkv7_chunk_grad_kernel<64>", "131072,1,1", "1", "20000.0"),
    ]
    ok = r.returncode == 0 and len(lines) == 1 + len(want)
    for line, (name, grid, count, median) in zip(lines[1:], want):
        ok = ok and line.startswith(name + " ") and line.split()[-3:] == [grid, count, median]
    if not ok:
        print(f"unexpected output (rc {r.returncode}):\n{r.stdout}{r.stderr}")
        return 1
    r = run("\n".join(LINES[:1]) + "\n")
    if r.returncode != 1 or "no CSV header" not in r.stdout:
        print(f"a file without the header: rc {r.returncode}, output {r.stdout!r}")
        return 1
    print("ncu_kernel_times: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
