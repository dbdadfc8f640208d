# Diagnostic (session 31): re-rank each alarm opening of a NAB run by how
# often its file opened alarms before it (NAB's threshold sweep then drops
# the openings of files that alarm often first). The alarms do not change.
# usage: python3 session31_rerank.py RUN OUT none|div|count|extreme A
#        vigil-eval nab --score-only --files tune --nab-dir NAB --results OUT
# div: score / (1 + A x openings per 1,000 rows after the probation so far);
# count: score / (1 + A x openings so far);
# extreme (session 32): score x (0.05 + e)^A, e the value's distance from the
# probationary median as a share of the file's range (NAB's input range).
import csv, glob, os, sys, shutil, subprocess, json, math, statistics
src, dst, mode = sys.argv[1], sys.argv[2], sys.argv[3]
a = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
shutil.rmtree(dst, ignore_errors=True)
for f in glob.glob(f'{src}/vigil/*/*.csv'):
    rows = list(csv.reader(open(f)))
    hdr, body = rows[0], rows[1:]
    n = len(body)
    prob = min(int(0.15 * n), 750)
    prev = 0
    vals = [float(r[1]) for r in body]
    med = statistics.median(vals[:prob])
    span = (max(vals) - min(vals)) or 1.0
    out = []
    for i, r in enumerate(body):
        s = float(r[2])
        if s > 0:
            t = max(i - prob, 1)
            rate = prev / t * 1000  # openings per 1000 rows so far
            if mode == 'div':
                s2 = s / (1 + a * rate)
            elif mode == 'count':
                s2 = s / (1 + a * prev)
            elif mode == 'extreme':
                s2 = s * (0.05 + abs(vals[i] - med) / span) ** a
            else:
                s2 = s
            prev += 1
            r = r[:2] + [f'{s2:.9f}'] + r[3:]
        out.append(r)
    o = os.path.join(dst, os.path.relpath(f, src))
    os.makedirs(os.path.dirname(o), exist_ok=True)
    w = csv.writer(open(o, 'w', newline=''))
    w.writerow(hdr); w.writerows(out)
