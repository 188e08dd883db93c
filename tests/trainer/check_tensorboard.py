"""Reads an event file written by rwkv's TensorBoardWriter with TensorBoard's own
loader (tensorboard.backend.event_processing), so the format is checked by the
program users will open it with.

usage: check_tensorboard.py TEST_BINARY WORK_DIR
Installs the `tensorboard` package into WORK_DIR/pydeps when it is not importable
and PyPI is reachable; exits 77 (ctest: skipped) when neither works.
"""
import glob
import os
import subprocess
import sys


def import_tensorboard(work):
    try:
        from tensorboard.backend.event_processing import event_file_loader
        return event_file_loader
    except ImportError:
        pass
    deps = os.path.join(work, "pydeps")
    if not os.path.isdir(os.path.join(deps, "tensorboard")):
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                            "--target", deps, "tensorboard"], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            print("SKIP: tensorboard is not installed and pip could not install it:\n" + r.stderr[-2000:])
            sys.exit(77)
    sys.path.insert(0, deps)
    from tensorboard.backend.event_processing import event_file_loader
    return event_file_loader


def main():
    binary, work = sys.argv[1], sys.argv[2]
    loader_mod = import_tensorboard(work)
    out = os.path.join(work, "tb_events")
    for f in glob.glob(os.path.join(out, "events.out.tfevents.*")):
        os.remove(f)
    env = dict(os.environ, RWKV_TB_OUT=out)
    subprocess.run([binary, "--gtest_filter=TensorBoard.WriteForPythonCheck"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    files = glob.glob(os.path.join(out, "events.out.tfevents.*"))
    assert len(files) == 1, files
    got = {}
    n_events = 0
    for ev in loader_mod.EventFileLoader(files[0]).Load():
        n_events += 1
        for v in ev.summary.value:
            # TensorBoard's loader migrates simple_value into a scalar tensor.
            value = v.simple_value if v.HasField("simple_value") else float(v.tensor.float_val[0])
            got[(v.tag, ev.step)] = (value, ev.wall_time)
    assert n_events == 11, n_events  # file_version header + 10 scalars
    for step in range(1, 6):
        loss, wall = got[("train/loss", step)]
        assert abs(loss - 10.0 / step) < 1e-6 and wall == 1700000000.0 + step, (step, loss, wall)
        lr, _ = got[("train/lr", step)]
        assert abs(lr - 1e-3 * step) < 1e-9, (step, lr)
    print("tensorboard read %d events from %s: OK" % (n_events, files[0]))


if __name__ == "__main__":
    main()
