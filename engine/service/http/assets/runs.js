// The runs list: newest first, filtered, refreshed every 2 seconds.
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

  async function refresh() {
    try {
      const page = await kiln.api(query(''));
      tbody.replaceChildren(...page.runs.map(row));
      nextToken = page.next_page_token;
      more.hidden = !nextToken;
      kiln.showError('');
    } catch (e) {
      kiln.showError('Could not load runs: ' + e.message);
    }
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); pages = 1; refresh(); });
  more.addEventListener('click', () => { pages += 1; refresh(); });
  kiln.start().then(refresh).then(() => setInterval(refresh, 2000))
      .catch((e) => kiln.showError(e.message));
})();
