"""Prototype of the novelty detector (model/src/novelty.rs) used to explore
settings on the tune half of NAB; see eval/NAB.md. Usage:
  python3 novelty_sweep.py tune "dict(chans=(('raw',0),('ma',12)),comb='max',clip=4)" ...
(`tune`, `holdout` or `all`; each argument a dict of det() settings).
Needs numpy; NAB from $NAB (default /work/shared/datasets/nab)."""
import nab_score as nab, numpy as np, sys, math
from collections import defaultdict

def series_channels(vs, chans):
    out=[]
    for c in chans:
        kind,arg=c
        if kind=='raw': out.append(vs)
        elif kind=='ma':
            k=arg; cs=np.cumsum(np.insert(vs,0,0.0)); m=np.empty_like(vs)
            for i in range(len(vs)):
                a=max(0,i-k+1); m[i]=(cs[i+1]-cs[a])/(i+1-a)
            out.append(m)
        elif kind=='diff':
            out.append(np.diff(vs,prepend=vs[0]))
        elif kind=='sd':
            k=arg; m=np.array([vs[max(0,i-k+1):i+1].std() for i in range(len(vs))]); out.append(m)
    return out

def det(vs, p, res=(3,6,12), cool=100, thr=12.0, K=64, chans=(('raw',0),), comb="mean", scale=20.0, clip=0):
    n=len(vs)
    xs=series_channels(vs, chans)
    bs=[]
    for x in xs:
        tr=x[:p]; lo,hi=tr.min(),tr.max(); r=hi-lo
        if r<=0: r=abs(hi)*0.1 or 1.0
        for nb in res: bs.append(np.clip(np.floor((x-lo)/(r/nb)).astype(int), -clip*nb, (clip+1)*nb-1) if clip else np.floor((x-lo)/(r/nb)).astype(int))
    m=len(bs)
    uni=[defaultdict(int) for _ in range(m)]; N=[0]*m
    big=[defaultdict(lambda: defaultdict(int)) for _ in range(m)]
    out=np.zeros(n); last=-10**9
    nres=len(res)
    for i in range(n):
        ss=[]
        for j,b in enumerate(bs):
            x=b[i]; T=len(uni[j])
            pu=(uni[j][x] + (T+1)/K)/(N[j]+T+1)
            if i>0:
                a=b[i-1]; row=big[j][a]; na=sum(row.values()); Ta=len(row)
                pb=(row.get(x,0)+ (Ta+1)*pu)/(na+Ta+1)
                row[x]+=1
            else: pb=pu
            uni[j][x]+=1; N[j]+=1
            ss.append(-math.log2(pb))
        # mean within a channel over resolutions, then max across channels
        per=[sum(ss[c*nres:(c+1)*nres])/nres for c in range(len(xs))]
        s=max(per) if comb=='max' else sum(per)/len(per)
        if i>=p and s>=thr and i-last>cool:
            out[i]=min(1.0,s/scale); last=i
    return out

def run(files, **kw):
    return {f: det(nab.load(f)[1], nab.prob_len(len(nab.load(f)[1])), **kw) for f in files}

def show(tag, r):
    s = nab.score_all(r)
    print(tag, {k: (round(v[0], 2), v[2]) for k, v in s.items()}, 'thr', round(s['standard'][1], 3), flush=True)

if __name__=='__main__':
    a,b=nab.split()
    files={'tune':a,'holdout':b,'all':a+b}[sys.argv[1]]
    for kw in [eval(x) for x in sys.argv[2:]]:
        show(kw, run(files,**kw))
