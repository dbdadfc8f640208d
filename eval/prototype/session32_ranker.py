# Diagnostic (session 32): a learned ranking of alarm openings, cross-validated
# by file on the tuning half. usage: ranker.py RUN DUMP OUT FEATS C [folds]
# Needs numpy and scikit-learn (`pip install numpy scikit-learn`; nothing
# else in the project does). RUN: a `vigil-eval nab --files tune --out RUN`
# directory; DUMP: the same run's openings, written by
# session32_dump.patch under EXP_DUMP=DUMP; FEATS: comma-separated names
# from the `fv` table below; C: the logistic regression's regularisation.
import csv, glob, os, sys, shutil, math, random
import numpy as np
from sklearn.linear_model import LogisticRegression
run, dump, out, feats, C = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(','), float(sys.argv[5])
folds = int(sys.argv[6]) if len(sys.argv) > 6 else 0  # 0 = leave one file out
files = {}
for f in glob.glob(f'{run}/vigil/*/*.csv'):
    rows = list(csv.reader(open(f)))
    files[f] = rows
key = {}
for f, rows in files.items():
    key[(rows[1][0], len(rows) - 1)] = f
ops = {}
for line in open(dump):
    ts, n, t, judged, nov, raw, opened, backed = line.rstrip('\n').split('\t')
    ops.setdefault(key[(ts, int(n))], []).append((int(t), float(judged), float(nov), float(raw), int(opened), int(backed)))
def logit(p):
    p = min(max(p, 1e-6), 1 - 1e-9)
    return math.log(p / (1 - p))
X, y, where = [], [], []
for f, lst in ops.items():
    body = files[f][1:]
    vals = [float(r[1]) for r in body]
    n = len(body); prob = min(int(0.15 * n), 750)
    lo, hi = min(vals), max(vals); span = (hi - lo) or 1.0
    med = float(np.median(vals[:prob]))
    last = prob
    for k, (t, judged, nov, raw, opened, backed) in enumerate(sorted(lst)):
        past = vals[max(0, t - 2000):t]
        share = sum(1 for v in past if v >= vals[t]) / max(len(past), 1)
        shr2 = min(share, 1 - share + 1.0 / max(len(past), 1))
        w = vals[max(0, t - 100):t]
        mu = sum(w) / len(w); sd = (sum((v - mu) ** 2 for v in w) / len(w)) ** 0.5 or 1e-9
        fv = {
            'backed': backed, 'nov': logit(nov) if nov >= 0 else -14.0, 'judged': logit(judged),
            'raw': math.log(raw + 1e-9), 'count': math.log1p(k), 'rate': math.log1p(1000 * k / max(t - prob, 1)),
            'gap': math.log1p(t - last), 'ext': abs(vals[t] - med) / span, 'frac': t / n,
            'tail': math.log(shr2 + 1e-4), 'z': math.log1p(abs(vals[t] - mu) / sd), 'esc': 1 - opened,
        }
        last = t
        X.append([fv[x] for x in feats]); y.append(int(body[t][3])); where.append((f, t, float(body[t][2])))
X = np.array(X); y = np.array(y)
fl = sorted(ops)
rng = random.Random(1); order = fl[:]; rng.shuffle(order)
groups = {f: (i % folds if folds else i) for i, f in enumerate(order)}
pred = np.zeros(len(y))
for g in set(groups.values()):
    te = np.array([groups[w[0]] == g for w in where])
    m = LogisticRegression(C=C, max_iter=2000).fit(X[~te], y[~te])
    pred[te] = m.predict_proba(X[te])[:, 1]
m = LogisticRegression(C=C, max_iter=2000).fit(X, y)
print('coef', dict(zip(feats, np.round(m.coef_[0], 3))), 'b', round(m.intercept_[0], 3), file=sys.stderr)
shutil.rmtree(out, ignore_errors=True)
newscore = {(w[0], w[1]): max(p, 1e-9) for w, p in zip(where, pred)}
for f, rows in files.items():
    o = os.path.join(out, os.path.relpath(f, run)); os.makedirs(os.path.dirname(o), exist_ok=True)
    wr = csv.writer(open(o, 'w', newline='')); wr.writerow(rows[0])
    for i, r in enumerate(rows[1:]):
        s = float(r[2])
        if s > 0:
            s = newscore.get((f, i), s)
        wr.writerow(r[:2] + [f'{s:.9f}'] + r[3:])
