// Vigil dashboard. Plain JavaScript, no dependencies, no build step: the
// binary embeds this file and serves it, so the page works offline.
//
// Views (hash routes): #/ fleet and live anomaly feed, #/device/ID one
// device, #/incidents open and recent incidents with their actions (from
// the audit store), #/models releases and rollout, #/pipeline health. Each view
// reloads its JSON from /api/... every REFRESH_MS; anomalies arrive live
// over server-sent events (/api/events) and are prepended to the feed.
'use strict';

const REFRESH_MS = 2000;
const FEED_MAX = 200;

const $ = (sel, el = document) => el.querySelector(sel);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => (
  { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

async function api(path) {
  const r = await fetch(path, { cache: 'no-store' });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

// ---------------------------------------------------------------- formats
const nf = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const num = (v) => (v == null || Number.isNaN(v) ? '–' : nf.format(v));
const fixed = (v, d = 2) => (v == null ? '–' : Number(v).toFixed(d));
const pct = (v) => (v == null ? '–' : `${(v * 100).toFixed(1)}%`);
// Rates near the 0.1 % a model is calibrated for need two decimals.
const pctFine = (v) => (v == null ? '–' : `${(v * 100).toFixed(2)}%`);
const msv = (v) => (v == null ? '–' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v} ms`);
const pad2 = (n) => String(n).padStart(2, '0');
function clock(ts) {
  const d = new Date(ts);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}
function date(ts) {
  if (!ts) return '–';
  const d = new Date(ts);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${clock(ts)}`;
}
function ago(ts, now = Date.now()) {
  if (!ts) return '–';
  const s = Math.max(0, Math.round((now - ts) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}
const version = (v) => (v == null ? 'none' : `v${v}`);
const pill = (status) => `<span class="pill ${esc(status)}">${esc(status)}</span>`;
const where = (at) => (at ? `<span class="tag ${esc(at)}">${esc(at)}</span>` : '<span class="muted">–</span>');
const deviceLink = (id) => `<a href="#/device/${encodeURIComponent(id)}">${esc(id)}</a>`;

// ----------------------------------------------------------------- charts
// Hand-drawn SVG: a line chart with axes, and a bare sparkline.

function niceTicks(min, max, count) {
  const span = max - min || 1;
  const step0 = span / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
  const ticks = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(+t.toFixed(10));
  return ticks;
}

// opts: width, height, series [{points [[x, y]], color, dash, step, fill, width}],
// markers [{x, y, color, title}], vlines [{x, color}], yMin, yMax, xFmt, yFmt, id, label
function lineChart(opts) {
  const W = Math.max(200, opts.width || 600);
  const H = opts.height || 200;
  const P = { l: 44, r: 10, t: 8, b: 22 };
  const all = opts.series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]).filter((y) => y != null && Number.isFinite(y));
  let x0 = opts.xMin ?? Math.min(...xs);
  let x1 = opts.xMax ?? Math.max(...xs);
  if (!Number.isFinite(x0) || !Number.isFinite(x1)) { x0 = 0; x1 = 1; }
  if (x1 === x0) x1 = x0 + 1;
  let y0 = opts.yMin ?? Math.min(0, ...ys);
  let y1 = opts.yMax ?? Math.max(...ys, y0);
  // Nothing above the floor (no data, or all zeros): a unit range, not a
  // degenerate one.
  if (y1 <= y0) y1 = y0 + 1;
  else if (opts.yMax == null) y1 += (y1 - y0) * 0.08;
  const sx = (x) => P.l + ((x - x0) / (x1 - x0)) * (W - P.l - P.r);
  const sy = (y) => P.t + (1 - (y - y0) / (y1 - y0)) * (H - P.t - P.b);
  const yFmt = opts.yFmt || ((v) => num(v));
  const xFmt = opts.xFmt || ((v) => clock(v));
  let g = '';
  for (const t of niceTicks(y0, y1, 4)) {
    g += `<line x1="${P.l}" x2="${W - P.r}" y1="${sy(t)}" y2="${sy(t)}" stroke="var(--grid)"/>`;
    g += `<text x="${P.l - 6}" y="${sy(t) + 4}" text-anchor="end">${esc(yFmt(t))}</text>`;
  }
  const xt = Math.max(2, Math.min(6, Math.floor((W - P.l) / 110)));
  for (let i = 0; i <= xt; i++) {
    const x = x0 + ((x1 - x0) * i) / xt;
    const anchor = i === 0 ? 'start' : i === xt ? 'end' : 'middle';
    g += `<text x="${sx(x)}" y="${H - 5}" text-anchor="${anchor}">${esc(xFmt(x))}</text>`;
  }
  g += `<line x1="${P.l}" x2="${W - P.r}" y1="${H - P.b}" y2="${H - P.b}" stroke="var(--line)"/>`;
  for (const v of opts.vlines || []) {
    g += `<line x1="${sx(v.x)}" x2="${sx(v.x)}" y1="${P.t}" y2="${H - P.b}" stroke="${v.color}" stroke-opacity=".25"/>`;
  }
  for (const s of opts.series) {
    // Gaps (null values) break the line; a point with no neighbour is a dot.
    const runs = [];
    let run = [];
    for (const p of s.points) {
      if (p[1] != null && Number.isFinite(p[1])) run.push(p);
      else if (run.length) { runs.push(run); run = []; }
    }
    if (run.length) runs.push(run);
    for (const pts of runs) {
      if (pts.length === 1) {
        g += `<circle cx="${sx(pts[0][0])}" cy="${sy(pts[0][1])}" r="2.5" fill="${s.color}"/>`;
        continue;
      }
      let d = `M${sx(pts[0][0]).toFixed(1)},${sy(pts[0][1]).toFixed(1)}`;
      for (let i = 1; i < pts.length; i++) {
        const [x, y] = pts[i];
        d += s.step ? `H${sx(x).toFixed(1)}V${sy(y).toFixed(1)}` : `L${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
      }
      if (s.fill) {
        const base = sy(Math.max(y0, 0));
        g += `<path d="${d}V${base}H${sx(pts[0][0]).toFixed(1)}Z" fill="${s.color}" fill-opacity=".12" stroke="none"/>`;
      }
      g += `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width || 1.8}"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''} stroke-linejoin="round" stroke-linecap="round"/>`;
    }
  }
  for (const m of opts.markers || []) {
    g += `<circle cx="${sx(m.x)}" cy="${sy(m.y)}" r="${m.r || 4}" fill="${m.color}" stroke="var(--panel)" stroke-width="1.5" class="marker"><title>${esc(m.title || '')}</title></circle>`;
  }
  const id = opts.id ? ` id="${esc(opts.id)}"` : '';
  const data = ` data-points="${all.length}"`;
  const label = esc(opts.label || 'chart');
  return `<svg${id}${data} role="img" aria-label="${label}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}">${g}</svg>`;
}

function sparkline(values, { width = 140, height = 30, color = 'var(--accent)' } = {}) {
  const v = values.filter((x) => x != null && Number.isFinite(x));
  if (v.length < 2) return `<svg width="${width}" height="${height}"></svg>`;
  const lo = Math.min(...v, 0);
  const hi = Math.max(...v, lo + 1e-9);
  const sx = (i) => (i / (values.length - 1)) * (width - 2) + 1;
  const sy = (y) => height - 2 - ((y - lo) / (hi - lo)) * (height - 4);
  let d = '';
  values.forEach((y, i) => {
    if (y == null) return;
    d += `${d ? 'L' : 'M'}${sx(i).toFixed(1)},${sy(y).toFixed(1)}`;
  });
  return `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`
    + `<path d="${d}V${height}H1Z" fill="${color}" fill-opacity=".12"/>`
    + `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"/></svg>`;
}

// Charts are drawn after the HTML is in place, at their container's width.
let pendingCharts = [];
function chart(build) {
  const key = `c${pendingCharts.length}`;
  pendingCharts.push([key, build]);
  return `<div class="chart" data-chart="${key}"></div>`;
}
function drawCharts(root) {
  for (const [key, build] of pendingCharts) {
    const el = root.querySelector(`[data-chart="${key}"]`);
    if (el) el.innerHTML = build(el.clientWidth);
  }
  pendingCharts = [];
}

// ------------------------------------------------------------- live feed
const feed = { items: [], keys: new Set(), freshUntil: new Map() };
const FRESH_MS = 2400;
const keyOf = (a) => `${a.device_id}/${a.seq}/${a.model_version}`;

function feedItem(a, fresh) {
  const top = (a.contributions || []).slice(0, 2)
    .map((c) => `${esc(c.metric)} ${Math.round(c.share * 100)}%`).join(' · ');
  return `<li class="${fresh || (feed.freshUntil.get(keyOf(a)) || 0) > Date.now() ? 'fresh' : ''}" data-device="${esc(a.device_id)}" data-seq="${a.seq}">
    <span class="dot"></span>
    <span class="what">${deviceLink(a.device_id)} <span class="muted">${a.alarm_id ? 'alarm opened at ' : ''}#${a.seq}</span>
      score <b>${fixed(a.score)}</b> <span class="muted">≥ ${fixed(a.threshold)}</span></span>
    <span class="when" data-ts="${a.event_ts}">${ago(a.event_ts)}</span>
    <span class="why">${top || 'no contributions'} · ${version(a.model_version)} ${where(a.scored_at)}</span>
  </li>`;
}

function addToFeed(a) {
  const k = keyOf(a);
  if (feed.keys.has(k)) return false;
  feed.keys.add(k);
  feed.items.unshift(a);
  feed.items.sort((x, y) => y.event_ts - x.event_ts || y.seq - x.seq);
  while (feed.items.length > FEED_MAX) feed.keys.delete(keyOf(feed.items.pop()));
  return true;
}

function renderFeedList() {
  const ul = $('#feed');
  if (!ul) return;
  ul.innerHTML = feed.items.length
    ? feed.items.map((a) => feedItem(a, false)).join('')
    : '<li class="empty">No anomalies yet. New ones appear here as they are scored.</li>';
  $('#feed-count').textContent = feed.items.length;
}

function onAnomaly(a) {
  if (!addToFeed(a)) return;
  feed.freshUntil.set(keyOf(a), Date.now() + FRESH_MS);
  for (const [k, t] of feed.freshUntil) if (t < Date.now()) feed.freshUntil.delete(k);
  const ul = $('#feed');
  if (ul) {
    const empty = ul.querySelector('.empty');
    if (empty) empty.remove();
    ul.insertAdjacentHTML('afterbegin', feedItem(a, true));
    while (ul.children.length > FEED_MAX) ul.lastElementChild.remove();
    $('#feed-count').textContent = feed.items.length;
  }
  const row = document.querySelector(`tr[data-device="${CSS.escape(a.device_id)}"] td.status`);
  if (row) row.innerHTML = pill('anomalous');
  // Counts and the device's row follow on the next reload; do it now.
  if (route.name === 'fleet' || (route.name === 'device' && route.id === a.device_id)) refresh();
}

// ----------------------------------------------------------------- views
let route = { name: 'fleet' };
let loading = false;

function parseRoute() {
  const h = location.hash.replace(/^#\/?/, '');
  if (h.startsWith('device/')) return { name: 'device', id: decodeURIComponent(h.slice(7)) };
  if (h === 'incidents') return { name: 'incidents' };
  if (h === 'models') return { name: 'models' };
  if (h === 'pipeline') return { name: 'pipeline' };
  return { name: 'fleet' };
}

function kpi(label, value, extra = '', cls = '') {
  return `<div class="kpi ${cls}"><div class="label">${esc(label)}</div><div class="value">${value}</div>${extra}</div>`;
}

async function viewFleet(view, first) {
  const [o, p, a, inc] = await Promise.all([
    api('/api/overview?limit=500'), api('/api/pipeline'),
    first ? api('/api/anomalies?limit=200') : Promise.resolve([]),
    // The count only; the Fleet page still shows when the store fails.
    api('/api/incidents?state=open&limit=0').catch(() => null),
  ]);
  for (const x of a.slice().reverse()) addToFeed(x);
  const c = o.counts;
  const series = p.series.slice(-60);
  const rows = o.devices.map((d) => `
    <tr class="row" data-device="${esc(d.device_id)}">
      <td>${deviceLink(d.device_id)}</td>
      <td class="status">${pill(d.status)}</td>
      <td class="muted" data-ts="${d.last_seen_ms}">${ago(d.last_seen_ms, o.now_ms)}</td>
      <td>${d.model ? `${esc(d.model)} <b>${version(d.model_version)}</b>` : '<span class="muted">–</span>'}</td>
      <td>${where(d.scored_at)}</td>
      <td class="num">${d.score == null ? '–' : `<div class="bar ${d.score >= d.threshold ? 'bad' : ''}" title="${fixed(d.score)} / threshold ${fixed(d.threshold)}"><span style="width:${Math.min(100, (d.score / Math.max(d.threshold, 1e-9)) * 70)}%"></span></div>`}</td>
      <td class="num">${num(d.verdicts)}</td>
      <td class="num">${d.anomalies ? `<b class="err">${num(d.anomalies)}</b>` : '0'}</td>
    </tr>`).join('');
  const scrollTop = $('#fleet-scroll')?.scrollTop || 0;
  view.innerHTML = `
    <h1>Fleet</h1>
    <p class="sub">${num(c.total)} devices · ${num(c.cloud)} scored in the cloud · ${num(c.edge)} at the edge${o.omitted ? ` · ${num(o.omitted)} more not listed` : ''}</p>
    <div class="kpis">
      ${kpi('Devices', num(c.total), `<div class="muted">${num(c.ok)} ok · ${num(c.stale)} stale · ${num(c.offline)} offline</div>`)}
      ${kpi('Anomalous now', num(c.anomalous), '', c.anomalous ? 'bad' : '')}
      ${openIncidentsKpi(inc)}
      ${kpi('Verdicts / s', num(p.verdicts_per_sec), sparkline(series.map((s) => s.verdicts)))}
      ${kpi('Anomalies / s', num(p.anomalies_per_sec), sparkline(series.map((s) => s.anomalies), { color: 'var(--bad)' }))}
      ${kpi('Event → verdict p99', msv(p.e2e_latency_ms.p99), sparkline(series.map((s) => s.e2e_p99_ms), { color: 'var(--threshold)' }))}
    </div>
    <div class="grid cols-2">
      <section class="panel">
        <h2>Devices</h2>
        <div class="scroll" id="fleet-scroll">
        ${o.devices.length ? `<table id="devices">
          <thead><tr><th>Device</th><th>Status</th><th>Last seen</th><th>Model</th><th>Scored</th><th class="num">Score</th><th class="num">Verdicts</th><th class="num">Anomalies</th></tr></thead>
          <tbody>${rows}</tbody></table>` : '<div class="empty">No devices seen yet.</div>'}
        </div>
      </section>
      <section class="panel">
        <h2>Live anomalies <span class="muted">(<span id="feed-count">0</span>)</span></h2>
        <ul class="feed" id="feed"></ul>
      </section>
    </div>`;
  $('#fleet-scroll').scrollTop = scrollTop;
  renderFeedList();
  view.querySelectorAll('tr.row').forEach((tr) => tr.addEventListener('click', (e) => {
    if (e.target.closest('a')) return;
    location.hash = `#/device/${encodeURIComponent(tr.dataset.device)}`;
  }));
}

async function viewDevice(view, id) {
  let d;
  const incidents = api(`/api/incidents?device=${encodeURIComponent(id)}&limit=50`).catch((e) => ({ error: e.message }));
  try {
    d = await api(`/api/devices/${encodeURIComponent(id)}`);
  } catch (e) {
    view.innerHTML = `<div class="crumbs"><a href="#/">Fleet</a> / ${esc(id)}</div>
      <div class="panel empty">Device ${esc(id)} is not known yet: no record of it has been seen.</div>`;
    return;
  }
  const pts = d.points;
  const anomalies = pts.filter((p) => p.anomaly);
  const scoreChart = (w) => lineChart({
    width: w, height: 240, id: 'score-chart', label: `score and threshold of ${id}`,
    yMin: 0, yMax: Math.max(1, ...pts.map((p) => p.threshold)),
    yFmt: (v) => String(+v.toFixed(2)),
    series: [
      { points: pts.map((p) => [p.ts, p.score]), color: 'var(--score)', fill: true },
      { points: pts.map((p) => [p.ts, p.threshold]), color: 'var(--threshold)', dash: '5 4', step: true, width: 1.5 },
    ],
    markers: anomalies.map((p) => ({
      x: p.ts, y: p.score, color: 'var(--bad)',
      title: `#${p.seq} score ${fixed(p.score)} ≥ ${fixed(p.threshold)} (${version(p.model_version)})`,
    })),
  });
  const metrics = Object.entries(d.telemetry);
  // Telemetry charts share one time axis (the samples kept, usually fewer
  // than the verdicts) with the anomalies in it marked.
  const times = metrics.flatMap(([, s]) => s.map((x) => x[0]));
  const tMin = Math.min(...times);
  const tMax = Math.max(...times);
  const marks = anomalies.filter((p) => p.ts >= tMin && p.ts <= tMax)
    .map((p) => ({ x: p.ts, color: 'var(--bad)' }));
  const metricCards = metrics.map(([name, s]) => {
    const last = s[s.length - 1];
    return `<div class="metric"><div class="head"><b title="${esc(name)}">${esc(name)}</b><span>${last ? num(last[1]) : '–'}</span></div>
      ${chart((w) => lineChart({
      width: w, height: 90, label: name, xMin: tMin, xMax: tMax,
      series: [{ points: s, color: 'var(--accent)', width: 1.5 }], vlines: marks,
    }))}</div>`;
  }).join('');
  const shares = d.contributions.map((c) => `<div class="item"><span class="name" title="${esc(c.metric)}">${esc(c.metric)}</span>
      <div class="bar bad"><span style="width:${(c.share * 100).toFixed(1)}%"></span></div><span class="num">${pct(c.share)}</span></div>`).join('');
  const recent = d.anomalies_recent.map((a) => `<tr><td class="muted">${clock(a.event_ts)}</td><td>#${a.seq}</td>
      <td class="num"><b class="err">${fixed(a.score)}</b></td><td class="num">${fixed(a.threshold)}</td><td>${version(a.model_version)} ${where(a.scored_at)}</td>
      <td>${esc((a.contributions || []).slice(0, 3).map((c) => `${c.metric} ${Math.round(c.share * 100)}%`).join(', '))}</td></tr>`).join('');
  const st = d.device_status;
  view.innerHTML = `
    <div class="crumbs"><a href="#/">Fleet</a> / ${esc(id)}</div>
    <h1 id="device-title">${esc(id)} ${pill(d.status)} ${where(d.scored_at)}</h1>
    <div class="facts">
      <span>model <b>${esc(d.model || '–')} ${version(d.model_version)}</b></span>
      <span>last seen <b data-ts="${d.last_seen_ms}">${ago(d.last_seen_ms)}</b></span>
      <span>latest score <b>${fixed(d.score)}</b> / threshold <b>${fixed(d.threshold)}</b></span>
      <span>verdicts <b>${num(d.verdicts)}</b></span><span>anomalies <b>${num(d.anomalies)}</b></span>
      ${st ? `<span>agent <b>${esc(st.agent_version || '?')}</b> ${esc(st.state)}</span><span>buffered <b>${num(st.buffered_records)}</b> records</span><span>dropped <b>${num(st.dropped_records)}</b></span>` : ''}
    </div>
    <section class="panel">
      <h2>Score vs threshold</h2>
      ${pts.length ? chart(scoreChart) : '<div class="empty">No verdicts for this device yet.</div>'}
      <div class="legend"><span><i style="background:var(--score)"></i>score</span>
        <span><i style="background:var(--threshold)"></i>threshold</span>
        <span><i style="background:var(--bad);height:8px;width:8px;border-radius:50%"></i>anomaly</span>
        <span>${pts.length} most recent verdicts</span></div>
    </section>
    <div class="grid cols-2e" style="margin-top:16px">
      <section class="panel"><h2>Contributing metrics</h2>
        <div class="bars">${shares || '<div class="empty">No anomalies, so nothing to attribute.</div>'}</div></section>
      <section class="panel"><h2>Recent anomalies</h2>
        ${recent ? `<div class="scroll" style="max-height:260px"><table><thead><tr><th>Time</th><th>Seq</th><th class="num">Score</th><th class="num">Thr.</th><th>Model</th><th>Top metrics</th></tr></thead><tbody>${recent}</tbody></table></div>` : '<div class="empty">None.</div>'}</section>
    </div>
    <section class="panel" style="margin-top:16px"><h2>Incidents</h2>
      ${incidentPanel(await incidents, 'device-incidents', `No incident on ${esc(id)} in the last 7 days.`)}
    </section>
    <section class="panel" style="margin-top:16px"><h2>Telemetry</h2>
      ${metrics.length ? `<div class="metrics">${metricCards}</div>` : '<div class="empty">No telemetry read for this device (is --read-telemetry on?).</div>'}
    </section>`;
  bindIncidentRows(view);
}

// -------------------------------------------------------------- incidents
// Incidents as they stand (each one's latest event), from the audit store
// through /api/incidents. A row opens its timeline (alarms, actions and
// their results, resolution); which rows are open survives the refreshes.
const expanded = new Set();
const NO_STORE = 'Incidents are read from the audit store: start the dashboard with --audit-store (VIGIL_AUDIT_STORE).';

function openIncidentsKpi(inc) {
  if (!inc) return kpi('Open incidents', '–', '<div class="muted">audit store not answering</div>');
  if (!inc.available) return kpi('Open incidents', '–', '<div class="muted">no audit store</div>');
  const n = `${num(inc.open)}${inc.open_capped ? '+' : ''}`;
  return kpi('Open incidents', `<a id="open-incidents" href="#/incidents" data-open="${inc.open}">${n}</a>`,
    '<div class="muted">last 7 days</div>', inc.open ? 'bad' : '');
}

const ACT_GOOD = new Set(['succeeded', 'delivered', 'sent']);
const ACT_BAD = new Set(['failed', 'refused', 'timed_out', 'dead_lettered', 'interrupted']);
const actPill = (status) => `<span class="pill act-${ACT_GOOD.has(status) ? 'good' : ACT_BAD.has(status) ? 'bad' : 'other'}">${esc(status.replace('_', ' '))}</span>`;
const sevPill = (sev) => `<span class="pill sev-${esc(sev)}">${esc(sev)}</span>`;
const statePill = (i) => `<span class="pill ${i.state === 'resolved' ? 'resolved' : 'open'}">${i.state === 'resolved' ? 'resolved' : 'open'}</span>`;
const duration = (ms) => (ms < 60000 ? `${Math.round(ms / 1000)} s` : ms < 3600000 ? `${Math.round(ms / 60000)} min` : `${(ms / 3600000).toFixed(1)} h`);

function resultText(r) {
  if (!r) return '';
  const exit = r.exit_status != null ? `exit ${r.exit_status}, ` : '';
  return `${esc(r.status)} (${exit}${msv(r.duration_ms)})${r.detail ? ` · ${esc(r.detail)}` : ''}`;
}

function actionsCell(i) {
  if (!i.actions.length) return '<span class="muted">none</span>';
  return i.actions.map((a) => `<div class="act" data-action="${esc(a.id)}" data-status="${esc(a.status)}" title="rule ${esc(a.rule)}">${esc(a.kind)} ${esc(a.target)}
    ${actPill(a.status)}${a.result ? ` <span class="muted">${a.result.exit_status != null ? `exit ${a.result.exit_status}` : esc(a.result.status)}</span>` : ''}</div>`).join('');
}

function timeline(i) {
  const steps = [[i.opened_ts, `opened on record #${i.first_seq} (alarm ${esc(i.alarms[0] || '–')})`]];
  for (const alarm of i.alarms.slice(1)) steps.push([null, `alarm ${esc(alarm)} joined it`]);
  for (const a of i.actions) {
    steps.push([a.ts, `${esc(a.kind)} <b>${esc(a.rule)}</b> → ${esc(a.target)}: ${actPill(a.status)}${a.attempts > 1 ? ` after ${a.attempts} attempts` : ''}${a.detail ? ` <span class="muted">${esc(a.detail)}</span>` : ''}`]);
    if (a.result) steps.push([a.result.ts, `result of <b>${esc(a.rule)}</b>: ${resultText(a.result)}`]);
  }
  if (i.closed_ts) steps.push([i.closed_ts, `alarm closed on record #${i.closed_seq}`]);
  if (i.resolved_ts) steps.push([i.resolved_ts, 'resolved']);
  else if (i.state !== 'resolved') steps.push([i.ts, `still open (latest event: ${esc(i.reason || i.state)}, revision ${i.revision})`]);
  return `<ol class="timeline">${steps.map(([ts, what]) => `<li><span class="muted">${ts ? date(ts) : ''}</span> ${what}</li>`).join('')}</ol>`;
}

function incidentRows(items) {
  const now = Date.now();
  return items.map((i) => {
    const models = (i.models || []).map((m) => `${esc(m.model)} ${version(m.version)}`).join(', ') || `${esc(i.model)} ${version(i.model_version)}`;
    const top = (i.top_metrics || []).slice(0, 3).map((c) => `${esc(c.metric)} ${Math.round(c.share * 100)}%`).join(', ');
    const open = expanded.has(i.incident_id);
    return `<tr class="row incident" data-incident="${esc(i.incident_id)}" data-state="${esc(i.state)}">
      <td class="mono">${esc(i.incident_id)}</td>
      <td>${deviceLink(i.device_id)} ${(i.scored_at || []).map(where).join(' ')}</td>
      <td>${statePill(i)}</td>
      <td>${sevPill(i.severity)}</td>
      <td class="muted">${date(i.opened_ts)}</td>
      <td class="muted" title="${esc(date(i.ts))}">${ago(i.ts, now)}</td>
      <td class="muted">${i.resolved_ts ? date(i.resolved_ts) : '–'}</td>
      <td class="num">${duration(Math.max(i.last_ts, i.closed_ts || 0) - i.opened_ts)}</td>
      <td class="num">${num(i.anomalies)} <span class="muted">max ${fixed(i.max_score)}</span></td>
      <td>${models}</td>
      <td>${top || '<span class="muted">–</span>'}</td>
      <td class="actions">${actionsCell(i)}</td>
    </tr>${open ? `<tr class="detail" data-timeline="${esc(i.incident_id)}"><td colspan="12">${timeline(i)}</td></tr>` : ''}`;
  }).join('');
}

function incidentTable(items, id) {
  return `<div class="scroll"><table id="${id}" class="incidents"><thead><tr><th>Incident</th><th>Device</th><th>State</th><th>Severity</th>
    <th>Opened</th><th>Updated</th><th>Resolved</th><th class="num">Duration</th><th class="num">Anomalies</th><th>Models</th><th>Top metrics</th><th>Actions → results</th></tr></thead>
    <tbody>${incidentRows(items)}</tbody></table></div>`;
}

// The panel for an /api/incidents answer (or {error}).
function incidentPanel(inc, id, none) {
  if (inc.error) return `<div class="empty err">Cannot read incidents: ${esc(inc.error)}</div>`;
  if (!inc.available) return `<div class="empty">${NO_STORE}</div>`;
  return inc.items.length ? incidentTable(inc.items, id) : `<div class="empty">${none}</div>`;
}

function bindIncidentRows(view) {
  view.querySelectorAll('tr.incident').forEach((tr) => tr.addEventListener('click', (e) => {
    if (e.target.closest('a')) return;
    const id = tr.dataset.incident;
    if (expanded.has(id)) expanded.delete(id); else expanded.add(id);
    refresh();
  }));
}

async function viewIncidents(view) {
  const inc = await api('/api/incidents?limit=200');
  const items = inc.items || [];
  const open = items.filter((i) => i.state !== 'resolved');
  const resolved = items.filter((i) => i.state === 'resolved');
  const actions = items.flatMap((i) => i.actions);
  const count = (pred) => actions.filter(pred).length;
  const commands = actions.filter((a) => a.kind === 'command');
  const byStatus = {};
  for (const a of commands) byStatus[a.status] = (byStatus[a.status] || 0) + 1;
  const scrollTop = view.querySelector('.scroll')?.scrollTop || 0;
  view.innerHTML = `<h1>Incidents</h1>
    <p class="sub">Alarms grouped per device by <code>vigil actions</code>, as the audit store holds them (last 7 days, most recently active first); click one for its timeline.</p>
    ${inc.available ? `<div class="kpis">
      ${kpi('Open', `${num(inc.open)}${inc.open_capped ? '+' : ''}`, '', inc.open ? 'bad' : '')}
      ${kpi('Resolved (listed)', num(resolved.length))}
      ${kpi('Commands', num(commands.length), `<div class="muted" id="command-results">${Object.entries(byStatus).map(([s, n]) => `${esc(s.replace('_', ' '))} ${n}`).join(' · ') || 'none sent'}</div>`)}
      ${kpi('Webhooks delivered', num(count((a) => a.kind === 'webhook' && a.status === 'delivered')), `<div class="muted">${num(count((a) => a.status === 'dead_lettered'))} dead-lettered</div>`)}
    </div>` : ''}
    <section class="panel"><h2>Open <span class="muted">(${open.length})</span></h2>
      ${incidentPanel({ ...inc, items: open }, 'open-incidents-table', 'No open incident.')}</section>
    <section class="panel" style="margin-top:16px"><h2>Recently resolved <span class="muted">(${resolved.length})</span></h2>
      ${incidentPanel({ ...inc, items: resolved }, 'resolved-incidents-table', 'No incident resolved in the last 7 days.')}</section>`;
  const scroll = view.querySelector('.scroll');
  if (scroll) scroll.scrollTop = scrollTop;
  bindIncidentRows(view);
}

async function viewModels(view) {
  const rows = await api('/api/models');
  const maxDevices = Math.max(1, ...rows.map((r) => r.rollout.cloud_devices + r.rollout.edge_devices));
  const body = rows.map((r) => {
    const rel = r.release || {};
    const tr = rel.training; const v = rel.validation; const ro = r.rollout;
    const cw = (ro.cloud_devices / maxDevices) * 100; const ew = (ro.edge_devices / maxDevices) * 100;
    return `<tr data-model="${esc(r.model)}" data-version="${r.version ?? ''}">
      <td><b>${esc(r.model)}</b> ${version(r.version)}</td>
      <td class="muted">${rel.created_ts ? date(rel.created_ts) : '–'}</td>
      <td class="muted">${rel.published_ts ? ago(rel.published_ts) : '–'}</td>
      <td class="num">${fixed(rel.threshold, 3)}</td>
      <td>${tr ? `${num(tr.records)} records · ${num(tr.devices)} devices<br><span class="muted">${esc(tr.source)}</span>` : '<span class="muted">release not on the log</span>'}</td>
      <td>${v ? `${v.expected_false_alarm_rate != null ? `false alarms expected <b>${pctFine(v.expected_false_alarm_rate)}</b>${v.estimated_false_alarm_rate != null ? ` · validated <b>${pctFine(v.estimated_false_alarm_rate)}</b>` : ''}<br><span class="muted">holdout records flagged ${pct(v.false_alarm_rate)} (anomalies included)</span>` : `false alarms <b>${pct(v.false_alarm_rate)}</b>`}${v.detection_rate != null ? ` · detection <b>${pct(v.detection_rate)}</b>` : ''}<br><span class="muted">${num(v.holdout_records)} holdout records</span>` : '–'}</td>
      <td style="min-width:180px"><div class="bar" style="height:10px"><span style="width:${cw}%;background:var(--cloud)"></span><span style="left:${cw}%;width:${ew}%;background:var(--edge)"></span></div>
        <span class="muted">${ro.cloud_devices} cloud · ${ro.edge_devices} edge devices · ${ro.cloud_partitions} scorer partitions</span></td>
      <td class="mono muted" title="${esc(rel.payload_sha256 || '')}">${esc(rel.key_id || '')}${rel.payload_sha256 ? ` · ${esc(rel.payload_sha256.slice(0, 10))}…` : ''}</td>
    </tr>`;
  }).join('');
  view.innerHTML = `<h1>Models</h1>
    <p class="sub">Releases read from the model log, with their provenance, the holdout results they were gated on, and where each version runs now.</p>
    <section class="panel">${rows.length ? `<div class="scroll"><table id="models"><thead><tr><th>Version</th><th>Trained</th><th>Published</th><th class="num">Threshold</th><th>Training data</th><th>Validation</th><th>Rollout</th><th>Signed by</th></tr></thead><tbody>${body}</tbody></table></div>` : '<div class="empty">No model release published yet.</div>'}
    <div class="legend"><span><i style="background:var(--cloud)"></i>devices scored in the cloud</span><span><i style="background:var(--edge)"></i>edge agents running it</span></div></section>`;
}

async function viewPipeline(view) {
  const p = await api('/api/pipeline');
  const s = p.series;
  const x = (i) => s[i].second * 1000;
  const thr = (w) => lineChart({
    width: w, height: 180, label: 'throughput',
    series: [
      { points: s.map((e, i) => [x(i), e.telemetry]), color: 'var(--accent)', fill: true },
      { points: s.map((e, i) => [x(i), e.verdicts]), color: 'var(--score)' },
      { points: s.map((e, i) => [x(i), e.anomalies]), color: 'var(--bad)' },
      { points: s.map((e, i) => [x(i), e.dlq]), color: 'var(--warn)', dash: '3 3' },
    ],
  });
  const lat = (w) => lineChart({
    width: w, height: 180, label: 'latency', yFmt: (v) => `${num(v)}`,
    series: [
      { points: s.map((e, i) => [x(i), e.e2e_p50_ms]), color: 'var(--score)' },
      { points: s.map((e, i) => [x(i), e.e2e_p99_ms]), color: 'var(--threshold)' },
    ],
  });
  const lagRows = p.log.groups.map((g) => {
    const topics = g.topics.map((t) => `${esc(t.topic)} <b>${num(t.lag)}</b>`).join(' · ');
    return `<tr><td><b>${esc(g.group)}</b></td><td class="num">${g.members ?? '–'}</td>
      <td class="num"><b class="${g.total > 1000 ? 'err' : ''}">${num(g.total)}</b></td>
      <td>${g.error ? `<span class="err">${esc(g.error)}</span>` : topics || '<span class="muted">no committed offsets</span>'}</td></tr>`;
  }).join('');
  const dlqRows = p.dlq.map((d) => `<tr><td>${esc(d.service)}</td><td><b>${esc(d.reason)}</b></td><td class="num">${num(d.count)}</td>
      <td class="muted" style="white-space:normal">${esc(d.last_detail)}</td><td class="muted">${ago(d.last_ts)}</td></tr>`).join('');
  const errors = Object.entries(p.decode_errors);
  const read = Object.entries(p.records_read).map(([k, v]) => `${esc(k)} <b>${num(v)}</b>`).join(' · ');
  view.innerHTML = `<h1>Pipeline health</h1>
    <p class="sub">From the verdicts' own timestamps (event, ingest, scored) over the last ${s.length} s, and the consumer groups' committed offsets ${p.log.measured_ms ? `(measured ${ago(p.log.measured_ms)})` : '(not measured yet)'}.</p>
    <div class="kpis">
      ${kpi('Telemetry / s', num(p.telemetry_per_sec))}
      ${kpi('Verdicts / s', num(p.verdicts_per_sec))}
      ${kpi('Anomalies / s', num(p.anomalies_per_sec))}
      ${kpi('Event → verdict', msv(p.e2e_latency_ms.p50), `<div class="muted">p90 ${msv(p.e2e_latency_ms.p90)} · p99 ${msv(p.e2e_latency_ms.p99)}</div>`)}
      ${kpi('Event → ingest', msv(p.ingest_latency_ms.p50), `<div class="muted">p99 ${msv(p.ingest_latency_ms.p99)} · max ${msv(p.ingest_latency_ms.max)}</div>`)}
      ${kpi('Ingest → verdict', msv(p.scoring_latency_ms.p50), `<div class="muted">p99 ${msv(p.scoring_latency_ms.p99)} · max ${msv(p.scoring_latency_ms.max)}</div>`)}
      ${kpi('DLQ retained', num(p.log.dlq_retained), `<div class="muted">${num(p.dlq_read)} read</div>`, p.log.dlq_retained ? 'bad' : '')}
    </div>
    <div class="grid cols-2e">
      <section class="panel"><h2>Throughput (records / s)</h2>${chart(thr)}
        <div class="legend"><span><i style="background:var(--accent)"></i>telemetry</span><span><i style="background:var(--score)"></i>verdicts</span><span><i style="background:var(--bad)"></i>anomalies</span><span><i style="background:var(--warn)"></i>DLQ</span></div></section>
      <section class="panel"><h2>Event → verdict latency (ms)</h2>${chart(lat)}
        <div class="legend"><span><i style="background:var(--score)"></i>p50</span><span><i style="background:var(--threshold)"></i>p99</span></div></section>
    </div>
    <div class="grid cols-2e" style="margin-top:16px">
      <section class="panel"><h2>Consumer lag</h2>
        ${lagRows ? `<table id="lag"><thead><tr><th>Group</th><th class="num">Members</th><th class="num">Lag</th><th>Per topic</th></tr></thead><tbody>${lagRows}</tbody></table>` : '<div class="empty">Not measured yet.</div>'}</section>
      <section class="panel"><h2>Dead-letter queue</h2>
        ${dlqRows ? `<div class="scroll" style="max-height:300px"><table id="dlq"><thead><tr><th>Service</th><th>Reason</th><th class="num">Count</th><th>Latest</th><th>When</th></tr></thead><tbody>${dlqRows}</tbody></table></div>` : '<div class="empty">Nothing rejected.</div>'}</section>
    </div>
    <section class="panel" style="margin-top:16px"><h2>Dashboard reader</h2>
      <div>records read: ${read || '–'}</div>
      <div>${errors.length ? `<span class="err">decode errors: ${errors.map(([t, n]) => `${esc(t)} ${num(n)}`).join(' · ')}</span><br><span class="muted">${esc(p.last_decode_error)}</span>` : '<span class="muted">no decode errors</span>'}</div>
    </section>`;
}

async function refresh(first = false) {
  if (loading) return;
  loading = true;
  const view = $('#view');
  try {
    pendingCharts = [];
    if (route.name === 'fleet') await viewFleet(view, first);
    else if (route.name === 'device') await viewDevice(view, route.id);
    else if (route.name === 'incidents') await viewIncidents(view);
    else if (route.name === 'models') await viewModels(view);
    else await viewPipeline(view);
    drawCharts(view);
    document.body.dataset.view = route.name;
  } catch (e) {
    view.insertAdjacentHTML('afterbegin', `<div class="panel err">Cannot load: ${esc(e.message)}</div>`);
  } finally {
    loading = false;
  }
}

function navigate() {
  route = parseRoute();
  document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active',
    a.dataset.nav === (route.name === 'device' ? 'fleet' : route.name)));
  $('#view').innerHTML = '<div class="empty">Loading…</div>';
  window.scrollTo(0, 0);
  refresh(true);
}

function toast(text) {
  const t = $('#toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

function connect() {
  const live = $('#live');
  const es = new EventSource('/api/events');
  es.addEventListener('hello', () => {
    live.textContent = 'live';
    live.className = 'live on';
    document.body.dataset.live = 'on';
  });
  es.addEventListener('anomaly', (e) => onAnomaly(JSON.parse(e.data)));
  es.addEventListener('model', (e) => {
    const m = JSON.parse(e.data);
    toast(`Model ${m.model} v${m.version} published`);
    if (route.name === 'models') refresh();
  });
  es.addEventListener('status', () => { if (route.name !== 'pipeline') refresh(); });
  es.addEventListener('resync', async () => {
    // Fell behind the live feed: reload it from the API.
    for (const a of (await api('/api/anomalies?limit=200')).reverse()) addToFeed(a);
    renderFeedList();
  });
  es.onerror = () => {
    live.textContent = 'reconnecting…';
    live.className = 'live off';
    document.body.dataset.live = 'off';
  };
}

window.addEventListener('hashchange', navigate);
window.addEventListener('resize', () => refresh());
setInterval(() => refresh(), REFRESH_MS);
// Relative times tick between refreshes.
setInterval(() => document.querySelectorAll('.feed [data-ts]').forEach((el) => {
  el.textContent = ago(Number(el.dataset.ts));
}), 1000);
navigate();
connect();
