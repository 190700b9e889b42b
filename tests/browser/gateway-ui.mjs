// The upstream's own web UI through an agentgate gateway, as a person uses it: signed in at the
// inbox (the session cookie is the host's, so it reaches the gateway's port), the page at the
// gateway's origin makes the calls opencode's UI makes — create a session, prompt it, and answer
// its own permission prompt — with that session. Prints what happened as JSON.
// Usage: node gateway-ui.mjs INBOX GATEWAY PASSPHRASE
import { chromium } from 'playwright-core';

const [inbox, gateway, passphrase] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.AGENTGATE_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
    '--disable-component-update', '--disable-sync', '--disable-quic'],
});
const out = {};
try {
  const page = await (await browser.newContext()).newPage();
  await page.goto(inbox + '/');
  await page.getByLabel('Passphrase').fill(passphrase);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => !u.pathname.startsWith('/login'));
  const ui = await page.goto(gateway + '/', { waitUntil: 'domcontentloaded' });
  out.ui_status = ui.status();
  out.ui_title = await page.title().catch(() => '');
  const call = (method, path, body) => page.evaluate(async ([method, path, body]) => {
    const r = await fetch(path, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
    let data = null;
    try { data = await r.json(); } catch {}
    return { status: r.status, data };
  }, [method, path, body]);
  const session = await call('POST', '/session', {});
  out.create_status = session.status;
  const sid = session.data?.id;
  out.prompt_status = (await call('POST', `/session/${sid}/prompt_async`, { parts: [{ type: 'text', text: 'Run the command.' }] })).status;
  let asked = [];
  for (let i = 0; i < 200 && asked.length === 0; i++) {
    asked = (await call('GET', '/permission')).data || [];
    if (asked.length === 0) await new Promise((r) => setTimeout(r, 100));
  }
  out.asked = asked.length;
  if (asked.length) out.reply_status = (await call('POST', `/permission/${asked[0].id}/reply`, { reply: 'once' })).status;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
