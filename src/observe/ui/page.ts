/**
 * The run page: one HTML document with its style, a small script and a hand-drawn SVG
 * chart inline — no framework, no build step, nothing fetched from a CDN (it works
 * offline). Its data comes from `/events` (Server-Sent Events of snapshots). Every
 * value is put in the page with `textContent` or as an SVG attribute, never as HTML:
 * partition ids and error messages come from connectors and may be hostile.
 */

const STYLE = `
:root { --bg:#f6f7f9; --card:#fff; --ink:#1b1f24; --mute:#5b6570; --line:#dde1e6; --ok:#1a7f37; --bad:#cf222e; --run:#0969da; --warn:#9a6700; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--ink); }
header { display:flex; flex-wrap:wrap; gap:12px; align-items:baseline; padding:14px 20px; background:var(--card); border-bottom:1px solid var(--line); }
header h1 { font-size:18px; margin:0; }
.mute { color:var(--mute); }
.badge { display:inline-block; padding:2px 10px; border-radius:10px; font-weight:600; font-size:12px; text-transform:uppercase; background:#eaeef2; }
.badge.running, .badge.committing, .badge.starting { background:#ddf4ff; color:var(--run); }
.badge.succeeded { background:#dafbe1; color:var(--ok); }
.badge.failed { background:#ffebe9; color:var(--bad); }
.badge.stopped { background:#fff8c5; color:var(--warn); }
main { padding:16px 20px; display:grid; gap:16px; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; min-width:0; }
section h2 { font-size:13px; text-transform:uppercase; letter-spacing:.04em; color:var(--mute); margin:0 0 8px; }
.wide { grid-column: 1 / -1; }
.stats { display:grid; grid-template-columns: repeat(auto-fit, minmax(120px, 1fr)); gap:10px; }
.stat b { display:block; font-size:20px; font-variant-numeric: tabular-nums; }
.bar { height:10px; background:#eaeef2; border-radius:5px; overflow:hidden; margin:8px 0 4px; }
.bar div { height:100%; width:0; background:var(--run); transition: width .4s; }
table { width:100%; border-collapse:collapse; font-variant-numeric: tabular-nums; }
th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); white-space:nowrap; overflow:hidden; text-overflow:ellipsis; max-width:280px; }
th { color:var(--mute); font-weight:600; font-size:12px; }
td.n, th.n { text-align:right; }
.state-committed { color:var(--ok); } .state-failed { color:var(--bad); } .state-running { color:var(--run); } .state-retrying { color:var(--warn); } .state-skipped { color:var(--mute); }
ul.log { list-style:none; margin:0; padding:0; max-height:240px; overflow:auto; }
ul.log li { padding:4px 0; border-bottom:1px solid var(--line); word-break:break-word; }
ul.log .t { color:var(--mute); font-size:12px; margin-right:6px; }
.alert { padding:6px 8px; border-radius:6px; margin-bottom:6px; background:#fff8c5; }
.alert.critical { background:#ffebe9; }
svg text { font-size:11px; fill:var(--mute); }
#live.off { color:var(--bad); }
footer { padding:0 20px 16px; }
`;

const SCRIPT = `
'use strict';
const $ = (id) => document.getElementById(id);
const fmt = (n) => (n === undefined || n === null ? '–' : Number(n).toLocaleString('en-US'));
const dur = (s) => { if (s === undefined || s === null) return '–'; s = Math.round(s); const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), x = s % 60; return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + x + 's'; };
const bytes = (n) => { const u = ['B', 'KB', 'MB', 'GB', 'TB']; let i = 0; while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; } return n.toFixed(i ? 1 : 0) + ' ' + u[i]; };
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e; };
const SVG = 'http://www.w3.org/2000/svg';
const svg = (tag, attrs) => { const e = document.createElementNS(SVG, tag); for (const k in attrs) e.setAttribute(k, String(attrs[k])); return e; };

function chart(history) {
  const box = $('chart'); const W = box.clientWidth || 600, H = 200, L = 56, B = 22, T = 10, R = 10;
  const root = svg('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'rows per second over time' });
  const pts = history.points;
  const maxT = Math.max(1, ...pts.map((p) => p[0]));
  const maxY = Math.max(1, ...pts.map((p) => Math.max(p[1], p[2])));
  const nice = Math.pow(10, Math.floor(Math.log10(maxY))); const top = Math.ceil(maxY / nice) * nice;
  const x = (t) => L + (t / maxT) * (W - L - R), y = (v) => T + (1 - v / top) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    root.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#dde1e6' }));
    const label = svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }); label.textContent = fmt(v); root.append(label);
  }
  const tl = svg('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }); tl.textContent = dur(maxT); root.append(tl);
  const t0 = svg('text', { x: L, y: H - 6 }); t0.textContent = '0s'; root.append(t0);
  const line = (i, color, dash) => {
    if (!pts.length) return;
    const d = pts.map((p, k) => (k ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' + y(p[i]).toFixed(1)).join(' ');
    root.append(svg('path', { d, fill: 'none', stroke: color, 'stroke-width': 2, 'stroke-dasharray': dash || '' }));
  };
  line(2, '#8c959f', '4 3');
  line(1, '#0969da');
  box.replaceChildren(root);
}

function samples(id, list) {
  const ul = $(id);
  if (!list.length) { ul.replaceChildren(el('li', 'none', 'mute')); return; }
  ul.replaceChildren(...list.map((s) => {
    const li = el('li');
    li.append(el('span', s.time.slice(11, 19), 't'), el('b', s.kind + (s.partition_id ? ' · ' + s.partition_id : '') + ' [' + s.error_type + ']'), el('div', s.message));
    return li;
  }));
}

function render(s) {
  const r = s.run;
  $('pipeline').textContent = r.pipeline || 'weir run';
  document.title = (r.pipeline || 'weir') + ' · ' + r.status + ' · weir';
  const badge = $('status'); badge.textContent = r.status; badge.className = 'badge ' + r.status;
  $('route').textContent = r.source ? r.source + ' → ' + r.sink + ' · ' + r.delivery + (r.resumed ? ' · resumed' : '') : '';
  $('runid').textContent = r.run_id ? 'run ' + r.run_id : '';
  $('elapsed').textContent = dur(s.elapsed_seconds);
  $('error').textContent = r.error || ''; $('error').hidden = !r.error;
  const t = s.totals, p = s.progress;
  $('read').textContent = fmt(t.rows_read); $('written').textContent = fmt(t.rows_written);
  $('dead').textContent = fmt(t.rows_dead_lettered); $('rate').textContent = fmt(p.rows_per_second);
  $('retries').textContent = fmt(t.batch_retries) + ' / ' + fmt(t.partition_retries);
  $('sent').textContent = bytes(t.bytes_sent) + ' · ' + fmt(t.batches) + ' batches';
  $('percent').textContent = p.percent !== undefined ? p.percent + '%' : (p.lag !== undefined ? 'lag ' + fmt(p.lag) : 'size unknown');
  $('eta').textContent = r.status === 'committing' ? 'committing…' : p.eta_seconds !== undefined ? 'ETA ' + dur(p.eta_seconds) : '';
  $('barfill').style.width = (p.percent || (r.status === 'succeeded' ? 100 : 0)) + '%';
  $('progressrows').textContent = fmt(p.rows) + (p.estimated_rows !== undefined ? ' of ' + fmt(p.estimated_rows) + ' rows' : ' rows');
  chart(s.history);
  const b = s.partitions.by_state;
  $('pstates').textContent = ['running', 'retrying', 'committed', 'failed', 'skipped', 'pending'].filter((k) => b[k]).map((k) => b[k] + ' ' + k).join(' · ') || 'none yet';
  const body = $('parts');
  body.replaceChildren(...s.partitions.rows.map((row) => {
    const tr = el('tr');
    tr.append(el('td', row.id), el('td', row.state, 'state-' + row.state), el('td', row.attempt, 'n'), el('td', fmt(row.rows), 'n'), el('td', fmt(row.failed), 'n'), el('td', fmt(row.retries), 'n'), el('td', row.duration_seconds !== undefined ? row.duration_seconds.toFixed(1) + ' s' : '–', 'n'));
    return tr;
  }));
  $('hidden').textContent = s.partitions.hidden ? '… ' + fmt(s.partitions.hidden) + ' more finished partitions not shown' : '';
  samples('errors', s.errors);
  samples('deadletters', s.dead_letters);
  const al = $('alerts');
  if (!s.alerts.length) al.replaceChildren(el('div', 'none firing', 'mute'));
  else al.replaceChildren(...s.alerts.map((a) => { const d = el('div', undefined, 'alert ' + a.severity); d.append(el('b', a.name + ' '), el('span', a.when + (a.value !== undefined ? ' (value ' + a.value + ')' : '') + ' · ' + a.severity + ' · since ' + a.since.slice(11, 19))); return d; }));
  $('updated').textContent = new Date().toLocaleTimeString();
}

let last;
const source = new EventSource('events');
source.addEventListener('snapshot', (m) => { last = JSON.parse(m.data); render(last); $('live').textContent = '● live'; $('live').className = ''; });
source.addEventListener('end', () => { source.close(); $('live').textContent = '■ run finished: the page shows its last state'; $('live').className = 'off'; });
source.onerror = () => { if (source.readyState !== EventSource.OPEN) { $('live').textContent = '○ disconnected (weir exited?): reconnecting'; $('live').className = 'off'; } };
window.addEventListener('resize', () => last && chart(last.history));
`;

const BODY = `
<header>
  <h1 id="pipeline">weir run</h1><span id="status" class="badge">starting</span>
  <span id="route" class="mute"></span><span id="runid" class="mute"></span>
  <span class="mute">elapsed <b id="elapsed">–</b></span>
  <span id="live" class="mute">connecting…</span>
</header>
<main>
  <section class="wide">
    <div id="error" class="alert critical" hidden></div>
    <div class="stats">
      <div class="stat"><span class="mute">rows read</span><b id="read">–</b></div>
      <div class="stat"><span class="mute">rows written</span><b id="written">–</b></div>
      <div class="stat"><span class="mute">rows/s</span><b id="rate">–</b></div>
      <div class="stat"><span class="mute">dead-lettered</span><b id="dead">–</b></div>
      <div class="stat"><span class="mute">retries (batch / partition)</span><b id="retries">–</b></div>
      <div class="stat"><span class="mute">sent</span><b id="sent">–</b></div>
    </div>
    <div class="bar"><div id="barfill"></div></div>
    <span id="percent"></span> · <span id="progressrows"></span> <b id="eta"></b>
  </section>
  <section class="wide"><h2>rows/s over time <span class="mute">(written — solid, read — dashed)</span></h2><div id="chart"></div></section>
  <section class="wide"><h2>partitions <span id="pstates" class="mute"></span></h2>
    <table><thead><tr><th>partition</th><th>state</th><th class="n">attempt</th><th class="n">rows</th><th class="n">failed</th><th class="n">retries</th><th class="n">duration</th></tr></thead><tbody id="parts"></tbody></table>
    <div id="hidden" class="mute"></div>
  </section>
  <section><h2>alerts firing</h2><div id="alerts"><div class="mute">none firing</div></div></section>
  <section><h2>latest errors</h2><ul id="errors" class="log"><li class="mute">none</li></ul></section>
  <section><h2>dead-letter samples <span class="mute">(the error of each rejected row; the rows stay in the dead-letter sink)</span></h2><ul id="deadletters" class="log"><li class="mute">none</li></ul></section>
</main>
<footer class="mute">weir run page · updated <span id="updated">–</span> · data: <a href="state.json">state.json</a></footer>
`;

/** The page, its inline style and script marked with `nonce` (the Content-Security-Policy allows nothing else). */
export function pageHtml(nonce: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>weir</title><style nonce="${nonce}">${STYLE}</style></head>
<body>${BODY}<script nonce="${nonce}">${SCRIPT}</script></body></html>
`;
}
