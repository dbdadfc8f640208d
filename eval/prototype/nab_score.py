"""Python port of NAB's scorer, for prototyping only: it reproduces the published
scores of ARTime, CAD OSE, HTM and the windowed Gaussian (run this file). The
Rust scorer in eval/src/nab is the reference."""
import json, os, csv, math, datetime
import numpy as np
D = os.environ.get('NAB', '/work/shared/datasets/nab')
WIN = json.load(open(D + '/labels/combined_windows.json'))
PROFILES = {'standard': (1.0, 1.0, 0.11), 'reward_low_FP_rate': (1.0, 1.0, 0.22), 'reward_low_FN_rate': (1.0, 2.0, 0.11)}
FILES = sorted(WIN)

def split():
    cats = {}
    for f in FILES: cats.setdefault(f.split('/')[0], []).append(f)
    a, b = [], []
    for c, fs in cats.items():
        for i, f in enumerate(sorted(fs)):
            (a if i % 2 == 0 else b).append(f)
    return a, b

def parse_ts(s):
    return datetime.datetime.strptime(s.strip()[:19], '%Y-%m-%d %H:%M:%S')

_cache = {}
def load(f):
    if f in _cache: return _cache[f]
    ts, vs = [], []
    with open(D + '/data/' + f) as fh:
        r = csv.reader(fh); next(r)
        for row in r:
            ts.append(parse_ts(row[0])); vs.append(float(row[1]))
    ts = np.array(ts); vs = np.array(vs)
    wins = []
    for s, e in WIN[f]:
        s, e = parse_ts(s), parse_ts(e)
        idx = np.where((ts >= s) & (ts <= e))[0]
        wins.append((idx[0], idx[-1]))
    _cache[f] = (ts, vs, wins)
    return _cache[f]

def prob_len(n):
    return min(int(math.floor(0.15 * n)), int(0.15 * 5000))

def sig(x):
    if x > 3.0: return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0

def candidates(f, scores):
    """(score, kind, weightfactor, window) for every row after probation."""
    ts, vs, wins = load(f)
    n = len(vs); p = prob_len(n)
    lab = np.full(n, -1)
    for k, (s, e) in enumerate(wins): lab[s:e + 1] = k
    out = []
    prev = None
    maxtp = sig(-1.0)
    for i in range(n):
        if lab[i] >= 0:
            s, e = wins[lab[i]]
            prev = (s, e)
        if i < p or scores[i] <= 0: continue
        if lab[i] >= 0:
            s, e = wins[lab[i]]; wdt = e - s + 1
            pos = -(e - i + 1) / wdt
            out.append((scores[i], 'tp', sig(pos) / maxtp, lab[i]))
        else:
            if prev is None: u = -1.0
            else:
                s, e = prev; wdt = e - s + 1
                u = sig(abs(e - i) / (wdt - 1))
            out.append((scores[i], 'fp', u, -1))
    return out, len(wins)

def score_all(results, files=None, profiles=PROFILES, thresholds=None):
    """results: {file: scores array}. Returns {profile: (normalized, threshold, detected windows)}."""
    files = files or sorted(results)
    cands = {f: candidates(f, results[f]) for f in files}
    allthr = sorted({c[0] for f in files for c in cands[f][0]}, reverse=True)
    nwin = sum(cands[f][1] for f in files)
    res = {}
    for prof, (tpw, fnw, fpw) in profiles.items():
        # sweep thresholds descending; maintain best tp per window and fp sum
        events = []
        for f in files:
            for (s, kind, u, w) in cands[f][0]:
                events.append((s, kind, u, (f, w)))
        events.sort(key=lambda e: -e[0])
        best = {}
        fp = 0.0; tp = 0.0
        bestscore = -fnw * nwin; bestthr = 1.1; bestdet = 0
        i = 0
        while i < len(events):
            thr = events[i][0]
            while i < len(events) and events[i][0] == thr:
                s, kind, u, key = events[i]
                if kind == 'tp':
                    if key not in best: best[key] = u; tp += u
                    elif u > best[key]: tp += u - best[key]; best[key] = u
                else:
                    fp += u * fpw
                i += 1
            raw = tp * tpw + fp - fnw * (nwin - len(best))
            if raw > bestscore: bestscore, bestthr, bestdet = raw, thr, len(best)
        null = -fnw * nwin; perfect = tpw * nwin
        res[prof] = (100 * (bestscore - null) / (perfect - null), bestthr, bestdet, nwin)
    return res

def load_published(det):
    out = {}
    for f in FILES:
        c, name = f.split('/')
        p = f'{D}/results/{det}/{c}/{det}_{name}'
        with open(p) as fh:
            r = csv.DictReader(fh)
            out[f] = np.array([float(row['anomaly_score']) for row in r])
    return out

if __name__ == '__main__':
    for det in ['numenta', 'ARTime', 'contextOSE', 'windowedGaussian']:
        if os.path.isdir(f'{D}/results/{det}'):
            r = score_all(load_published(det))
            print(det, {k: (round(v[0], 2), v[2]) for k, v in r.items()})

def breakdown(results, thr, prof='standard'):
    tpw, fnw, fpw = PROFILES[prof]
    tp = 0.0; fp = 0.0; nw = 0; det = 0; nfp = 0
    for f, s in results.items():
        c, k = candidates(f, s); nw += k
        best = {}
        for (sc, kind, u, w) in c:
            if sc < thr: continue
            if kind == 'tp': best[w] = max(best.get(w, -9), u)
            else: fp += u * fpw; nfp += 1
        tp += sum(best.values()); det += len(best)
    return dict(tp=round(tp, 2), det=det, miss=nw - det, fpcost=round(fp, 2), nfp=nfp, norm=round(100 * (tp - fnw * (nw - det) + fp + fnw * nw) / (tpw * nw + fnw * nw), 2))
