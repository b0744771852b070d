// Where the renderer's main thread spends a keystroke, from a Chromium trace
// (devtools.timeline categories) recorded while typing into `cat`.
//
//   node end2end/bench/trace-summary.mjs DIR/termroom.trace.json [DIR/termroom.keys.json]
//
// Each keystroke's window runs from its keydown dispatch to the moment the
// page saw the character rendered (from keys.json; without it 40 ms). Every
// top-level task starting in the window is classified by what it ran; the
// frame task is split into its phases. Figures are medians over keystrokes
// (ms per keystroke) unless marked as means.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const median = (xs) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
};
const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

export function summarizeTrace(events, keys) {
  const kd = events.filter((e) => e.ph === 'X' && e.name === 'EventDispatch' && e.args?.data?.type === 'keydown').sort((a, b) => a.ts - b.ts);
  if (!kd.length) throw new Error('trace: no keydown dispatch');
  const main = `${kd[0].pid}:${kd[0].tid}`;
  const onMain = events.filter((e) => `${e.pid}:${e.tid}` === main).sort((a, b) => a.ts - b.ts || (b.dur ?? 0) - (a.dur ?? 0));
  const tasks = onMain.filter((e) => e.ph === 'X' && e.name === 'ThreadControllerImpl::RunTask');
  const xs = onMain.filter((e) => e.ph === 'X' && e.dur !== undefined);
  const instants = onMain.filter((e) => e.ph === 'I' || e.ph === 'i');
  const useKeys = keys && keys.length ? kd.slice(-keys.length) : kd;
  const perKey = [];
  useKeys.forEach((k, i) => {
    const span = keys?.[i] ? Math.max(keys[i].dom, keys[i].cat, keys[i].free) - keys[i].t0 : 40;
    const a = k.ts - 200;
    const b = k.ts + span * 1000 + 1000;
    const r = { buckets: {}, frame: {}, js: {} };
    const add = (o, name, us) => { o[name] = (o[name] ?? 0) + us / 1000; };
    const send = instants.find((e) => e.name === 'WebSocketSend' && e.ts >= k.ts && e.ts < b);
    const recv = send && instants.find((e) => e.name === 'WebSocketReceive' && e.ts > send.ts && e.ts < b);
    r.sendMs = send ? (send.ts - k.ts) / 1000 : NaN;
    r.recvMs = recv ? (recv.ts - k.ts) / 1000 : NaN;
    for (const t of tasks) {
      const holdsKeydown = t.ts <= k.ts && k.ts < t.ts + t.dur;
      if (!holdsKeydown && (t.ts < a || t.ts >= b)) continue;
      const end = t.ts + t.dur;
      const inside = xs.filter((e) => e.ts >= t.ts && e.ts < end && e !== t);
      const has = (pred) => inside.some(pred);
      const fc = inside.filter((e) => e.name === 'FunctionCall');
      let kind;
      const ev = inside.find((e) => e.name === 'EventDispatch');
      if (ev) kind = `input event task (${[...new Set(inside.filter((e) => e.name === 'EventDispatch').map((e) => e.args.data.type))].join('+')})`;
      else if (has((e) => e.name === 'WebFrameWidgetImpl::BeginMainFrame' || e.name === 'Commit')) kind = 'frame task';
      else if (instants.some((e) => e.name === 'WebSocketReceive' && e.ts >= t.ts && e.ts < end)) kind = 'WebSocket message task';
      else if (has((e) => e.name === 'TimerFire')) kind = 'timer task';
      else if (has((e) => e.name === 'MessagePort::Accept')) kind = 'MessageChannel ping (bench hook)';
      else if (has((e) => /GC|GarbageCollect/i.test(e.name))) kind = 'GC task';
      else kind = 'other tasks';
      add(r.buckets, kind, t.dur);
      for (const f of fc) {
        const d = f.args?.data ?? {};
        const url = (d.url || '').replace(/^.*\//, '');
        const who = url.includes('xterm') || url.includes('addon') || url.includes('wetty') ? url
          : ['onWs', 'mc.port1.onmessage', 'write', 'onParsed', 'domCheck', 'check'].includes(d.functionName) || url === '' ? 'bench hooks / injected'
            : url || d.functionName || '?';
        add(r.js, who, f.dur);
      }
      if (kind === 'frame task') {
        for (const e of inside) {
          if (e.name === 'UpdateLayoutTree') add(r.frame, 'style recalc (UpdateLayoutTree)', e.dur);
          else if (e.name === 'Layout') add(r.frame, 'layout', e.dur);
          else if (e.name === 'FireAnimationFrame') add(r.frame, 'rAF callbacks (xterm render)', e.dur);
          else if (e.name === 'LocalFrameView::NotifyResizeObservers') add(r.frame, 'ResizeObserver', e.dur);
          else if (e.name === 'PrePaint' || e.name === 'Paint' || e.name === 'Layerize') add(r.frame, 'prepaint/paint/layerize', e.dur);
          else if (e.name === 'Commit') add(r.frame, 'Commit (main thread waits for the compositor)', e.dur);
          else if (e.name === 'RunMicrotasks') add(r.frame, 'microtasks', e.dur);
        }
        add(r.frame, 'whole frame task', t.dur);
      }
    }
    perKey.push(r);
  });
  const collect = (field) => {
    const names = new Set(perKey.flatMap((r) => Object.keys(r[field])));
    return [...names].map((n) => ({
      name: n,
      median: median(perKey.map((r) => r[field][n] ?? 0)),
      mean: mean(perKey.map((r) => r[field][n] ?? 0)),
    })).sort((x, y) => y.mean - x.mean);
  };
  return {
    keys: perKey.length,
    sendMs: median(perKey.map((r) => r.sendMs).filter((x) => !Number.isNaN(x))),
    recvMs: median(perKey.map((r) => r.recvMs).filter((x) => !Number.isNaN(x))),
    busyMs: median(perKey.map((r) => Object.values(r.buckets).reduce((x, y) => x + y, 0))),
    busyMean: mean(perKey.map((r) => Object.values(r.buckets).reduce((x, y) => x + y, 0))),
    buckets: collect('buckets'),
    frame: collect('frame'),
    js: collect('js'),
  };
}

export function formatTrace(label, s) {
  const f = (x) => x.toFixed(2);
  const out = [
    `Trace of ${s.keys} keystrokes on ${label} (main thread, from keydown until the row was rendered):`,
    `keydown → WebSocket send ${f(s.sendMs)} ms, → WebSocket receive (echo) ${f(s.recvMs)} ms (medians);`
    + ` main-thread task time per keystroke median ${f(s.busyMs)} ms, mean ${f(s.busyMean)} ms.`, '',
    '| task kind | median ms | mean ms |', '|---|---:|---:|',
  ];
  for (const b of s.buckets) out.push(`| ${b.name} | ${f(b.median)} | ${f(b.mean)} |`);
  out.push('', '| inside the frame task | median ms | mean ms |', '|---|---:|---:|');
  for (const b of s.frame) out.push(`| ${b.name} | ${f(b.median)} | ${f(b.mean)} |`);
  out.push('', '| JavaScript / Wasm called from tasks (FunctionCall, by script) | median ms | mean ms |', '|---|---:|---:|');
  for (const b of s.js) out.push(`| ${b.name} | ${f(b.median)} | ${f(b.mean)} |`);
  return out.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [trace, keysFile] = process.argv.slice(2);
  const events = JSON.parse(readFileSync(trace, 'utf8')).traceEvents;
  const keys = keysFile ? JSON.parse(readFileSync(keysFile, 'utf8')) : null;
  console.log(formatTrace(trace.replace(/^.*\//, '').replace('.trace.json', ''), summarizeTrace(events, keys)));
}
