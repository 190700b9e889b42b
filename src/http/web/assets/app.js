// agentgate web inbox. Served from the daemon's binary; no build step, no inline script (the
// Content-Security-Policy forbids it). Every action goes through the JSON API with the session
// cookie and the session's CSRF token, exactly as any other client would.
(() => {
  'use strict';

  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : null;

  function toSignIn() {
    const next = location.pathname + location.search;
    location.assign('/login?expired=1&next=' + encodeURIComponent(next));
  }

  async function api(method, url, body) {
    const headers = { Accept: 'application/json' };
    if (csrf) headers['X-CSRF-Token'] = csrf;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(url, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (res.status === 401) { toSignIn(); }
    return { status: res.status, ok: res.ok, data };
  }

  // Times are sent in UTC; show them in the reader's zone.
  for (const t of document.querySelectorAll('time[datetime]')) {
    const d = new Date(t.getAttribute('datetime'));
    if (!isNaN(d)) t.textContent = d.toLocaleString();
  }

  // A button that acts only on a second click ("Revoke" → "Confirm revoke").
  function confirmClick(button) {
    if (button.dataset.armed === '1') return true;
    button.dataset.armed = '1';
    button.dataset.label = button.textContent;
    button.textContent = 'Confirm ' + button.textContent.toLowerCase();
    setTimeout(() => {
      if (button.isConnected && button.dataset.armed === '1') {
        button.dataset.armed = '';
        button.textContent = button.dataset.label;
      }
    }, 4000);
    return false;
  }

  // Buttons that delete what their data attribute names (after a confirming second click), and
  // the row that goes with it: [data key, API path, row selector].
  const DELETIONS = [
    ['deleteRule', '/api/v1/rules/', 'li'],
    ['revokeToken', '/api/v1/tokens/', 'tr'],
    ['revokePairing', '/api/v1/pairings/', 'li'],
    ['deleteClient', '/api/v1/oauth/clients/', 'li'],
    ['revokeGrant', '/api/v1/oauth/grants/', 'li'],
  ];
  const deletion = (button) => DELETIONS.find(([key]) => button.dataset[key]);

  document.addEventListener('click', async (ev) => {
    const target = ev.target instanceof Element ? ev.target.closest('button') : null;
    if (!target) return;
    if (target.dataset.action === 'sign-out') {
      await api('POST', '/logout');
      location.assign('/login');
    } else if (target.dataset.action === 'help') {
      const keys = document.getElementById('keys');
      if (keys) keys.hidden = !keys.hidden;
    } else if (deletion(target)) {
      const [key, path, row] = deletion(target);
      if (!confirmClick(target)) return;
      const r = await api('DELETE', path + encodeURIComponent(target.dataset[key]));
      report(target, r, () => target.closest(row).remove());
    } else if (target.dataset.action === 'copy') {
      const secret = document.getElementById('secret');
      try {
        await navigator.clipboard.writeText(secret.value);
        target.textContent = 'Copied';
      } catch (_) {
        secret.select();
        target.textContent = 'Press Ctrl+C';
      }
    }
  });

  function report(button, r, onOk) {
    if (r.ok) { onOk(); return; }
    const msg = document.createElement('span');
    msg.className = 'error';
    msg.setAttribute('role', 'alert');
    msg.textContent = ' ' + ((r.data && r.data.message) || ('failed: HTTP ' + r.status));
    button.after(msg);
  }

  // ---- Tokens page ----------------------------------------------------------------------
  const createToken = document.getElementById('create-token');
  if (createToken) {
    createToken.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const form = new FormData(createToken);
      const body = {
        name: String(form.get('name') || '').trim(),
        scopes: form.getAll('scopes').map(String),
      };
      const expires = String(form.get('expires_in') || '').trim();
      if (expires) body.expires_in = expires;
      const status = createToken.querySelector('.status');
      const r = await api('POST', '/api/v1/tokens', body);
      if (!r.ok) {
        status.textContent = (r.data && r.data.message) || ('failed: HTTP ' + r.status);
        status.className = 'status error';
        return;
      }
      status.textContent = 'Created ' + r.data.name + '.';
      status.className = 'status ok';
      const box = document.getElementById('new-secret');
      document.getElementById('secret').value = r.data.token;
      box.hidden = false;
      document.getElementById('secret').focus();
      document.getElementById('secret').select();
      const row = document.createElement('tr');
      row.id = 'token-' + r.data.id;
      for (const text of [r.data.name, r.data.scopes.join(', '), r.data.expires_at || 'never', 'never']) {
        const td = document.createElement('td');
        td.textContent = text;
        row.append(td);
      }
      const td = document.createElement('td');
      const revoke = document.createElement('button');
      revoke.type = 'button';
      revoke.className = 'danger';
      revoke.dataset.revokeToken = r.data.id;
      revoke.textContent = 'Revoke';
      td.append(revoke);
      row.append(td);
      document.querySelector('table.list tbody').append(row);
      createToken.reset();
    });
  }

  // ---- Inbox ------------------------------------------------------------------------------
  const inbox = document.getElementById('inbox');
  if (!inbox) return;
  const cards = document.getElementById('cards');
  const count = document.getElementById('pending-count');
  const empty = document.getElementById('empty');
  const live = document.getElementById('live');
  const notifyButton = document.getElementById('notify');
  let after = Number(inbox.dataset.after) || 0;
  // The server's clock minus ours, so countdowns agree with the daemon's deadlines.
  const skew = Number(inbox.dataset.now) - Date.now();

  function pendingCards() {
    return Array.from(cards.querySelectorAll('.card[data-status="pending"]'));
  }

  function updateCount() {
    const n = pendingCards().length;
    count.textContent = String(n);
    document.title = (n ? '(' + n + ') ' : '') + 'Inbox · agentgate';
    empty.hidden = cards.querySelector('.card') !== null;
  }

  function words(status, by, message) {
    const what = { allowed: 'Allowed', denied: 'Denied', timeout: 'Timed out (denied)', cancelled: 'Withdrawn' }[status] || status;
    let who = '';
    if (by) {
      if (by.source === 'person' && by.approver) who = ' by ' + by.approver;
      else if (by.source === 'rule' && by.rule) who = ' by rule ' + by.rule;
    }
    return what + who + (message ? ': “' + message + '”' : '');
  }

  // A card whose request is decided: say how, then remove it.
  function settle(card, text, kind) {
    card.dataset.status = 'settled';
    card.classList.add('settled', kind);
    for (const el of card.querySelectorAll('.actions, .always')) el.remove();
    const status = card.querySelector('.status');
    status.textContent = text;
    updateCount();
    setTimeout(() => { card.remove(); updateCount(); }, 2500);
  }

  async function addCard(id) {
    if (document.getElementById('card-' + id)) return;
    const res = await fetch('/ui/cards/' + encodeURIComponent(id), { credentials: 'same-origin' });
    if (res.status === 401) { toSignIn(); return; }
    if (!res.ok) return;
    const template = document.createElement('template');
    template.innerHTML = await res.text();
    const card = template.content.querySelector('.card');
    if (!card || card.dataset.status !== 'pending' || document.getElementById(card.id)) return;
    cards.append(card);
    tick();
    updateCount();
    if (document.hidden && 'Notification' in window && Notification.permission === 'granted') {
      const title = card.querySelector('h2');
      new Notification('agentgate: an agent is asking', { body: title ? title.textContent : id, tag: id });
    }
  }

  function onDecided(id, data) {
    const card = document.getElementById('card-' + id);
    if (!card || card.dataset.status !== 'pending') return;
    settle(card, words(data.status, data.decided_by, data.message), data.status);
  }

  let source = null;
  function connect() {
    source = new EventSource('/api/v1/events?last_event_id=' + after);
    source.addEventListener('open', () => { live.textContent = 'live'; live.classList.add('on'); });
    const seen = (ev) => { const n = Number(ev.lastEventId); if (n > after) after = n; };
    source.addEventListener('permission.created', (ev) => {
      seen(ev);
      const entry = JSON.parse(ev.data);
      if (entry.data && entry.data.policy === 'ask' && entry.subject) addCard(entry.subject);
    });
    source.addEventListener('permission.decided', (ev) => {
      seen(ev);
      const entry = JSON.parse(ev.data);
      if (entry.subject) onDecided(entry.subject, entry.data || {});
    });
    source.addEventListener('permission.approved', (ev) => { seen(ev); });
    for (const name of ['rule.created', 'rule.deleted']) source.addEventListener(name, seen);
    source.addEventListener('error', async () => {
      live.textContent = 'reconnecting…';
      live.classList.remove('on');
      if (source.readyState !== EventSource.CLOSED) return; // the browser retries by itself
      const who = await fetch('/api/v1/whoami', { credentials: 'same-origin' }).catch(() => null);
      if (who && who.status === 401) { toSignIn(); return; }
      setTimeout(connect, 2000);
    });
  }
  connect();

  // Replies.
  async function reply(card, kind) {
    if (card.dataset.busy === '1' || card.dataset.status !== 'pending') return;
    const id = card.dataset.id;
    const body = kind === 'deny'
      ? { decision: 'deny' }
      : { decision: 'allow', remember: kind === 'always' ? 'always' : kind === 'session' ? 'session' : 'once' };
    if (kind === 'deny') {
      const message = card.querySelector('input[name="message"]').value.trim();
      if (message) body.message = message;
    }
    if (kind === 'always') {
      const pattern = card.querySelector('input.pattern');
      if (pattern && pattern.value.trim() && pattern.value.trim() !== pattern.dataset.suggested) {
        body.pattern = pattern.value.trim();
      }
    }
    const status = card.querySelector('.status');
    card.dataset.busy = '1';
    status.textContent = 'Sending…';
    status.classList.remove('error');
    let r;
    try {
      r = await api('POST', '/api/v1/permissions/' + encodeURIComponent(id) + '/reply', body);
    } catch (_) {
      r = { ok: false, status: 0, data: { message: 'the daemon did not answer; is it running?' } };
    }
    card.dataset.busy = '';
    if (r.ok) {
      const p = r.data.permission;
      if (p.status === 'pending') {
        status.textContent = 'Your approval is recorded: ' + p.approvals.length + ' of ' + p.approvals_required + '.';
        for (const b of card.querySelectorAll('.actions button')) b.disabled = true;
        return;
      }
      const saved = (r.data.remembered || []).length;
      settle(card, words(p.status, p.decided_by, p.message) + (saved ? ' · rule saved' : ''), p.status);
    } else if (r.status === 409 && r.data && r.data.error === 'already_decided') {
      const p = r.data.decision;
      settle(card, 'Already decided: ' + (p ? words(p.status, p.decided_by, p.message) : r.data.message), p ? p.status : 'settled');
    } else {
      status.textContent = (r.data && r.data.message) || ('Could not send: HTTP ' + r.status);
      status.classList.add('error');
    }
  }

  function toggleAlways(card) {
    const panel = card.querySelector('.always');
    const button = card.querySelector('[data-action="always"]');
    if (!panel || !button) return;
    panel.hidden = !panel.hidden;
    button.setAttribute('aria-expanded', String(!panel.hidden));
    if (!panel.hidden) {
      const input = panel.querySelector('input.pattern') || panel.querySelector('button');
      if (input) input.focus();
    }
  }

  cards.addEventListener('click', (ev) => {
    const button = ev.target instanceof Element ? ev.target.closest('button') : null;
    const card = button ? button.closest('.card') : null;
    if (!card) return;
    if (button.dataset.reply) reply(card, button.dataset.reply);
    else if (button.dataset.action === 'always') toggleAlways(card);
  });

  // Keyboard: j/k move between requests; a, s, w, d, m act on the focused one.
  document.addEventListener('keydown', (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    const inField = t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement;
    if (inField) {
      if (ev.key === 'Enter' && t.name === 'message') { ev.preventDefault(); reply(t.closest('.card'), 'deny'); }
      else if (ev.key === 'Enter' && t.classList.contains('pattern')) { ev.preventDefault(); reply(t.closest('.card'), 'always'); }
      else if (ev.key === 'Escape') t.closest('.card').focus();
      return;
    }
    const list = pendingCards();
    const current = t instanceof Element ? t.closest('.card') : null;
    const index = current ? list.indexOf(current) : -1;
    const focusAt = (i) => { if (list.length) list[Math.max(0, Math.min(list.length - 1, i))].focus(); };
    if (ev.key === 'j' || (ev.key === 'ArrowDown' && current === t)) { ev.preventDefault(); focusAt(index + 1); return; }
    if (ev.key === 'k' || (ev.key === 'ArrowUp' && current === t)) { ev.preventDefault(); focusAt(index - 1); return; }
    if (ev.key === '?') { const keys = document.getElementById('keys'); if (keys) keys.hidden = !keys.hidden; return; }
    if (!current || current.dataset.status !== 'pending') return;
    const actions = { a: 'once', s: 'session', d: 'deny' };
    if (actions[ev.key]) {
      ev.preventDefault();
      const button = current.querySelector('[data-reply="' + actions[ev.key] + '"]');
      if (button && !button.disabled) reply(current, actions[ev.key]);
    } else if (ev.key === 'w') {
      ev.preventDefault();
      toggleAlways(current);
    } else if (ev.key === 'm') {
      ev.preventDefault();
      const input = current.querySelector('input[name="message"]');
      if (input) input.focus();
    }
  });

  // Time left.
  function fmt(secs) {
    if (secs < 60) return secs + 's';
    if (secs < 3600) return Math.floor(secs / 60) + 'm ' + String(secs % 60).padStart(2, '0') + 's';
    if (secs < 86400) return Math.floor(secs / 3600) + 'h ' + String(Math.floor((secs % 3600) / 60)).padStart(2, '0') + 'm';
    return Math.floor(secs / 86400) + 'd ' + Math.floor((secs % 86400) / 3600) + 'h';
  }
  function tick() {
    const now = Date.now() + skew;
    for (const card of pendingCards()) {
      const left = card.querySelector('.left');
      if (!left || !card.dataset.deadline) continue;
      const secs = Math.max(0, Math.round((Number(card.dataset.deadline) - now) / 1000));
      left.textContent = fmt(secs) + ' left';
      left.classList.toggle('soon', secs < 30);
    }
  }
  setInterval(tick, 1000);
  tick();
  updateCount();

  // Optional browser notifications.
  if (notifyButton && 'Notification' in window && Notification.permission === 'default') {
    notifyButton.hidden = false;
    notifyButton.addEventListener('click', async () => {
      await Notification.requestPermission();
      notifyButton.hidden = true;
    });
  }
})();
