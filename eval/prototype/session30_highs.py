# Diagnostic (session 30); usage: python3 session30_highs.py RUN/vigil TRACE_DIR [CORPUS/injected.json]
# For each release alert run (consecutive rows with judged>=thr, not already hot/in alarm), its peak judged vs the
# max judged over all earlier rows after probation (ratio). Classify runs in windows vs outside.
import csv,sys,os,json
res=sys.argv[1]; tr=sys.argv[2]; inj=sys.argv[3] if len(sys.argv)>3 else None
target=None
if inj:
    target={}
    for i in json.load(open(inj)):
        target[i['file']]=tuple(i['window'])
out={'win':[], 'out':[]}
for cat in sorted(os.listdir(res)):
    if not os.path.isdir(f'{res}/{cat}'): continue
    for f in sorted(os.listdir(f'{res}/{cat}')):
        name=f[len('vigil_'):]
        key=f'{cat}/{name}'
        r=list(csv.DictReader(open(f'{res}/{cat}/{f}')))
        lab=[int(x['label']) for x in r]; sc=[float(x['anomaly_score']) for x in r]
        rows=[l.strip().split(',') for l in open(f'{tr}/{cat}__{name}')]
        n=len(rows); prob=int(min(0.15*n,750))
        rel=[x[2]=='true' for x in rows]; hot=[x[3]=='true' for x in rows]; anom=[x[4]=='true' for x in rows]; j=[float(x[5]) for x in rows]
        hi=max(j[:prob]) if prob else 0
        i=prob
        while i<n:
            if rel[i] and not anom[i-1 if i>0 else 0]:
                k=i; peak=0; anyhot=False
                while k<n and (rel[k] or k-i<1):
                    peak=max(peak,j[k]); anyhot|=hot[k]; k+=1
                inw = any(lab[i:k]) if target is None else (target.get(key) and target[key][0]<=i<=target[key][1])
                if target is not None and not inw and any(lab[i:k]): inw=None  # own windows: skip
                if inw is not None:
                    out['win' if inw else 'out'].append((peak/hi if hi>0 else 99, anyhot, key, i))
                hi=max(hi,max(j[i:k])); i=k
            else:
                hi=max(hi,j[i]); i+=1
for side in ('win','out'):
    a=out[side]
    for c in (1.0,1.05,1.1,1.25,1.5,2.0):
        print(side, f'ratio>={c}: runs {sum(1 for x in a if x[0]>=c)} (not hot {sum(1 for x in a if x[0]>=c and not x[1])}) of {len(a)}')
