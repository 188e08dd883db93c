"""Compares two folders of rwkv{4,5,6,7}_tiny.h5 fixtures.

  python3 compare_fixtures.py NEW_DIR COMMITTED_DIR

Equal means: the same root attributes with the same values, the same datasets with the
same shapes and dtypes, integer datasets identical, and for every float dataset
max |new - committed| <= 1e-12 * max |committed| (relative to the dataset's largest
magnitude, so near-zero elements do not dominate). Exit 0 if all files are equal,
1 with one line per difference otherwise.
"""
import os
import sys

import h5py
import numpy as np

REL_TOL = 1e-12
FILES = [f"rwkv{v}_tiny.h5" for v in (4, 5, 6, 7)]


def datasets(f):
    """Path -> numpy array of every dataset in the file."""
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[()]
    f.visititems(visit)
    return out


def compare_file(new_path, old_path):
    problems = []
    with h5py.File(new_path, "r") as new, h5py.File(old_path, "r") as old:
        new_attrs, old_attrs = dict(new.attrs), dict(old.attrs)
        if new_attrs.keys() != old_attrs.keys():
            problems.append(f"root attributes differ: {sorted(new_attrs)} vs {sorted(old_attrs)}")
        for key in sorted(new_attrs.keys() & old_attrs.keys()):
            if new_attrs[key] != old_attrs[key]:
                problems.append(f"attribute {key}: {new_attrs[key]} vs {old_attrs[key]}")
        new_data, old_data = datasets(new), datasets(old)
        for name in sorted(new_data.keys() ^ old_data.keys()):
            where = "regenerated" if name in new_data else "committed"
            problems.append(f"dataset {name} only in the {where} file")
        for name in sorted(new_data.keys() & old_data.keys()):
            a, b = np.asarray(new_data[name]), np.asarray(old_data[name])
            if a.shape != b.shape or a.dtype != b.dtype:
                problems.append(f"dataset {name}: shape/dtype {a.shape} {a.dtype} vs {b.shape} {b.dtype}")
            elif np.issubdtype(a.dtype, np.integer):
                if not np.array_equal(a, b):
                    problems.append(f"dataset {name}: integer values differ")
            else:
                diff = np.max(np.abs(a - b), initial=0.0)
                scale = np.max(np.abs(b), initial=0.0)
                if not diff <= REL_TOL * scale:
                    problems.append(f"dataset {name}: max abs diff {diff:.3e}, "
                                    f"relative to max |committed| {diff / scale if scale else np.inf:.3e}")
    return [f"{os.path.basename(old_path)}: {p}" for p in problems]


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} NEW_DIR COMMITTED_DIR")
    new_dir, old_dir = sys.argv[1:]
    problems = []
    for name in FILES:
        new_path, old_path = os.path.join(new_dir, name), os.path.join(old_dir, name)
        missing = [p for p in (new_path, old_path) if not os.path.isfile(p)]
        if missing:
            problems += [f"{p}: missing" for p in missing]
            continue
        problems += compare_file(new_path, old_path)
    if problems:
        print("\n".join(problems))
        print(f"FAIL: regenerated fixtures differ from the committed ones in {old_dir} "
              f"(tolerance {REL_TOL:g} relative); if the change is intended, regenerate them "
              f"with /usr/bin/python3 tests/reference/make_fixtures.py")
        sys.exit(1)
    print(f"OK: {len(FILES)} fixtures equal to the committed ones within {REL_TOL:g} relative")


if __name__ == "__main__":
    main()
