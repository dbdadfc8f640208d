"""Prototype (session 23, eval/NAB.md): a spread channel (mean |step| over K
rows) judged by Witten-Bell cell/step counts like the novelty's, its openings
OR-ed into the product's result files, scored with nab_score.py.

  vigil-eval nab --nab-dir NAB --out OUT --files tune       # the product's results
  MODE=log EPS=0.02 FLOOR=mean K=8 python3 session23_spread.py OUT NAB tune
  vigil-eval nab --nab-dir NAB --out OUT --inject 22
  MODE=log ... python3 session23_spread.py OUT OUT/corpus

MODE: absstep (linear), log (log2 of spread + floor), std; FLOOR: median
(default) or mean of the training spread, times EPS; TRUST=0: no onset-rate
bound; PERFILE=1: the files whose openings change."""
import sys, os, json, csv, math
import numpy as np
out, nab = sys.argv[1], sys.argv[2]
os.environ['NAB'] = nab
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nab_score as N
K = int(os.environ.get('K', 12)); BITS = float(os.environ.get('BITS', 12)); BOUND = float(os.environ.get('BOUND', 0.003))
MODE = os.environ.get('MODE', 'absstep'); TRUST = int(os.environ.get('TRUST', 1))
RES = [3, 6, 12]; MARGIN = 4; PRIOR = 64.0; CLOSE = 4

class Table:
    def __init__(s, r):
        s.per = r; s.off = r * MARGIN; s.cells = r * (2 * MARGIN + 1)
        s.vis = {}; s.tot = 0; s.dist = 0; s.last = None; s.pairs = {}; s.succ = {}
    def cell(s, low, width, v):
        i = math.floor((v - low) / (width / s.per)) + s.off
        return 0 if i < 0 else min(i, s.cells - 1)
    def obs(s, c):
        v = s.vis.get(c, 0)
        alone = (v + (s.dist + 1) / PRIOR) / (s.tot + s.dist + 1)
        if s.last is None: p = alone
        else:
            seen = s.pairs.get((s.last, c), 0); sc = s.succ.get(s.last, 0); dep = s.vis[s.last] - 1
            p = (seen + (sc + 1) * alone) / (dep + sc + 1)
            if seen == 0: s.succ[s.last] = sc + 1
            s.pairs[(s.last, c)] = seen + 1
        if v == 0: s.dist += 1
        s.vis[c] = v + 1; s.tot += 1; s.last = c
        return p

def channel(vs):
    n = len(vs)
    d = np.abs(np.diff(vs, prepend=vs[0]))
    if MODE == 'absstep':
        c = np.convolve(d, np.ones(K) / K)[:n]
        for i in range(min(K, n)): c[i] = d[:i + 1].mean()
    elif MODE == 'log':
        c = np.convolve(d, np.ones(K) / K)[:n]
        for i in range(min(K, n)): c[i] = d[:i + 1].mean()
        p = N.prob_len(n)
        med = (np.mean(c[:p]) if os.environ.get("FLOOR")=="mean" else np.median(c[:p])); eps = max(med, 1e-12) * float(os.environ.get('EPS', 0.05))
        c = np.log2(c + eps)
    elif MODE == 'std':
        c = np.array([vs[max(0, i - K + 1):i + 1].std() for i in range(n)])
    return c

def run(vs):
    n = len(vs); p = N.prob_len(n)
    c = channel(vs)
    low = c[:p].min(); high = c[:p].max(); width = high - low
    if width <= 0: width = abs(high) * 0.1 or 1.0
    tabs = [Table(r) for r in RES]
    out = np.zeros(n); rate = BOUND; calm = CLOSE; alert_prev = False
    thr = 2.0 ** (-BITS * len(RES))
    for i in range(n):
        pr = 1.0
        for t in tabs: pr *= t.obs(t.cell(low, width, c[i]))
        alert = pr <= thr and i >= K
        onset = alert and calm >= CLOSE
        if alert: calm = 0
        else: calm += 1
        if onset:
            trusted = rate <= BOUND or not TRUST
            rate += (1 - rate) / 1024
            if trusted and i >= p: out[i] = 1.0
        else:
            rate -= rate / 1024
    return out

def load_prod(f):
    cat, name = f.split('/')
    with open(f'{out}/vigil/{cat}/vigil_{name}') as fh:
        return np.array([float(r['anomaly_score']) for r in csv.DictReader(fh)])

files = sorted(N.WIN)
if 'datasets/nab' in nab:
    split = {l.split()[1]: l.split()[0] for l in open(os.path.join(HERE, '..', 'nab-split.txt'))}
    files = [f for f in files if split.get(f) == sys.argv[3]]
base = {f: load_prod(f) for f in files}
thr0 = float(os.environ.get('THR', 0.5752))
merged = {}; volonly = 0
for f in files:
    ts, vs, wins = N.load(f)
    v = run(vs)
    m = base[f].copy()
    # a vol opening counts unless the product opened within CLOSE*?
    for i in np.nonzero(v)[0]:
        lo = max(0, i - 8)
        if (base[f][lo:i + 1] >= thr0).any(): continue
        m[i] = max(m[i], 0.99); volonly += 1
    merged[f] = m
b = N.breakdown(base, thr0); mm = N.breakdown(merged, thr0)
print('base', b); print('with vol', mm, 'vol openings', volonly)
if os.path.exists(nab + '/injected.json'):
    inj = json.load(open(nab + '/injected.json'))
    for name, res in (('base', base), ('vol', merged)):
        kinds = {}
        for e in inj:
            a, z = e['window']; s = res[e['file']]
            hit = (s[a:z + 1] >= thr0).any()
            kinds.setdefault(e['kind'], [0, 0]); kinds[e['kind']][0] += hit; kinds[e['kind']][1] += 1
        print(name, sum(k[0] for k in kinds.values()), kinds)
if os.environ.get('PERFILE'):
    for f in files:
        ts, vs, wins = N.load(f)
        a = N.breakdown({f: base[f], "realKnownCause/nyc_taxi.csv": base.get("realKnownCause/nyc_taxi.csv", base[f])}, thr0); b = N.breakdown({f: merged[f], "realKnownCause/nyc_taxi.csv": base.get("realKnownCause/nyc_taxi.csv", merged[f])}, thr0)
        if a != b: print(f, 'fp', a['nfp'], '->', b['nfp'], 'det', a['det'], '->', b['det'])
