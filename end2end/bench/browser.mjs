// Browser benchmark: termroom vs WeTTY 3.2.0 in one run, against the same
// OpenSSH sshd, timed by the same page-side code (page-hooks.js).
//
//   node end2end/bench/browser.mjs          (from the repository root; `make bench` runs it)
//
// Needs: `npm ci` in end2end/bench (WeTTY, only for this benchmark), the
// repository's playwright-core (root node_modules), Debian's Chromium,
// /usr/sbin/sshd, ssh-keygen, root (sshd logs in as the test account
// termroom-sshtest, created if missing, as the Rust sshd tests do).
//
// Environment: TERMROOM_BIN (default target/release/termroom),
// TERMROOM_SITE_ROOT (default target/site), CHROMIUM (default /usr/bin/chromium),
// BENCH_KEYS (default 200), BENCH_BULK_MIB (default 64), BENCH_CTRLC (default 5),
// BENCH_SIGINT (default 3: Ctrl-C samples with a python `yes` that notes when SIGINT arrived),
// BENCH_CHROMIUM_ARGS (extra Chromium flags, e.g. --disable-webgl), BENCH_XTERM_OPTIONS (JSON
// xterm options set on both terminals, for experiments, e.g. '{"cursorBlink":false}'),
// BENCH_RENDERER (termroom's renderer: auto, webgl or dom; default: its own default, auto),
// BENCH_PROFILE=0 skips the CPU profile / trace of keystrokes,
// BENCH_OUT=DIR writes results.json, the profiles and traces there.
//
// Prints numbers, not a verdict; exits non-zero when a measurement could not
// be taken or the bulk output is not byte-exact. Every process it starts
// (sshd, termroom, WeTTY, Chromium) is stopped on exit, also on failure.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync, writeFileSync, readFileSync, chmodSync, openSync, writeSync, closeSync, readdirSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { summarizeTrace, formatTrace } from './trace-summary.mjs';
import { CHROMIUM, CHROMIUM_ARGS as E2E_CHROMIUM_ARGS, freePort, sleep, launchChromium } from '../support.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const BIN = path.resolve(ROOT, process.env.TERMROOM_BIN ?? 'target/release/termroom');
const SITE_ROOT = path.resolve(ROOT, process.env.TERMROOM_SITE_ROOT ?? 'target/site');
const WETTY = path.join(HERE, 'node_modules', 'wetty', 'build', 'main.js');
const CHROMIUM_ARGS = [
  ...E2E_CHROMIUM_ARGS,
  // BENCH_CHROMIUM_ARGS adds flags, e.g. --disable-webgl (both apps fall back to xterm's DOM renderer).
  ...(process.env.BENCH_CHROMIUM_ARGS ?? '').split(/\s+/).filter(Boolean),
];
const KEYS = Number(process.env.BENCH_KEYS ?? 200);
const WARMUP_KEYS = 10;
const BULK_MIB = Number(process.env.BENCH_BULK_MIB ?? 64);
const CTRLC_SAMPLES = Number(process.env.BENCH_CTRLC ?? 5);
const XTERM_OPTIONS = process.env.BENCH_XTERM_OPTIONS ? JSON.parse(process.env.BENCH_XTERM_OPTIONS) : null;
const SIGINT_SAMPLES = Number(process.env.BENCH_SIGINT ?? 3);
const PROFILE = process.env.BENCH_PROFILE !== '0';
const RENDERER = process.env.BENCH_RENDERER ?? null;
const OUT = process.env.BENCH_OUT ? path.resolve(process.env.BENCH_OUT) : null;
const SSH_USER = 'termroom-sshtest';
const PROMPT = 'bench> ';
const BULK_LINE = 64; // bytes per line in the file (LF); 65 on the wire (CR LF)
const HOOKS = readFileSync(path.join(HERE, 'page-hooks.js'), 'utf8');
const USER = { name: 'bench', password: 'bench-browser-password-1' };

const log = (...a) => console.error('#', ...a);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

// ---------------------------------------------------------------- processes

/** Children started here: killed (with their process groups) on every exit path. */
const children = new Set();
let browser = null;
let work = null;
let cleaning = null;

function start(name, cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...opts });
  child.label = name;
  child.out = [];
  const keep = (d) => {
    child.out.push(d.toString());
    if (child.out.length > 200) child.out.splice(0, 100);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.exited = null;
  child.on('exit', (code, sig) => { child.exited = code ?? sig; children.delete(child); });
  children.add(child);
  return child;
}

function killAll(signal) {
  for (const c of children) {
    try { process.kill(-c.pid, signal); } catch { /* gone */ }
  }
}

async function cleanup() {
  if (cleaning) return cleaning;
  cleaning = (async () => {
    if (browser) await Promise.race([browser.close().catch(() => {}), sleep(10_000)]);
    killAll('SIGTERM');
    const deadline = Date.now() + 5_000;
    while (children.size && Date.now() < deadline) await sleep(100);
    killAll('SIGKILL');
    if (work && !process.env.KEEP_DATA) rmSync(work, { recursive: true, force: true });
  })();
  return cleaning;
}
process.on('exit', () => { killAll('SIGKILL'); if (work && !process.env.KEEP_DATA) rmSync(work, { recursive: true, force: true }); });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { log(`${sig}: cleaning up`); cleanup().finally(() => process.exit(130)); });
}

function run(cmd, args, input) {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout || r.error}`);
  return r.stdout;
}

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

// Descendants of `pid` (through /proc/PID/task/TID/children).
function descendants(pid) {
  const out = [];
  const walk = (p) => {
    let kids = [];
    try {
      for (const t of readdirSync(`/proc/${p}/task`)) {
        kids.push(...readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
      }
    } catch { /* gone */ }
    for (const k of kids) { out.push(k); walk(k); }
  };
  walk(pid);
  return out;
}

function comm(pid) {
  try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { return '?'; }
}

async function waitPort(port, child, what, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (child.exited !== null) throw new Error(`${what} exited (${child.exited}):\n${child.out.join('')}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${port} within ${timeout} ms:\n${child.out.join('')}`);
    await sleep(100);
  }
}

// ---------------------------------------------------------------- setup

function ensureTestUser() {
  if (spawnSync('id', [SSH_USER]).status === 0) return;
  if (process.getuid() !== 0) throw new Error(`the account ${SSH_USER} is missing and only root can create it`);
  const r = spawnSync('useradd', ['-m', '-s', '/bin/bash', SSH_USER]);
  if (r.status !== 0 && r.status !== 9) throw new Error(`useradd: ${r.stderr}`);
}

function keygen(dir, name) {
  const file = path.join(dir, name);
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file]);
  const fp = run('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`]).split(/\s+/)[1];
  return { file, pub: readFileSync(`${file}.pub`, 'utf8').trim(), fp };
}

function writeBulkFile(file, lines) {
  const fd = openSync(file, 'w', 0o644);
  const chunk = Buffer.alloc(BULK_LINE * 4096);
  let off = 0;
  for (let i = 0; i < lines; i++) {
    chunk.write(String(i).padStart(8, '0'), off, 'latin1');
    chunk[off + 8] = 32;
    for (let j = 0; j < 54; j++) chunk[off + 9 + j] = 33 + ((i * 7 + j) % 94);
    chunk[off + 63] = 10;
    off += BULK_LINE;
    if (off === chunk.length || i === lines - 1) { writeSync(fd, chunk, 0, off); off = 0; }
  }
  closeSync(fd);
  chmodSync(file, 0o644);
}

async function startSshd() {
  ensureTestUser();
  mkdirSync('/run/sshd', { recursive: true });
  const dir = path.join(work, 'sshd');
  mkdirSync(dir);
  chmodSync(work, 0o755);
  chmodSync(dir, 0o755);
  const host = keygen(dir, 'host_key');
  const client = keygen(dir, 'client_key');
  const authorized = path.join(dir, 'authorized_keys');
  writeFileSync(authorized, `${client.pub}\n`, { mode: 0o644 });
  const cfg = path.join(dir, 'sshd_config');
  writeFileSync(cfg, [
    'ListenAddress 127.0.0.1', `HostKey ${host.file}`, `PidFile ${path.join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${authorized}`, 'StrictModes no', 'UsePAM no', 'PasswordAuthentication no',
    'PubkeyAuthentication yes', 'KbdInteractiveAuthentication no', 'PermitRootLogin no',
    `AllowUsers ${SSH_USER}`, 'PrintMotd no', 'PrintLastLog no', 'UseDNS no', 'MaxStartups 100',
    'MaxSessions 100', 'LogLevel INFO', '',
  ].join('\n'));
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child = start('sshd', '/usr/sbin/sshd', ['-D', '-e', '-f', cfg, '-p', String(port)]);
    try {
      await waitPort(port, child, 'sshd', 10_000);
      const knownHosts = path.join(dir, 'known_hosts');
      writeFileSync(knownHosts, `[127.0.0.1]:${port} ${host.pub}\n`);
      return { port, host, client, dir, knownHosts, child };
    } catch (e) {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      if (attempt === 4) throw e;
    }
  }
  throw new Error('unreachable');
}

function cli(dataDir, args, input) {
  return run(BIN, [...args, '--data-dir', dataDir], input);
}

async function startTermroom(sshd) {
  const dataDir = path.join(work, 'termroom-data');
  mkdirSync(dataDir, { mode: 0o700 });
  cli(dataDir, ['user', 'add', USER.name, '--role', 'admin'], `${USER.password}\n`);
  cli(dataDir, ['namespace', 'add', 'bench']);
  cli(dataDir, ['host', 'add', 'box', '--namespace', 'bench', '--address', '127.0.0.1', '--port', String(sshd.port),
    '--user', SSH_USER, '--key-file', sshd.client.file]);
  const fp = cli(dataDir, ['host', 'trust', 'box']).trim();
  if (fp !== sshd.host.fp) throw new Error(`termroom pinned ${fp}, sshd's key is ${sshd.host.fp}`);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = start('termroom', BIN, ['serve', '--addr', `127.0.0.1:${port}`, '--data-dir', dataDir, '--allowed-origin', base], {
    cwd: ROOT,
    env: {
      ...process.env,
      LEPTOS_OUTPUT_NAME: 'termroom', LEPTOS_SITE_ROOT: SITE_ROOT, LEPTOS_SITE_PKG_DIR: 'pkg',
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`, LEPTOS_ENV: 'PROD', RUST_LOG: process.env.RUST_LOG ?? 'warn',
    },
  });
  await waitPort(port, child, 'termroom');
  return { base, child, pid: child.pid, fp };
}

async function startWetty(sshd) {
  const port = await freePort();
  const child = start('wetty', process.execPath, [WETTY, '--host', '127.0.0.1', '--port', String(port),
    '--ssh-host', '127.0.0.1', '--ssh-port', String(sshd.port), '--ssh-user', SSH_USER, '--ssh-key', sshd.client.file,
    '--ssh-auth', 'publickey', '--force-ssh', '--known-hosts', sshd.knownHosts, '--log-level', 'warn'], {
    env: { ...process.env, NODE_ENV: 'production' },
  });
  await waitPort(port, child, 'wetty');
  return { base: `http://127.0.0.1:${port}`, child, pid: child.pid };
}

// ---------------------------------------------------------------- pages

async function newPage(base, init = '') {
  const context = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 800 }, serviceWorkers: 'block' });
  context.setDefaultTimeout(30_000);
  await context.addInitScript({ content: HOOKS + init });
  const page = await context.newPage();
  page.consoleLog = [];
  page.on('console', (m) => { page.consoleLog.push(`[${m.type()}] ${m.text()}`); if (page.consoleLog.length > 200) page.consoleLog.splice(0, 100); });
  page.on('pageerror', (e) => page.consoleLog.push(`[pageerror] ${e.message}`));
  return page;
}

/** Attaches the hooks to the page's terminal; `find` runs in the page and returns the Terminal. */
async function attach(page, find) {
  await page.waitForFunction(`!!(${find})()`, null, { timeout: 30_000 });
  await page.evaluate(`window.__bench.attach((${find})())`);
  // Experiments only: BENCH_XTERM_OPTIONS='{"cursorBlink":false}' sets xterm options on both apps' terminals.
  if (XTERM_OPTIONS) await page.evaluate((o) => Object.assign(window.__bench.term.options, o), XTERM_OPTIONS);
}

async function openTermroom(app) {
  // termroom reads its renderer override from sessionStorage (term/settings.rs).
  const init = RENDERER ? `\ntry { sessionStorage.setItem('termroom.renderer', ${JSON.stringify(RENDERER)}); } catch {}\n` : '';
  const page = await newPage(app.base, init);
  await page.goto('/login');
  await page.locator('[data-testid=login-submit]:not([disabled])').waitFor();
  await page.getByTestId('login-username').fill(USER.name);
  await page.getByTestId('login-password').fill(USER.password);
  await page.getByTestId('login-submit').click();
  await page.waitForURL((url) => !url.pathname.startsWith('/login'));
  await page.goto('/terminals?host=box');
  await page.locator('body[data-hydrated=true]').waitFor();
  await page.locator('[data-testid=term-tab][data-state=live]').waitFor();
  const key = await page.locator('[data-testid=term-tab][data-state=live]').first().getAttribute('data-key');
  const find = `() => document.querySelector('[data-testid=term-pane][data-key="${key}"]')?.xterm`;
  await attach(page, find);
  page.textarea = page.locator(`[data-testid=term-pane][data-key="${key}"] .xterm-helper-textarea`);
  return page;
}

async function openWetty(app) {
  const page = await newPage(app.base);
  await page.goto('/');
  await attach(page, '() => window.wetty_term');
  page.textarea = page.locator('.xterm-helper-textarea');
  return page;
}

async function lines(page) {
  return page.evaluate(() => {
    const buf = window.__bench.term.buffer.active;
    const out = [];
    for (let i = 0; i < buf.length; i++) out.push((buf.getLine(i)?.translateToString(true) ?? '').trimEnd());
    return out;
  });
}

async function cursorLine(page) {
  return page.evaluate(() => {
    const buf = window.__bench.term.buffer.active;
    return (buf.getLine(buf.baseY + buf.cursorY)?.translateToString(true) ?? '').trimEnd();
  });
}

async function until(what, fn, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}${last instanceof Error ? ` (${last.message})` : ''}`);
    await sleep(100);
  }
}

async function type(page, text) {
  await page.bringToFront();
  await page.textarea.focus();
  await page.keyboard.type(text);
}

/** Runs `cmd` and waits for the line `marker` (computed by the shell, not in the echo) and the prompt. */
async function shell(page, cmd, marker, timeout = 30_000) {
  await type(page, `${cmd}\n`);
  if (marker) await until(`"${marker}" from \`${cmd}\``, async () => (await lines(page)).some((l) => l === marker), timeout);
  await until(`the prompt after \`${cmd}\``, async () => (await cursorLine(page)) === PROMPT.trimEnd(), timeout);
}

async function prepareShell(page, name) {
  await until(`a shell prompt in ${name}`, async () => (await cursorLine(page)).length > 0);
  await type(page, `PS1='${PROMPT}'; PROMPT_COMMAND=; unset HISTFILE; bind 'set enable-bracketed-paste off' 2>/dev/null; echo ready-$((6*7))\n`);
  try {
    await until(`the bench prompt in ${name}`, async () => (await lines(page)).includes('ready-42') && (await cursorLine(page)) === PROMPT.trimEnd());
  } catch (e) {
    const buf = await lines(page).catch(() => []);
    const cur = await page.evaluate(() => { const b = window.__bench.term.buffer.active; return JSON.stringify({ x: b.cursorX, y: b.cursorY, base: b.baseY, len: b.length, line: b.getLine(b.baseY + b.cursorY)?.translateToString(true) }); }).catch((x) => String(x));
    throw new Error(`${e.message}\ncursor ${cur}\nscreen:\n${buf.filter((l) => l).slice(-15).join('\n')}\nconsole:\n${page.consoleLog.slice(-20).join('\n')}`);
  }
  const info = await page.evaluate(() => ({
    renderer: window.__bench.renderer(), cols: window.__bench.term.cols, rows: window.__bench.term.rows,
    visible: document.visibilityState, sockets: window.__bench.sockets.length,
  }));
  if (info.visible !== 'visible') throw new Error(`${name}: page is ${info.visible}`);
  if (info.sockets < 1) throw new Error(`${name}: no WebSocket seen by the hook`);
  return info;
}

// ---------------------------------------------------------------- measurements

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};

async function keystrokes(page, n, warmup = WARMUP_KEYS) {
  await shell(page, 'clear', null);
  await type(page, 'stty -icanon; echo cat-$((2+3))-ready; cat\n');
  await until('cat to start', async () => (await lines(page)).includes('cat-5-ready'));
  await sleep(300);
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const samples = [];
  for (let i = 0; i < warmup + n; i++) {
    const ch = letters[i % letters.length];
    await page.evaluate((c) => window.__bench.armKey(c), ch);
    await page.keyboard.press(ch);
    const r = await page.evaluate(() => window.__bench.keyResult(5_000));
    if (!r.ok) throw new Error(`keystroke ${i} ("${ch}") incomplete after 5 s: ${JSON.stringify(r)}`);
    if (i >= warmup) samples.push(r);
    await sleep(30);
  }
  await page.keyboard.press('Control+c');
  await shell(page, 'stty sane; echo back-$((3+4))', 'back-7');
  const d = (f) => samples.map((s) => s[f] - s.t0);
  return {
    n: samples.length,
    ws: d('ws'), parsed: d('parsed'), cat: d('cat'), dom: d('dom'), free: d('free'),
    inputDelay: samples.map((s) => s.t0 - s.evt),
  };
}

async function bulk(page, mib) {
  const nLines = (mib * 1024 * 1024) / BULK_LINE;
  await shell(page, 'clear', null);
  await page.evaluate((n) => window.__bench.armBulk(n), nLines);
  const file = path.join(work, 'sshd', 'bulk.txt');
  await type(page, `printf '\\075=BEGIN=\\075\\n'; cat ${file}; printf '\\075=END=\\075\\n'\n`);
  const r = await page.evaluate((t) => window.__bench.bulkResult(t), 600_000);
  if (!r.ok || r.state !== 'done') throw new Error(`bulk output not byte-exact: state ${r.state}, ${r.mismatch ?? 'timed out'}, ${r.bytes} bytes matched (${r.line} lines)`);
  if (r.bytes !== nLines * (BULK_LINE + 1)) throw new Error(`bulk: ${r.bytes} bytes matched, expected ${nLines * (BULK_LINE + 1)}`);
  // The parsed buffer: the last lines before the end marker are the expected ones.
  await until('the prompt after the bulk output', async () => (await cursorLine(page)) === PROMPT.trimEnd(), 60_000);
  const buf = await lines(page);
  const end = buf.lastIndexOf('==END==');
  if (end < 50) throw new Error('bulk: end marker not in the xterm buffer');
  for (let k = 1; k <= 50; k++) {
    const i = nLines - k;
    let want = String(i).padStart(8, '0') + ' ';
    for (let j = 0; j < 54; j++) want += String.fromCharCode(33 + ((i * 7 + j) % 94));
    if (buf[end - k] !== want) throw new Error(`bulk: buffer line ${end - k} is ${JSON.stringify(buf[end - k])}, expected ${JSON.stringify(want)}`);
  }
  const secs = (r.tEnd - r.t0) / 1000;
  return { mib, secs, mibps: mib / secs, firstByteMs: r.tFirst - r.t0, wireBytes: r.bytes };
}

async function ctrlC(page, samples) {
  const out = [];
  for (let i = 0; i < samples; i++) {
    await shell(page, 'clear', null);
    await page.evaluate(() => { window.__bench.written0 = window.__bench.written; });
    await type(page, 'yes\n');
    const w0 = await page.evaluate(() => window.__bench.written);
    await sleep(2_000);
    const w1 = await page.evaluate(() => window.__bench.written);
    await page.evaluate((p) => window.__bench.armCtrlC(p), PROMPT);
    await page.keyboard.press('Control+c');
    const r = await page.evaluate(() => window.__bench.ctrlCResult(60_000));
    if (!r.ok) throw new Error(`Ctrl-C sample ${i}: no prompt within 60 s (${JSON.stringify(r)})`);
    out.push({ promptMs: r.prompt - r.t0, domMs: r.dom - r.t0, bytesAfter: r.bytesAfter, wsAfter: r.wsAfter, yesMiBps: (w1 - w0) / 2 / 1048576 });
    await sleep(500);
  }
  return out;
}

// Like `yes` (8 KiB writes of "y\n"), but notes the wall-clock time at which
// SIGINT reached it: says whether ^C was late going in or the output was
// late draining.
const YES_PY = `import os, signal, sys, time
out = sys.argv[1]
def stop(sig, frame):
    t = time.time()
    with open(out + '.tmp', 'w') as f:
        f.write(repr(t))
    os.rename(out + '.tmp', out)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
signal.signal(signal.SIGINT, stop)
block = b'y\\n' * 4096
while True:
    os.write(1, block)
`;

async function ctrlCSignal(page, label, samples) {
  const dir = path.join(work, 'sigint');
  const out = [];
  for (let i = 0; i < samples; i++) {
    const file = path.join(dir, `${label}-${i}`);
    await shell(page, 'clear', null);
    await type(page, `python3 ${path.join(dir, 'yes.py')} ${file}\n`);
    await sleep(2_000);
    await page.evaluate((p) => window.__bench.armCtrlC(p), PROMPT);
    await page.keyboard.press('Control+c');
    const r = await page.evaluate(() => window.__bench.ctrlCResult(60_000));
    if (!r.ok) throw new Error(`Ctrl-C (python) sample ${i}: no prompt within 60 s`);
    const sig = await until(`the SIGINT time from ${file}`, async () => existsSync(file) && Number(readFileSync(file, 'utf8')), 5_000);
    out.push({ signalMs: sig * 1000 - (r.origin + r.t0), promptMs: r.prompt - r.t0, bytesAfter: r.bytesAfter });
    await sleep(500);
  }
  return out;
}

// ---------------------------------------------------------------- profiling

async function profileKeys(page, label, n) {
  await shell(page, 'clear', null);
  await type(page, 'stty -icanon; echo cat-$((2+3))-ready; cat\n');
  await until('cat to start', async () => (await lines(page)).includes('cat-5-ready'));
  await sleep(300);
  const cdp = await page.context().newCDPSession(page);
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const typeKeys = async (count) => {
    const res = [];
    for (let i = 0; i < count; i++) {
      const ch = letters[i % 26];
      await page.evaluate((c) => window.__bench.armKey(c), ch);
      await page.keyboard.press(ch);
      const r = await page.evaluate(() => window.__bench.keyResult(5_000));
      if (!r.ok) throw new Error(`profile keystroke ${i} incomplete`);
      res.push(r);
      await sleep(30);
    }
    return res;
  };
  await typeKeys(5);
  // 1. CPU profile (sampling, 100 µs).
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 100 });
  await cdp.send('Profiler.start');
  const t0 = Date.now();
  await typeKeys(n);
  const wall = Date.now() - t0;
  const { profile } = await cdp.send('Profiler.stop');
  await cdp.send('Profiler.disable');
  // 2. Trace of the same number of keystrokes.
  const events = [];
  cdp.on('Tracing.dataCollected', (e) => events.push(...e.value));
  const complete = new Promise((r) => cdp.once('Tracing.tracingComplete', r));
  await cdp.send('Tracing.start', {
    traceConfig: {
      recordMode: 'recordAsMuchAsPossible',
      includedCategories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8.execute', 'blink', 'blink.user_timing', 'toplevel', 'v8'],
    },
    transferMode: 'ReportEvents',
  });
  const traced = await typeKeys(n);
  await cdp.send('Tracing.end');
  await complete;
  await cdp.detach();
  await page.keyboard.press('Control+c');
  await shell(page, 'stty sane; echo back-$((3+4))', 'back-7');
  if (OUT) {
    writeFileSync(path.join(OUT, `${label}.cpuprofile`), JSON.stringify(profile));
    writeFileSync(path.join(OUT, `${label}.trace.json`), JSON.stringify({ traceEvents: events }));
    writeFileSync(path.join(OUT, `${label}.keys.json`), JSON.stringify(traced));
  }
  return { cpu: summarizeProfile(profile, n, wall), trace: summarizeTrace(events, traced) };
}

function summarizeProfile(profile, keys, wallMs) {
  const byId = new Map(profile.nodes.map((nd) => [nd.id, nd]));
  const self = new Map();
  const scripts = new Map();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const nd = byId.get(profile.samples[i]);
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const cf = nd.callFrame;
    if (cf.functionName === '(idle)') continue;
    const url = cf.url ? cf.url.replace(/^.*\//, '') : '';
    const name = `${cf.functionName || '(anonymous)'}${url ? ` ${url}:${cf.lineNumber + 1}` : ''}`;
    self.set(name, (self.get(name) ?? 0) + dt);
    const script = url || (cf.functionName.startsWith('(') ? cf.functionName
      : cf.functionName ? `native/builtin: ${cf.functionName}` : 'anonymous without script URL (page hooks, Playwright evaluate)');
    scripts.set(script, (scripts.get(script) ?? 0) + dt);
    total += dt;
  }
  const top = [...self.entries()].filter(([n]) => !n.startsWith('(program)')).sort((a, b) => b[1] - a[1]).slice(0, 25).map(([name, ms]) => ({ name, perKeyMs: ms / keys, share: ms / total }));
  return { keys, wallMs, busyMsPerKey: total / keys, top, scripts: [...scripts.entries()].sort((a, b) => b[1] - a[1]).map(([name, ms]) => ({ name, perKeyMs: ms / keys, share: ms / total })) };
}

// ---------------------------------------------------------------- report

const f1 = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

function table(R) {
  const rows = [
    ['keydown → echo on the WebSocket, p50 (ms)', (r) => f1(pct(r.keys.ws, 50))],
    ['keydown → char in xterm buffer (onWriteParsed), p50 (ms)', (r) => f1(pct(r.keys.parsed, 50))],
    ['keydown → char in xterm buffer (onWriteParsed), p99 (ms)', (r) => f1(pct(r.keys.parsed, 99))],
    ['keydown → row rendered (xterm onRender; DOM renderer: row text checked), p50 (ms)', (r) => f1(pct(r.keys.dom, 50))],
    ['keydown → main thread free (MessageChannel ping), p50 (ms)', (r) => f1(pct(r.keys.free, 50))],
    ['keydown → cat\'s copy in the buffer, p50 (ms)', (r) => f1(pct(r.keys.cat, 50))],
    [`${BULK_MIB} MiB cat through the browser (MiB/s, byte-exact)`, (r) => `${f1(r.bulk.mibps)} (${f1(r.bulk.secs)} s) ✓`],
    ['Ctrl-C after 2 s of yes → prompt in buffer, p50 / max (ms)', (r) => `${f1(pct(r.ctrlc.map((s) => s.promptMs), 50))} / ${f1(Math.max(...r.ctrlc.map((s) => s.promptMs)))}`],
    ['Ctrl-C → prompt row rendered (onRender), p50 / max (ms)', (r) => `${f1(pct(r.ctrlc.map((s) => s.domMs), 50))} / ${f1(Math.max(...r.ctrlc.map((s) => s.domMs)))}`],
    ['bytes written to xterm after ^C, p50 / max', (r) => `${pct(r.ctrlc.map((s) => s.bytesAfter), 50)} / ${Math.max(...r.ctrlc.map((s) => s.bytesAfter))}`],
    ['`yes` rate into xterm before ^C, p50 (MiB/s)', (r) => f1(pct(r.ctrlc.map((s) => s.yesMiBps), 50))],
    ['Ctrl-C during a python `yes` → SIGINT reaches it, p50 / max (ms)', (r) => `${f1(pct(r.sigint.map((s) => s.signalMs), 50))} / ${f1(Math.max(...r.sigint.map((s) => s.signalMs)))}`],
    ['  same runs: ^C → prompt in buffer, p50 / max (ms)', (r) => `${f1(pct(r.sigint.map((s) => s.promptMs), 50))} / ${f1(Math.max(...r.sigint.map((s) => s.promptMs)))}`],
    ['server RSS idle, no session (MiB)', (r) => f1(r.rss.idle / 1024)],
    ['server RSS after three sessions (MiB)', (r) => f1(r.rss.three / 1024)],
    ['  + child processes (ssh clients) (MiB)', (r) => `${f1(r.rss.threeKids / 1024)} (${r.rss.threeKidsN} procs)`],
    ['server RSS at the end (after bulk etc., 3 sessions) (MiB)', (r) => f1(r.rss.end / 1024)],
    ['renderer / cols×rows', (r) => `${r.info.renderer} ${r.info.cols}×${r.info.rows}`],
  ];
  const lines = ['| | termroom | WeTTY |', '|---|---:|---:|'];
  // BENCH_SIGINT=0 turns the SIGINT diagnostic off: its rows are left out, not printed empty.
  const sigintOff = R.termroom.sigint.length === 0 && R.wetty.sigint.length === 0;
  for (const [label, fn] of rows) if (!(sigintOff && /SIGINT|same runs/.test(label))) lines.push(`| ${label} | ${fn(R.termroom)} | ${fn(R.wetty)} |`);
  return lines.join('\n');
}

function breakdown(label, p) {
  const out = [`### ${label}: main thread per keystroke`, '',
    `CPU profile (100 µs sampling) over ${p.cpu.keys} keystrokes (${p.cpu.wallMs} ms wall incl. 30 ms gaps and the harness's CDP calls): ${f1(p.cpu.busyMsPerKey)} ms non-idle per keystroke.`, '',
    '| by script | ms per key | share |', '|---|---:|---:|'];
  for (const t of p.cpu.scripts.slice(0, 14)) out.push(`| \`${t.name}\` | ${t.perKeyMs.toFixed(3)} | ${(t.share * 100).toFixed(1)}% |`);
  out.push('', '| top functions, self time (without `(program)`) | ms per key | share |', '|---|---:|---:|');
  for (const t of p.cpu.top.slice(0, 15)) out.push(`| \`${t.name}\` | ${t.perKeyMs.toFixed(3)} | ${(t.share * 100).toFixed(1)}% |`);
  out.push('', formatTrace(label, p.trace));
  return out.join('\n');
}

// ---------------------------------------------------------------- main

async function main() {
  if (!existsSync(BIN)) throw new Error(`termroom binary not found: ${BIN} (cargo leptos build --release, or set TERMROOM_BIN)`);
  if (!existsSync(path.join(SITE_ROOT, 'pkg'))) throw new Error(`site not built: ${SITE_ROOT}/pkg missing (or set TERMROOM_SITE_ROOT)`);
  if (!existsSync(WETTY)) throw new Error(`WeTTY not installed: run \`npm ci\` in ${HERE}`);
  if (!existsSync(CHROMIUM)) throw new Error(`chromium not found at ${CHROMIUM}`);
  if (OUT) mkdirSync(OUT, { recursive: true });
  console.log(`# browser bench ${new Date().toISOString()} load average ${load()} (start)`);
  console.log(`# termroom ${BIN}, site ${SITE_ROOT}; WeTTY 3.2.0; ${CHROMIUM} ${CHROMIUM_ARGS.join(' ')}`);
  if (XTERM_OPTIONS) console.log(`# experiment: xterm options ${JSON.stringify(XTERM_OPTIONS)} on both terminals`);
  work = mkdtempSync(path.join(tmpdir(), 'termroom-browser-bench-'));
  const sshd = await startSshd();
  const lines = (BULK_MIB * 1024 * 1024) / BULK_LINE;
  if (!Number.isInteger(lines)) throw new Error('BENCH_BULK_MIB must give whole lines');
  writeBulkFile(path.join(sshd.dir, 'bulk.txt'), lines);
  const tr = await startTermroom(sshd);
  const wt = await startWetty(sshd);
  log(`sshd :${sshd.port} (${sshd.host.fp}), termroom ${tr.base} pid ${tr.pid}, wetty ${wt.base} pid ${wt.pid}`);
  browser = await launchChromium(CHROMIUM_ARGS);
  const version = browser.version();

  const R = { termroom: { rss: {} }, wetty: { rss: {} } };
  await sleep(500);
  R.termroom.rss.idle = rssKiB(tr.pid);
  R.wetty.rss.idle = rssKiB(wt.pid);

  const apps = [
    ['termroom', tr, openTermroom],
    ['wetty', wt, openWetty],
  ];
  const pages = {};
  for (const [name, app, open] of apps) {
    const page = await open(app);
    R[name].info = await prepareShell(page, name);
    pages[name] = page;
    log(`${name}: ${JSON.stringify(R[name].info)}`);
    // Two more sessions (pages) with a shell.
    for (let i = 0; i < 2; i++) {
      const extra = await open(app);
      await prepareShell(extra, `${name} extra ${i}`);
    }
  }
  await sleep(1_000);
  for (const [name, app] of apps) {
    R[name].rss.three = rssKiB(app.pid);
    const kids = descendants(app.pid);
    R[name].rss.threeKids = kids.reduce((a, p) => { try { return a + rssKiB(p); } catch { return a; } }, 0);
    R[name].rss.threeKidsN = kids.length;
    R[name].rss.kidNames = [...new Set(kids.map(comm))];
  }
  log(`load ${load()} sessions open`);

  // Keystrokes, alternating order between the two to spread the machine's noise.
  for (const name of ['termroom', 'wetty']) {
    log(`${name}: ${KEYS} keystrokes (load ${load()})`);
    R[name].keys = await keystrokes(pages[name], KEYS);
  }
  for (const name of ['wetty', 'termroom']) {
    log(`${name}: ${BULK_MIB} MiB cat (load ${load()})`);
    R[name].bulk = await bulk(pages[name], BULK_MIB);
    log(`${name}: ${f1(R[name].bulk.mibps)} MiB/s`);
  }
  R.termroom.ctrlc = [];
  R.wetty.ctrlc = [];
  for (let i = 0; i < CTRLC_SAMPLES; i++) {
    for (const name of i % 2 ? ['wetty', 'termroom'] : ['termroom', 'wetty']) {
      R[name].ctrlc.push(...(await ctrlC(pages[name], 1)));
    }
  }
  mkdirSync(path.join(work, 'sigint'), { mode: 0o777 });
  chmodSync(path.join(work, 'sigint'), 0o777);
  writeFileSync(path.join(work, 'sigint', 'yes.py'), YES_PY, { mode: 0o644 });
  R.termroom.sigint = [];
  R.wetty.sigint = [];
  for (let i = 0; i < SIGINT_SAMPLES; i++) {
    for (const name of i % 2 ? ['wetty', 'termroom'] : ['termroom', 'wetty']) {
      R[name].sigint.push(...(await ctrlCSignal(pages[name], `${name}-${i}`, 1)));
    }
  }
  log(`load ${load()} after Ctrl-C`);
  for (const [name, app] of apps) R[name].rss.end = rssKiB(app.pid);

  const loadEnd = load();
  console.log(`\n## Browser benchmark (Chromium ${version}, ${KEYS} keystrokes, ${BULK_MIB} MiB, ${CTRLC_SAMPLES} Ctrl-C samples)\n`);
  console.log(table(R));
  console.log(`\nload average at the end: ${loadEnd}; WeTTY child processes: ${R.wetty.rss.kidNames.join(', ') || 'none'}; termroom child processes: ${R.termroom.rss.kidNames.join(', ') || 'none'}`);
  console.log(`Ctrl-C samples (prompt ms / DOM ms / bytes to xterm after ^C / WS payload after ^C):`);
  for (const name of ['termroom', 'wetty']) {
    console.log(`  ${name}: ${R[name].ctrlc.map((s) => `${f1(s.promptMs)}/${f1(s.domMs)}/${s.bytesAfter}/${s.wsAfter}`).join('  ')}`);
  }
  console.log(`python yes samples (SIGINT ms / prompt ms / bytes after ^C):`);
  for (const name of ['termroom', 'wetty']) {
    console.log(`  ${name}: ${R[name].sigint.map((s) => `${f1(s.signalMs)}/${f1(s.promptMs)}/${s.bytesAfter}`).join('  ')}`);
  }
  console.log(`keydown event → handler (input delay) p50: termroom ${f1(pct(R.termroom.keys.inputDelay, 50))} ms, WeTTY ${f1(pct(R.wetty.keys.inputDelay, 50))} ms`);

  if (PROFILE) {
    for (const name of ['termroom', 'wetty']) {
      log(`${name}: profiling keystrokes (load ${load()})`);
      R[name].profile = await profileKeys(pages[name], name, 40);
    }
    console.log('');
    console.log(breakdown('termroom', R.termroom.profile));
    console.log('');
    console.log(breakdown('WeTTY', R.wetty.profile));
  }
  if (OUT) writeFileSync(path.join(OUT, 'results.json'), JSON.stringify(R, null, 1));
  console.log(`\n# load average ${load()} (end)`);
}

main().then(async () => {
  await cleanup();
  process.exit(0);
}, async (err) => {
  console.error(`browser bench FAILED: ${err.stack || err}`);
  for (const c of children) console.error(`# ${c.label} output (tail):\n${c.out.join('').split('\n').slice(-30).join('\n')}`);
  await cleanup();
  process.exit(1);
});
