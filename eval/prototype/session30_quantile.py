# Diagnostic (session 30); usage: python3 session30_quantile.py RUN/vigil TRACE_DIR INJECTED.json|- Q K...
# Offline screen: an untrusted release alert (judged>=thr, record not hot) that is
# K x above the device's running q-quantile of release odds (j/(1-j)) over its rows so far.
import csv,sys,os,json,bisect
res=sys.argv[1]; tr=sys.argv[2]; inj=sys.argv[3] if sys.argv[3]!='-' else None; Q=float(sys.argv[4]); Ks=[float(x) for x in sys.argv[5:]]
thrN=json.load(open(os.path.join(os.path.dirname(res.rstrip('/')),'scores.json')))['vigil']['standard']['threshold']
target=None
if inj:
    target={i['file']:tuple(i['window']) for i in json.load(open(inj))}
for K in Ks:
    newwin=0; falseon=0; inwin_total=0
    for cat in sorted(os.listdir(res)):
        if not os.path.isdir(f'{res}/{cat}'): continue
        for f in sorted(os.listdir(f'{res}/{cat}')):
            name=f[len('vigil_'):]; key=f'{cat}/{name}'
            r=list(csv.DictReader(open(f'{res}/{cat}/{f}')))
            lab=[int(x['label']) for x in r]; sc=[float(x['anomaly_score']) for x in r]
            rows=[l.strip().split(',') for l in open(f'{tr}/{cat}__{name}')]
            n=len(rows); prob=int(min(0.15*n,750))
            rel=[x[2]=='true' for x in rows]; hot=[x[3]=='true' for x in rows]; anom=[x[4]=='true' for x in rows]
            odds=[min(float(x[5]),0.999999)/(1-min(float(x[5]),0.999999)) for x in rows]
            hist=sorted(odds[:prob]); cand=[]
            for i in range(prob,n):
                qv=hist[min(len(hist)-1,int(Q*len(hist)))]
                if rel[i] and not hot[i] and not anom[i] and odds[i]>=K*qv: cand.append(i)
                bisect.insort(hist,odds[i])
            if target is not None:
                a,b=target.get(key,(None,None))
                if a is None: continue
                found=max(sc[a:b+1])>=thrN
                if not found and any(a<=i<=b for i in cand): newwin+=1
                own=[i for i in range(n) if lab[i] and not (a<=i<=b)]
            # false onsets: candidates outside any labelled window, collapsed within 10 rows
            last=-99
            for i in cand:
                if lab[i]: continue
                if i-last>10: falseon+=1
                last=i
            if target is None:
                # windows: count labelled runs lacking a product detection but with a candidate
                i=0
                while i<n:
                    if lab[i]:
                        j=i
                        while j<n and lab[j]: j+=1
                        if max(sc[i:j])<thrN and any(i<=c<j for c in cand): newwin+=1
                        i=j
                    else: i+=1
    print(f'Q {Q} K {K}: new windows {newwin}, false candidate onsets {falseon}')
