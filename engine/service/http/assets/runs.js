// The runs list: newest first, filtered, live: the server pushes the list
// whenever it changes (Server-Sent Events, /api/runs/stream); if the stream
// cannot be kept open, the list is polled every 2 seconds instead.
'use strict';

(function () {
  const tbody = document.querySelector('#runs tbody');
  const form = document.getElementById('filters');
  const more = document.getElementById('more');
  let nextToken = '';
  let pages = 1;

  function query(token) {
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    q.set('page_size', String(50 * (token ? 1 : pages)));
    if (token) q.set('page_token', token);
    return '/api/runs?' + q.toString();
  }

  function counts(run) {
    const c = run.task_counts || {};
    const done = (c.TASK_SUCCEEDED || 0) + (c.TASK_CACHED || 0);
    const parts = [done + '/' + (run.task_total || 0) + ' done'];
    if (c.TASK_CACHED) parts.push(c.TASK_CACHED + ' cached');
    if (c.TASK_RUNNING) parts.push(c.TASK_RUNNING + ' running');
    if (c.TASK_FAILED) parts.push(c.TASK_FAILED + ' failed');
    if (c.TASK_SKIPPED) parts.push(c.TASK_SKIPPED + ' skipped');
    return parts.join(', ');
  }

  function row(run) {
    const state = kiln.stateName(run.state);
    const trigger = run.trigger || {};
    const link = kiln.el('a', {href: '/run?id=' + encodeURIComponent(run.id)}, run.id);
    return kiln.el('tr', {'data-run': run.id, class: 'run'},
        kiln.el('td', {}, kiln.el('span', {class: 'state state-' + state}, state)),
        kiln.el('td', {}, link),
        kiln.el('td', {class: 'pipeline'}, run.pipeline_name),
        kiln.el('td', {}, trigger.branch || ''),
        kiln.el('td', {}, kiln.stateName(trigger.event || '').replace('event_kind_unspecified', '')),
        kiln.el('td', {}, kiln.time(run.created)),
        kiln.el('td', {}, kiln.duration(run.created, run.finished)),
        kiln.el('td', {class: 'counts'}, counts(run)));
  }

  function show(page) {
    tbody.replaceChildren(...page.runs.map(row));
    nextToken = page.next_page_token;
    more.hidden = !nextToken;
    kiln.showError('');
  }

  async function refresh() {
    try {
      show(await kiln.api(query('')));
    } catch (e) {
      kiln.showError('Could not load runs: ' + e.message);
    }
  }

  let source = null;
  let poller = null;
  let failures = 0;
  document.body.dataset.live = 'connecting';

  function poll() {
    if (poller) return;
    document.body.dataset.live = 'polling';
    refresh();
    poller = setInterval(refresh, 2000);
  }

  // (Re)opens the live list for the current filters and pages.
  function listen() {
    if (source) source.close();
    if (typeof EventSource === 'undefined') return poll();
    source = new EventSource(query('').replace('/api/runs?', '/api/runs/stream?'));
    source.addEventListener('runs', (e) => {
      failures = 0;
      if (poller) { clearInterval(poller); poller = null; }
      document.body.dataset.live = 'live';
      show(JSON.parse(e.data));
    });
    source.addEventListener('stream-error', (e) => {
      kiln.showError('live list: ' + JSON.parse(e.data).error);
    });
    source.onerror = () => {
      // The browser retries by itself; after a few failures in a row (or
      // once it gave up) the list falls back to polling.
      failures += 1;
      if (failures >= 3 || source.readyState === EventSource.CLOSED) poll();
    };
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); pages = 1; refresh(); listen(); });
  more.addEventListener('click', () => { pages += 1; refresh(); listen(); });
  kiln.start().then(refresh).then(listen)
      .catch((e) => kiln.showError(e.message));
})();
