"""Session 21 prototype: the novelty detector (session 20's, with its
seasonal channel) plus a second-order sequence context: a channel's cell
given its previous two cells, backing off Witten-Bell to the first-order
probability (prediction by partial matching, order 2). Usage:
  python3 session21_order2.py tune "dict(o2=(0,), o2mode='chan')" ...
o2: channels (0 value, 1 12-row mean) that get the order-2 context;
o2res: which resolutions (indices into res) it covers; o2mode 'replace'
(the channel scores by the order-2 estimate) or 'chan' (a separate channel,
its alert level o2thr bits per resolution). Other settings as
session20_context.det (est='peak', minr=0.3, ctx_chan=(1,) = the product's)."""
import math
from collections import defaultdict
import numpy as np
from novelty_sweep import series_channels
from session20_context import cells_of, est_peak, est_calendar, main

def det(vs, ts, p, res=(3,6,12), cool=100, thr=12.0, K=64, chans=(('raw',0),('ma',12)), clip=4,
        slots=24, ctx_chan=(1,), est='peak', minr=0.3, o2=(), o2res=(0,1,2), o2mode='chan', o2thr=None, lag=1):
    n = len(vs)
    xs = series_channels(vs, chans)
    period = {'calendar': est_calendar, 'peak': est_peak}[est](vs[:p], ts[:p], minr) if est else 0
    secs = np.array([(t - ts[0]).total_seconds() for t in ts])
    cells = lambda x, nb: cells_of(x, nb, p, clip)
    bs = [[cells(x, nb) for nb in res] for x in xs]
    slot = (np.floor((secs % period) / period * slots).astype(int) if period else None)
    uni = [[defaultdict(int) for _ in res] for _ in xs]; N = [[0] * len(res) for _ in xs]
    big = [[defaultdict(lambda: defaultdict(int)) for _ in res] for _ in xs]
    tri = [[defaultdict(lambda: defaultdict(int)) for _ in res] for _ in xs]
    ctx = [[defaultdict(lambda: defaultdict(int)) for _ in res] for _ in ctx_chan]
    out = np.zeros(n); last = -10 ** 9
    def wb(row, x, lower):
        na = sum(row.values()); Ta = len(row)
        return (row.get(x, 0) + (Ta + 1) * lower) / (na + Ta + 1)
    for i in range(n):
        per, cper, oper = [], [], []
        for c in range(len(xs)):
            ss, cs, os_ = [], [], []
            for j in range(len(res)):
                b = bs[c][j]; x = b[i]; u = uni[c][j]; T = len(u)
                pu = (u[x] + (T + 1) / K) / (N[c][j] + T + 1)
                pb = wb(big[c][j][b[i - 1]], x, pu) if i > 0 else pu
                p2 = pb
                if c in o2 and j in o2res and i >= 2 * lag:
                    row2 = tri[c][j][(b[i - 2 * lag], b[i - lag])]
                    p2 = wb(row2, x, pb); row2[x] += 1
                if c in ctx_chan and period:
                    row = ctx[ctx_chan.index(c)][j][slot[i]]
                    cs.append(-math.log2(wb(row, x, pu))); row[x] += 1
                if i > 0: big[c][j][b[i - 1]][x] += 1
                u[x] += 1; N[c][j] += 1
                if c in o2 and o2mode == 'replace':
                    ss.append(-math.log2(p2))
                else:
                    ss.append(-math.log2(pb))
                    if c in o2: os_.append(-math.log2(p2))
            per.append(sum(ss) / len(ss))
            if cs: cper.append(sum(cs) / len(cs))
            if os_: oper.append(sum(os_) / len(os_))
        s = max(per); hit = s >= thr
        if cper:
            c_ = max(cper); hit = hit or c_ >= thr; s = max(s, c_)
        if oper:
            t2 = o2thr or thr
            o_ = max(oper); hit = hit or o_ >= t2; s = max(s, o_ * thr / t2)
        if i >= p and hit and i - last > cool:
            out[i] = min(1.0, s / 20.0); last = i
    return out

if __name__ == '__main__':
    main(det)
