#!/usr/bin/env python3
"""Plots the loss curves of one or more `rwkv train` runs to a PNG.

usage: scripts/plot_metrics.py RUN_DIR [RUN_DIR ...] [-o loss.png]

Reads RUN_DIR/metrics.jsonl (docs/training.md): training loss per step (thin line)
and validation loss at each evaluation (markers), one colour per run, and the
validation loss of each language in a second panel when the runs report it. A step
logged twice (a resumed run repeats the steps after its last checkpoint) counts once,
with its last record. Needs matplotlib (Debian: apt-get install python3-matplotlib).
"""
import argparse
import json
import os
import sys


def read_metrics(run_dir):
    """Returns ({step: train record}, {step: eval record}) of a run, last record wins."""
    path = os.path.join(run_dir, "metrics.jsonl")
    train, evals = {}, {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: not JSON ({e})")
            (train if rec.get("kind") == "train" else evals)[rec["step"]] = rec
    return train, evals


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run directories (hold metrics.jsonl)")
    ap.add_argument("-o", "--output", default="loss.png", help="PNG to write (default loss.png)")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    runs = [(r, *read_metrics(r)) for r in args.runs]
    by_lang = any(e.get("loss_by_lang") for _, _, ev in runs for e in ev.values())
    fig, axes = plt.subplots(1, 2 if by_lang else 1, figsize=(13 if by_lang else 7, 4.5),
                             squeeze=False)
    ax = axes[0][0]
    for i, (name, train, evals) in enumerate(runs):
        color = f"C{i}"
        label = os.path.basename(os.path.normpath(name))
        steps = sorted(s for s in train if train[s].get("loss") is not None)
        ax.plot(steps, [train[s]["loss"] for s in steps], color=color, lw=0.8, alpha=0.7,
                label=f"{label} train")
        es = sorted(evals)
        if es:
            ax.plot(es, [evals[s]["loss"] for s in es], "o-", color=color, label=f"{label} val")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title("training and validation loss")
    ax.grid(alpha=0.3)
    ax.legend()
    if by_lang:
        ax = axes[0][1]
        styles = ["-", "--", ":", "-."]
        for i, (name, _, evals) in enumerate(runs):
            es = sorted(evals)
            langs = sorted({l for s in es for l in evals[s].get("loss_by_lang", {})})
            for j, lang in enumerate(langs):
                pts = [(s, evals[s]["loss_by_lang"][lang]) for s in es
                       if lang in evals[s].get("loss_by_lang", {})]
                label = lang if len(runs) == 1 else f"{os.path.basename(name)} {lang}"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3,
                        ls=styles[i % len(styles)], color=f"C{j}", label=label)
        ax.set_xlabel("step")
        ax.set_ylabel("validation loss")
        ax.set_title("validation loss per language")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
