"""Session 20: where the product's NAB standard score goes, opening by
opening, and what re-ranking the openings could win (eval/NAB.md,
"Session 20"). Read-only analyses of one run; nothing here is a detector.

Usage (tune half; needs the DIAG lines of session20_variants.patch):
  git apply eval/prototype/session20_variants.patch
  cargo build --release -p vigil-eval
  DIAG=1 $B nab --nab-dir $NAB --out OUT --files tune 2>&1 | grep DIAG > diag.txt
  python3 session20_openings.py tune OUT diag.txt

A DIAG line is one alarm opening after the probationary rows:
  DIAG <rows in file> <row> <judged> <novelty> <raw> <threshold's raw>
       <release trusted 0/1> <novelty trusted 0/1>
(trust as the combination judged it before the record).
"""
import csv
import sys
from collections import Counter

import numpy as np

import nab_score as ns


def results(out_dir, files):
    out = {}
    for f in files:
        c, n = f.split('/')
        with open(f'{out_dir}/vigil/{c}/vigil_{n}') as fh:
            out[f] = np.array([float(r['anomaly_score']) for r in csv.DictReader(fh)])
    return out


def diag(path):
    d = {}
    for line in open(path):
        x = line.split()
        n, t = int(x[1]), int(x[2])
        d[(n, t)] = dict(j=float(x[3]), nv=float(x[4]), raw=float(x[5]),
                         rthr=float(x[6]), rt=int(x[7]), nt=int(x[8]))
    return d


def profile_line(res):
    r = ns.score_all(res)
    return ' / '.join(f'{v[0]:.2f}' for v in r.values()) + f", windows {r['standard'][2]}"


def main():
    tune, hold = ns.split()
    files = {'tune': tune, 'holdout': hold}[sys.argv[1]]
    R = results(sys.argv[2], files)
    D = diag(sys.argv[3])
    thr = ns.score_all(R)['standard'][1]
    print('as run:', profile_line(R), f'(standard threshold {thr:.4f})')

    # 1. Each opening at the standard threshold by who alerted and who was
    # trusted; tp1 = the first detection of its window (the one NAB counts).
    classes = Counter()
    for f in files:
        s = R[f]
        _, _, wins = ns.load(f)
        seen = set()
        for t in np.nonzero(s >= thr)[0]:
            w = [k for k, (a, b) in enumerate(wins) if a <= t <= b]
            o = D[(len(s), t)]
            kind = 'fp' if not w else ('tp1' if w[0] not in seen else 'tp+')
            seen.update(w)
            key = ('release ' + ('trusted' if o['rt'] else 'untrusted'),
                   'novelty ' + ('trusted' if o['nt'] else 'untrusted'),
                   ('release' if o['j'] >= 0.5 else '') + ('+' if o['j'] >= 0.5 and o['nv'] >= 0.5 else '')
                   + ('novelty' if o['nv'] >= 0.5 else ''))
            classes[(key, kind)] += 1
    keys = sorted({k for k, _ in classes})
    print('\nopenings at the standard threshold: class | fp | first tp | later tp')
    for k in keys:
        print(' | '.join(k), '|', classes[(k, 'fp')], '|', classes[(k, 'tp1')], '|', classes[(k, 'tp+')])

    # 2. Dropping a class of openings outright.
    def dropped(pred):
        out = {}
        for f in files:
            s = R[f].copy()
            for t in np.nonzero(s)[0]:
                if pred(D[(len(s), t)]):
                    s[t] = 0.0
            out[f] = s
        return profile_line(out)
    print('\ndrop release-alone openings:', dropped(lambda o: o['nv'] < 0.5))
    print('drop novelty-alone openings:', dropped(lambda o: o['j'] < 0.5))
    print('drop openings with both untrusted:', dropped(lambda o: not o['rt'] and not o['nt']))

    # 3. Re-ranking: the opening's score divided by 1 + c x (openings of the
    # same file in the previous W rows).
    print('\nscore / (1 + c x openings in the previous W rows): W c standard / low FP / low FN')
    for w in (500, 1000, 2000, 4000):
        for c in (0.02, 0.05, 0.1, 0.2):
            out = {}
            for f, s in R.items():
                idx = np.nonzero(s)[0]
                a = s.copy()
                for i in idx:
                    a[i] = s[i] / (1 + c * np.sum((idx < i) & (idx >= i - w)))
                out[f] = a
            print(w, c, profile_line(out))

    # 3b. Scaling: the opening's score x (1/2 + 1/2 min(1, raw / the k-th
    # largest raw of the file's openings in the previous W rows)).
    print('\nscore x (1/2 + 1/2 min(1, raw / k-th largest earlier raw in W rows)): W k standard / low FP / low FN')
    for w in (1000, 2000, 4000, 100000):
        for k in (1, 3):
            out = {}
            for f in files:
                s = R[f].copy()
                hist = []
                for t in np.nonzero(s)[0]:
                    raw = D[(len(s), t)]['raw']
                    prev = sorted(r for (u, r) in hist if u >= t - w)
                    if len(prev) >= k:
                        s[t] *= 0.5 + 0.5 * min(1.0, raw / max(prev[-k], 1e-9))
                    hist.append((t, raw))
                out[f] = s
            print(w, k, profile_line(out))

    # 4. Score maps: what the opening carries, from its release and novelty
    # odds (judged / (1 - judged), novelty / (1 - novelty)).
    def mapped(fn):
        out = {}
        for f in files:
            s = np.zeros(len(R[f]))
            for t in np.nonzero(R[f])[0]:
                o = D[(len(s), t)]
                jr = min(o['j'], 1 - 1e-9) / max(1 - o['j'], 1e-9)
                nr = min(o['nv'], 1 - 1e-12) / max(1 - o['nv'], 1e-12) if o['nv'] > 0 else 0.0
                s[t] = fn(jr, nr, o['raw'] / o['rthr'])
            out[f] = s
        return profile_line(out)
    odds = lambda x: x / (1 + x)
    print('\nscore maps:')
    print('max(judged, novelty) (as run, from the printed digits):', mapped(lambda jr, nr, rr: max(odds(jr), odds(nr))))
    for c in (0.25, 0.5, 2):
        print(f'max(judged odds, novelty odds^{c}):', mapped(lambda jr, nr, rr, c=c: odds(max(jr, nr ** c))))
        print(f'judged odds x novelty odds^{c}:', mapped(lambda jr, nr, rr, c=c: odds(max(jr, 1e-9) * max(nr, 1e-9) ** c)))
    print('judged alone:', mapped(lambda jr, nr, rr: odds(jr)))
    print('novelty alone:', mapped(lambda jr, nr, rr: odds(nr)))
    print('undivided raw vs novelty:', mapped(lambda jr, nr, rr: odds(max(rr, nr))))
    print('min(judged, novelty):', mapped(lambda jr, nr, rr: odds(min(jr, nr))))


if __name__ == '__main__':
    main()
