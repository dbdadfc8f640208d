"""Session 20 prototype: the novelty detector with a seasonal context
channel (the value's cell given its phase slot within a period), on NAB
(eval/NAB.md, "Session 20"). Usage:
  python3 session20_context.py tune "dict(period=86400, slots=24)" ...
Settings beyond novelty_sweep.det's: period (s; 0 = none), slots, ctx_res
(resolutions of the context channel), ctx_chan (0 value, 1 12-row mean),
ctx_thr (its alert level, bits per resolution), est ('calendar' or 'peak':
the period from the probationary rows instead, with minr the
autocorrelation it needs), e.g.
  python3 session20_context.py tune "dict(est='peak', minr=0.3, ctx_chan=(1,))"."""
import math, sys
from collections import defaultdict
import numpy as np
import nab_score as nab
from novelty_sweep import series_channels, show

def acf(x, lag):
    x = x - x.mean(); d = (x * x).sum()
    return (x[:-lag] * x[lag:]).sum() / d if d > 0 else 0.0

def interval(ts):
    return np.median([(ts[i + 1] - ts[i]).total_seconds() for i in range(len(ts) - 1)])

def est_calendar(vs, ts, minr):
    """A week, else a day, when the autocorrelation at its lag reaches minr."""
    x = np.asarray(vs, float); dt = interval(ts)
    for period in (604800, 86400):
        lag = int(round(period / dt))
        if 2 * lag <= len(x) and acf(x, lag) >= minr:
            return period
    return 0

def est_peak(vs, ts, minr):
    """The highest autocorrelation after the first negative lag (the
    product's, training/src/season.rs, before snapping)."""
    x = np.asarray(vs, float); n = len(x)
    ac = np.array([acf(x, lag) for lag in range(1, n // 2 + 1)])
    if not (ac < 0).any():
        return 0
    z = int(np.argmax(ac < 0))
    lag = z + int(np.argmax(ac[z:])) + 1
    return lag * interval(ts) if ac[lag - 1] >= minr else 0

def cells_of(x, nb, p, clip):
    """Each value's cell among `nb` over the first `p` rows' range, with
    `clip` ranges of margin on each side."""
    tr = x[:p]; lo, hi = tr.min(), tr.max(); r = hi - lo
    if r <= 0: r = abs(hi) * 0.1 or 1.0
    return np.clip(np.floor((x - lo) / (r / nb)).astype(int), -clip * nb, (clip + 1) * nb - 1)

def det(vs, ts, p, res=(3,6,12), cool=100, thr=12.0, K=64, chans=(('raw',0),('ma',12)), clip=4,
        period=0, slots=24, ctx_res=(3,6,12), ctx_chan=(0,), ctx_thr=None, est=None, minr=0.3):
    n = len(vs)
    xs = series_channels(vs, chans)
    if est is not None:
        period = {'calendar': est_calendar, 'peak': est_peak}[est](vs[:p], ts[:p], minr)
    secs = np.array([(t - ts[0]).total_seconds() for t in ts])
    cells = lambda x, nb: cells_of(x, nb, p, clip)
    bs = [[cells(x, nb) for nb in res] for x in xs]
    cb = [[cells(xs[c], nb) for nb in ctx_res] for c in ctx_chan] if period else []
    slot = (np.floor((secs % period) / period * slots).astype(int) if period else None)
    uni = [[defaultdict(int) for _ in res] for _ in xs]; N = [[0] * len(res) for _ in xs]
    big = [[defaultdict(lambda: defaultdict(int)) for _ in res] for _ in xs]
    cuni = [[defaultdict(int) for _ in ctx_res] for _ in cb]; cN = [[0] * len(ctx_res) for _ in cb]
    ctx = [[defaultdict(lambda: defaultdict(int)) for _ in ctx_res] for _ in cb]
    out = np.zeros(n); last = -10 ** 9
    for i in range(n):
        per = []
        for c in range(len(xs)):
            ss = []
            for j in range(len(res)):
                b = bs[c][j]; x = b[i]; u = uni[c][j]; T = len(u)
                pu = (u[x] + (T + 1) / K) / (N[c][j] + T + 1)
                if i > 0:
                    row = big[c][j][b[i - 1]]; na = sum(row.values()); Ta = len(row)
                    pb = (row.get(x, 0) + (Ta + 1) * pu) / (na + Ta + 1); row[x] += 1
                else:
                    pb = pu
                u[x] += 1; N[c][j] += 1
                ss.append(-math.log2(pb))
            per.append(sum(ss) / len(ss))
        cper = []
        for c in range(len(cb)):
            ss = []
            for j in range(len(ctx_res)):
                b = cb[c][j]; x = b[i]; u = cuni[c][j]; T = len(u)
                pu = (u[x] + (T + 1) / K) / (cN[c][j] + T + 1)
                row = ctx[c][j][slot[i]]; na = sum(row.values()); Ta = len(row)
                pc = (row.get(x, 0) + (Ta + 1) * pu) / (na + Ta + 1); row[x] += 1
                u[x] += 1; cN[c][j] += 1
                ss.append(-math.log2(pc))
            cper.append(sum(ss) / len(ss))
        s = max(per)
        hit = s >= thr
        if cper:
            cs = max(cper)
            hit = hit or cs >= (ctx_thr or thr)
            s = max(s, cs * thr / (ctx_thr or thr))
        if i >= p and hit and i - last > cool:
            out[i] = min(1.0, s / 20.0); last = i
    return out

def run(files, detector=det, **kw):
    r = {}
    for f in files:
        ts, vs, _ = nab.load(f)
        r[f] = detector(vs, ts, nab.prob_len(len(vs)), **kw)
    return r

def main(detector=det):
    """`SCRIPT tune|holdout|all "dict(...)" ...`: one row per settings."""
    a, b = nab.split()
    files = {'tune': a, 'holdout': b, 'all': a + b}[sys.argv[1]]
    for kw in [eval(x) for x in sys.argv[2:]]:
        show(kw, run(files, detector, **kw))

if __name__ == '__main__':
    main()
