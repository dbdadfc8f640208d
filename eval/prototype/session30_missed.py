# Diagnostic (session 30): what each detector did inside the injected windows
# the product missed. Needs a run with session30_trace.patch and TRACE_DIR set.
# usage: python3 session30_missed.py INJECTED_RUN TRACE_DIR
import json,csv,sys,collections
root=sys.argv[1]; tr=sys.argv[2]
thr=json.load(open(f'{root}/scores.json'))['vigil']['standard']['threshold']
inj=json.load(open(f'{root}/corpus/injected.json'))
cls=collections.Counter(); det=[]
for i in inj:
    f=i['file']; cat,name=f.split('/')
    sc=[float(r['anomaly_score']) for r in csv.DictReader(open(f'{root}/vigil/{cat}/vigil_{name}'))]
    a,b=i['window']
    if max(sc[a:b+1])>=thr: continue
    rows=[l.strip().split(',') for l in open(f'{tr}/{cat}__{name}')]
    win=rows[a:b+1]
    nov=[float(r[1]) for r in win]; rel=[r[2]=='true' for r in win]; hot=[r[3]=='true' for r in win]; anom=[r[4]=='true' for r in win]
    inal=anom[0]
    k=[]
    if any(hot): k.append('opened-below-thr' if not inal else 'hot')
    if max(nov)>=0.5: k.append('novelty-alert')
    if any(rel): k.append('release-alert')
    if inal: k.append('in-alarm-at-start')
    key='+'.join(k) or 'silent'
    cls[(i['kind'],key)]+=1
    det.append((i['kind'],key,f,round(max(nov),3),max(sc[a:b+1])))
for (k,c),n in sorted(cls.items()): print(f'{k:6s} {c:45s} {n}')
if len(sys.argv)>3:
    for d in det: print(d)
