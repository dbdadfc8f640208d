# Diagnostic (session 32): re-rank each opening by how extreme its value is
# within the file's NAB input range: e = |v - median(probationary values)| /
# (max - min); score * (0.05 + e)^A. The alarms do not change.
import csv, glob, os, sys, shutil, statistics
src, dst, a = sys.argv[1], sys.argv[2], float(sys.argv[3])
shutil.rmtree(dst, ignore_errors=True)
for f in glob.glob(f'{src}/vigil/*/*.csv'):
    rows = list(csv.reader(open(f)))
    hdr, body = rows[0], rows[1:]
    n = len(body)
    prob = min(int(0.15 * n), 750)
    vals = [float(r[1]) for r in body]
    med = statistics.median(vals[:prob])
    span = (max(vals) - min(vals)) or 1.0
    out = []
    for r in body:
        s = float(r[2])
        if s > 0:
            e = abs(float(r[1]) - med) / span
            r = r[:2] + [f'{s * (0.05 + e) ** a:.9f}'] + r[3:]
        out.append(r)
    o = os.path.join(dst, os.path.relpath(f, src))
    os.makedirs(os.path.dirname(o), exist_ok=True)
    w = csv.writer(open(o, 'w', newline=''))
    w.writerow(hdr); w.writerows(out)
