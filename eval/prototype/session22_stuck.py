"""Session 22: a stuck-value run-length rule on NAB tune (prototype; run from eval/prototype):
a run of equal values longer than FAC x the longest in the probationary rows and at least
MINRUN opens a flag; counts flags inside and outside windows."""
import sys, numpy as np
sys.path.insert(0, '.')
from nab_score import *
tune, hold = split()
def flags(v, p, fac, minrun):
    # run lengths of identical consecutive values
    run = np.ones(len(v), int)
    for i in range(1, len(v)):
        run[i] = run[i-1] + 1 if v[i] == v[i-1] else 1
    r0 = run[:p].max()
    lim = max(minrun, int(fac * r0) + 1)
    out = np.zeros(len(v))
    # onset: first row where run reaches lim
    out[(run == lim)] = 1.0
    out[:p] = 0
    return out, r0, lim
for fac, minrun in [(2, 8), (3, 12), (2, 24)]:
    tot_in = tot_out = 0
    for f in tune:
        ts, v, wins = load(f)
        p = prob_len(len(v))
        fl, r0, lim = flags(v, p, fac, minrun)
        idx = np.where(fl > 0)[0]
        inw = sum(any(s <= i <= e for s, e in wins) for i in idx)
        tot_in += inw; tot_out += len(idx) - inw
        if len(idx): print(' ', f, 'r0', r0, 'lim', lim, 'in', inw, 'out', len(idx) - inw)
    print(fac, minrun, 'in windows', tot_in, 'outside', tot_out)
