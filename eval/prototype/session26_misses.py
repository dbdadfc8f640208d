#!/usr/bin/env python3
"""Session 26 diagnostic: why the product opened no alarm in an injected
window (eval/NAB.md, session 26).

    git apply eval/prototype/session26_trace.patch   # VIGIL_TRACE=A:B prints rows A..B
    cargo build --release -p vigil-eval
    vigil-eval nab --nab-dir ../shared/datasets/nab --out OUT --inject 22
    VIGIL_EVAL=target/release/vigil-eval python3 eval/prototype/session26_misses.py OUT

For every injected window without an opening it runs the product on that
one copy (a one-file corpus under a temporary folder) and prints, per kind,
whether the release alerted (judged score >= 0.5) within 100 rows of the
injection while untrusted, the novelty did, either came near (judged >= 0.4
or novelty >= 0.25), or neither; then the release's alert runs (alerts with
gaps of at most 4 rows) before the injection against those after it.
"""
import collections
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

OUT = sys.argv[1]
EVAL = os.environ.get("VIGIL_EVAL", "target/release/vigil-eval")


def one_file_corpus(root, f):
    src = os.path.join(OUT, "corpus")
    os.makedirs(os.path.join(root, "data", os.path.dirname(f)))
    os.makedirs(os.path.join(root, "labels"))
    shutil.copy(os.path.join(src, "data", f), os.path.join(root, "data", f))
    shutil.copytree(os.path.join(src, "config"), os.path.join(root, "config"))
    labels = json.load(open(os.path.join(src, "labels", "combined_windows.json")))
    json.dump({f: labels[f]}, open(os.path.join(root, "labels", "combined_windows.json"), "w"))


def trace(f, a, b):
    with tempfile.TemporaryDirectory() as root:
        one_file_corpus(root, f)
        err = subprocess.run(
            [EVAL, "nab", "--nab-dir", root, "--out", os.path.join(root, "out"), "--files", "all"],
            env={"VIGIL_TRACE": f"{a}:{b}"}, capture_output=True, text=True, check=True,
        ).stderr
    return [(int(x[1]), float(x[2]), float(x[3])) for x in (l.split() for l in err.splitlines() if l.startswith("T "))]


def runs(rows, gap=4):
    out, start, last = [], None, None
    for t, judged, _ in rows:
        if judged >= 0.5:
            if start is not None and t - last <= gap:
                last = t
            else:
                if start is not None:
                    out.append((start, last))
                start = last = t
    if start is not None:
        out.append((start, last))
    return out


why = collections.defaultdict(collections.Counter)
for i in json.load(open(os.path.join(OUT, "corpus", "injected.json"))):
    cat, name = i["file"].split("/")
    rows = list(csv.reader(open(os.path.join(OUT, "vigil", cat, "vigil_" + name))))[1:]
    a, b = i["window"]
    if max(float(r[2]) for r in rows[a : b + 1]) > 0:
        continue
    t = trace(i["file"], 0, len(rows))
    near = [x for x in t if i["row"] <= x[0] <= i["row"] + 100]
    j, n = max(x[1] for x in near), max(x[2] for x in near)
    w = ("release alert, untrusted" if j >= 0.5 else "novelty alert, untrusted" if n >= 0.5
         else "near" if j >= 0.4 or n >= 0.25 else "neither")
    why[i["kind"]][w] += 1
    r = runs(t)
    before = [e - s + 1 for s, e in r if e < i["row"]]
    after = [e - s + 1 for s, e in r if i["row"] <= s <= i["row"] + 100]
    print(f"{i['kind']:6} {name[:44]:44} {w:26} runs before {len(before)}, longest {max(before, default=0)}; after {after[:5]}")
for kind, c in why.items():
    print(kind, dict(c))
