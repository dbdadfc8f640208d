"""Recall evidence from the tuning half alone (session 22).

The tuning half is saturated in recall (the product finds 55 of its 57
windows), so choosing settings on it rewards only fewer alarms. This
script builds a second corpus from the tuning half's files with known
anomalies injected after each file's probationary rows, in NAB's own
layout (data/, labels/combined_windows.json, config/profiles.json), so
`vigil-eval nab --nab-dir OUT --files all` scores the product on it as
on NAB. Each tuning file gives one copy per anomaly kind; each copy keeps
the file's own windows and gains one window around the injected anomaly,
placed where it overlaps none of them. No held-out file is read.

    python3 session22_inject.py OUT [SEED]

Kinds, on the file's robust scale of values (s: 1.4826 x the median
absolute deviation of the probationary values) and of steps (d: the
same of their first differences), over a stretch of L rows (a quarter of
the window NAB would give the file's anomalies, at least 4):

  spike   one row moved by max(3 s, 6 d), away from the median
  shift   the stretch moved by 1.5 s (up if the file's value at its
          start is below the median, else down)
  stuck   the stretch holds its first value (a sensor that stopped)
  noise   the stretch gains Gaussian noise of max(4 d, s)
  ramp    the stretch gains a linear ramp from 0 to 2 s, then holds
          until the stretch ends, then drops back
"""
import json, os, sys, shutil, csv, random, math
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nab_score import D, WIN, split, prob_len

KINDS = ['spike', 'shift', 'stuck', 'noise', 'ramp']


def robust(x):
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med)))
    return med, 1.4826 * mad


def read(f):
    with open(os.path.join(D, 'data', f)) as fh:
        r = csv.reader(fh)
        head = next(r)
        rows = [row for row in r]
    return head, rows


def inject(kind, v, t0, L, med, s, d, rng):
    out = v.copy()
    if kind == 'spike':
        m = max(3 * s, 6 * d)
        out[t0] += m if v[t0] >= med else -m
        # NAB values are often counts: keep them non-negative
    elif kind == 'shift':
        m = 1.5 * s if v[t0] < med else -1.5 * s
        out[t0:t0 + L] += m
    elif kind == 'stuck':
        out[t0:t0 + L] = v[t0]
    elif kind == 'noise':
        out[t0:t0 + L] += rng.normal(0, max(4 * d, s), L)
    elif kind == 'ramp':
        ramp = np.minimum(np.arange(L) / max(L // 2, 1), 1.0) * 2 * s
        out[t0:t0 + L] += ramp if v[t0] < med else -ramp
    if v.min() >= 0:
        out = np.maximum(out, 0)
    return out


def main(outdir, seed=22):
    rng = np.random.default_rng(seed)
    tune, _ = split()
    if os.path.exists(outdir):
        shutil.rmtree(outdir)
    os.makedirs(os.path.join(outdir, 'labels'))
    shutil.copytree(os.path.join(D, 'config'), os.path.join(outdir, 'config'))
    labels = {}
    placed = []
    for f in tune:
        head, rows = read(f)
        ts = [r[0] for r in rows]
        v = np.array([float(r[1]) for r in rows])
        n = len(v)
        p = prob_len(n)
        med, s = robust(v[:p])
        _, d = robust(np.diff(v[:p]))
        if s == 0:
            s = float(np.std(v[:p])) or 1.0
        if d == 0:
            d = float(np.std(np.diff(v[:p]))) or s
        wins = WIN[f]
        width = max(int(0.1 * n / (len(wins) + 1)), 8)
        L = max(width // 4, 4)
        # rows covered by the file's own windows, widened by one window
        idx = {t: i for i, t in enumerate(ts)}
        busy = np.zeros(n, bool)
        for a, b in wins:
            ia = idx.get(a) if a in idx else next(i for i, t in enumerate(ts) if t >= a[:19])
            ib = idx.get(b) if b in idx else max(i for i, t in enumerate(ts) if t <= b[:19])
            busy[max(0, ia - width):min(n, ib + width + 1)] = True
        for kind in KINDS:
            # the anomaly starts at the window's middle, as NAB centres its
            # windows on the labelled point
            lo, hi = p + width, n - width - L
            cand = [t for t in range(lo, hi) if not busy[t - width // 2:t + width // 2 + L].any()]
            if not cand:
                print('no room', f, kind)
                continue
            t0 = int(rng.choice(cand))
            nv = inject(kind, v, t0, L, med, s, d, rng)
            cat, name = f.split('/')
            nf = f'{cat}/{name[:-4]}__{kind}.csv'
            os.makedirs(os.path.join(outdir, 'data', cat), exist_ok=True)
            with open(os.path.join(outdir, 'data', nf), 'w') as fh:
                w = csv.writer(fh)
                w.writerow(head)
                for t, x in zip(ts, nv):
                    w.writerow([t, repr(float(x))])
            a, b = t0 - width // 2, t0 - width // 2 + width - 1
            labels[nf] = sorted(wins + [[ts[a] + '.000000', ts[b] + '.000000']])
            placed.append((nf, kind, t0, a, b))
    with open(os.path.join(outdir, 'labels', 'combined_windows.json'), 'w') as fh:
        json.dump(labels, fh, indent=1, sort_keys=True)
    with open(os.path.join(outdir, 'injected.json'), 'w') as fh:
        json.dump(placed, fh)
    print(f'{len(placed)} files, {sum(len(x) for x in labels.values())} windows, in {outdir}')


if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 22)
