#!/usr/bin/env python3
"""How much a NAB score moves with the files it is measured on (session 24).

Resamples one half's files (eval/nab-split.txt) with replacement, scores each
detector's existing results on every resample with vigil-eval's scorer (its
own threshold sweep per resample, as NAB does for a corpus), and prints the
standard score's median and 90 % interval, and for each published detector
the paired difference to Vigil's on the same resamples. Replicate 0 is the
half itself.

    vigil-eval nab --nab-dir NAB --out OUT --files holdout
    python3 eval/prototype/session24_bootstrap.py holdout 1000 1 OUT ARTime contextOSE numenta

A further argument `before=DIR` (another vigil-eval results root) is scored
as Vigil's own earlier run: the paired difference is then a change's.

NAB_DIR (default ../shared/datasets/nab beside the checkout) holds data,
labels and the published results; VIGIL_EVAL names the binary (default the
one scripts/detection-row.sh builds). Resamples are written under a
temporary folder.
"""
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NAB = os.environ.get("NAB_DIR", os.path.join(REPO, "..", "shared", "datasets", "nab"))
BIN = os.environ.get(
    "VIGIL_EVAL", os.path.expanduser("~/.cache/vigil/detection-target/release/vigil-eval")
)


def half_files(half):
    out = []
    for line in open(os.path.join(REPO, "eval", "nab-split.txt")):
        p = line.split()
        if len(p) == 2 and not line.startswith("#") and half in ("all", p[0]):
            out.append(p[1])
    return out


def score(work, sample, det, root, labels):
    """Standard score of `det`'s results (under `root`) on `sample`."""
    shutil.rmtree(work, ignore_errors=True)
    picked = {}
    for k, f in enumerate(sample):
        cat, name = f.split("/")
        new = f"b{k}_{name}"
        os.makedirs(f"{work}/data/{cat}", exist_ok=True)
        os.makedirs(f"{work}/res/{det}/{cat}", exist_ok=True)
        os.symlink(f"{NAB}/data/{f}", f"{work}/data/{cat}/{new}")
        os.symlink(f"{root}/{cat}/{det}_{name}", f"{work}/res/{det}/{cat}/{det}_{new}")
        picked[f"{cat}/{new}"] = labels[f]
    json.dump(picked, open(f"{work}/labels.json", "w"))
    run = subprocess.run(
        [BIN, "nab", "--score-only", "--results", f"{work}/res/{det}", "--nab-dir", NAB,
         "--data", f"{work}/data", "--labels", f"{work}/labels.json", "--out", f"{work}/s.json"],
        capture_output=True, text=True,
    )
    for line in run.stdout.splitlines():
        p = line.split()
        if len(p) >= 3 and p[0] == det and p[1] == "standard":
            return float(p[2])
    sys.exit(f"scoring {det} failed: {run.stderr}")


def pct(values, p):
    values = sorted(values)
    return values[int(p * (len(values) - 1))]


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    half, reps, seed, vigil_root = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    roots = {"vigil": ("vigil", os.path.join(vigil_root, "vigil"))}
    for arg in sys.argv[5:]:
        if "=" in arg:
            label, root = arg.split("=", 1)
            roots[label] = ("vigil", os.path.join(root, "vigil"))
        else:
            roots[arg] = (arg, os.path.join(NAB, "results", arg))
    files = half_files(half)
    labels = json.load(open(os.path.join(NAB, "labels", "combined_windows.json")))
    rng = random.Random(seed)
    scores = {d: [] for d in roots}
    with tempfile.TemporaryDirectory() as work:
        for i in range(reps + 1):
            sample = [rng.choice(files) for _ in files] if i else list(files)
            for label, (det, root) in roots.items():
                scores[label].append(score(os.path.join(work, "r"), sample, det, root, labels))
    for det, v in scores.items():
        b = v[1:]
        print(f"{det:12s} {half} {v[0]:.2f}  resampled median {statistics.median(b):.2f}"
              f"  90 % [{pct(b, .05):.2f}, {pct(b, .95):.2f}]  sd {statistics.pstdev(b):.2f}")
    for det in list(roots)[1:]:
        diff = [a - b for a, b in zip(scores["vigil"][1:], scores[det][1:])]
        print(f"vigil - {det}: {scores['vigil'][0] - scores[det][0]:.2f}"
              f"  90 % [{pct(diff, .05):.2f}, {pct(diff, .95):.2f}]")


if __name__ == "__main__":
    main()
