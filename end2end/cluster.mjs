// End-to-end test of several nodes: starts a cluster of its own with
// scripts/cluster.sh (Postgres, Redis, nodes a and b, haproxy round robin in
// front, no sticky sessions) in a throwaway directory on free loopback
// ports, and drives it through the load balancer only, with Debian's
// Chromium through playwright-core: two users on (most likely) different
// nodes chat, a terminal keeps working after a reload whose socket
// reaches the node that does not hold the session (forwarded), a rolling
// restart (`scripts/cluster.sh restart`) lets a live terminal finish while
// new ones open on the other node, and a tab whose node is killed says its
// session was interrupted.
//
//   node end2end/cluster.mjs         (from the repository root, after `cargo leptos build`)
//
// Environment: TERMROOM_BIN (default target/debug/termroom), TERMROOM_SITE_ROOT
// (default target/site), CHROMIUM (default /usr/bin/chromium), KEEP_DATA=1 keeps
// the cluster directory (stopped), E2E_DUMP=1 prints every page's console,
// E2E_SHOTS=1 saves a screenshot at the end of each test. Local shells are
// scripts/test-shell (bash without startup files), as in run.mjs. Needs what
// scripts/cluster.sh needs (postgresql-15, redis-server, haproxy). A test
// also fails when its pages log a Wasm panic, a hydration error or an
// uncaught exception. On a failure the page consoles, the nodes' and
// haproxy's log tails and screenshot paths (end2end/results/) are printed.
// The shared parts (waits, pages, login, chat and terminal steps) are in
// end2end/support.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ROOT, TERM_WAIT_MS, sleep, until, freePort, checkBuilt, launchChromium,
  withPages as withPagesOn, login as loginWith, hydrated,
  chatOnline, say, message,
  openTerminalsPage, openLocalTab, waitLive, waitLine, typeInTab, termLines,
} from './support.mjs';

const BIN = path.resolve(ROOT, process.env.TERMROOM_BIN ?? 'target/debug/termroom');
const SITE_ROOT = path.resolve(ROOT, process.env.TERMROOM_SITE_ROOT ?? 'target/site');
const CLUSTER_SH = path.join(ROOT, 'scripts', 'cluster.sh');
const PSQL = '/usr/lib/postgresql/15/bin/psql';

/** How long to wait before counting messages (a duplicate would have arrived by then). */
const SETTLE_MS = 1_500;
/** Reloads tried until a socket lands on the wanted node (round robin: about one in two). */
const RELOAD_TRIES = 10;
/** How long a restarted node's terminals may go on (far longer than the rolling-restart test needs). */
const DRAIN_SECS = 300;

const run = Math.random().toString(36).slice(2, 8);
/** Passwords by user; the admin's comes from the cluster's first start. */
const PASSWORDS = { bob: 'bob-cluster-e2e-password' };
let clusterDir;
let clusterEnv;
let base;
/** Each node's own URL (not through the load balancer), by node id. */
const nodeUrls = {};
let browser;

// ---------------------------------------------------------------- cluster

/** Runs `scripts/cluster.sh ARGS…` (`args`: a string or an array); resolves with its status and output. */
function cluster(args, timeout = 240_000) {
  return new Promise((resolve) => {
    const argv = Array.isArray(args) ? args : [args];
    const child = spawn(CLUSTER_SH, argv, { cwd: ROOT, env: clusterEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { out += c; });
    const timer = setTimeout(() => child.kill('SIGTERM'), timeout);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ status: code ?? signal, out });
    });
  });
}

/** The cluster's `TERMROOM_*` variables, as `scripts/cluster.sh env` prints them for the CLI. */
function cliEnv() {
  // stdin from /dev/null: bash reads ~/.bashrc when its stdin is a socket (as Node's pipes are).
  const r = spawnSync(CLUSTER_SH, ['env'], { cwd: ROOT, env: clusterEnv, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`scripts/cluster.sh env failed (${r.status ?? r.signal}): ${r.stderr || r.error}`);
  const vars = {};
  for (const line of r.stdout.split('\n')) {
    const m = line.match(/^export (TERMROOM_\w+)=(.*)$/);
    // printf %q escapes with backslashes; the values here are paths and a URL.
    if (m) vars[m[1]] = m[2].replace(/\\(.)/g, '$1');
  }
  assert.ok(vars.TERMROOM_DATABASE_URL?.startsWith('postgres://'), `a database URL from scripts/cluster.sh env: ${r.stdout}`);
  return { ...clusterEnv, ...vars };
}

/** Runs `program args` with the cluster's CLI variables; returns its output. */
function withClusterEnv(program, args, input) {
  const r = spawnSync(program, args, { cwd: ROOT, env: cliEnv(), input: input ?? '', encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) {
    throw new Error(`${path.basename(program)} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout || r.error}`);
  }
  return r.stdout;
}

function addUser(name, role) {
  withClusterEnv(BIN, ['user', 'add', name, '--role', role], `${PASSWORDS[name]}\n`);
}

/** The node that holds terminal session `id` (`terminal_sessions.node_id`). */
function ownerNode(id) {
  assert.match(id, /^[0-9a-zA-Z_-]+$/, 'a plain session id');
  const url = cliEnv().TERMROOM_DATABASE_URL;
  return withClusterEnv(PSQL, ['-X', '-tA', url, '-c', `SELECT node_id FROM terminal_sessions WHERE id = '${id}'`]).trim();
}

/** Requests haproxy passed on: `{ node, method, path }` from its access log (no query strings there). */
function lbRequests() {
  const file = path.join(clusterDir, 'haproxy.log');
  if (!existsSync(file)) return [];
  const out = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = line.match(/ nodes\/(\S+) .*"(\S+) (\S+) HTTP\/[\d.]+"$/);
    if (m) out.push({ node: m[1], method: m[2], path: m[3] });
  }
  return out;
}

/** The node each upgrade to exactly `path` (or starting with it, `prefix`) went to, oldest first. */
function socketNodes(match) {
  return lbRequests().filter((r) => r.method === 'GET' && match(r.path)).map((r) => r.node);
}
const chatSockets = () => socketNodes((p) => p === '/ws');
const termSockets = (session) => socketNodes((p) => p === `/ws/term/${session}`);

/**
 * One request through the load balancer, so the next ones land one node
 * further. A reload makes the same number of requests each time: when that
 * number is even, every reload's socket reaches the same node. Nudging
 * before every other reload changes that.
 */
async function nudgeRoundRobin() {
  await fetch(`${base}/favicon.svg`).then((r) => r.arrayBuffer());
}

/** The last `lines` lines of a log, without backtrace frames (a debug build's warnings carry long ones). */
function logTail(file, lines) {
  try {
    let frames = false;
    return readFileSync(file, 'utf8').split('\n').filter((l) => {
      if (/^stack backtrace:/i.test(l)) {
        frames = true;
        return false;
      }
      if (frames && /^ +(\d+: |at )/.test(l)) return false;
      frames = false;
      return l.trim() !== '';
    }).slice(-lines);
  } catch {
    return ['(no log)'];
  }
}

function printClusterLogs() {
  if (!clusterDir) return;
  for (const name of ['node-a.log', 'node-b.log', 'haproxy.log', 'redis.log']) {
    const n = name.startsWith('node') ? 40 : 15;
    console.error(`# ${name} (tail):\n${logTail(path.join(clusterDir, name), n).map((l) => `#   ${l}`).join('\n')}`);
  }
}

// ---------------------------------------------------------------- helpers

/**
 * Runs a test body with the pages it opens (support.mjs); on failure prints
 * each page's console, a screenshot path and the cluster's log tails, then
 * rethrows. With E2E_SHOTS=1 passing tests keep their screenshots too.
 */
function withPages(name, body) {
  return withPagesOn({ browser, base, shotPrefix: 'cluster-', shotsOnPass: true, printLogs: printClusterLogs }, name, body);
}

function login(page, name) {
  return loginWith(page, name, PASSWORDS[name]);
}

// ---- chat

/** Opens the chat (a new chat socket) and returns the node the socket reached. */
async function openChat(page, { reload = false } = {}) {
  const before = chatSockets().length;
  if (reload) await page.reload();
  else await page.goto('/');
  await chatOnline(page);
  await until('the chat socket in the load balancer log', () => chatSockets().length > before);
  return chatSockets().at(-1);
}

// ---------------------------------------------------------------- setup

before(async () => {
  checkBuilt(BIN, SITE_ROOT);
  clusterDir = mkdtempSync(path.join(tmpdir(), 'termroom-cluster-e2e-'));
  const ports = new Set();
  while (ports.size < 5) ports.add(await freePort());
  const [lb, pg, redis, a, b] = [...ports];
  clusterEnv = {
    ...process.env,
    // The nodes' local shells: bash without the machine's startup files (see scripts/test-shell).
    TERMROOM_LOCAL_SHELL: path.join(ROOT, 'scripts', 'test-shell'),
    CLUSTER_DIR: clusterDir,
    CLUSTER_PORT: String(lb),
    CLUSTER_PG_PORT: String(pg),
    CLUSTER_REDIS_PORT: String(redis),
    CLUSTER_NODE_PORTS: `${a} ${b}`,
    CLUSTER_DRAIN_SECS: String(DRAIN_SECS),
    TERMROOM_BIN: BIN,
    TERMROOM_SITE_ROOT: SITE_ROOT,
    RUST_LOG: process.env.RUST_LOG ?? 'info',
  };
  base = `http://127.0.0.1:${lb}`;
  nodeUrls.a = `http://127.0.0.1:${a}`;
  nodeUrls.b = `http://127.0.0.1:${b}`;
  const started = await cluster('start');
  if (started.status !== 0) {
    printClusterLogs();
    throw new Error(`scripts/cluster.sh start failed (${started.status}):\n${started.out}`);
  }
  const password = started.out.match(/^\s*password:\s+(\S+)\s*$/m)?.[1];
  if (!password) throw new Error(`scripts/cluster.sh printed no admin password:\n${started.out}`);
  PASSWORDS.admin = password;
  assert.ok(started.out.includes(base), `the start names the load balancer's URL ${base}`);
  // A second start finds everything running and prints no password again.
  const again = await cluster('start');
  assert.equal(again.status, 0, again.out);
  assert.match(again.out, /already running/);
  assert.doesNotMatch(again.out, /password:/);
  addUser('bob', 'member');
  browser = await launchChromium();
});

after(async () => {
  await browser?.close().catch(() => {});
  if (clusterDir) {
    const stopped = await cluster('stop', 120_000);
    if (stopped.status !== 0) console.error(`# scripts/cluster.sh stop failed (${stopped.status}):\n${stopped.out}`);
    if (!process.env.KEEP_DATA) rmSync(clusterDir, { recursive: true, force: true });
    else console.log(`# cluster directory kept: ${clusterDir}`);
  }
});

// ---------------------------------------------------------------- tests

test('load balancer: requests reach both nodes', { timeout: 60_000 }, async () => {
  const seen = new Set();
  for (let i = 0; i < 6; i++) {
    const res = await fetch(`${base}/login`);
    assert.equal(res.status, 200);
    seen.add(res.headers.get('x-termroom-node'));
  }
  assert.deepEqual([...seen].sort(), ['a', 'b'], 'round robin over nodes a and b');
});

test('chat: two users on different nodes see each other\'s messages exactly once, and each other online', { timeout: 180_000 }, async () => {
  await withPages('chat', async (open) => {
    const admin = await open('admin');
    const bob = await open('bob');
    await login(admin, 'admin');
    const adminNode = await openChat(admin);
    await login(bob, 'bob');
    let bobNode = await openChat(bob);
    // Round robin decides; reload until bob's chat socket is on the other node.
    for (let i = 0; bobNode === adminNode && i < RELOAD_TRIES; i++) {
      if (i % 2 === 1) await nudgeRoundRobin();
      bobNode = await openChat(bob, { reload: true });
    }
    assert.notEqual(bobNode, adminNode, `chat sockets on different nodes (admin on ${adminNode}, bob on ${bobNode})`);
    console.log(`# admin's chat socket on node ${adminNode}, bob's on node ${bobNode}`);
    await admin.getByTestId('current-room').filter({ hasText: '#general' }).waitFor();
    await bob.getByTestId('current-room').filter({ hasText: '#general' }).waitFor();

    // Presence crosses nodes (through Redis).
    await bob.locator('[data-testid=online-user]', { hasText: 'admin' }).waitFor();
    await admin.locator('[data-testid=online-user]', { hasText: 'bob' }).waitFor();

    const texts = [];
    for (const [page, who] of [[admin, 'admin'], [bob, 'bob'], [admin, 'admin'], [bob, 'bob']]) {
      const text = `${who} says ${texts.length + 1} on ${run}`;
      texts.push(text);
      await say(page, text);
    }
    for (const page of [admin, bob]) {
      for (const text of texts) await message(page, text).first().waitFor();
    }
    await sleep(SETTLE_MS);
    for (const page of [admin, bob]) {
      for (const text of texts) {
        assert.equal(await message(page, text).count(), 1, `${page.label} sees "${text}" exactly once`);
      }
    }
    // In the order they were sent, on both pages.
    for (const page of [admin, bob]) {
      const shown = (await page.getByTestId('message-text').allTextContents()).filter((t) => t.includes(run));
      assert.deepEqual(shown.map((t) => texts.find((x) => t.includes(x))), texts, `${page.label}: messages in order`);
    }
  });
});

/** The admin's page with one local terminal tab: `{ page, key, tab, session }`. */
async function adminLocalTab(open) {
  const page = await open('admin');
  await login(page, 'admin');
  await openTerminalsPage(page);
  const key = await openLocalTab(page);
  const tab = page.locator(`[data-testid=term-tab][data-key="${key}"]`);
  const session = await tab.getAttribute('data-session');
  assert.ok(session, 'the tab knows its session');
  return { page, key, tab, session };
}

test('terminal: a local tab works, and after a reload that reaches the other node it reattaches and works', { timeout: 240_000 }, async () => {
  await withPages('terminal', async (open) => {
    const { page, key, session } = await adminLocalTab(open);
    await typeInTab(page, key, 'echo cluster-$((6*7))\n');
    await waitLine(page, key, 'cluster-42');
    const owner = ownerNode(session);
    assert.ok(['a', 'b'].includes(owner), `the session is held by node a or b (${owner})`);
    const first = termSockets(session).at(-1);
    console.log(`# session ${session} held by node ${owner}; its first socket reached node ${first}`);

    // Reload (at least once) until the terminal socket lands on the node
    // that does not hold the session.
    let reached;
    let newKey;
    for (let i = 0; i === 0 || (reached === owner && i < RELOAD_TRIES); i++) {
      if (i % 2 === 1) await nudgeRoundRobin();
      const before = termSockets(session).length;
      await page.reload();
      await hydrated(page);
      const tab = page.locator(`[data-testid=term-tab][data-session="${session}"]`);
      await tab.waitFor({ timeout: TERM_WAIT_MS });
      newKey = await tab.getAttribute('data-key');
      await waitLive(page, newKey);
      await until('the reattach in the load balancer log', () => termSockets(session).length > before);
      reached = termSockets(session).at(-1);
    }
    assert.notEqual(reached, owner, `a terminal socket reached node ${reached}, not the owner ${owner} (forwarded)`);
    console.log(`# after the reload the socket reached node ${reached} and was forwarded to ${owner}`);
    assert.equal(await page.getByTestId('term-tab').count(), 1, 'one tab after the reload');
    // The earlier output is back, and the shell answers.
    await waitLine(page, newKey, 'cluster-42');
    await typeInTab(page, newKey, 'echo again-$((7*7))\n');
    await waitLine(page, newKey, 'again-49');
    assert.equal(ownerNode(session), owner, 'the session stayed on its node');
    // Ended, so no detached session is left for the rolling restart to wait for.
    await typeInTab(page, newKey, 'exit\n');
    await page.locator(`[data-testid=term-tab][data-key="${newKey}"][data-state=exited]`).waitFor({ timeout: TERM_WAIT_MS });
  });
});

/** The tab's screen as one string without white space (wrapped lines come back trimmed). */
async function screenText(page, key) {
  return (await termLines(page, key)).join('').replace(/\s+/g, '');
}

test('rolling restart: a draining node lets its live terminal finish while new terminals open on the other node, then it comes back', { timeout: 300_000 }, async () => {
  await withPages('rolling-restart', async (open) => {
    const { page, key, tab, session } = await adminLocalTab(open);
    await typeInTab(page, key, 'echo before-$((3*5))\n');
    await waitLine(page, key, 'before-15');
    const owner = ownerNode(session);
    const other = owner === 'a' ? 'b' : 'a';
    const pidFile = path.join(clusterDir, `node-${owner}.pid`);
    const oldPid = readFileSync(pidFile, 'utf8').trim();
    // A page on the draining node itself, without the load balancer.
    const direct = await open(`admin-on-${owner}`, nodeUrls[owner]);
    await login(direct, 'admin');
    await openTerminalsPage(direct);

    const restart = cluster(['restart', owner], (DRAIN_SECS + 120) * 1000);
    console.log(`# restarting node ${owner} (pid ${oldPid}), which holds session ${session}`);

    // The owner of the live session is told; the session goes on.
    await until('the drain notice in the tab', async () => (await screenText(page, key)).includes('termroomonthisserverisshuttingdown'), TERM_WAIT_MS);
    await typeInTab(page, key, 'echo during-$((4*5))\n');
    await waitLine(page, key, 'during-20');
    assert.equal(await tab.getAttribute('data-state'), 'live', 'the draining session stays live');

    // Opening a terminal on the draining node itself is refused; the tab
    // says why and keeps trying (nothing was opened, so that is safe).
    await direct.getByTestId('target-select').selectOption('local');
    await direct.getByTestId('open-tab').click();
    const refused = direct.locator('[data-testid=term-tab]').first();
    await direct.locator('[data-testid=term-tab][data-state=reconnecting]').waitFor({ timeout: TERM_WAIT_MS });
    const refusedKey = await refused.getAttribute('data-key');
    await until('the refusal in the tab', async () => (await screenText(direct, refusedKey)).includes('opensnonewterminals'), TERM_WAIT_MS);
    assert.ok(!(await refused.getAttribute('data-session')), 'no session was opened');
    await direct.close();

    // Through the load balancer a new terminal opens, on the other node
    // (a refusal by the draining node is retried until haproxy has moved
    // away from it).
    const second = await openLocalTab(page);
    const secondSession = await page.locator(`[data-testid=term-tab][data-key="${second}"]`).getAttribute('data-session');
    assert.equal(ownerNode(secondSession), other, `the new session is held by node ${other}, not the draining ${owner}`);
    await typeInTab(page, second, 'echo elsewhere-$((5*5))\n');
    await waitLine(page, second, 'elsewhere-25');

    // The draining session ends by itself: the node stops at once and is
    // started again, long before the drain time is up.
    const started = Date.now();
    await typeInTab(page, key, 'exit\n');
    await page.locator(`[data-testid=term-tab][data-key="${key}"][data-state=exited]`).waitFor({ timeout: TERM_WAIT_MS });
    const done = await restart;
    assert.equal(done.status, 0, done.out);
    assert.ok(Date.now() - started < DRAIN_SECS * 1000 / 2, 'the restart did not wait for the drain time');
    assert.match(done.out, new RegExp(`node ${owner} draining: terminal sessions left: 1`), done.out);
    assert.match(done.out, new RegExp(`node ${owner}: every terminal session ended: stopping`), done.out);
    assert.match(done.out, new RegExp(`node ${owner} is back`), done.out);
    assert.notEqual(readFileSync(pidFile, 'utf8').trim(), oldPid, 'a new process holds the node');
    assert.ok(!(await screenText(page, key)).includes('termroomstoppedonthisserver'), 'the session was not closed by the stop');

    // The other node's session never noticed, and both nodes serve again.
    await typeInTab(page, second, 'echo after-$((6*6))\n');
    await waitLine(page, second, 'after-36');
    const seen = new Set();
    for (let i = 0; i < 6; i++) seen.add((await fetch(`${base}/login`)).headers.get('x-termroom-node'));
    assert.deepEqual([...seen].sort(), ['a', 'b'], 'round robin over both nodes again');
    await typeInTab(page, second, 'exit\n');
  });
});

// Last: it leaves the cluster one node short.
test('terminal: when the node holding a session is killed, its tab says the session was interrupted', { timeout: 180_000 }, async () => {
  await withPages('interrupted', async (open) => {
    const { page, key, tab, session } = await adminLocalTab(open);
    await typeInTab(page, key, 'echo doomed-$((2*3))\n');
    await waitLine(page, key, 'doomed-6');
    const owner = ownerNode(session);
    const pid = Number(readFileSync(path.join(clusterDir, `node-${owner}.pid`), 'utf8').trim());
    assert.ok(pid > 0, `node ${owner} has a pid file`);
    process.kill(pid, 'SIGKILL');
    console.log(`# killed node ${owner} (pid ${pid}), which held session ${session}`);
    // The node is dead once its heartbeat is 15 s old; the tab keeps
    // reconnecting (backing off) until the other node says so.
    await page.locator(`[data-testid=term-tab][data-key="${key}"][data-state=session-failed]`).waitFor({ timeout: 120_000 });
    const detail = await tab.getByTestId('tab-title').getAttribute('title');
    assert.match(detail, /^session failed: terminal session \S+ was interrupted: the node holding it stopped$/);
    // Wrapped lines come back trimmed: compare without white space.
    const screen = (await termLines(page, key)).join('').replace(/\s+/g, '');
    assert.ok(screen.includes(`[termroom]terminalsession${session}wasinterrupted:thenodeholdingitstopped`), screen);
    assert.ok(screen.includes('doomed-6'), 'what the session printed stays on screen');
  });
});
