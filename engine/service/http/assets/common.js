// Helpers shared by the dashboard's pages. Every string from the server is
// put into the page as text (textContent, attribute values), never as HTML.
'use strict';

const kiln = {};

// The session: {name, role, can_act, can_approve, csrf_token}.
kiln.session = null;

// fetch() of the JSON API; actions (POST) carry the CSRF token. Throws an
// Error with the server's message for a non-2xx reply.
kiln.api = async function (path, options) {
  const opts = Object.assign({credentials: 'same-origin', headers: {}}, options || {});
  if (opts.method === 'POST' && kiln.session) {
    opts.headers['X-Kiln-CSRF'] = kiln.session.csrf_token;
  }
  const res = await fetch(path, opts);
  if (res.status === 401) {
    location.href = '/login';
    throw new Error('not logged in');
  }
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    const err = new Error((body && body.error) || ('HTTP ' + res.status));
    err.status = res.status;
    throw err;
  }
  return body;
};

// el('td', {class: 'x', title: 't'}, 'text', childNode, ...)
kiln.el = function (tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
};

kiln.svg = function (tag, attrs) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
};

// RUN_SUCCEEDED / TASK_CACHED -> "succeeded" / "cached".
kiln.stateName = function (state) {
  return String(state || '').replace(/^(RUN|TASK)_/, '').toLowerCase().replace('state_unspecified', 'unknown');
};

kiln.runIsFinal = function (state) {
  return ['RUN_SUCCEEDED', 'RUN_FAILED', 'RUN_CANCELLED', 'RUN_TIMED_OUT'].includes(state);
};

kiln.time = function (ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return isNaN(d) ? '' : d.toLocaleString();
};

// "1m 5s" from two timestamps (the second missing: until now).
kiln.duration = function (from, to) {
  if (!from) return '';
  const start = new Date(from).getTime();
  const end = to ? new Date(to).getTime() : Date.now();
  if (isNaN(start) || isNaN(end) || end < start) return '';
  let s = Math.round((end - start) / 1000);
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + s + 's';
};

// A log line with ANSI SGR colours as spans (text only).
const kAnsi = /\x1b\[([0-9;]*)m/g;
kiln.ansiLine = function (text) {
  const line = document.createElement('span');
  let classes = [];
  let last = 0;
  const flush = (chunk) => {
    if (!chunk) return;
    const span = document.createElement('span');
    if (classes.length) span.className = classes.join(' ');
    span.textContent = chunk.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    line.append(span);
  };
  for (const m of text.matchAll(kAnsi)) {
    flush(text.slice(last, m.index));
    last = m.index + m[0].length;
    for (const code of (m[1] || '0').split(';').map(Number)) {
      if (code === 0) classes = [];
      else if (code === 1) classes.push('ansi-bold');
      else if ((code >= 30 && code <= 37) || (code >= 90 && code <= 97)) {
        classes = classes.filter((c) => !c.startsWith('ansi-fg'));
        classes.push('ansi-fg' + (code >= 90 ? code - 90 + 8 : code - 30));
      } else if (code === 39) classes = classes.filter((c) => !c.startsWith('ansi-fg'));
    }
  }
  flush(text.slice(last));
  return line;
};

kiln.showError = function (message) {
  const p = document.getElementById('error');
  if (!p) return;
  p.textContent = message || '';
  p.hidden = !message;
};

kiln.start = async function () {
  kiln.session = await kiln.api('/api/session');
  document.getElementById('who').textContent =
      kiln.session.name + ' (' + kiln.session.role + ')';
  document.getElementById('logout').addEventListener('click', async () => {
    try { await kiln.api('/logout', {method: 'POST'}); } catch (e) { /* gone */ }
    location.href = '/login';
  });
};
