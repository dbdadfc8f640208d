"""Session 12: the novelty (row 53 settings) with an alert gate on the series' own
surprises (eval/NAB.md, "Tried later"). Usage:
  python3 gate_sweep.py tune "dict()" "dict(gate='z',z=4)" "dict(gate='max',N=1000)"
Needs numpy; NAB from $NAB."""
import sys, os; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nab_score as nab, numpy as np, math, pickle, os
from collections import defaultdict, deque
from novelty_sweep import series_channels

def surprise(vs,p,res=(3,6,12),K=64,chans=(('raw',0),('ma',12)),clip=4):
    n=len(vs); xs=series_channels(vs,chans); bs=[]
    for x in xs:
        tr=x[:p]; lo,hi=tr.min(),tr.max(); r=hi-lo
        if r<=0: r=abs(hi)*0.1 or 1.0
        for nb in res: bs.append(np.clip(np.floor((x-lo)/(r/nb)).astype(int), -clip*nb,(clip+1)*nb-1))
    m=len(bs); uni=[defaultdict(int) for _ in range(m)]; N=[0]*m
    big=[defaultdict(lambda: defaultdict(int)) for _ in range(m)]
    S=np.zeros(n); nres=len(res)
    for i in range(n):
        ss=[]
        for j,b in enumerate(bs):
            x=b[i]; T=len(uni[j]); pu=(uni[j][x]+(T+1)/K)/(N[j]+T+1)
            if i>0:
                a=b[i-1]; row=big[j][a]; na=sum(row.values()); Ta=len(row)
                pb=(row.get(x,0)+(Ta+1)*pu)/(na+Ta+1); row[x]+=1
            else: pb=pu
            uni[j][x]+=1; N[j]+=1; ss.append(-math.log2(pb))
        S[i]=max(sum(ss[c*nres:(c+1)*nres])/nres for c in range(len(xs)))
    return S

C=os.path.join(os.environ.get('TMPDIR','/tmp'),'nab_surprise.pkl')
def all_S():
    if os.path.exists(C): return pickle.load(open(C,'rb'))
    d={}
    for f in nab.FILES:
        vs=nab.load(f)[1]; d[f]=surprise(vs,nab.prob_len(len(vs)))
    pickle.dump(d,open(C,'wb')); return d

def alerts(S,p,thr=12.0,cool=100,gate=None,N=1000,z=4.0,alpha=0.001,skip=0):
    n=len(S); out=np.zeros(n); last=-10**9
    win=deque(); mx=deque()  # monotonic deque for window max
    mu=0.0; var=1.0; cnt=0
    for i in range(n):
        s=S[i]; ok=True
        if gate=='max':
            ok = (len(win)==0) or s>mx[0][0]
        elif gate=='z':
            sd=math.sqrt(var) if cnt>1 else 1e9
            ok = cnt<2 or (s-mu)>=z*sd
        if i>=p and s>=thr and i-last>cool and ok:
            out[i]=min(1.0,s/20.0); last=i
        # update
        if gate=='max':
            if i>=skip:
                win.append(i)
                while mx and mx[-1][0]<=s: mx.pop()
                mx.append((s,i))
                while mx[0][1]<=i-N: mx.popleft()
        elif gate=='z':
            if i>=skip:
                cnt+=1; a=max(alpha,1.0/cnt); d=s-mu; mu+=a*d; var=(1-a)*(var+a*d*d)
    return out

if __name__=='__main__':
    Sd=all_S(); a,b=nab.split()
    files={'tune':a,'holdout':b,'all':a+b}[sys.argv[1]]
    for kw in [eval(x) for x in sys.argv[2:]]:
        r={f: alerts(Sd[f], nab.prob_len(len(Sd[f])), **kw) for f in files}
        s=nab.score_all(r)
        print(kw, {k:(round(v[0],2),v[2]) for k,v in s.items()}, flush=True)
