// Recording player benchmark: the time to open a large recording (default
// 500 MB) in the player at its middle, from `page.goto('/recordings/ID?t=T')`
// until the player shows the screen at T (target: under 3 s); for reference
// the same at the start and near the end.
//
//   node end2end/bench/recording-open.mjs   (from the repository root; `make bench` runs it)
//
// It starts termroom with a throwaway data directory and an admin (who may
// open the local shell), makes the recording with `seq` in a local tab whose
// page is closed right away (the detached session records at full speed),
// waits until it is complete, then opens it BENCH_RUNS times per position,
// each in a fresh browser context (cold cache). Two times per open: "loaded",
// the asciinema-player has the recording (its control bar shows a time, not
// --:--); "shown", it is loaded, the time beside it (data-seconds) is within
// 1 s of T and, where `seq` was printing, its screen holds `seq`'s numbers,
// which must be consecutive (the window started from a correct keyframe);
// after that (untimed) the time must settle at T (within 0.1 s). An open
// that is loaded but not shown 10 s later counts as not shown.
//
// Needs: the release build (`cargo leptos build --release`), the repository's
// playwright-core (root node_modules), Debian's Chromium, free disk for the
// recording (in the system temp dir).
//
// Environment: TERMROOM_BIN (default target/release/termroom),
// TERMROOM_SITE_ROOT (default target/site), CHROMIUM (default /usr/bin/chromium),
// BENCH_RECORDING_MB (default 500: size of the recording file, about; from
// about 50 up, `seq` is printing at the middle),
// BENCH_RUNS (default 5: opens per position), KEEP_DATA=1 keeps the data directory.
//
// Prints numbers and whether the middle meets the target; exits non-zero when
// a player did not load or did not show T, or a screen is wrong. termroom and
// Chromium are stopped on exit, also on failure.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, CHROMIUM, CHROMIUM_ARGS, freePort, sleep, launchChromium } from '../support.mjs';

const BIN = path.resolve(ROOT, process.env.TERMROOM_BIN ?? 'target/release/termroom');
const SITE_ROOT = path.resolve(ROOT, process.env.TERMROOM_SITE_ROOT ?? 'target/site');
const RECORDING_MB = Number(process.env.BENCH_RECORDING_MB ?? 500);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const TARGET_SECS = 3;
/** How long the player may take to load the recording before the open counts as failed. */
const OPEN_TIMEOUT_MS = 60_000;
/** How long after loading the player may take to show the moment sought. */
const SHOW_GRACE_MS = 10_000;
const USER = { name: 'bench', password: 'bench-recording-password-1' };

const log = (...a) => console.error('#', ...a);

// ---------------------------------------------------------------- processes

let server = null;
let serverLog = [];
let browser = null;
let dataDir = null;
let cleaning = null;

function killServer(signal) {
  try { process.kill(-server.pid, signal); } catch { /* gone or never started */ }
}

function removeData() {
  if (dataDir && !process.env.KEEP_DATA) rmSync(dataDir, { recursive: true, force: true });
}

async function cleanup() {
  cleaning ??= (async () => {
    if (browser) await Promise.race([browser.close().catch(() => {}), sleep(10_000)]);
    if (server && server.exitCode === null && server.signalCode === null) {
      const gone = new Promise((r) => server.once('exit', r));
      killServer('SIGTERM');
      await Promise.race([gone, sleep(5_000)]);
      killServer('SIGKILL');
    }
    removeData();
  })();
  return cleaning;
}
process.on('exit', () => { if (server) killServer('SIGKILL'); removeData(); });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { log(`${sig}: cleaning up`); cleanup().finally(() => process.exit(130)); });
}

/** Starts termroom with an admin user (the local target is open to admins by default); returns its base URL. */
async function startServer() {
  const add = spawnSync(BIN, ['user', 'add', USER.name, '--role', 'admin', '--data-dir', dataDir], {
    input: `${USER.password}\n`, encoding: 'utf8', timeout: 60_000,
  });
  if (add.status !== 0) throw new Error(`termroom user add failed (${add.status ?? add.signal}): ${add.stderr || add.stdout || add.error}`);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  server = spawn(BIN, ['serve', '--addr', `127.0.0.1:${port}`, '--data-dir', dataDir, '--allowed-origin', base], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      LEPTOS_OUTPUT_NAME: 'termroom', LEPTOS_SITE_ROOT: SITE_ROOT, LEPTOS_SITE_PKG_DIR: 'pkg',
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`, LEPTOS_ENV: 'PROD', RUST_LOG: process.env.RUST_LOG ?? 'warn',
    },
  });
  const keep = (d) => {
    serverLog.push(...d.toString().split('\n').filter((l) => l.trim()));
    if (serverLog.length > 400) serverLog = serverLog.slice(-300);
  };
  server.stdout.on('data', keep);
  server.stderr.on('data', keep);
  await until('termroom to answer', async () => {
    if (server.exitCode !== null) throw new Error(`termroom exited (${server.exitCode})`);
    const res = await fetch(`${base}/login`, { signal: AbortSignal.timeout(2_000) }).catch(() => null);
    return res && res.status < 500;
  }, 30_000);
  return base;
}

/** Polls `fn` until it returns a truthy value; fails with `what` after `timeout`. */
async function until(what, fn, timeout) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(200);
  }
}

// ---------------------------------------------------------------- browser

/** A fresh context (own cache; logged in if `storageState` is given) with one page that records its console. */
async function newPage(base, storageState) {
  const context = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 800 }, serviceWorkers: 'block', storageState });
  context.setDefaultTimeout(30_000);
  const page = await context.newPage();
  page.consoleLog = [];
  page.on('console', (m) => page.consoleLog.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => page.consoleLog.push(`[pageerror] ${e.message}`));
  page.on('requestfailed', (r) => page.consoleLog.push(`[requestfailed] ${r.url()} ${r.failure()?.errorText ?? ''}`));
  return page;
}

async function login(page) {
  await page.goto('/login');
  // The button is enabled once the page has hydrated.
  await page.locator('[data-testid=login-submit]:not([disabled])').waitFor();
  await page.getByTestId('login-username').fill(USER.name);
  await page.getByTestId('login-password').fill(USER.password);
  await page.getByTestId('login-submit').click();
  await page.waitForURL((url) => !url.pathname.startsWith('/login'));
  await page.getByTestId('current-user').filter({ hasText: USER.name }).waitFor();
}

/** How many lines `seq 1 N` needs for a recording of about `bytes`: line k is stored as k's digits + `\\r\\n` (4 bytes). */
function seqCount(bytes) {
  let n = 0;
  let left = bytes;
  for (let digits = 1, first = 1; left > 0; digits++, first *= 10) {
    const take = Math.min(9 * first, Math.floor(left / (digits + 4)));
    n += take;
    left -= take * (digits + 4);
    if (take < 9 * first) break;
  }
  return n;
}

/** Opens a local tab, starts `seq 1 n` after a pause and leaves the page before it prints: the detached session records it. */
async function startRecording(page, n) {
  await page.goto('/terminals');
  await page.locator('body[data-hydrated=true]').waitFor();
  await page.getByTestId('target-select').selectOption('local');
  await page.getByTestId('open-tab').click();
  const tab = page.locator('[data-testid=term-tab][data-state=live]').first();
  await tab.waitFor();
  const key = await tab.getAttribute('data-key');
  await tab.getByTestId('tab-title').click();
  await page.locator(`[data-testid=term-pane][data-key="${key}"] .xterm-helper-textarea`).focus();
  await page.keyboard.type(`echo go-$((6*7)); sleep 2; seq 1 ${n}; exit\n`);
  // The output line (not the echoed command): the shell has the whole line.
  await until('the shell to run the command', () => page.evaluate((k) => {
    const buf = document.querySelector(`[data-testid=term-pane][data-key="${k}"]`)?.xterm?.buffer?.active;
    for (let i = 0; buf && i < buf.length; i++) if (buf.getLine(i)?.translateToString(true).trim() === 'go-42') return true;
    return false;
  }, key), 30_000);
  await page.context().close();
}

/** Calls a server function (form-encoded arguments) with the page's login cookie. */
async function serverFn(page, base, name, form) {
  const res = await page.request.post(`${base}/api/${name}`, { form, headers: { origin: base } });
  if (!res.ok()) throw new Error(`/api/${name}: ${res.status()} ${await res.text()}`);
  return res.json();
}

// ---------------------------------------------------------------- measuring

/**
 * Runs in the page from its first script: notes when (Date.now()) the player
 * has loaded the recording (its control bar shows a time, not --:--) and when
 * it shows second `t`: loaded, the time beside it (data-seconds) within 1 s of
 * `t` and, if `numbers`, lines of `seq` output on its screen.
 */
function watchPlayer({ t, numbers }) {
  const seen = (window.__open = { loaded: null, shown: null, at: null, lines: [] });
  const timer = setInterval(() => {
    const player = document.querySelector('[data-testid=player] .ap-player');
    if (!player) return;
    if (seen.loaded === null && /\d/.test(player.querySelector('.ap-time-elapsed')?.textContent ?? '')) seen.loaded = Date.now();
    seen.at = Number(document.querySelector('[data-testid=player-time]')?.getAttribute('data-seconds'));
    seen.lines = [...player.querySelectorAll('.ap-term-text .ap-line')].map((l) => l.textContent.trimEnd());
    if (seen.loaded !== null && Math.abs(seen.at - t) <= 1 && (!numbers || seen.lines.some((l) => /^\d+$/.test(l)))) {
      seen.shown = Date.now();
      clearInterval(timer);
    }
  }, 20);
}

/**
 * Opens the player at second `t` in a fresh context: seconds from
 * `page.goto` until it loaded the recording and until it showed second `t`
 * (null if not within SHOW_GRACE_MS of loading), its time and screen then,
 * and the recording's responses.
 */
async function openAt(base, storageState, id, t, numbers) {
  const page = await newPage(base, storageState);
  await page.context().addInitScript(watchPlayer, { t, numbers });
  const bodies = [];
  page.on('response', (r) => {
    if (!r.url().includes(`/recordings/${id}.cast`)) return;
    bodies.push(r.body().then(async (b) => ({
      url: r.url().slice(base.length), status: r.status(), bytes: b.length, wire: (await r.request().sizes()).responseBodySize,
    })));
  });
  try {
    const t0 = Date.now();
    await page.goto(`/recordings/${id}?t=${t}`);
    await page.waitForFunction((grace) => {
      const seen = window.__open;
      return seen && (seen.shown !== null || (seen.loaded !== null && Date.now() - seen.loaded > grace));
    }, SHOW_GRACE_MS, { polling: 100, timeout: OPEN_TIMEOUT_MS }).catch(async (e) => {
      const seen = await page.evaluate(() => window.__open).catch(() => null);
      const casts = await Promise.race([Promise.all(bodies), sleep(10_000).then(() => 'still loading')]).catch((err) => err.message);
      throw new Error(`the player did not load the recording: ${e.message}\n# player: ${JSON.stringify(seen)}\n`
        + `# recording responses: ${JSON.stringify(casts)}\n# page console:\n${page.consoleLog.map((l) => `#   ${l}`).join('\n') || '#   (empty)'}`);
    });
    const seen = await page.evaluate(() => window.__open);
    // Untimed check: the player's time then settles at t.
    const settled = seen.shown === null ? null : await page.waitForFunction((t) => {
      const at = Number(document.querySelector('[data-testid=player-time]')?.getAttribute('data-seconds'));
      return Math.abs(at - t) <= 0.1 && { at };
    }, t, { polling: 50, timeout: 2_000 }).then((h) => h.jsonValue(), () => null);
    const secs = (when) => (when === null ? null : (when - t0) / 1000);
    return {
      ...seen, loaded: secs(seen.loaded), shown: secs(seen.shown), settled: settled?.at ?? null,
      casts: await Promise.all(bodies), console: page.consoleLog,
    };
  } finally {
    await page.context().close();
  }
}

/**
 * The numbers on a screen: whether they count up by one (at least two; the
 * last line may be cut short, a prefix of the next) and a summary.
 */
function numbersOn(lines) {
  const nums = lines.filter((l) => /^\d+$/.test(l));
  const next = (l) => String(Number(l) + 1);
  const cut = nums.length > 2 && nums.at(-1) !== next(nums.at(-2)) && next(nums.at(-2)).startsWith(nums.at(-1)) ? nums.pop() : null;
  const ok = nums.length >= 2 && nums.every((l, i) => i === 0 || l === next(nums[i - 1]));
  return { ok, text: nums.length ? `numbers ${nums[0]}..${nums.at(-1)}${cut ? ` and "${cut}" (cut short)` : ''}` : null };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return (s[Math.floor((s.length - 1) / 2)] + s[Math.ceil((s.length - 1) / 2)]) / 2;
}
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

// ---------------------------------------------------------------- main

async function main() {
  if (!existsSync(BIN)) throw new Error(`termroom binary not found: ${BIN} (cargo leptos build --release, or set TERMROOM_BIN)`);
  if (!existsSync(path.join(SITE_ROOT, 'pkg'))) throw new Error(`site not built: ${SITE_ROOT}/pkg missing (or set TERMROOM_SITE_ROOT)`);
  if (!existsSync(CHROMIUM)) throw new Error(`chromium not found at ${CHROMIUM}`);
  if (!(RECORDING_MB > 0) || !(RUNS >= 1)) throw new Error('BENCH_RECORDING_MB and BENCH_RUNS must be positive');
  dataDir = mkdtempSync(path.join(tmpdir(), 'termroom-recording-bench-'));
  const base = await startServer();
  browser = await launchChromium();
  console.log(`# recording-open bench ${new Date().toISOString()}: termroom ${BIN}, Chromium ${browser.version()}`);

  const admin = await newPage(base);
  await login(admin);
  const storageState = await admin.context().storageState();
  const n = seqCount(RECORDING_MB * 1e6);
  log(`recording \`seq 1 ${n}\` (about ${RECORDING_MB} MB)`);
  const recStart = Date.now();
  await startRecording(await newPage(base, storageState), n);
  const { id } = await until('the recording to be listed', async () => (await serverFn(admin, base, 'recordings', {}))[0], 30_000);
  const detail = await until('the recording to be complete', async () => {
    const d = await serverFn(admin, base, 'recording', { id });
    return d.info.state === 'complete' && d;
  }, 30 * 60_000);
  console.log(`recording ${id}: ${mb(detail.info.size)} (${detail.info.size} bytes), ${detail.duration.toFixed(2)} s long, `
    + `${detail.windows.length} windows, made in ${((Date.now() - recStart) / 1000).toFixed(1)} s`);

  const positions = [
    { name: 'start', t: 0, numbers: false },
    { name: 'middle', t: Number((detail.duration / 2).toFixed(3)), numbers: true },
    { name: 'end', t: Number(Math.max(0, detail.duration - 1).toFixed(3)), numbers: true },
  ];
  const results = new Map(positions.map((p) => [p.name, { loaded: [], shown: [] }]));
  for (let run = 1; run <= RUNS; run++) {
    for (const p of positions) {
      const r = await openAt(base, storageState, id, p.t, p.numbers);
      const numbers = numbersOn(r.lines);
      const screen = numbers.text ?? (r.lines.some(Boolean) ? 'no numbers' : 'blank');
      const shown = r.shown === null ? `NOT SHOWN within ${SHOW_GRACE_MS / 1000} s of loading` : `shown at t ${r.shown.toFixed(2)} s`;
      const downloads = r.casts.map((c) => `${c.url} ${c.status} ${mb(c.bytes)} (wire ${mb(c.wire)})`).join(', ') || 'none';
      console.log(`run ${run} ${p.name.padEnd(6)} t=${p.t}: loaded ${r.loaded.toFixed(2)} s, ${shown} (player time ${r.at}`
        + `${r.shown === null ? '' : `, then ${r.settled ?? 'not t'}`}, screen ${screen}); recording ${mb(r.casts.reduce((a, c) => a + c.bytes, 0))}: ${downloads}`);
      if (r.shown === null && r.console.length) console.log(r.console.map((l) => `#   ${l}`).join('\n'));
      if (r.shown !== null && r.settled === null) throw new Error(`run ${run} ${p.name}: the player's time did not settle at ${p.t} s`);
      if (r.shown !== null && p.numbers && !numbers.ok) {
        throw new Error(`run ${run} ${p.name}: the numbers on the player's screen are not consecutive:\n${r.lines.join('\n')}`);
      }
      results.get(p.name).loaded.push(r.loaded);
      if (r.shown !== null) results.get(p.name).shown.push(r.shown);
    }
  }

  const stats = (xs) => `${Math.min(...xs).toFixed(2)} / ${median(xs).toFixed(2)} / ${Math.max(...xs).toFixed(2)} s`;
  console.log(`\n## Opening a ${mb(detail.info.size)} recording (${detail.windows.length} windows) in the player, ${RUNS} runs each (min / median / max)\n`);
  let missing = 0;
  for (const p of positions) {
    const { loaded, shown } = results.get(p.name);
    missing += RUNS - shown.length;
    const at = shown.length === RUNS ? stats(shown) : `not shown in ${RUNS - shown.length} of ${RUNS} runs${shown.length ? `; others ${stats(shown)}` : ''}`;
    console.log(`${p.name.padEnd(6)} (t=${p.t} s): shows second t ${at}; recording loaded ${stats(loaded)}`);
  }
  const middle = results.get('middle').shown;
  console.log(`\nmiddle median < ${TARGET_SECS} s: ${middle.length === RUNS && median(middle) < TARGET_SECS ? 'yes' : 'no'}`);
  if (missing) throw new Error(`the player did not show the moment sought in ${missing} of ${RUNS * positions.length} opens`);
}

main().then(async () => {
  await cleanup();
  process.exit(0);
}, async (err) => {
  console.error(`recording-open bench FAILED: ${err.stack || err}`);
  console.error(`# termroom log (tail):\n${serverLog.slice(-30).map((l) => `#   ${l}`).join('\n')}`);
  await cleanup();
  process.exit(1);
});
