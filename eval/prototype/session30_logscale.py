# Rewrites a NAB-layout data folder with ln(1 + x/c) where the probationary
# rows are all >= 0 and their skewness >= S (c: median of positive training values).
import csv,sys,os,math
src,dst,S=sys.argv[1],sys.argv[2],float(sys.argv[3])
only_tune = len(sys.argv)>4 and sys.argv[4]=='tune'
split={}
for l in open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'nab-split.txt')):
    p=l.split()
    if len(p)==2: split[p[1]]=p[0]
n_t=0
for cat in sorted(os.listdir(src)):
    for f in sorted(os.listdir(os.path.join(src,cat))):
        key=f'{cat}/{f}'
        base=key.split('__')[0]+('.csv' if '__' in key else '')
        if only_tune and split.get(base)!='tune': continue
        rows=list(csv.reader(open(os.path.join(src,cat,f))))
        head,body=rows[0],rows[1:]
        v=[float(r[1]) for r in body]
        n=len(v); prob=int(min(0.15*n,750)); t=v[:prob]
        m=sum(t)/len(t); sd=(sum((x-m)**2 for x in t)/len(t))**.5
        sk=sum((x-m)**3 for x in t)/len(t)/(sd**3) if sd>0 else 0
        os.makedirs(os.path.join(dst,cat),exist_ok=True)
        apply=min(t)>=0 and sk>=S
        if apply:
            pos=sorted(x for x in t if x>0)
            c=pos[len(pos)//2] if pos else 1.0
            v=[math.log1p(max(x,0)/c) for x in v]
            n_t+=1
        with open(os.path.join(dst,cat,f),'w') as o:
            o.write(','.join(head)+'\n')
            for r,x in zip(body,v): o.write(f'{r[0]},{x!r}\n')
print('transformed',n_t,file=sys.stderr)
