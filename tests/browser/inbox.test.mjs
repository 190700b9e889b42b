// The web inbox in real Chromium (Debian's, driven by playwright-core) against the real daemon.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import { Daemon, PASSPHRASE, within } from './daemon.mjs';

const CHROMIUM = process.env.AGENTGATE_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.AGENTGATE_SCREENSHOTS || new URL('../../target/browser-screenshots/', import.meta.url).pathname;
mkdirSync(SHOTS, { recursive: true });

let browser;
let d;

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
      '--disable-component-update', '--disable-sync', '--disable-quic'],
  });
  d = await Daemon.start();
});

after(async () => {
  await browser?.close();
  await d?.stop();
});

async function signIn(page, daemon = d, path = '/') {
  await page.goto(daemon.base + path);
  assert.match(page.url(), /\/login\?next=/, 'an unsigned page goes to the sign-in page');
  await page.getByLabel('Passphrase').fill(PASSPHRASE);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => !u.pathname.startsWith('/login'));
}

async function desktop() {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  return { context, page };
}

function card(page, id) {
  return page.locator(`#card-${id}`);
}

// The live inbox shows a request created after the page loaded; returns its id and the time (ms)
// from sending the request to its card being visible.
async function askAndSee(page, request, opts) {
  const t0 = performance.now();
  const asked = d.ask(request, opts);
  const el = page.locator('.card[data-status="pending"]', { hasText: request.command ?? request.path ?? request.name ?? request.url });
  await el.first().waitFor({ state: 'visible', timeout: 10_000 });
  const ms = performance.now() - t0;
  const id = await el.first().getAttribute('data-id');
  return { id, ms, asked };
}

describe('web inbox', () => {
  let ctx;
  let page;
  const latencies = [];

  before(async () => {
    ({ context: ctx, page } = await desktop());
    await signIn(page);
  });
  after(async () => ctx?.close());

  test('1. a request appears live and Allow once releases the agent', async () => {
    await page.locator('#live.on').waitFor({ timeout: 10_000 });
    const { id, ms, asked } = await askAndSee(page, { kind: 'shell', command: 'npm publish', reason: 'release 1.2.0', session: 's-1' }, { wait: 60 });
    latencies.push(ms);
    assert.match(await page.title(), /^\(1\) Inbox/);
    await card(page, id).getByRole('button', { name: 'Allow once' }).click();
    const decided = await within(asked, 10_000, 'the agent long-poll');
    assert.equal(decided.status, 'allowed');
    assert.equal(decided.decided_by.source, 'person');
    assert.equal(decided.decided_by.approver, 'owner (web)');
    await card(page, id).waitFor({ state: 'detached', timeout: 10_000 });
  });

  test('2. Deny with a message hands the message to the agent', async () => {
    const { id, asked } = await askAndSee(page, { kind: 'shell', command: 'rm -rf build/', reason: 'clean up' }, { wait: 60 });
    await card(page, id).getByLabel('Message to the agent (optional)').fill('use cargo clean instead');
    await card(page, id).getByRole('button', { name: 'Deny' }).click();
    const decided = await within(asked, 10_000, 'the agent long-poll');
    assert.equal(decided.status, 'denied');
    assert.equal(decided.message, 'use cargo clean instead');
  });

  test('3. pending requests survive a reload (they live in the daemon)', async () => {
    const { id } = await askAndSee(page, { kind: 'file', operation: 'delete', path: '/tmp/agentgate-reload-test' });
    await page.reload();
    await card(page, id).waitFor({ state: 'visible' });
    assert.equal(await card(page, id).getAttribute('data-status'), 'pending');
    // Decide it so later tests start from an empty inbox.
    await d.api('POST', `/api/v1/permissions/${id}/reply`, { decision: 'deny' });
    await card(page, id).waitFor({ state: 'detached', timeout: 10_000 });
  });

  test('4. Always allow saves the narrow rule shown, and the next matching request needs no prompt', async () => {
    const { id, asked } = await askAndSee(page, { kind: 'shell', command: 'cargo test --workspace', workspace: '/work/repo' }, { wait: 60 });
    await card(page, id).getByRole('button', { name: 'Always allow…' }).click();
    const pattern = card(page, id).getByLabel('Pattern (editable)');
    await pattern.waitFor({ state: 'visible' });
    const shown = await pattern.inputValue();
    assert.ok(shown.includes('cargo test'), `suggested pattern: ${shown}`);
    const ruleText = await card(page, id).locator('.rule-text').textContent();
    assert.match(ruleText, /allow shell/);
    assert.match(ruleText, /opencode/);
    await pattern.fill('cargo test *');
    await card(page, id).getByRole('button', { name: 'Save rule and allow' }).click();
    assert.equal((await within(asked, 10_000, 'long-poll')).status, 'allowed');
    const rules = await d.api('GET', '/api/v1/rules');
    const saved = rules.rules.find((r) => r.pattern === 'cargo test *');
    assert.ok(saved, 'the edited rule was saved: ' + JSON.stringify(rules.rules.map((r) => r.pattern)));
    assert.ok(JSON.stringify(saved.origin).includes(id), 'the rule records the request it came from');
    const second = await d.ask({ kind: 'shell', command: 'cargo test -p agentgate-policy', workspace: '/work/repo' });
    assert.equal(second.status, 'allowed', 'a matching request is allowed at once');
    const other = await d.ask({ kind: 'shell', command: 'cargo publish', workspace: '/work/repo' });
    assert.equal(other.status, 'pending', 'the rule is narrow');
    await d.api('POST', `/api/v1/permissions/${other.id}/reply`, { decision: 'deny' });
    // The rule is on the Rules page with its origin, and deletable (two clicks).
    await page.goto(d.base + '/rules');
    const row = page.locator('li', { hasText: 'cargo test *' });
    await row.waitFor();
    assert.match(await row.textContent(), new RegExp(`remembered by owner \\(web\\) answering ${id}`));
    await row.getByRole('button', { name: 'Delete' }).click();
    await row.getByRole('button', { name: 'Confirm delete' }).click();
    await row.waitFor({ state: 'detached' });
    const after = await d.api('GET', '/api/v1/rules');
    assert.ok(!after.rules.some((r) => r.pattern === 'cargo test *'), 'the rule is gone');
    await page.goto(d.base + '/');
  });

  test('6. a request decided by the CLI vanishes from the open page', async () => {
    const { id } = await askAndSee(page, { kind: 'network', url: 'https://registry.npmjs.org/left-pad', method: 'GET' });
    const { stdout } = await d.cli('approve', id);
    assert.match(stdout + '', /allow/i);
    await card(page, id).waitFor({ state: 'detached', timeout: 10_000 });
    assert.equal(await page.locator('.card').count(), 0);
    assert.match(await page.title(), /^Inbox/);
  });

  test('7. a POST without the CSRF token, or from another origin, is refused', async () => {
    const { id } = await askAndSee(page, { kind: 'shell', command: 'git push --force' });
    // Same page, no CSRF header: refused by the access layer.
    const noCsrf = await page.evaluate(async (rid) => {
      const r = await fetch(`/api/v1/permissions/${rid}/reply`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"decision":"allow"}',
      });
      return { status: r.status, body: await r.json() };
    }, id);
    assert.equal(noCsrf.status, 403);
    assert.equal(noCsrf.body.error, 'csrf_failed');
    // With the token but from another Origin: refused by the Origin check.
    const csrf = await page.locator('meta[name="csrf-token"]').getAttribute('content');
    const foreign = await page.request.post(`${d.base}/api/v1/permissions/${id}/reply`, {
      headers: { Origin: 'http://evil.example', 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' },
      data: { decision: 'allow' },
    });
    assert.equal(foreign.status(), 403);
    assert.equal((await foreign.json()).error, 'cross_origin');
    // A real attack page on another loopback port (same site, so the cookie is sent): a form
    // post and a no-cors fetch change nothing.
    const evil = createServer((req, res) => {
      res.setHeader('Content-Type', 'text/html');
      res.end(`<!doctype html><form id=f method=post action="${d.base}/logout"></form>
        <script>fetch(${JSON.stringify(d.base)} + '/api/v1/permissions/${id}/reply', {method:'POST', mode:'no-cors', credentials:'include', body:'{"decision":"allow"}'}).finally(() => document.getElementById('f').submit());</script>`);
    });
    await new Promise((r) => evil.listen(0, '127.0.0.1', r));
    const attacker = await ctx.newPage();
    const navigated = attacker.waitForURL(`${d.base}/logout`, { timeout: 10_000 }).catch(() => null);
    await attacker.goto(`http://127.0.0.1:${evil.address().port}/`);
    await navigated;
    await attacker.close();
    evil.close();
    const still = await d.api('GET', `/api/v1/permissions/${id}`);
    assert.equal(still.status, 'pending', 'the cross-site reply was refused');
    await page.reload();
    assert.equal(new URL(page.url()).pathname, '/', 'the session survived the cross-site sign-out attempt');
    await card(page, id).waitFor();
    await d.api('POST', `/api/v1/permissions/${id}/reply`, { decision: 'deny' });
    await card(page, id).waitFor({ state: 'detached', timeout: 10_000 });
  });

  test('bad input: clicking a request someone else already decided says so, kindly', async () => {
    // Stop live updates in this page so it still shows the request after it is decided.
    const { id } = await askAndSee(page, { kind: 'tool', name: 'github__create_issue', input: { title: 'x' } });
    await page.route('**/api/v1/events*', (route) => route.abort());
    await page.reload();
    await card(page, id).waitFor();
    await d.cli('deny', id, '--message', 'not today');
    await card(page, id).getByRole('button', { name: 'Allow once' }).click();
    const status = card(page, id).locator('.status');
    await status.filter({ hasText: 'Already decided' }).waitFor();
    assert.match(await status.textContent(), /Already decided: Denied by owner: “not today”/);
    await page.unroute('**/api/v1/events*');
    await page.reload();
  });

  test('bad input: very long commands and huge previews are cut, with "show all"', async () => {
    const oldContent = Array.from({ length: 120 }, (_, i) => `line ${i}: let x = ${i};`).join('\n') + '\n';
    const newContent = oldContent.replace('line 3: let x = 3;', 'line 3: let x = 42; // changed')
      .replace('line 90: let x = 90;', 'line 90: let x = 91;');
    const { id: fileId } = await askAndSee(page, {
      kind: 'file', operation: 'modify', path: '/work/repo/src/lib.rs',
      old_content: oldContent, content_preview: newContent.slice(0, 4096), reason: 'fix the constant',
    });
    const fc = card(page, fileId);
    await fc.locator('pre.diff .del').first().waitFor();
    assert.match(await fc.locator('pre.diff .del').first().textContent(), /^-line 3: let x = 3;/);
    assert.match(await fc.locator('pre.diff .add').first().textContent(), /^\+line 3: let x = 42;/);
    await fc.screenshot({ path: SHOTS + 'diff-preview.png' });
    const { id: pushId } = await askAndSee(page, { kind: 'shell', command: 'git push --force-with-lease origin main', reason: 'publish the rebased branch', session: 'ses-42', workspace: '/work/repo' });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: SHOTS + 'inbox.png', fullPage: false });
    const long = 'echo ' + 'x'.repeat(3000);
    const { id: longId } = await askAndSee(page, { kind: 'shell', command: long });
    const lc = card(page, longId);
    assert.ok((await lc.locator('pre.cmd').first().textContent()).length < 500);
    await lc.getByText(/show all \(3005 characters\)/).click();
    assert.equal(await lc.locator('details pre.cmd').textContent(), long);

    for (const id of [longId, fileId, pushId]) await d.api('POST', `/api/v1/permissions/${id}/reply`, { decision: 'deny' });
    await fc.waitFor({ state: 'detached', timeout: 10_000 });
  });

  test('keyboard: j focuses the first request and a allows it', async () => {
    for (const id of await d.pendingIds()) await d.api('POST', `/api/v1/permissions/${id}/reply`, { decision: 'deny' });
    await page.reload();
    const { id, asked } = await askAndSee(page, { kind: 'shell', command: 'make lint' }, { wait: 60 });
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('j');
    assert.equal(await page.evaluate(() => document.activeElement?.dataset?.id), id);
    await page.keyboard.press('a');
    assert.equal((await within(asked, 10_000, 'long-poll')).status, 'allowed');
  });

  test('history, tokens and audit pages', async () => {
    await page.goto(d.base + '/history');
    await page.getByText('Denied by owner (web): “use cargo clean instead”').waitFor();
    await page.goto(d.base + '/tokens');
    await page.getByLabel('Name').fill('ci-bot');
    await page.getByLabel('approve').check();
    await page.getByLabel('Expires in').fill('12h');
    await page.getByRole('button', { name: 'Create token' }).click();
    const secret = page.getByLabel('Token', { exact: true });
    await secret.waitFor({ state: 'visible' });
    const value = await secret.inputValue();
    assert.match(value, /^agt_[0-9a-f]{48}$/);
    const who = await d.api('GET', '/api/v1/whoami', undefined, { token: value });
    assert.deepEqual(who.scopes.sort(), ['approve', 'request']);
    await page.reload();
    assert.equal(await page.locator(`input[value="${value}"]`).count(), 0, 'the secret is shown once');
    const row = page.locator('tr', { hasText: 'ci-bot' });
    await row.getByRole('button', { name: 'Revoke' }).click();
    await row.getByRole('button', { name: 'Confirm revoke' }).click();
    await row.waitFor({ state: 'detached' });
    assert.equal((await d.raw('GET', '/api/v1/whoami', undefined, value)).status, 401);
    await page.goto(d.base + '/audit');
    await page.getByText(/Hash chain intact: \d+ entries verified/).waitFor();
    await page.goto(d.base + '/');
  });

  test('measure: time from request creation to its row in the page, and the page weight', async () => {
    for (let i = 0; i < 10; i++) {
      const { id, ms } = await askAndSee(page, { kind: 'shell', command: `echo measure-${i}` });
      latencies.push(ms);
      await d.api('POST', `/api/v1/permissions/${id}/reply`, { decision: 'deny' });
    }
    latencies.sort((a, b) => a - b);
    const p = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(1);
    console.log(`METRIC request-to-row ms: n=${latencies.length} min=${latencies[0].toFixed(1)} p50=${p(0.5)} max=${latencies[latencies.length - 1].toFixed(1)}`);
    // Weight of a fresh inbox load with one pending request (HTML + CSS + JS, headers included).
    const { id } = await askAndSee(page, { kind: 'shell', command: 'echo weight' });
    const fresh = await ctx.newPage();
    await fresh.goto(d.base + '/');
    await fresh.locator('#live.on').waitFor();
    const weight = await fresh.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const res = performance.getEntriesByType('resource').filter((r) => !r.name.includes('/api/v1/events'));
      return { total: nav.transferSize + res.reduce((s, r) => s + r.transferSize, 0), html: nav.transferSize, parts: res.map((r) => [r.name.split('/').pop(), r.transferSize]) };
    });
    console.log(`METRIC inbox page weight: ${(weight.total / 1024).toFixed(1)} KB transferred (html ${(weight.html / 1024).toFixed(1)} KB, ${weight.parts.map(([n, s]) => `${n} ${(s / 1024).toFixed(1)} KB`).join(', ')})`);
    assert.ok(weight.total > 0);
    await fresh.close();
    await d.api('POST', `/api/v1/permissions/${id}/reply`, { decision: 'deny' });
  });
});

describe('phone', () => {
  test('5. a paired phone signs in by link, approves, and cannot open Tokens; the link works once', async () => {
    const pairing = await d.api('POST', '/api/v1/pairings', { name: 'phone' });
    assert.ok(pairing.url.startsWith(d.base + '/pair/agp_'));
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const page = await phone.newPage();
    await page.goto(pairing.url);
    await page.getByRole('button', { name: 'Sign in on this device' }).click();
    await page.waitForURL(d.base + '/');
    await page.locator('#live.on').waitFor();
    const asked = d.ask({ kind: 'shell', command: 'git push origin main', reason: 'ship the fix', session: 's-9' }, { wait: 60 });
    const el = page.locator('.card[data-status="pending"]', { hasText: 'git push origin main' });
    await el.waitFor();
    await page.screenshot({ path: SHOTS + 'phone.png' });
    await el.getByRole('button', { name: 'Allow once' }).tap();
    const decided = await within(asked, 10_000, 'long-poll');
    assert.equal(decided.status, 'allowed');
    assert.equal(decided.decided_by.approver, 'phone (paired)');
    assert.equal(await page.getByRole('link', { name: 'Tokens' }).count(), 0, 'no Tokens link for approve');
    const tokens = await page.goto(d.base + '/tokens');
    assert.equal(tokens.status(), 403);
    await page.getByText('this page needs `admin`').waitFor();
    // The link was used: a second device gets a friendly "expired or used" page.
    const other = await browser.newContext();
    const second = await other.newPage();
    await second.goto(pairing.url);
    await second.getByRole('button', { name: 'Sign in on this device' }).click();
    await second.getByText('expired or was already used').first().waitFor();
    assert.match(second.url(), /\/pair\//);
    await other.close();
    // Revoking the pairing signs the phone out.
    await d.api('DELETE', `/api/v1/pairings/${pairing.id}`);
    await page.goto(d.base + '/');
    assert.match(page.url(), /\/login\?next=%2F&expired=1$/);
    await phone.close();
  });
});

describe('sign-in', () => {
  let e;
  before(async () => { e = await Daemon.start({ config: '[web]\nsession_idle = "2s"\n' }); });
  after(async () => e?.stop());

  test('bad input: a wrong passphrase gets one generic message, then a backoff', async () => {
    const { context, page } = await desktop();
    await page.goto(e.base + '/login');
    await page.getByLabel('Passphrase').fill('not the passphrase');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#sign-in-error').waitFor();
    assert.match(await page.locator('#sign-in-error').textContent(), /That passphrase is not right/);
    await page.getByLabel('Passphrase').fill('still not it');
    await page.getByRole('button', { name: 'Sign in' }).click();
    assert.match(await page.locator('#sign-in-error').textContent(), /Too many failed attempts\. Try again in \d+ s/);
    await context.close();
    await sleep(3000); // let the backoff pass before the next test signs in
  });

  test('bad input: an expired session goes to sign-in, then back to where you were', async () => {
    const { context, page } = await desktop();
    await signIn(page, e, '/history');
    assert.equal(new URL(page.url()).pathname, '/history');
    await sleep(2600); // idle longer than session_idle
    await page.goto(e.base + '/rules');
    assert.match(page.url(), /\/login\?next=%2Frules&expired=1$/);
    await page.getByText('Your session has ended').waitFor();
    await page.getByLabel('Passphrase').fill(PASSPHRASE);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(e.base + '/rules');
    // Sign out ends the session for good.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/login/);
    await page.goto(e.base + '/');
    assert.match(page.url(), /\/login\?next=/);
    await context.close();
  });

  test('security headers: CSP without inline script, no framing, no referrer', async () => {
    const res = await fetch(e.base + '/login');
    const csp = res.headers.get('content-security-policy');
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  });
});

describe('OAuth consent page', () => {
  test('a person approves an MCP client in the browser; the answer reaches its loopback callback', async () => {
    // The client's redirect URI: a loopback server, like the one an MCP client runs.
    const hits = [];
    const callback = createServer((req, res) => {
      const url = new URL(req.url, 'http://127.0.0.1');
      if (url.pathname === '/callback') hits.push(url); // not the browser's /favicon.ico
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('signed in');
    });
    await new Promise((resolve) => callback.listen(0, '127.0.0.1', resolve));
    const redirect = `http://127.0.0.1:${callback.address().port}/callback`;
    const reg = await fetch(`${d.base}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: [redirect], token_endpoint_auth_method: 'none', client_name: 'Browser Test Client' }),
    }).then((r) => r.json());
    const authorize = `${d.base}/authorize?` + new URLSearchParams({
      response_type: 'code', client_id: reg.client_id, redirect_uri: redirect, state: 'xyz',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
      scope: 'request approve',
    });
    const { context, page } = await desktop();
    try {
      await page.goto(authorize);
      await page.getByText('Browser Test Client').first().waitFor();
      assert.match(await page.locator('#scopes').innerText(), /Answer permission requests for you/);
      assert.match(await page.locator('#loopback-warning').innerText(), /a program on this computer/);
      await page.screenshot({ path: SHOTS + 'consent.png', fullPage: true });
      // A wrong passphrase shows the form again.
      await page.getByLabel('Owner passphrase (to approve)').fill('not the passphrase');
      await page.getByRole('button', { name: 'Approve' }).click();
      await page.locator('#consent-error').waitFor();
      assert.match(await page.locator('#consent-error').innerText(), /not right/);
      // The backoff of that failure passes; then the right passphrase goes through, and the 303
      // takes the browser to the client's callback (the page's CSP lets its form go there).
      await sleep(1100);
      await page.getByLabel('Owner passphrase (to approve)').fill(PASSPHRASE);
      await page.getByLabel('Remember this application for these permissions').check();
      await page.getByRole('button', { name: 'Approve' }).click();
      await page.waitForURL((u) => u.href.startsWith(redirect), { timeout: 10_000 });
      assert.equal(hits.length, 1);
      assert.equal(hits[0].searchParams.get('state'), 'xyz');
      assert.equal(hits[0].searchParams.get('iss'), d.base);
      assert.match(hits[0].searchParams.get('code'), /^agc_[0-9a-f]{64}$/);
      // Remembered consent never answers by itself (anyone who knows the client id could ask):
      // without the owner's session the page asks for the passphrase again, and no code goes out.
      await page.goto(authorize);
      await page.getByLabel('Owner passphrase (to approve)').waitFor();
      assert.equal(hits.length, 1);
      // Signed in as the owner, it is one click, without the passphrase.
      await signIn(page, d, '/tokens');
      await page.goto(authorize);
      await page.locator('#one-click').waitFor();
      assert.equal(await page.getByLabel('Owner passphrase (to approve)').count(), 0);
      await page.getByRole('button', { name: 'Approve' }).click();
      await page.waitForURL((u) => u.href.startsWith(redirect), { timeout: 10_000 });
      assert.equal(hits.length, 2);
      // The owner sees the client and the remembered consent on the Tokens page and revokes both.
      await page.goto(`${d.base}/tokens`);
      const client = page.locator(`#client-${reg.client_id}`);
      assert.match(await client.innerText(), /Browser Test Client/);
      const grant = page.locator('#oauth-grants li', { hasText: 'Browser Test Client' });
      assert.match(await grant.innerText(), /approve request/);
      await grant.getByRole('button', { name: 'Revoke' }).click();
      await grant.getByRole('button', { name: 'Confirm revoke' }).click();
      await grant.waitFor({ state: 'detached' });
      assert.deepEqual((await d.api('GET', '/api/v1/oauth/grants')).grants, []);
      await client.getByRole('button', { name: 'Delete' }).click();
      await client.getByRole('button', { name: 'Confirm delete' }).click();
      await client.waitFor({ state: 'detached' });
      assert.deepEqual((await d.api('GET', '/api/v1/oauth/clients')).clients, []);
    } finally {
      await context.close();
      callback.close();
    }
  });
});
