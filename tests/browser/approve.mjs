// Signs into the inbox at BASE with the owner passphrase and approves request ID with a click
// ("Allow once"), as a person would: used by tests/agents for the prompt real opencode raised.
// Usage: node approve.mjs BASE PASSPHRASE ID [SCREENSHOT]
import { chromium } from 'playwright-core';

const [base, passphrase, id, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.AGENTGATE_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
    '--disable-component-update', '--disable-sync', '--disable-quic'],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1200, height: 900 } })).newPage();
  await page.goto(base + '/');
  await page.getByLabel('Passphrase').fill(passphrase);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => !u.pathname.startsWith('/login'));
  const card = page.locator(`#card-${id}`);
  await card.waitFor({ state: 'visible', timeout: 15_000 });
  if (shot) await page.screenshot({ path: shot });
  await card.getByRole('button', { name: 'Allow once' }).click();
  // A decided card leaves the inbox.
  await card.waitFor({ state: 'detached', timeout: 15_000 });
} finally {
  await browser.close();
}
