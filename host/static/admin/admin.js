// The admin page: plain script, no build step. Every request carries the
// token the operator typed, kept in this tab's sessionStorage only.
'use strict';

const KEY = 'switchboard-admin-token';
const $ = (id) => document.getElementById(id);
let last = null; // the previous overview, for rates
let timer = null;
let candidate = null; // {name, bytes} checked and ready to publish

function token() {
  return sessionStorage.getItem(KEY);
}

/** A request to this interface; resolves {status, body (parsed JSON or text)}. */
async function call(method, path, body, type) {
  const headers = { Authorization: 'Bearer ' + token() };
  if (type) headers['Content-Type'] = type;
  const res = await fetch(path, { method, headers, body });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    /* not JSON */
  }
  if (res.status === 401) logout('the token was refused (401)');
  return { status: res.status, body: parsed };
}

function why(body) {
  return body && body.message ? `${body.error}: ${body.message}` : String(body);
}

function setText(id, value) {
  $(id).textContent = value === undefined || value === null ? '' : String(value);
}

function rate(now, key) {
  if (!last || now.at_ms <= last.at_ms) return '–';
  const per = ((now[key] - last[key]) * 1000) / (now.at_ms - last.at_ms);
  return per.toFixed(per < 10 ? 1 : 0);
}

function show(o) {
  setText('node-line', `node ${o.node} · cluster ${o.cluster} · rules ${o.rules}${o.draining ? ' · DRAINING' : ''}`);
  setText('live-open', o.connections.open);
  setText('live-rooms', o.rooms);
  setText('live-held', o.held);
  const now = { at_ms: o.at_ms, total: o.connections.total, frames_in: o.frames_in, frames_out: o.frames_out };
  setText('live-connects', rate(now, 'total'));
  setText('live-in', rate(now, 'frames_in'));
  setText('live-out', rate(now, 'frames_out'));
  last = now;

  const nodes = $('nodes');
  nodes.replaceChildren(
    ...o.connections.nodes.map((n) => {
      const tr = document.createElement('tr');
      tr.dataset.node = n.node;
      for (const v of [n.node + (n.here ? ' (this one)' : ''), n.online]) {
        const td = document.createElement('td');
        td.textContent = String(v);
        tr.append(td);
      }
      return tr;
    }),
  );

  const p = o.policy;
  const a = p.active || {};
  setText('active-seq', a.seq);
  setText('active-source', a.source);
  setText('active-sha', (a.sha256 || '').slice(0, 16));
  setText('active-world', a.world);
  setText('active-calls', a.calls);
  setText('active-failures', a.failures);
  setText('active-since', `${a.published_at || ''} (${a.published_by || ''})`);
  const v = p.previous || {};
  setText('previous-seq', v.seq === undefined ? 'none' : v.seq);
  setText('previous-source', v.source);
  setText('previous-sha', (v.sha256 || '').slice(0, 16));
  setText('previous-world', v.world);
  $('rollback').disabled = v.seq === undefined;

  const recent = $('recent');
  recent.replaceChildren(
    ...(p.recent || []).map((c) => {
      const li = document.createElement('li');
      li.dataset.kind = c.kind;
      li.textContent = `${c.at} ${c.kind} ${c.from} → ${c.to}: ${c.detail}`;
      return li;
    }),
  );
}

async function refresh() {
  try {
    const { status, body } = await call('GET', '/admin/overview');
    if (status === 200) show(body);
  } catch (e) {
    setText('node-line', 'the server does not answer');
  }
}

function start() {
  $('login').hidden = true;
  $('main').hidden = false;
  $('logout').hidden = false;
  refresh();
  timer = setInterval(refresh, 2000);
}

function logout(message) {
  sessionStorage.removeItem(KEY);
  clearInterval(timer);
  timer = null;
  last = null;
  $('main').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  setText('login-error', message || '');
}

async function login(ev) {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $('token-input').value.trim());
  $('token-input').value = '';
  const { status, body } = await call('GET', '/admin/overview');
  if (status !== 200) return logout(status === 401 ? 'the token was refused (401)' : why(body));
  setText('login-error', '');
  start();
  show(body);
}

async function check() {
  const file = $('upload-file').files[0];
  if (!file) return;
  candidate = null;
  $('publish').disabled = true;
  setText('check-result', 'checking…');
  const bytes = await file.arrayBuffer();
  const q = '?source=' + encodeURIComponent(file.name);
  const { status, body } = await call('POST', '/admin/policy/check' + q, bytes, 'application/wasm');
  if (status !== 200) {
    $('check-result').dataset.ok = 'false';
    return setText('check-result', `refused at ${body.error}: ${body.message}`);
  }
  $('check-result').dataset.ok = 'true';
  setText(
    'check-result',
    `ok: ${file.name} satisfies switchboard:policy/policy@${body.world} and instantiates\n` +
      `size ${body.size} bytes, sha256 ${body.sha256}, loaded in ${body.load_ms} ms\n` +
      `imports: ${(body.imports || []).join(', ') || 'none'}`,
  );
  candidate = { name: file.name, bytes };
  $('publish').disabled = false;
}

async function publish() {
  if (!candidate) return;
  $('publish').disabled = true;
  const q = '?source=' + encodeURIComponent(candidate.name);
  const { status, body } = await call('PUT', '/admin/policy' + q, candidate.bytes, 'application/wasm');
  candidate = null;
  if (status === 200) {
    const to = body.active ? body.active.seq : body.to;
    setText('policy-message', `published: version ${to} is active`);
  } else {
    setText('policy-message', `not published (${status}): ${why(body)}`);
  }
  refresh();
}

async function rollback() {
  const { status, body } = await call('POST', '/admin/policy/rollback');
  setText('policy-message', status === 200 ? `rolled back: version ${body.to} is active` : `no rollback (${status}): ${why(body)}`);
  refresh();
}

let found = null;

async function find(ev) {
  ev.preventDefault();
  const id = $('find-id').value.trim();
  $('found').hidden = true;
  found = null;
  const { status, body } = await call('GET', '/admin/connections?id=' + encodeURIComponent(id));
  if (status !== 200) return setText('find-message', why(body));
  found = body.id;
  setText('find-message', body.held ? 'held for a resume (its connection ended)' : '');
  setText('found-id', body.id);
  setText('found-node', body.node + (body.here ? '' : ' (another node)'));
  setText('found-address', body.address || '–');
  setText('found-since', body.since || '–');
  setText('found-rooms', (body.rooms || []).join(', ') || 'none');
  $('found').hidden = false;
}

async function disconnect() {
  if (!found) return;
  const reason = $('disconnect-reason').value.trim();
  const q = reason ? '?reason=' + encodeURIComponent(reason) : '';
  const { status, body } = await call('DELETE', '/admin/connections/' + encodeURIComponent(found) + q);
  setText('find-message', status === 200 ? `disconnected ${body.id} (4003: ${body.reason})` : why(body));
  if (status === 200) $('found').hidden = true;
  refresh();
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', () => logout(''));
  $('upload-file').addEventListener('change', () => {
    $('check').disabled = !$('upload-file').files.length;
    $('publish').disabled = true;
    candidate = null;
    setText('check-result', '');
  });
  $('check').addEventListener('click', check);
  $('publish').addEventListener('click', publish);
  $('rollback').addEventListener('click', rollback);
  $('find-form').addEventListener('submit', find);
  $('disconnect').addEventListener('click', disconnect);
  if (token()) start();
});
