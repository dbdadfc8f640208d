import json,csv,datetime,math,sys,os
# Diagnostic (session 30): each tuning-half window's NAB standard credit (the
# scaled sigmoid of the first detection's position; -1 a miss) for Vigil at
# its standard threshold and for the published ARTime and numenta results.
# usage: NAB_DIR=DIR python3 session30_timing.py VIGIL_THRESHOLD VIGIL_RESULTS/vigil
nab=os.environ.get('NAB_DIR', '../shared/datasets/nab')
lab=json.load(open(nab+'/labels/combined_windows.json'))
split={}
for l in open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'nab-split.txt')):
    p=l.split()
    if len(p)==2: split[p[1]]=p[0]
def ts(s): return datetime.datetime.fromisoformat(s.strip())
def sig(x): return 2/(1+math.exp(5*x))-1
dets={'vigil':(sys.argv[2],float(sys.argv[1])),'ARTime':(nab+'/results/ARTime',0.317486),'numenta':(nab+'/results/numenta',0.5421876907348634)}
tot={k:0 for k in dets}; fpc={k:0 for k in dets}
for f,wins in sorted(lab.items()):
    if split.get(f)!='tune': continue
    cat,name=f.split('/')
    rows=list(csv.DictReader(open(f'{nab}/data/{f}'))); t=[ts(r['timestamp']) for r in rows]; n=len(t)
    W=[(next(i for i in range(n) if t[i]>=ts(a)), max(i for i in range(n) if t[i]<=ts(b))) for a,b in wins]
    line=[]
    for k,(d,thr) in dets.items():
        sc=[float(r['anomaly_score']) for r in csv.DictReader(open(f'{d}/{cat}/{k}_{name}'))]
        for a,b in W:
            fa=next((i for i in range(a,b+1) if sc[i]>=thr),None)
            if fa is None: line.append(f'{k}:miss'); tot[k]-=1
            else:
                x=-(b-fa)/(b-a+1); s=sig(x); tot[k]+=s; line.append(f'{k}:{s:.2f}')
    print(f'{f:55s}', ' '.join(line))
print(tot)
