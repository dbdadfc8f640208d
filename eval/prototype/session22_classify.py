"""Session 22: where the injected windows the product misses go.

    git apply eval/prototype/session22_diag.patch  # and rebuild vigil-eval
    DIAGALL=1 vigil-eval nab --nab-dir NAB --out OUT --inject 22 2> diag.txt
    python3 session22_classify.py OUT diag.txt

Each injected window (OUT/corpus/injected.json) is found (an opening at
the standard threshold), or classed by what the detectors did from the
anomaly's first row to the window's end: the release above its
threshold while the record was not hot (it was untrusted), the novelty
above its alert level while not hot, both, or neither.
"""
import collections, csv, json, sys


def main(out, diag):
    placed = json.load(open(f'{out}/corpus/injected.json'))
    thr = json.load(open(f'{out}/scores.json'))['vigil']['standard']['threshold']
    cands = collections.defaultdict(list)
    for line in open(diag):
        if line.startswith('CAND'):
            _, n, sm, t, j, nv, hot, _ = line.split()
            cands[(int(n), float(sm))].append((int(t), float(j), float(nv), int(hot)))
    classes = collections.Counter()
    for p in placed:
        f, (a, b), t0 = p['file'], p['window'], p['row']
        vals = [float(r[1]) for r in list(csv.reader(open(f'{out}/corpus/data/{f}')))[1:]]
        cat, name = f.split('/')
        scores = [float(r[2]) for r in list(csv.reader(open(f'{out}/vigil/{cat}/vigil_{name}')))[1:]]
        rows = [x for x in cands.get((len(vals), float('%.6e' % sum(vals))), []) if t0 <= x[0] <= b]
        rel = any(x[1] >= 0.5 for x in rows)
        nov = any(x[2] >= 0.5 for x in rows)
        if any(s >= thr for s in scores[a:b + 1]):
            c = 'found'
        elif any(x[3] for x in rows):
            c = 'hot, no opening'
        else:
            c = {(True, True): 'both saw, not hot', (True, False): 'release saw, untrusted',
                 (False, True): 'novelty saw, untrusted', (False, False): 'neither saw'}[(rel, nov)]
        classes[c] += 1
    for c, n in classes.most_common():
        print(n, c)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
