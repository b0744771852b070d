// End-to-end tests: start the built termroom server on a free loopback port
// with a throwaway data directory, drive it with Debian's Chromium through
// playwright-core, and check chat, terminals, send-to-all and reattach.
//
//   node end2end/run.mjs            (from the repository root, after `cargo leptos build`)
//
// Environment: TERMROOM_BIN (default target/debug/termroom), TERMROOM_SITE_ROOT
// (default target/site), CHROMIUM (default /usr/bin/chromium), KEEP_DATA=1 keeps
// the data directory, E2E_DUMP=1 prints every page's console. A test also fails
// when its pages log a Wasm panic, a hydration error or an uncaught exception.
// On a failure the page consoles, the server log tail and screenshot paths
// (end2end/results/) are printed.
// The shared parts (waits, pages, login, chat and terminal steps) are in
// end2end/support.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ROOT, RESULTS, TERM_WAIT_MS, sleep, until, freePort, checkBuilt, launchChromium,
  withPages as withPagesOn, login as loginWith, hydrated,
  chatOnline, say as sendMessage, message,
  openTerminalsPage, openLocalTab, waitLive, termLines, waitLine, typeInTab,
} from './support.mjs';

const BIN = path.resolve(ROOT, process.env.TERMROOM_BIN ?? 'target/debug/termroom');
const SITE_ROOT = process.env.TERMROOM_SITE_ROOT ?? 'target/site';

/** How long a message must stay absent to count as "not delivered". */
const ABSENCE_MS = 1_500;

const USERS = {
  alice: { password: 'alice-e2e-password', role: 'admin' },
  bob: { password: 'bob-e2e-password', role: 'member' },
  carol: { password: 'carol-e2e-password', role: 'admin' },
  dave: { password: 'dave-e2e-password', role: 'member' },
};

const run = Math.random().toString(36).slice(2, 8);
let dataDir;
let server;
let serverLog = [];
let base;
let browser;

// ---------------------------------------------------------------- server

function addUser(name, { password, role }) {
  const r = spawnSync(BIN, ['user', 'add', name, '--role', role, '--data-dir', dataDir], {
    cwd: ROOT,
    input: `${password}\n`,
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) {
    throw new Error(`termroom user add ${name} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout || r.error}`);
  }
}

function keepLog(chunk) {
  for (const line of chunk.toString().split('\n')) {
    if (line.trim()) serverLog.push(line);
  }
  if (serverLog.length > 400) serverLog = serverLog.slice(-300);
}

async function startServer() {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(BIN, [
    'serve', '--addr', `127.0.0.1:${port}`, '--data-dir', dataDir, '--allowed-origin', base,
  ], {
    cwd: ROOT,
    env: {
      ...process.env,
      LEPTOS_SITE_ROOT: SITE_ROOT,
      LEPTOS_SITE_PKG_DIR: 'pkg',
      LEPTOS_OUTPUT_NAME: 'termroom',
      RUST_LOG: process.env.RUST_LOG ?? 'info',
      // bash without the machine's startup files (see scripts/test-shell).
      TERMROOM_LOCAL_SHELL: path.join(ROOT, 'scripts', 'test-shell'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout.on('data', keepLog);
  server.stderr.on('data', keepLog);
  let exited = null;
  server.on('exit', (code, signal) => { exited = code ?? signal; });

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited !== null) throw new Error(`termroom exited (${exited}) before answering:\n${serverLog.join('\n')}`);
    try {
      const res = await fetch(`${base}/login`, { signal: AbortSignal.timeout(2_000) });
      if (res.status < 500) return;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`termroom did not answer on ${base} within 30 s:\n${serverLog.join('\n')}`);
    await sleep(200);
  }
}

async function stopServer() {
  if (!server || server.exitCode !== null) return;
  const gone = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  const timer = setTimeout(() => server.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(timer);
}

// ---------------------------------------------------------------- helpers

/**
 * Runs a test body with the pages it opens (support.mjs); on failure prints
 * each page's console, a screenshot path and the server log tail, then rethrows.
 */
function withPages(name, body) {
  return withPagesOn({ browser, base, printLogs: printServerLog }, name, body);
}

function printServerLog() {
  console.error(`# server log (tail):\n${serverLog.slice(-60).map((l) => `#   ${l}`).join('\n')}`);
}

function login(page, name) {
  return loginWith(page, name, USERS[name].password);
}

// ---- chat

/** Sends a message; the composer keeps focus. */
async function say(page, text) {
  await sendMessage(page, text);
  const input = page.getByTestId('message-input');
  const focused = await input.evaluate((el) => document.activeElement === el);
  assert.ok(focused, 'the message input keeps focus after sending');
}

async function sees(page, text) {
  await message(page, text).first().waitFor();
}

async function doesNotSee(page, text) {
  await sleep(ABSENCE_MS);
  assert.equal(await message(page, text).count(), 0, `${page.label} must not see "${text}"`);
}

async function joinRoom(page, room) {
  await page.getByTestId('join-room-input').fill(room);
  await page.getByTestId('join-room-input').press('Enter');
  await page.getByTestId('current-room').filter({ hasText: `#${room}` }).waitFor();
}

// ---- terminals

/** Waits until the shell in the tab asked for bracketed paste (bash does at each prompt). */
async function waitBracketedPaste(page, key) {
  await until(`bracketed paste mode in tab ${key}`, () => page.evaluate((k) => {
    const el = document.querySelector(`[data-testid=term-pane][data-key="${k}"]`);
    return el?.xterm?.modes?.bracketedPasteMode === true;
  }, key), TERM_WAIT_MS);
}

/** Pastes `text` into the tab as the browser does for Ctrl+V: a `paste` event on xterm's textarea. */
async function pasteEvent(page, key, text) {
  await page.evaluate(({ k, t }) => {
    const pane = document.querySelector(`[data-testid=term-pane][data-key="${k}"]`);
    const textarea = pane.querySelector('.xterm-helper-textarea');
    textarea.focus();
    const data = new DataTransfer();
    data.setData('text/plain', t);
    textarea.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  }, { k: key, t: text });
}

/** Records the page's terminal sockets (`window.__termSockets`) so a test can drop one. */
async function recordTermSockets(page) {
  await page.addInitScript(() => {
    const Native = window.WebSocket;
    window.__termSockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        if (String(args[0]).includes('/ws/term/')) window.__termSockets.push(this);
      }
    };
  });
}

/** A file name under the system temp dir that no test run used before. */
function freshPath(label) {
  return path.join(tmpdir(), `termroom-e2e-${label}-${run}-${Math.random().toString(36).slice(2, 8)}`);
}

/** The lines of the watch page's read-only terminal. */
async function watchLines(page) {
  return page.evaluate(() => {
    const buf = document.querySelector('[data-testid=watch-pane]')?.xterm?.buffer?.active;
    if (!buf) return [];
    const lines = [];
    for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i)?.translateToString(true) ?? '');
    return lines;
  });
}

// ---------------------------------------------------------------- setup

before(async () => {
  checkBuilt(BIN, SITE_ROOT);
  dataDir = mkdtempSync(path.join(tmpdir(), 'termroom-e2e-'));
  for (const [name, user] of Object.entries(USERS)) addUser(name, user);
  await startServer();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close().catch(() => {});
  await stopServer();
  if (dataDir && !process.env.KEEP_DATA) rmSync(dataDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- tests

test('login: wrong password is refused, a protected page sends you to login and back', { timeout: 90_000 }, async () => {
  await withPages('login', async (open) => {
    const page = await open('bob');
    await page.goto('/terminals?host=nowhere');
    await page.waitForURL((url) => url.pathname === '/login');
    assert.equal(new URL(page.url()).searchParams.get('next'), '/terminals?host=nowhere');

    await page.locator('[data-testid=login-submit]:not([disabled])').waitFor();
    await page.getByTestId('login-username').fill('bob');
    await page.getByTestId('login-password').fill('not-the-password');
    await page.getByTestId('login-submit').click();
    await page.getByTestId('login-error').filter({ hasText: 'wrong user name or password' }).waitFor();

    await page.getByTestId('login-password').fill(USERS.bob.password);
    await page.getByTestId('login-submit').click();
    await page.waitForURL((url) => url.pathname === '/terminals');
    await page.getByTestId('current-user').filter({ hasText: 'bob' }).waitFor();
  });
});

test('account: a user changes their password from the top bar; every session of theirs ends and only the new password works', { timeout: 90_000 }, async () => {
  await withPages('account', async (open) => {
    const page = await open('dave');
    const other = await open('dave-elsewhere');
    await login(page, 'dave');
    await login(other, 'dave');
    await page.getByTestId('current-user').click();
    await page.waitForURL((url) => url.pathname === '/account');
    await hydrated(page);
    const newPassword = `dave-new-password-${run}`;
    const attempt = async (current, next, again) => {
      await page.getByTestId('password-current').fill(current);
      await page.getByTestId('password-new').fill(next);
      await page.getByTestId('password-again').fill(again);
      await page.getByTestId('password-submit').click();
    };
    await attempt(USERS.dave.password, newPassword, `${newPassword}-typo`);
    await page.getByTestId('password-error').filter({ hasText: 'the two new passwords differ' }).waitFor();
    await attempt('not-the-password', newPassword, newPassword);
    await page.getByTestId('password-error').filter({ hasText: 'the current password is not right' }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/account', 'a refusal stays on the page');

    await attempt(USERS.dave.password, newPassword, newPassword);
    await page.waitForURL((url) => url.pathname === '/login' && url.searchParams.get('changed') === '1');
    await page.getByTestId('password-changed').waitFor();
    // The other browser's session ended too.
    await other.goto('/recordings');
    await other.waitForURL((url) => url.pathname === '/login');

    await page.locator('[data-testid=login-submit]:not([disabled])').waitFor();
    await page.getByTestId('login-username').fill('dave');
    await page.getByTestId('login-password').fill(USERS.dave.password);
    await page.getByTestId('login-submit').click();
    await page.getByTestId('login-error').filter({ hasText: 'wrong user name or password' }).waitFor();
    await loginWith(page, 'dave', newPassword);
  });
});

test('chat: two users talk in general both ways, rooms are isolated, missed messages backfill', { timeout: 120_000 }, async () => {
  await withPages('chat', async (open) => {
    const alice = await open('alice');
    const bob = await open('bob');
    await login(alice, 'alice');
    await login(bob, 'bob');
    await chatOnline(alice);
    await chatOnline(bob);
    await alice.getByTestId('current-room').filter({ hasText: '#general' }).waitFor();

    const a1 = `hello bob ${run}`;
    await say(alice, a1);
    await sees(alice, a1);
    await sees(bob, a1);
    const b1 = `hi alice ${run}`;
    await say(bob, b1);
    await sees(alice, b1);
    await bob.locator('[data-testid=online-user]', { hasText: 'alice' }).waitFor();

    // Alice moves to another room: what is said there stays there, and the other way round.
    const room = `ops-${run}`;
    await joinRoom(alice, room);
    const a2 = `ops only ${run}`;
    await say(alice, a2);
    await sees(alice, a2);
    const b2 = `general only ${run}`;
    await say(bob, b2);
    await sees(bob, b2);
    await doesNotSee(alice, b2);
    await doesNotSee(bob, a2);
    await alice.locator(`[data-testid=room][data-room="${room}"]`).waitFor();

    // Back in general, alice gets what she missed, exactly once.
    await alice.locator('[data-testid=room][data-room="general"]').click();
    await alice.getByTestId('current-room').filter({ hasText: '#general' }).waitFor();
    await sees(alice, b2);
    await sleep(500);
    assert.equal(await message(alice, a1).count(), 1, 'no duplicate after rejoining');
    assert.equal(await message(alice, b2).count(), 1, 'no duplicate after rejoining');

    // Bob joins the new room and finds its history.
    await joinRoom(bob, room);
    await sees(bob, a2);
    await doesNotSee(bob, b2);
  });
});

test('terminal: open a tab to local and run echo', { timeout: 120_000 }, async () => {
  await withPages('terminal', async (open) => {
    const page = await open('alice');
    await login(page, 'alice');
    await openTerminalsPage(page);
    const key = await openLocalTab(page);
    await typeInTab(page, key, 'echo hi\n');
    await waitLine(page, key, 'hi');
  });
});

test('terminal: send to all types into every selected tab, opted-out tabs are skipped', { timeout: 150_000 }, async () => {
  await withPages('send-to-all', async (open) => {
    const page = await open('alice');
    await login(page, 'alice');
    await openTerminalsPage(page);
    const one = await openLocalTab(page);
    const two = await openLocalTab(page);
    await until('both tabs included', async () => (await page.getByTestId('broadcast-result').textContent()).includes('2 tabs receiving'));

    await page.getByTestId('broadcast-input').fill('echo sent-$((6*7))');
    await page.getByTestId('broadcast-input').press('Enter');
    await waitLine(page, one, 'sent-42');
    await waitLine(page, two, 'sent-42');

    // Opt the second tab out: only the first one runs the next line.
    await page.locator(`[data-testid=term-tab][data-key="${two}"] [data-testid=tab-include]`).uncheck();
    await page.getByTestId('broadcast-input').fill('echo only-$((40+2))');
    await page.getByTestId('broadcast-send').click();
    await waitLine(page, one, 'only-42');
    await sleep(ABSENCE_MS);
    assert.ok(!(await termLines(page, two)).some((l) => l.trim() === 'only-42'), 'the opted-out tab got nothing');
  });
});

test('terminal: a reload reattaches to the same shell', { timeout: 150_000 }, async () => {
  await withPages('reattach', async (open) => {
    const page = await open('alice');
    await login(page, 'alice');
    await openTerminalsPage(page);
    const key = await openLocalTab(page);
    const session = await page.locator(`[data-testid=term-tab][data-key="${key}"]`).getAttribute('data-session');
    assert.ok(session, 'the tab knows its session');
    await typeInTab(page, key, 'export TR_MARK=xyz; echo mark-$((2+3))\n');
    await waitLine(page, key, 'mark-5');

    await page.reload();
    await hydrated(page);
    const tab = page.locator(`[data-testid=term-tab][data-session="${session}"]`);
    await tab.waitFor({ timeout: TERM_WAIT_MS });
    const newKey = await tab.getAttribute('data-key');
    await waitLive(page, newKey);
    assert.equal(await page.getByTestId('term-tab').count(), 1, 'one tab after the reload');
    // Replayed from the start of the stream (or a snapshot): the earlier output is back.
    await waitLine(page, newKey, 'mark-5');
    await typeInTab(page, newKey, 'echo $TR_MARK\n');
    await waitLine(page, newKey, 'xyz');
  });
});

test('terminal: a deep link opens one tab per host, once', { timeout: 150_000 }, async () => {
  await withPages('deep-link', async (open) => {
    const page = await open('alice');
    await login(page, 'alice');
    await page.goto('/terminals?host=local&host=local');
    await hydrated(page);
    await until('two tabs from the deep link', async () => (await page.getByTestId('term-tab').count()) === 2);
    for (const key of await page.getByTestId('term-tab').evaluateAll((els) => els.map((e) => e.dataset.key))) {
      await waitLive(page, key);
    }
    await page.reload();
    await hydrated(page);
    await until('the two tabs restored', async () => (await page.locator('[data-testid=term-tab][data-state=live]').count()) === 2, TERM_WAIT_MS);
    await sleep(ABSENCE_MS);
    assert.equal(await page.getByTestId('term-tab').count(), 2, 'the deep link did not open more tabs on reload');
  });
});

test('admin: add a user and a namespace, grant and revoke membership; members are kept out', { timeout: 120_000 }, async () => {
  await withPages('admin', async (open) => {
    const alice = await open('alice');
    await login(alice, 'alice');
    await alice.goto('/admin');
    await hydrated(alice);
    const users = alice.getByTestId('admin-users');
    await users.waitFor();
    const carol = `carol${run}`;
    await alice.getByTestId('add-user-name').fill(carol);
    await alice.getByTestId('add-user-password').fill('carol-e2e-password');
    await alice.getByTestId('add-user-role').selectOption('member');
    await alice.getByTestId('add-user-form').locator('button[type=submit]').click();
    await alice.locator(`[data-testid=user-row][data-user="${carol}"]`).waitFor();

    const ns = `team-${run}`;
    await alice.getByTestId('add-namespace-name').fill(ns);
    await alice.getByTestId('add-namespace-name').press('Enter');
    const item = alice.locator(`[data-testid=namespace][data-namespace="${ns}"]`);
    await item.waitFor();
    await item.getByTestId('grant-user').fill(carol);
    await item.getByTestId('grant-user').press('Enter');
    await item.getByTestId('member').filter({ hasText: carol }).waitFor();
    await item.getByTestId('revoke-member').click();
    await until('the member removed', async () => (await item.getByTestId('member').count()) === 0);

    const bob = await open('bob');
    await login(bob, 'bob');
    await bob.goto('/admin');
    await bob.getByTestId('admins-only').waitFor();
    assert.equal(await bob.getByTestId('admin-users').count(), 0, 'no admin lists for members');
  });
});

test('terminal: a paste holding the end-of-paste marker cannot run what follows it', { timeout: 150_000 }, async () => {
  await withPages('paste-marker', async (open) => {
    const page = await open('alice');
    await login(page, 'alice');
    await openTerminalsPage(page);
    const key = await openLocalTab(page);
    await waitBracketedPaste(page, key);

    // Two ways a paste reaches the shell: the browser's paste event (Ctrl+V,
    // the context menu), and xterm's own paste() (the Paste button uses it).
    const ways = {
      event: (text) => pasteEvent(page, key, text),
      api: (text) => page.evaluate(({ k, t }) => {
        document.querySelector(`[data-testid=term-pane][data-key="${k}"]`).xterm.paste(t);
      }, { k: key, t: text }),
    };
    let round = 0;
    for (const [way, paste] of Object.entries(ways)) {
      round += 1;
      const victim = freshPath(`pwned-${way}`);
      assert.ok(!existsSync(victim));
      // Were the marker to end the paste, the shell would run `: x; touch …` at the Enter.
      await paste(`: pasted-${way};\x1b[201~touch ${victim}\r`);
      await until(`the pasted text on screen (${way})`, async () =>
        (await termLines(page, key)).some((l) => l.includes(`touch ${victim}`)));
      const shown = await termLines(page, key);
      // Drop the line, then prove the shell has handled everything before.
      await page.keyboard.press('Control+C');
      await typeInTab(page, key, `echo after-paste-$((${round}*1000+7))\n`);
      await waitLine(page, key, `after-paste-${round * 1000 + 7}`);
      assert.ok(!existsSync(victim), `the paste via ${way} ran a command: ${victim} exists`);
      // The whole text waited in the shell's line as pasted text, the marker as plain text.
      assert.ok(shown.some((l) => l.includes(`[201~touch ${victim}`)), `the marker arrived as plain text (${way}):\n${shown.join('\n')}`);
      await waitBracketedPaste(page, key);
    }
  });
});

test('terminal: send to all neutralises paste markers in its line', { timeout: 150_000 }, async () => {
  await withPages('broadcast-marker', async (open) => {
    const page = await open('alice');
    await login(page, 'alice');
    await openTerminalsPage(page);
    const key = await openLocalTab(page);
    await waitBracketedPaste(page, key);
    await until('the tab receiving', async () => (await page.getByTestId('broadcast-result').textContent()).includes('1 tab receiving'));
    // Sent raw, `ESC[200~` would open a paste that swallows the Enter (and
    // an `ESC[201~` could end one): the line must run as typed text.
    await page.getByTestId('broadcast-input').fill('echo "A\x1b[201~B\x1b[200~C-$((6*7))"');
    await page.getByTestId('broadcast-input').press('Enter');
    await waitLine(page, key, 'A[201~B[200~C-42');
  });
});

test('terminal: input typed while reconnecting is sent after reattach; beyond 64 KiB it is refused visibly', { timeout: 180_000 }, async () => {
  await withPages('reconnect-input', async (open) => {
    const page = await open('alice');
    await recordTermSockets(page);
    await login(page, 'alice');
    await openTerminalsPage(page);
    const key = await openLocalTab(page);
    await typeInTab(page, key, 'echo ready-$((1+1))\n');
    await waitLine(page, key, 'ready-2');

    // Hold every reattach until released, so the tab stays disconnected.
    let release;
    const released = new Promise((resolve) => { release = resolve; });
    let held = 0;
    await page.route('**/api/term_attach*', async (route) => {
      held += 1;
      await released;
      await route.continue();
    });
    const tab = page.locator(`[data-testid=term-tab][data-key="${key}"]`);
    const dropped = await page.evaluate(() => {
      const open = window.__termSockets.filter((ws) => ws.readyState === WebSocket.OPEN);
      for (const ws of open) ws.close();
      return open.length;
    });
    assert.equal(dropped, 1, 'one open terminal socket to drop');
    await page.locator(`[data-testid=term-tab][data-key="${key}"][data-state=reconnecting]`).waitFor({ timeout: TERM_WAIT_MS });

    await typeInTab(page, key, 'echo buffered-$((6*7))\n');
    // More than the buffer holds, as one piece: refused whole, and said so.
    await page.evaluate((k) => {
      document.querySelector(`[data-testid=term-pane][data-key="${k}"]`).xterm.input(`#${'x'.repeat(70 * 1024)}`, true);
    }, key);
    await tab.getByTestId('tab-unsent').waitFor({ state: 'visible' });
    assert.equal(await tab.getAttribute('data-state'), 'reconnecting', 'still disconnected while typing');
    await until('the refusal notice', async () =>
      (await termLines(page, key)).some((l) => l.includes('input beyond the first 64 KiB is not sent')));

    await until('a held reattach', async () => held > 0, TERM_WAIT_MS);
    release();
    await waitLive(page, key);
    await waitLine(page, key, 'buffered-42');
    assert.ok(!(await termLines(page, key)).some((l) => l.includes('xxxxxxxxxx')), 'the refused input never reached the shell');
    // Typing into the live shell again clears the tab's warning.
    await typeInTab(page, key, 'echo live-$((2*3))\n');
    await waitLine(page, key, 'live-6');
    await tab.getByTestId('tab-unsent').waitFor({ state: 'hidden' });
  });
});

test('recordings: a session is listed, plays with its markers, seeks on a marker and on a search hit, and is shared into chat', { timeout: 180_000 }, async () => {
  await withPages('recording', async (open) => {
    const page = await open('alice');
    await login(page, 'alice');
    // The room the recording is shared into exists once someone joined it.
    await chatOnline(page);
    await openTerminalsPage(page);
    const key = await openLocalTab(page);
    await page.getByTestId('broadcast-input').fill('echo marked-$((6*7))');
    await page.getByTestId('broadcast-input').press('Enter');
    await waitLine(page, key, 'marked-42');
    await sleep(1_500);
    await typeInTab(page, key, 'echo findme-$((2+3))\n');
    await waitLine(page, key, 'findme-5');
    await typeInTab(page, key, 'exit\n');
    await page.locator(`[data-testid=term-tab][data-key="${key}"][data-state=exited]`).waitFor({ timeout: TERM_WAIT_MS });

    await page.goto('/recordings');
    await hydrated(page);
    const row = page.getByTestId('recording-row').first();
    await row.waitFor();
    assert.match(await row.textContent(), /local/);
    await row.getByTestId('recording-link').click();
    await page.waitForURL(/\/recordings\/[0-9a-f]{32}$/);
    await hydrated(page);
    // asciinema-player draws into the box.
    await page.locator('[data-testid=player] .ap-player').waitFor({ timeout: TERM_WAIT_MS });
    const marker = page.getByTestId('marker').filter({ hasText: 'send to all: echo marked-$((6*7))' });
    await marker.waitFor();
    const markerTime = Number(await marker.getAttribute('data-time'));
    assert.ok(markerTime > 0, `the marker has a time (${markerTime})`);
    const playerTime = async () => Number(await page.getByTestId('player-time').getAttribute('data-seconds'));
    await marker.click();
    await until('the player at the marker', async () => Math.abs((await playerTime()) - markerTime) < 0.5);

    await page.getByTestId('recording-search').fill('findme-5');
    await page.getByTestId('recording-search').press('Enter');
    const hits = page.getByTestId('search-hit');
    await hits.first().waitFor();
    // The echoed command line holds "findme-$((2+3))", the output line "findme-5".
    const hit = hits.filter({ hasText: 'findme-5' }).first();
    const hitTime = Number(await hit.getAttribute('data-time'));
    assert.ok(hitTime > markerTime, `printed after the marker (${hitTime} > ${markerTime})`);
    await hit.click();
    await until('the player at the hit', async () => Math.abs((await playerTime()) - hitTime) < 0.5);

    // Share it into a chat room at the current time: a card in the chat
    // opens the player there; bob (no access) sees it is restricted.
    const recordingUrl = new URL(page.url());
    await page.getByTestId('share-room').fill('general');
    await page.getByTestId('share-send').click();
    const shared = page.getByTestId('share-result');
    await shared.waitFor();
    assert.match(await shared.textContent(), /posted to #general/);
    const bobPage = await open('bob');
    await login(bobPage, 'bob');
    await bobPage.goto('/');
    await chatOnline(bobPage);
    await bobPage.getByTestId('recording-card-restricted').last().waitFor();
    assert.equal(await bobPage.getByTestId('recording-card').count(), 0, 'no card for a reader without access');
    await page.goto('/');
    await chatOnline(page);
    const card = page.getByTestId('recording-card').last();
    await card.waitFor();
    assert.match(await card.textContent(), /alice@local/);
    await card.click();
    await page.waitForURL((u) => u.pathname === recordingUrl.pathname && u.searchParams.has('t'));
    const sharedAt = Number(new URL(page.url()).searchParams.get('t'));
    await hydrated(page);
    await until('the player at the shared time', async () => Math.abs((await playerTime()) - sharedAt) < 0.6);
    if (process.env.E2E_SHOTS) {
      mkdirSync(RESULTS, { recursive: true });
      await page.screenshot({ path: path.join(RESULTS, 'player.png'), fullPage: true });
      await page.goto('/recordings');
      await page.getByTestId('recording-row').first().waitFor();
      await page.screenshot({ path: path.join(RESULTS, 'recordings.png'), fullPage: true });
    }
  });
});

test('recordings: a long recording opens at any moment, in windows the player moves between', { timeout: 240_000 }, async () => {
  await withPages('long-recording', async (open) => {
    const page = await open('alice');
    await login(page, 'alice');
    await chatOnline(page);
    await openTerminalsPage(page);
    const key = await openLocalTab(page);
    // Shared into chat from the tab, while it runs.
    await page.getByTestId('term-share').click();
    await page.getByTestId('term-share-room').fill('general');
    await page.getByTestId('term-share-send').click();
    await until('the share posted', async () => /posted to #general/.test(await page.getByTestId('term-share-result').textContent()));
    // About 21 MB of output in 30 steps (at a pace the unoptimised e2e
    // build's recorder keeps up with: a recorder that falls behind ends a
    // strict session); the shell's exit ends it.
    await typeInTab(page, key, 'for i in $(seq 0 29); do seq $((i*100000+1)) $(((i+1)*100000)); sleep 0.3; done; exit\n');
    await page.locator(`[data-testid=term-tab][data-key="${key}"][data-state=exited]`).waitFor({ timeout: 150_000 });
    await page.goto('/recordings');
    await hydrated(page);
    const link = page.getByTestId('recording-link').first();
    await link.waitFor();
    const id = (await link.getAttribute('href')).split('/').pop();
    let detail;
    await until('the long recording finished', async () => {
      // From the page, as the app calls it (same origin).
      detail = await page.evaluate(async (rid) => {
        const r = await fetch('/api/recording', { method: 'POST', body: new URLSearchParams({ id: rid }) });
        return r.json();
      }, id);
      return detail.info?.state === 'complete';
    }, 30_000);
    const { windows, duration } = detail;
    assert.ok(windows.length >= 3, `a 33 MB recording plays in windows: ${JSON.stringify(windows)}`);

    const loaded = [];
    page.on('request', (r) => {
      const m = r.url().match(/\/recordings\/[0-9a-f]{32}\.cast(\?window=(\d+))?$/);
      if (m) loaded.push(m[2] === undefined ? 'whole' : Number(m[2]));
    });
    const playerTime = async () => Number(await page.getByTestId('player-time').getAttribute('data-seconds'));
    const screen = async () => (await page.locator('[data-testid=player] .ap-term').innerText()).split('\n').map((l) => l.trim());
    const middle = Math.floor(windows.length / 2);
    const t = (windows[middle].start + windows[middle].end) / 2;
    await page.goto(`/recordings/${id}?t=${t.toFixed(3)}`);
    await hydrated(page);
    await page.locator('[data-testid=player] .ap-player').waitFor({ timeout: TERM_WAIT_MS });
    await page.getByTestId('player-scrub').waitFor();
    await until('the player in the middle', async () => Math.abs((await playerTime()) - t) < 0.3);
    assert.deepEqual(loaded, [middle], 'only the window that holds the moment is loaded');
    // The unoptimised build on a busy CI machine may take a while to parse a
    // window of 8+ MB (the release figures are in BENCHMARKS.md).
    await page.locator('[data-testid=player] .ap-term').waitFor({ timeout: 90_000 });
    // The screen there: consecutive numbers well past the start (the window
    // began from a keyframe, not from a blank screen).
    let numbers = [];
    await until('numbers on the player screen', async () => {
      numbers = (await screen()).filter((l) => /^\d+$/.test(l)).map(Number);
      return numbers.length >= 10;
    });
    const whole = numbers.slice(0, -1); // the last line may still be printing
    for (let i = 1; i < whole.length; i++) assert.equal(whole[i], whole[i - 1] + 1, `consecutive lines: ${whole.join(' ')}`);
    assert.ok(whole[0] > 100_000, `from the middle of the output: ${whole[0]}`);

    // The scrubber covers the whole recording: its end is in the last window.
    await page.getByTestId('player-scrub').evaluate((el, v) => {
      el.value = v;
      el.dispatchEvent(new Event('change', { bubbles: true }));
    }, String(duration));
    await until('the last window loaded', async () => loaded.at(-1) === windows.length - 1);
    await until('the end of the output on the screen', async () => (await screen()).includes('3000000'));
    // And back to the start.
    await page.getByTestId('player-scrub').evaluate((el) => {
      el.value = '0';
      el.dispatchEvent(new Event('change', { bubbles: true }));
    });
    await until('the first window loaded', async () => loaded.at(-1) === 0);
    await until('the player at the start', async () => (await playerTime()) < 0.5);

    // The card shared from the tab opens this recording.
    await page.goto('/');
    await chatOnline(page);
    const card = page.locator(`[data-testid=recording-card][href^="/recordings/${id}"]`);
    await card.waitFor();
    await card.click();
    await page.waitForURL((u) => u.pathname === `/recordings/${id}`);
  });
});

test('monitoring: an admin watches a session live, the owner sees who watches, the admin terminates it and the owner sees why', { timeout: 180_000 }, async () => {
  await withPages('monitoring', async (open) => {
    const user = await open('alice');
    await login(user, 'alice');
    await openTerminalsPage(user);
    const key = await openLocalTab(user);
    await typeInTab(user, key, 'echo before-watch\n');
    await waitLine(user, key, 'before-watch');
    const tab = user.locator(`[data-testid=term-tab][data-key="${key}"]`);
    const sessionId = await tab.getAttribute('data-session');
    assert.ok(sessionId, 'the tab knows its session');

    const admin = await open('carol');
    await login(admin, 'carol');
    await admin.goto('/live');
    await hydrated(admin);
    const row = admin.locator(`[data-testid=live-row][data-session="${sessionId}"]`);
    await row.waitFor();
    assert.equal(await row.getAttribute('data-user'), 'alice');
    await row.getByTestId('live-watch').click();
    await admin.waitForURL((url) => url.pathname === `/live/${sessionId}`);
    await admin.getByTestId('watch-status').filter({ hasText: 'Live' }).waitFor({ timeout: TERM_WAIT_MS });
    // First the screen as it is, then what is typed from now on.
    await until('the watcher sees the screen', async () => (await watchLines(admin)).some((l) => l.trim() === 'before-watch'), TERM_WAIT_MS);
    await tab.getByTestId('tab-watched').filter({ hasText: 'carol' }).waitFor({ timeout: TERM_WAIT_MS });
    await typeInTab(user, key, 'echo live-$((6*7))\n');
    await until('the watcher sees it live', async () => (await watchLines(admin)).some((l) => l.trim() === 'live-42'), TERM_WAIT_MS);
    // Keys pressed in the watcher's terminal go nowhere.
    await admin.getByTestId('watch-pane').click();
    await admin.keyboard.type('echo from-watcher-$((1+1))\n');
    await sleep(ABSENCE_MS);
    assert.ok(!(await termLines(user, key)).some((l) => l.includes('from-watcher')), 'a watcher cannot type');

    // The command is in the audit log, linked to its moment in the recording.
    await admin.goto('/audit');
    await hydrated(admin);
    const cmd = admin.getByTestId('command-row').filter({ hasText: 'echo live-$((6*7))' });
    await cmd.waitFor();
    assert.match(await cmd.getByTestId('command-link').getAttribute('href'), new RegExp(`^/recordings/${sessionId}\\?t=`));

    await admin.goto('/live');
    await hydrated(admin);
    await row.getByTestId('live-reason').fill('e2e incident review');
    await row.getByTestId('live-terminate').click();
    await admin.getByTestId('live-message').filter({ hasText: 'terminated alice@local' }).waitFor();
    await until('the owner sees why', async () => (await termLines(user, key)).some((l) => l.includes('terminated by carol: e2e incident review')), TERM_WAIT_MS);
    await user.locator(`[data-testid=term-tab][data-key="${key}"]:not([data-state=live])`).waitFor({ timeout: TERM_WAIT_MS });
    await until('the session leaves the Live page', async () => (await row.count()) === 0, TERM_WAIT_MS);
  });
});
