"""Earlier versions of the novelty prototype, kept so every row of
eval/NAB.md's table can be re-run (rows 1-4: `p1`; 5-23: `p3`, with
`cool=200` for rows 5-11; 24-27: `p5`; 28-37: `p6`; rows 38 on:
novelty_sweep.py). Usage:
  python3 earlier_variants.py tune p3 "dict(cool=200)" ...
Needs numpy; NAB from $NAB (default /work/shared/datasets/nab)."""
import sys, math
import numpy as np
from collections import defaultdict
import nab_score as nab
from novelty_sweep import show

# --- p1
def det_p1(vs, p, nb=20, orders=(1,2,3), cool=None, thr=0.5, decay=1.0):
    n=len(vs)
    tr=vs[:p]
    lo,hi=np.percentile(tr,0),np.percentile(tr,100)
    r=hi-lo
    if r<=0: r=abs(hi)*0.1 or 1.0
    w=r/nb
    b=np.floor((vs-lo)/w).astype(int)
    counts=[defaultdict(float) for _ in orders]
    out=np.zeros(n)
    last_alert=-10**9
    cool = cool if cool is not None else max(1,int(0.02*n))  # placeholder
    for i in range(n):
        s=0.0
        for k,o in enumerate(orders):
            if i-o+1<0: continue
            key=tuple(b[i-o+1:i+1])
            c=counts[k][key]
            if i>=p:
                s=max(s, 1.0/(1.0+c))
            counts[k][key]=c+1
        if i>=p:
            if s>=thr and i-last_alert>cool:
                out[i]=s; last_alert=i
    return out

# --- p3
def det_p3(vs, p, res=(5,10,20), orders=(1,2), cool=100, thr=0.5, q=0.0, ext=0.0, decay=None):
    n=len(vs)
    tr=vs[:p]
    lo,hi=np.quantile(tr,q),np.quantile(tr,1-q)
    r=hi-lo
    if r<=0: r=abs(hi)*0.1 or 1.0
    bs=[np.floor((vs-lo)/(r/nb)).astype(int) for nb in res]
    counts=[[defaultdict(float) for _ in orders] for _ in res]
    out=np.zeros(n); last=-10**9
    seen_lo, seen_hi = lo, hi
    for i in range(n):
        tot=0.0
        for j,b in enumerate(bs):
            s=0.0
            for k,o in enumerate(orders):
                if i-o+1<0: continue
                key=tuple(b[i-o+1:i+1]) if o>1 else b[i]
                c=counts[j][k][key]
                s=max(s,1.0/(1.0+c))
                counts[j][k][key]=c+1
            tot+=s
        tot/=len(bs)
        if ext>0:
            x=vs[i]
            d=max(0.0,(x-seen_hi)/r,(seen_lo-x)/r)
            tot=min(1.0, tot + ext*d)
            seen_lo=min(seen_lo,x); seen_hi=max(seen_hi,x)
        if i>=p and tot>=thr and i-last>cool:
            out[i]=tot; last=i
    return out

# --- p5
def det_p5(vs, p, res=(3,6), orders=(1,2), cool=100, thr=0.5, alpha=1/500, beta=0.0, mode='mul'):
    n=len(vs)
    tr=vs[:p]
    lo,hi=tr.min(),tr.max()
    r=hi-lo
    if r<=0: r=abs(hi)*0.1 or 1.0
    bs=[np.floor((vs-lo)/(r/nb)).astype(int) for nb in res]
    counts=[[defaultdict(float) for _ in orders] for _ in res]
    out=np.zeros(n); last=-10**9
    rate=0.0
    for i in range(n):
        tot=0.0
        for j,b in enumerate(bs):
            s=0.0
            for k,o in enumerate(orders):
                if i-o+1<0: continue
                key=tuple(b[i-o+1:i+1]) if o>1 else b[i]
                c=counts[j][k][key]
                s=max(s,1.0/(1.0+c))
                counts[j][k][key]=c+1
            tot+=s
        tot/=len(bs)
        if mode=='mul': sc=tot/(1.0+beta*rate)
        else: sc=tot-beta*rate
        rate=(1-alpha)*rate+alpha*tot
        if i>=p and sc>=thr*(1.0/(1.0+0)) and i-last>cool:
            out[i]=sc; last=i
    return out

# --- p6
def det_p6(vs, p, res=(3,6), cool=100, thr=8.0, K=64, comb='mean', scale=20.0):
    n=len(vs)
    tr=vs[:p]
    lo,hi=tr.min(),tr.max()
    r=hi-lo
    if r<=0: r=abs(hi)*0.1 or 1.0
    bs=[np.floor((vs-lo)/(r/nb)).astype(int) for nb in res]
    uni=[defaultdict(int) for _ in res]; N=[0]*len(res)
    big=[defaultdict(lambda: defaultdict(int)) for _ in res]
    out=np.zeros(n); last=-10**9
    for i in range(n):
        ss=[]
        for j,b in enumerate(bs):
            x=b[i]
            T=len(uni[j])
            pu=(uni[j][x] + (T+1)/K)/(N[j]+T+1)
            if i>0:
                a=b[i-1]; row=big[j][a]; na=sum(row.values()); Ta=len(row)
                pb=(row.get(x,0)+ (Ta+1)*pu)/(na+Ta+1)
                row[x]+=1
            else: pb=pu
            uni[j][x]+=1; N[j]+=1
            ss.append(-math.log2(pb))
        s=sum(ss)/len(ss) if comb=='mean' else max(ss)
        if i>=p and s>=thr and i-last>cool:
            out[i]=min(1.0,s/scale); last=i
    return out


VARIANTS = {'p1': det_p1, 'p3': det_p3, 'p5': det_p5, 'p6': det_p6}


if __name__ == '__main__':
    a, b = nab.split()
    files = {'tune': a, 'holdout': b, 'all': a + b}[sys.argv[1]]
    det = VARIANTS[sys.argv[2]]
    for kw in [eval(x) for x in sys.argv[3:]]:
        r = {}
        for f in files:
            vs = nab.load(f)[1]
            r[f] = det(vs, nab.prob_len(len(vs)), **kw)
        show(kw, r)
