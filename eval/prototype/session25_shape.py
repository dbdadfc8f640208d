#!/usr/bin/env python3
"""Session 25: would a shape detector add recall to the product? (a feasibility check)

A nearest-neighbour shape detector, in the spirit of KNN-CAD and ARTime
(windows of recent values compared with windows seen before), run beside
the product's NAB results and merged into them: a shape alert at a row
where the product opened nothing in the last REFRACT rows becomes a
detection with its own score. The merged results are scored with
vigil-eval's scorer, so the figures compare directly with the product's.

Per series (n rows, probation p = min(15 % of n, 750)):
- scale s: the median absolute step over the probationary rows (the
  typical move from one row to the next), floored;
- the window at row t: the last W values, minus their mean (`shape`) or
  minus the probationary median (`level`), divided by s;
- history: windows ending every STRIDE rows, at least W rows before t,
  the last H of them;
- nonconformity a_t: the distance (root mean square) to the nearest
  window in the history;
- an alert when a_t exceeds every nonconformity of the last M rows
  (under exchangeability that happens with probability 1/(M+1)) by the
  factor MARGIN, after the probationary rows, with no alert in the
  last REFRACT rows. Its score: a_t / (a_t + max of the last M).

    python3 session25_shape.py PRODUCT_OUT CORPUS_DIR MERGED_OUT [key=value ...]

PRODUCT_OUT holds vigil/<category>/vigil_<file>.csv (a vigil-eval run);
CORPUS_DIR holds data/ (NAB's, or an --inject run's corpus). Only the
files PRODUCT_OUT holds are run. Prints nothing; score MERGED_OUT with
`vigil-eval nab --score-only --results MERGED_OUT --data CORPUS_DIR/data
--labels LABELS`.
"""
import csv
import glob
import os
import sys

import numpy as np

CFG = dict(W=12, STRIDE=4, H=256, M=1000, MARGIN=1.0, REFRACT=100, mode="shape", score=1.0)


def shape_alerts(x, cfg):
    n = len(x)
    p = min(int(0.15 * n), 750)
    w, stride, h, m = cfg["W"], cfg["STRIDE"], cfg["H"], cfg["M"]
    steps = np.abs(np.diff(x[:p])) if p > 1 else np.array([1.0])
    s = float(np.median(steps))
    if s <= 0:
        s = float(np.mean(steps)) or 1.0
    med = float(np.median(x[:p])) if p > 0 else 0.0
    hist = []
    recent = []  # nonconformities of the last M rows
    out = np.zeros(n)
    last_alert = -10**9
    for t in range(w - 1, n):
        win = x[t - w + 1 : t + 1]
        v = (win - (win.mean() if cfg["mode"] == "shape" else med)) / s
        if hist:
            hm = np.asarray(hist)
            a = float(np.sqrt(np.min(np.mean((hm - v) ** 2, axis=1))))
            top = max(recent) if len(recent) >= min(m, p) else None
            if (
                top is not None
                and t >= p
                and a > top * cfg["MARGIN"]
                and t - last_alert > cfg["REFRACT"]
                and a > 0
            ):
                out[t] = a / (a + top) if top > 0 else 1.0
                last_alert = t
            recent.append(a)
            if len(recent) > m:
                recent.pop(0)
        # The window ending W rows ago joins the history (no overlap with now).
        u = t - w
        if u >= w - 1 and (u - (w - 1)) % stride == 0:
            old = x[u - w + 1 : u + 1]
            hist.append((old - (old.mean() if cfg["mode"] == "shape" else med)) / s)
            if len(hist) > h:
                hist.pop(0)
    return out


def parse(kvs):
    cfg = dict(CFG)
    for kv in kvs:
        k, v = kv.split("=", 1)
        cfg[k] = type(CFG[k])(v) if k in CFG else v
    return cfg


def main():
    if sys.argv[1] == "row":
        return row(sys.argv[2], parse(sys.argv[3:]))
    prod, corpus, merged = sys.argv[1:4]
    merge(prod, corpus, merged, parse(sys.argv[4:]))


def merge(prod, corpus, merged, cfg):
    stats = dict(shape=0, kept=0)
    for path in sorted(glob.glob(f"{prod}/vigil/*/vigil_*.csv")):
        cat = os.path.basename(os.path.dirname(path))
        name = os.path.basename(path)[len("vigil_") :]
        rows = list(csv.reader(open(path)))
        head, body = rows[0], rows[1:]
        x = []
        for r in csv.reader(open(f"{corpus}/data/{cat}/{name}")):
            if r[0] == "timestamp":
                continue
            x.append(float(r[1]))
        x = np.asarray(x)
        alerts = shape_alerts(x, cfg)
        scores = [float(r[2]) for r in body]
        last_prod = -10**9
        for t in range(len(body)):
            if scores[t] > 0:
                last_prod = t
            elif alerts[t] > 0:
                stats["shape"] += 1
                if t - last_prod > cfg["REFRACT"]:
                    scores[t] = cfg["score"] * alerts[t]
                    stats["kept"] += 1
        os.makedirs(f"{merged}/vigil/{cat}", exist_ok=True)
        with open(f"{merged}/vigil/{cat}/vigil_{name}", "w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(head)
            for r, sc in zip(body, scores):
                wr.writerow([r[0], r[1], f"{sc:.6f}" if sc > 0 else "0", r[3]])
    return stats


def row(base, cfg):
    """One row of the session's table: BASE holds vigil-eval runs `tune`,
    `inj22` and `inj23` (each an --out folder); prints NAB tune standard,
    windows, false openings, and each injected corpus's standard and
    injected windows found at the standard threshold."""
    import json
    import subprocess
    import tempfile

    nab = os.environ.get("NAB_DIR", "/work/shared/datasets/nab")
    binary = os.environ.get("VIGIL_EVAL", os.path.expanduser("~/.cache/vigil/target/release/vigil-eval"))
    work = tempfile.mkdtemp()
    cells = []
    for run in ("tune", "inj22", "inj23"):
        corpus = nab if run == "tune" else f"{base}/{run}/corpus"
        merged = f"{work}/{run}"
        st = merge(f"{base}/{run}", corpus, merged, cfg)
        labels = json.load(open(f"{corpus}/labels/combined_windows.json"))
        have = {
            f"{os.path.basename(os.path.dirname(q))}/{os.path.basename(q)[6:]}"
            for q in glob.glob(f"{merged}/vigil/*/vigil_*.csv")
        }
        json.dump({k: v for k, v in labels.items() if k in have}, open(f"{work}/{run}.json", "w"))
        subprocess.run(
            [binary, "nab", "--score-only", "--results", merged, "--data", f"{corpus}/data",
             "--labels", f"{work}/{run}.json", "--profiles", f"{corpus}/config/profiles.json",
             "--out", f"{work}/{run}-scores.json"],
            check=True, stdout=subprocess.DEVNULL,
        )
        sc = json.load(open(f"{work}/{run}-scores.json"))["vigil"]
        std = sc["standard"]
        if run == "tune":
            false = 0
            for q in glob.glob(f"{merged}/vigil/*/*.csv"):
                for r in csv.DictReader(open(q)):
                    if float(r["anomaly_score"]) > 0 and r["label"] == "0":
                        false += 1
            cells.append(
                f"{std['score']:.2f} / {sc['reward_low_FP_rate']['score']:.2f} / "
                f"{sc['reward_low_FN_rate']['score']:.2f}, {std['windows_detected']}/{std['windows']}, "
                f"false {false}, shape +{st['kept']}"
            )
        else:
            thr = std["threshold"]
            found = 0
            for inj in json.load(open(f"{corpus}/injected.json")):
                cat, name = inj["file"].split("/")
                q = f"{merged}/vigil/{cat}/vigil_{name}"
                lo, hi = inj["window"]
                vals = [float(r["anomaly_score"]) for r in csv.DictReader(open(q))]
                if any(v >= thr for v in vals[lo : hi + 1]):
                    found += 1
            cells.append(f"{std['score']:.2f}, {found}")
    print(" | ".join([" ".join(f"{k}={v}" for k, v in cfg.items())] + cells))


if __name__ == "__main__":
    main()
