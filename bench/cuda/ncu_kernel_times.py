#!/usr/bin/env python3
"""Per-kernel GPU times from Nsight Compute's CSV, for scripts/gpu_check.sh.

The check runs bench_cuda_wkv once more with RWKV_BENCH_ONCE=1 (every kernel called
once) under

  ncu --clock-control none -k regex:chunk --metrics gpu__time_duration.sum --csv

which writes one CSV row per profiled launch ("Kernel Name", "Grid Size", "Metric Name",
"Metric Unit", "Metric Value", ...; the unit scaled per value: nsecond, usecond, ...,
thousands separated by commas). This prints, per kernel and grid size in the order
of their first launch, the number of launches and the median duration: the time of each
stage of the chunked WKV kernels (prep, scan, gradients), which the benchmark's CUDA
events only see summed over a whole forward or backward.

Usage: ncu_kernel_times.py FILE (lines before the CSV header, such as the benchmark's
own output, are skipped). Exits 1 when FILE holds no CSV header or no duration row.
"""
import csv
import re
import statistics
import sys

# Nanoseconds per unit of gpu__time_duration as ncu may print it.
UNITS = {"nsecond": 1.0, "usecond": 1e3, "msecond": 1e6, "second": 1e9}


def short_name(kernel):
    """'void ns::(anonymous namespace)::wkv7_chunk_scan_kernel<64, 8>(Args)' ->
    'wkv7_chunk_scan_kernel<64, 8>' (the project's kernels are named *_kernel)."""
    m = re.search(r"(\w+_kernel)\s*(<[^()]*>)?", kernel)
    return m.group(1) + (m.group(2) or "") if m else kernel


def rows(path):
    with open(path, newline="", errors="replace") as f:
        lines = f.read().splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    if start is None:
        return None
    return list(csv.DictReader(lines[start:]))


def main(argv):
    if len(argv) != 2:
        print("usage: ncu_kernel_times.py FILE", file=sys.stderr)
        return 2
    table = rows(argv[1])
    if table is None:
        print(f"ncu_kernel_times: no CSV header in {argv[1]}")
        return 1
    times = {}  # (name, grid) -> [ns], in first-launch order (dicts keep insertion order)
    for r in table:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        unit = UNITS.get(r.get("Metric Unit", "nsecond"))
        value = r.get("Metric Value", "").replace(",", "")
        if unit is None or not value:
            continue
        grid = re.sub(r"[()\s]", "", r.get("Grid Size", "?"))
        key = (short_name(r.get("Kernel Name", "?")), grid)
        times.setdefault(key, []).append(float(value) * unit)
    if not times:
        print(f"ncu_kernel_times: no gpu__time_duration.sum rows in {argv[1]}")
        return 1
    print(f"{'kernel':<52} {'grid':>14} {'launches':>8} {'median us':>10}")
    for (name, grid), ns in times.items():
        print(f"{name:<52} {grid:>14} {len(ns):>8} {statistics.median(ns) / 1e3:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
