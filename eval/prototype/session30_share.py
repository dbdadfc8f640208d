# Diagnostic (session 30): for each detection at the threshold, the share of
# the previous N values at least as extreme (same side of their median);
# first detections in windows (TP) against detections outside them (FP).
# usage: python3 session30_share.py RESULTS/vigil THRESHOLD N
import csv,os,sys,json
res=sys.argv[1]; thr=float(sys.argv[2]); N=int(sys.argv[3])
tp=[];fp=[]
for cat in sorted(os.listdir(res)):
    for f in sorted(os.listdir(f'{res}/{cat}')):
        r=list(csv.DictReader(open(f'{res}/{cat}/{f}')))
        v=[float(x['value']) for x in r]; lab=[int(x['label']) for x in r]
        seen_win=set()
        for i,x in enumerate(r):
            s=float(x['anomaly_score'])
            if s<thr: continue
            past=v[max(0,i-N):i]
            if not past: continue
            # two-sided: share of past at least as extreme in the direction of v vs past median
            med=sorted(past)[len(past)//2]
            if v[i]>=med: sh=sum(1 for p in past if p>=v[i])/len(past)
            else: sh=sum(1 for p in past if p<=v[i])/len(past)
            if lab[i]:
                # first detection in this window: find window id by contiguous label run
                j=i
                while j>0 and lab[j-1]: j-=1
                if j in seen_win: continue
                seen_win.add(j); tp.append((sh,f))
            else: fp.append((sh,f))
import statistics
def q(a,p): a=sorted(a); return a[min(len(a)-1,int(p*len(a)))]
for name,a in (('TP',tp),('FP',fp)):
    s=[x for x,_ in a]
    print(name,len(s),'share quantiles 10/25/50/75/90:',[round(q(s,p),4) for p in (.1,.25,.5,.75,.9)])
for c in (0.0,0.001,0.005,0.01,0.02,0.05):
    print(f'share<={c}: TP {sum(1 for x,_ in tp if x<=c)} FP {sum(1 for x,_ in fp if x<=c)}')
