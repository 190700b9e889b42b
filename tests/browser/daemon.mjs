// Starts the real agentgate binary on 127.0.0.1:0 with a fresh data dir, and speaks its API.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

const run = promisify(execFile);

export const BIN = process.env.AGENTGATE_BIN;
export const PASSPHRASE = 'correct horse battery staple';

export class Daemon {
  static async start({ config = '' } = {}) {
    if (!BIN) throw new Error('AGENTGATE_BIN is not set (run through `cargo test`)');
    const dir = mkdtempSync(join(tmpdir(), 'agentgate-browser-'));
    const configFile = join(dir, 'config.toml');
    writeFileSync(configFile, config);
    const ready = join(dir, 'ready');
    // The daemon's log goes to a file beside its data (printed if it fails to start).
    const log = join(dir, 'daemon.log');
    const fd = openSync(log, 'w');
    const child = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--ready-file', ready], {
      env: { ...process.env, AGENTGATE_DATA_DIR: dir, AGENTGATE_CONFIG: configFile },
      stdio: ['ignore', fd, fd],
    });
    for (let i = 0; i < 600 && !existsSync(ready); i++) {
      if (child.exitCode !== null) {
        throw new Error(`agentgate serve exited with ${child.exitCode}:\n${readFileSync(log, 'utf8')}`);
      }
      await sleep(50);
    }
    const addr = readFileSync(ready, 'utf8').trim();
    const d = new Daemon(child, dir, configFile, `http://${addr}`);
    d.admin = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
    await d.api('PUT', '/api/v1/passphrase', { passphrase: PASSPHRASE });
    d.agent = (await d.api('POST', '/api/v1/tokens', { name: 'agent', scopes: ['request'] })).token;
    return d;
  }

  constructor(child, dir, configFile, base) {
    this.child = child;
    this.dir = dir;
    this.configFile = configFile;
    this.base = base;
  }

  async stop() {
    this.child.kill('SIGTERM');
    await new Promise((resolve) => (this.child.exitCode !== null ? resolve() : this.child.once('exit', resolve)));
    rmSync(this.dir, { recursive: true, force: true });
  }

  // A JSON request with a token (the admin's unless given); throws on an unexpected status.
  async api(method, path, body, { token = this.admin, expect } = {}) {
    const res = await this.raw(method, path, body, token);
    const data = await res.json().catch(() => null);
    const ok = expect ? [].concat(expect).includes(res.status) : res.ok;
    if (!ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(data)}`);
    return data;
  }

  raw(method, path, body, token = this.admin) {
    const headers = { Authorization: 'Bearer ' + token };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  }

  // The agent asks. With `wait`, the promise settles when a decision exists.
  ask(request, { wait = 0 } = {}) {
    const query = wait ? `?wait=${wait}` : '';
    return this.api('POST', '/api/v1/permissions' + query, { agent: 'opencode', timeout: 300, ...request }, {
      token: this.agent,
      expect: [200, 202],
    });
  }

  async pendingIds() {
    const page = await this.api('GET', '/api/v1/permissions?status=pending');
    return page.permissions.map((p) => p.id);
  }

  // The CLI, against this daemon, with the owner token from the data dir.
  cli(...args) {
    return run(BIN, args, {
      env: { ...process.env, AGENTGATE_DATA_DIR: this.dir, AGENTGATE_CONFIG: this.configFile, AGENTGATE_URL: this.base },
    });
  }
}

// Waits until `ask` (a long-poll) settles, failing after `ms`.
export async function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); });
  try { return await Promise.race([promise, timeout]); } finally { clearTimeout(timer); }
}
