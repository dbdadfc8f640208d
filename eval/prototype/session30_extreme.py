# Diagnostic (session 30): alerts where a value leaves the range of every
# earlier value by MARGIN x that range, against the product's detections.
import json,csv,sys,datetime,os
# usage: extreme.py DATAROOT LABELS RESULTS THR SPLITFILTER(tune|inj) margins...
root,labels,res,thr,flt=sys.argv[1:6]; thr=float(thr); margins=[float(x) for x in sys.argv[6:]]
lab=json.load(open(labels))
split={}
for l in open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'nab-split.txt')):
    p=l.split()
    if len(p)==2: split[p[1]]=p[0]
def ts(s): return datetime.datetime.fromisoformat(s.strip())
for m in margins:
    tot_fp=0; new_win=0; earlier=0; win_hit=0; nwin=0; prod_found=0
    for f,wins in sorted(lab.items()):
        base=f.split('__')[0]+'.csv' if '__' in f else f
        if flt=='tune' and split.get(f)!='tune': continue
        p=os.path.join(root,f)
        if not os.path.exists(p): continue
        rows=list(csv.DictReader(open(p)))
        t=[ts(r['timestamp']) for r in rows]; v=[float(r['value']) for r in rows]
        n=len(v); prob=int(min(0.15*n,0.15*5000))
        cat,name=f.split('/')
        sc=[float(r['anomaly_score']) for r in csv.DictReader(open(f'{res}/{cat}/vigil_{name}'))]
        W=[]
        for a,b in wins:
            a=ts(a);b=ts(b); W.append((next(i for i in range(n) if t[i]>=a), max(i for i in range(n) if t[i]<=b)))
        lo=min(v[:prob]); hi=max(v[:prob])
        alerts=[]
        for i in range(prob,n):
            r=hi-lo
            if v[i]>hi+m*r or v[i]<lo-m*r: alerts.append(i)
            lo=min(lo,v[i]); hi=max(hi,v[i])
        for (a,b) in W:
            nwin+=1
            pa=next((i for i in range(a,b+1) if sc[i]>=thr),None)
            ea=next((i for i in alerts if a<=i<=b),None)
            if pa is not None: prod_found+=1
            if ea is not None:
                win_hit+=1
                if pa is None: new_win+=1; print(f'  m={m} NEW {f} win {a}-{b} at {ea}')
                elif ea<pa: earlier+=1
        fp=[i for i in alerts if not any(a<=i<=b for a,b in W)]
        # count onsets: collapse alerts within 10 rows
        on=[]; 
        for i in fp:
            if not on or i-on[-1]>10: on.append(i)
        tot_fp+=len(on)
    print(f'margin {m}: windows {nwin} product found {prod_found}; extreme in window {win_hit}, new {new_win}, earlier {earlier}; false onsets {tot_fp}')
