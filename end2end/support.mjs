// Shared helpers of the browser tests (end2end/run.mjs, end2end/cluster.mjs)
// and the browser benchmarks (end2end/bench/*.mjs). This module owns:
//
// - the paths and browser settings they have in common: ROOT, RESULTS,
//   CHROMIUM, CHROMIUM_ARGS, launchChromium(), checkBuilt();
// - the waits: WAIT_MS, TERM_WAIT_MS, sleep(), until(), freePort();
// - pages: newPage() (a fresh context whose page records its console),
//   withPages() (a test body's pages, the BROKEN_PAGE check, screenshots
//   and console dumps on failure; the caller prints its own server logs);
// - the UI steps both test files take: login, chat (chatOnline, say,
//   message), terminals (hydrated, openTerminalsPage, openLocalTab,
//   waitLive, termLines, waitLine, typeInTab).
//
// Nothing here reads a test file's state: what a function needs (the
// browser, the base URL, a password, how to print logs) is a parameter.
// It registers no tests (the benchmarks import it too).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Where screenshots of failed (or, on request, all) tests go. */
export const RESULTS = path.join(ROOT, 'end2end', 'results');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Default wait for one UI condition. */
export const WAIT_MS = 20_000;
/** Waits involving a shell (start-up, reattach). */
export const TERM_WAIT_MS = 30_000;
/** Console lines that mean the page itself is broken (a Wasm panic, a hydration error, an uncaught exception). */
export const BROKEN_PAGE = /panicked at|\[pageerror\]|hydration error|unreachable executed/i;

// ---------------------------------------------------------------- processes

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port free on 127.0.0.1 at the time of asking. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Throws unless the server binary, the built site (`SITE/pkg`, relative to ROOT) and Chromium exist. */
export function checkBuilt(bin, siteRoot, chromiumPath = CHROMIUM) {
  if (!existsSync(bin)) throw new Error(`server binary not found: ${bin} (build with \`cargo leptos build\` or set TERMROOM_BIN)`);
  if (!existsSync(path.resolve(ROOT, siteRoot, 'pkg'))) throw new Error(`site not built: ${siteRoot}/pkg missing`);
  if (!existsSync(chromiumPath)) throw new Error(`chromium not found at ${chromiumPath}`);
}

/** Headless Chromium (CHROMIUM) through playwright-core. */
export function launchChromium(args = CHROMIUM_ARGS) {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args, timeout: 60_000 });
}

// ---------------------------------------------------------------- waits

/** Polls `fn` until it returns a truthy value; fails with `what` after `timeout`. */
export async function until(what, fn, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${last instanceof Error ? ` (${last.message})` : ''}`);
    }
    await sleep(150);
  }
}

// ---------------------------------------------------------------- pages

/**
 * A fresh browser context (own cookies and sessionStorage) on `base` with
 * one page that records its console in `page.consoleLog`; `page.label`
 * names it in messages.
 */
export async function newPage(browser, base, label) {
  const context = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(WAIT_MS);
  context.setDefaultNavigationTimeout(WAIT_MS);
  const page = await context.newPage();
  page.label = label;
  page.consoleLog = [];
  const log = (line) => {
    page.consoleLog.push(line);
    if (page.consoleLog.length > 300) page.consoleLog.splice(0, 100);
  };
  page.on('console', (m) => log(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log(`[pageerror] ${e.message}`));
  page.on('requestfailed', (r) => log(`[requestfailed] ${r.url()} ${r.failure()?.errorText ?? ''}`));
  page.on('dialog', (d) => d.accept());
  return page;
}

/**
 * Runs test `name`'s body with the pages it opens (`open(label)`, each in
 * a fresh context of `browser` on `base`, or on `open(label, otherBase)`). After the body, a page whose
 * console has a BROKEN_PAGE line fails the test (E2E_DUMP=1 prints every
 * console first). On failure prints each page's console and a screenshot
 * path (RESULTS/`shotPrefix``name`-`label`.png), then calls `printLogs()`
 * (the caller's server logs) and rethrows. `shotsOnPass`: with E2E_SHOTS=1
 * passing tests save those screenshots too. The pages' contexts are
 * closed in any case.
 */
export async function withPages({ browser, base, shotPrefix = '', shotsOnPass = false, printLogs = () => {} }, name, body) {
  const pages = [];
  const shotFile = (p) => path.join(RESULTS, `${shotPrefix}${name}-${p.label}.png`.replace(/[^\w.-]+/g, '_'));
  const open = async (label, pageBase = base) => {
    const p = await newPage(browser, pageBase, label);
    pages.push(p);
    return p;
  };
  try {
    await body(open);
    for (const p of pages) {
      if (process.env.E2E_DUMP) console.log(`# page ${p.label} console:\n${p.consoleLog.map((l) => `#   ${l}`).join('\n')}`);
      const broken = p.consoleLog.filter((l) => BROKEN_PAGE.test(l));
      assert.deepEqual(broken, [], `page ${p.label} logged errors`);
      if (shotsOnPass && process.env.E2E_SHOTS) {
        mkdirSync(RESULTS, { recursive: true });
        await p.screenshot({ path: shotFile(p), fullPage: true });
      }
    }
  } catch (err) {
    mkdirSync(RESULTS, { recursive: true });
    for (const p of pages) {
      const file = shotFile(p);
      try {
        await p.screenshot({ path: file, fullPage: true, timeout: 5_000 });
        console.error(`# screenshot (${p.label}): ${file}`);
      } catch (e) {
        console.error(`# screenshot (${p.label}) failed: ${e.message}`);
      }
      console.error(`# page ${p.label} at ${p.url()} console:\n${p.consoleLog.map((l) => `#   ${l}`).join('\n') || '#   (empty)'}`);
    }
    printLogs();
    throw err;
  } finally {
    for (const p of pages) await p.context().close().catch(() => {});
  }
}

// ---------------------------------------------------------------- login

/** Logs `name` in with `password` through the login form; waits until the app shows the user. */
export async function login(page, name, password) {
  await page.goto('/login');
  // The button is enabled once the page has hydrated.
  await page.locator('[data-testid=login-submit]:not([disabled])').waitFor();
  await page.getByTestId('login-username').fill(name);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
  await page.waitForURL((url) => !url.pathname.startsWith('/login'));
  await page.getByTestId('current-user').filter({ hasText: name }).waitFor();
}

/** Waits until the page has hydrated (clicks before that are lost). */
export async function hydrated(page) {
  await page.locator('body[data-hydrated=true]').waitFor({ timeout: TERM_WAIT_MS });
}

// ---------------------------------------------------------------- chat

export async function chatOnline(page) {
  await page.locator('[data-testid=conn-state][data-state=online]').waitFor();
}

/** Sends `text` from the composer; waits until the composer is cleared. */
export async function say(page, text) {
  const input = page.getByTestId('message-input');
  await input.fill(text);
  await input.press('Enter');
  await until('the composer to clear', async () => (await input.inputValue()) === '');
}

export function message(page, text) {
  return page.getByTestId('message-text').filter({ hasText: text });
}

// ---------------------------------------------------------------- terminals

export async function openTerminalsPage(page) {
  await page.goto('/terminals');
  await hydrated(page);
  await page.getByTestId('target-select').waitFor();
}

/** Opens a tab to `local` and returns its key once it is live. */
export async function openLocalTab(page) {
  const before = await page.getByTestId('term-tab').count();
  await page.getByTestId('target-select').selectOption('local');
  await page.getByTestId('open-tab').click();
  await until('a new tab', async () => (await page.getByTestId('term-tab').count()) === before + 1);
  const key = await page.getByTestId('term-tab').nth(before).getAttribute('data-key');
  await waitLive(page, key);
  return key;
}

export async function waitLive(page, key) {
  await page.locator(`[data-testid=term-tab][data-key="${key}"][data-state=live]`).waitFor({ timeout: TERM_WAIT_MS });
}

/** The lines of a tab's xterm buffer (through the `xterm` property the pane element carries). */
export async function termLines(page, key) {
  return page.evaluate((k) => {
    const el = document.querySelector(`[data-testid=term-pane][data-key="${k}"]`);
    const buf = el?.xterm?.buffer?.active;
    if (!buf) return [];
    const lines = [];
    for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i)?.translateToString(true) ?? '');
    return lines;
  }, key);
}

/** Waits until a line of the tab's screen is exactly `text` (command output, not the echoed command). */
export async function waitLine(page, key, text, timeout = TERM_WAIT_MS) {
  await until(`"${text}" in tab ${key} of ${page.label}`, async () => {
    const lines = await termLines(page, key);
    return lines.some((l) => l.trim() === text);
  }, timeout);
}

export async function typeInTab(page, key, text) {
  await page.locator(`[data-testid=term-tab][data-key="${key}"] [data-testid=tab-title]`).click();
  const textarea = page.locator(`[data-testid=term-pane][data-key="${key}"] .xterm-helper-textarea`);
  await textarea.focus();
  await page.keyboard.type(text);
}
