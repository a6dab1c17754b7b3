// The run page: the DAG as a layered SVG graph kept live by the run's event
// stream, a task's details, cache key explanation and log (tail, then
// followed live; ANSI colours; search), and the cancel and retry actions.
'use strict';

(function () {
  const runId = new URLSearchParams(location.search).get('id') || '';
  const enc = encodeURIComponent;
  let run = null;           // the run (tasks by name in `tasks`)
  const tasks = new Map();  // name -> TaskStatus
  let graph = [];           // [{name, needs, finally}]
  let selected = null;
  let events = null;
  let logStream = null;
  let drawPending = false;

  const NODE_W = 150, NODE_H = 34, GAP_X = 36, GAP_Y = 14, PAD = 10;

  // Layer = longest chain of needs before a task; `finally` tasks after all.
  function layout() {
    const byName = new Map(graph.map((t) => [t.name, t]));
    const depth = new Map();
    const visit = (name, stack) => {
      if (depth.has(name)) return depth.get(name);
      const t = byName.get(name);
      if (!t || stack.has(name)) return 0;
      stack.add(name);
      let d = 0;
      for (const need of t.needs) {
        if (byName.has(need) && byName.get(need).finally === t.finally) {
          d = Math.max(d, visit(need, stack) + 1);
        }
      }
      stack.delete(name);
      depth.set(name, d);
      return d;
    };
    graph.forEach((t) => visit(t.name, new Set()));
    let mainMax = -1;
    graph.forEach((t) => { if (!t.finally) mainMax = Math.max(mainMax, depth.get(t.name)); });
    const layers = [];
    graph.forEach((t) => {
      const l = depth.get(t.name) + (t.finally ? mainMax + 1 : 0);
      (layers[l] = layers[l] || []).push(t);
    });
    // Order each layer by the mean row of its needs (fewer crossings).
    const row = new Map();
    layers.forEach((layer) => {
      const key = (t) => {
        const rows = t.needs.filter((n) => row.has(n)).map((n) => row.get(n));
        return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : Infinity;
      };
      layer.sort((a, b) => key(a) - key(b));
      layer.forEach((t, i) => row.set(t.name, i));
    });
    const pos = new Map();
    layers.forEach((layer, l) => layer.forEach((t, i) => pos.set(t.name, {
      x: PAD + l * (NODE_W + GAP_X), y: PAD + i * (NODE_H + GAP_Y)})));
    const width = PAD * 2 + layers.length * (NODE_W + GAP_X) - GAP_X;
    const height = PAD * 2 + Math.max(1, ...layers.map((l) => l.length)) * (NODE_H + GAP_Y) - GAP_Y;
    return {pos, width, height};
  }

  function draw() {
    drawPending = false;
    const svg = document.getElementById('dag');
    const {pos, width, height} = layout();
    svg.setAttribute('width', width);
    svg.setAttribute('height', height);
    svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    const edges = kiln.svg('g', {class: 'edges'});
    const nodes = kiln.svg('g', {class: 'nodes'});
    for (const t of graph) {
      const to = pos.get(t.name);
      for (const need of t.needs) {
        const from = pos.get(need);
        if (!from) continue;
        const x1 = from.x + NODE_W, y1 = from.y + NODE_H / 2;
        const x2 = to.x, y2 = to.y + NODE_H / 2;
        const mid = (x1 + x2) / 2;
        edges.append(kiln.svg('path', {
          d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
          'data-from': need, 'data-to': t.name}));
      }
      const status = tasks.get(t.name) || {};
      const state = kiln.stateName(status.state || 'TASK_PENDING');
      const g = kiln.svg('g', {
        class: 'node state-' + state + (selected === t.name ? ' selected' : ''),
        transform: `translate(${to.x},${to.y})`, tabindex: 0});
      g.dataset.task = t.name;
      g.dataset.state = state;
      g.append(kiln.svg('rect', {width: NODE_W, height: NODE_H, rx: 6}));
      const label = kiln.svg('text', {x: 10, y: NODE_H / 2 + 5});
      label.textContent = t.name.length > 18 ? t.name.slice(0, 17) + '…' : t.name;
      const title = kiln.svg('title', {});
      title.textContent = t.name + ' — ' + state;
      g.append(title, label);
      g.addEventListener('click', () => select(t.name));
      g.addEventListener('keydown', (e) => { if (e.key === 'Enter') select(t.name); });
      nodes.append(g);
    }
    svg.replaceChildren(edges, nodes);
  }

  function redraw() {
    if (!drawPending) { drawPending = true; requestAnimationFrame(draw); }
  }

  function header() {
    const state = kiln.stateName(run.state);
    const badge = document.getElementById('run-state');
    badge.textContent = state;
    badge.className = 'state state-' + state;
    document.getElementById('run-title').textContent = run.pipeline_name + ' · ' + run.id;
    const t = run.trigger || {};
    const meta = [];
    if (t.branch) meta.push('branch ' + t.branch);
    if (t.event && t.event !== 'EVENT_KIND_UNSPECIFIED') meta.push(kiln.stateName(t.event));
    meta.push('started ' + kiln.time(run.created));
    meta.push('took ' + kiln.duration(run.created, run.finished));
    if (run.reason) meta.push(run.reason);
    document.getElementById('run-meta').textContent = meta.join(' · ');
    const final = kiln.runIsFinal(run.state);
    const canAct = kiln.session && kiln.session.can_act;
    document.getElementById('cancel').hidden = !canAct || final;
    document.getElementById('retry').hidden = !canAct || !final;
    document.getElementById('live').hidden = final;
  }

  function done(status) {
    return !['TASK_PENDING', 'TASK_RUNNING', 'TASK_WAITING_FOR_APPROVAL', 'TASK_STATE_UNSPECIFIED', undefined].includes(status.state);
  }

  function info(status) {
    const dl = document.getElementById('task-info');
    const rows = [
      ['attempts', status.attempts || 0],
      ['exit code', done(status) ? status.exit_code : ''],
      ['started', kiln.time(status.started)],
      ['duration', kiln.duration(status.started, status.finished)],
      ['reason', status.reason],
      ['cache key', status.cache_key],
    ];
    for (const [k, v] of Object.entries(status.outputs || {})) rows.push(['output ' + k, v]);
    for (const [k, v] of Object.entries(status.results || {})) rows.push(['result ' + k, v]);
    dl.replaceChildren();
    for (const [k, v] of rows) {
      if (v === '' || v === undefined || v === null) continue;
      dl.append(kiln.el('dt', {}, k), kiln.el('dd', {}, v));
    }
  }

  function showTask() {
    if (!selected) return;
    const status = tasks.get(selected) || {name: selected, state: 'TASK_PENDING'};
    const state = kiln.stateName(status.state);
    const badge = document.getElementById('task-state');
    badge.textContent = state;
    badge.className = 'state state-' + state;
    document.getElementById('task-name').textContent = selected;
    info(status);
    // An approval gate waiting for a decision: the buttons, for approvers.
    const waiting = status.state === 'TASK_WAITING_FOR_APPROVAL';
    const canApprove = kiln.session && kiln.session.can_approve;
    document.getElementById('approval').hidden = !waiting || !canApprove;
    document.getElementById('approval-message').textContent =
        waiting ? ((status.approval && status.approval.message) || 'approve this task?') : '';
    const attempt = document.getElementById('attempt');
    const n = status.attempts || 0;
    if (attempt.options.length !== n) {
      const keep = attempt.value;
      attempt.replaceChildren(...Array.from({length: n}, (_, i) =>
          kiln.el('option', {value: i + 1}, 'attempt ' + (i + 1))));
      attempt.value = keep && Number(keep) <= n ? keep : String(n);
    }
  }

  async function explain() {
    const body = document.getElementById('explain-body');
    body.replaceChildren('loading…');
    try {
      const why = await kiln.api('/api/runs/' + enc(runId) + '/tasks/' + enc(selected) + '/explain');
      const list = kiln.el('ul', {});
      for (const c of why.changes) list.append(kiln.el('li', {}, c.kind + ' ' + c.name + ': ' + (c.old || '∅') + ' → ' + (c.new || '∅')));
      const inputs = kiln.el('ul', {});
      for (const c of why.inputs) inputs.append(kiln.el('li', {}, c.name + ' = ' + c.digest));
      body.replaceChildren(
          kiln.el('p', {}, 'verdict: ' + why.verdict.replace(/_/g, ' ') + (why.key ? ' · key ' + why.key : '')),
          why.previous_run ? kiln.el('p', {}, 'compared with run ' + why.previous_run) : '',
          why.changes.length ? kiln.el('p', {}, 'changed:') : '', why.changes.length ? list : '',
          why.inputs.length ? kiln.el('p', {}, 'inputs:') : '', why.inputs.length ? inputs : '',
          why.host_tools_untracked ? kiln.el('p', {}, 'image: host — tools the command reaches are not in the key') : '');
    } catch (e) {
      body.replaceChildren('cannot explain: ' + e.message);
    }
  }

  function appendLines(lines) {
    const pre = document.getElementById('log');
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    const needle = document.getElementById('search').value.toLowerCase();
    for (const line of lines) {
      const node = kiln.ansiLine(line.text || '');
      node.className = 'line' + (line.stream === 'stderr' ? ' stderr' : '');
      node.dataset.text = (line.text || '').toLowerCase();
      node.hidden = needle !== '' && !node.dataset.text.includes(needle);
      pre.append(node);
    }
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  async function openLog() {
    if (logStream) { logStream.close(); logStream = null; }
    const pre = document.getElementById('log');
    pre.replaceChildren();
    const following = document.getElementById('following');
    following.hidden = true;
    const task = selected;
    const status = tasks.get(task) || {};
    const attempt = document.getElementById('attempt').value;
    const base = '/api/runs/' + enc(runId) + '/tasks/' + enc(task) + '/log';
    const download = document.getElementById('download');
    download.hidden = !attempt;
    download.setAttribute('href', base + '?download=1' + (attempt ? '&attempt=' + attempt : ''));
    let offset = 0;
    if (attempt) {
      const tail = await kiln.api(base + '?tail=1000&attempt=' + attempt);
      if (task !== selected) return;
      appendLines(tail.lines);
      offset = tail.next_offset;
    }
    const over = kiln.runIsFinal(run.state) ||
        !['TASK_PENDING', 'TASK_RUNNING', undefined].includes(status.state) ||
        (attempt && Number(attempt) < (status.attempts || 0));
    if (over) return;
    const q = new URLSearchParams({follow: '1', offset: String(offset)});
    if (attempt) q.set('attempt', attempt);
    logStream = new EventSource(base + '?' + q.toString());
    following.hidden = false;
    logStream.onmessage = (e) => appendLines(JSON.parse(e.data).lines);
    const stop = () => { if (logStream) logStream.close(); logStream = null; following.hidden = true; };
    logStream.addEventListener('end', stop);
    logStream.addEventListener('stream-error', (e) => { stop(); kiln.showError(JSON.parse(e.data).error); });
  }

  function select(name) {
    selected = name;
    document.getElementById('task').hidden = false;
    document.getElementById('attempt').replaceChildren();
    document.getElementById('explain').open = false;
    showTask();
    redraw();
    openLog().catch((e) => kiln.showError('log: ' + e.message));
  }

  function apply(event) {
    if (event.run_state) {
      run.state = event.run_state.state;
      if (event.run_state.reason) run.reason = event.run_state.reason;
      if (kiln.runIsFinal(run.state)) run.finished = event.time;
      header();
    } else if (event.task_state) {
      const ts = event.task_state;
      const status = tasks.get(ts.task) || {name: ts.task};
      const wasAttempts = status.attempts || 0;
      status.state = ts.state;
      if (ts.attempt) status.attempts = Math.max(wasAttempts, ts.attempt);
      if (ts.state === 'TASK_RUNNING') { status.started = event.time; status.finished = null; }
      else if (ts.state !== 'TASK_PENDING' && ts.state !== 'TASK_WAITING_FOR_APPROVAL') status.finished = event.time;
      status.exit_code = ts.exit_code;
      status.reason = ts.reason;
      if (ts.approval) status.approval = ts.approval;
      tasks.set(ts.task, status);
      redraw();
      // A task that finished well may have new outputs.
      if (ts.state === 'TASK_SUCCEEDED' || ts.state === 'TASK_CACHED') {
        loadArtifacts().catch(() => {});
      }
      if (ts.task === selected) {
        showTask();
        // A new attempt started: follow it.
        if ((status.attempts || 0) > wasAttempts) openLog().catch(() => {});
      }
    }
  }

  function follow(after) {
    if (events) events.close();
    events = new EventSource('/api/runs/' + enc(runId) + '/events?after=' + enc(after));
    events.onmessage = (e) => apply(JSON.parse(e.data));
    events.addEventListener('end', async () => {
      events.close();
      await load(false);  // final fields (cache keys, outputs)
    });
    events.addEventListener('stream-error', (e) => {
      events.close();
      kiln.showError(JSON.parse(e.data).error);
    });
  }

  function bytes(n) {
    if (n === undefined || n === null) return '';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = Number(n);
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(v) : v.toFixed(1)) + ' ' + units[i];
  }

  // The run's output artifacts, each downloadable as stored (tar.zst) or
  // as a plain tar.
  async function loadArtifacts() {
    const reply = await kiln.api('/api/runs/' + enc(runId) + '/artifacts');
    const body = document.querySelector('#artifact-list tbody');
    body.replaceChildren();
    for (const a of reply.artifacts) {
      const base = '/api/runs/' + enc(runId) + '/artifacts/' + enc(a.task) + '/' + enc(a.name);
      const links = a.stored
        ? kiln.el('td', {},
            kiln.el('a', {href: base + '?format=zstd', class: 'dl-zstd', download: ''}, 'tar.zst'), ' ',
            kiln.el('a', {href: base + '?format=tar', class: 'dl-tar', download: ''}, 'tar'))
        : kiln.el('td', {title: 'no longer in the store'}, 'collected');
      body.append(kiln.el('tr', {'data-task': a.task, 'data-name': a.name, title: a.tree_digest},
          kiln.el('td', {}, a.task), kiln.el('td', {}, a.name),
          kiln.el('td', {}, a.stored ? a.files : ''),
          kiln.el('td', {}, a.stored ? bytes(a.archive_size) : ''), links));
    }
    document.getElementById('artifacts').hidden = reply.artifacts.length === 0;
  }

  async function load(andFollow) {
    const reply = await kiln.api('/api/runs/' + enc(runId));
    run = reply.run;
    graph = reply.graph;
    tasks.clear();
    for (const t of run.tasks || []) tasks.set(t.name, t);
    document.title = 'kiln — ' + run.pipeline_name + ' ' + run.id;
    header();
    redraw();
    showTask();
    loadArtifacts().catch((e) => kiln.showError('artifacts: ' + e.message));
    if (andFollow && !kiln.runIsFinal(run.state)) follow(reply.last_sequence);
  }

  async function act(what) {
    kiln.showError('');
    try {
      const reply = await kiln.api('/api/runs/' + enc(runId) + '/' + what, {method: 'POST'});
      if (what === 'retry') location.href = '/run?id=' + enc(reply.run_id);
    } catch (e) {
      kiln.showError(what + ' refused: ' + e.message);
    }
  }

  async function decide(verdict) {
    kiln.showError('');
    try {
      await kiln.api('/api/runs/' + enc(runId) + '/tasks/' + enc(selected) + '/' + verdict, {
        method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({comment: document.getElementById('approval-comment').value}),
      });
      document.getElementById('approval').hidden = true;
    } catch (e) {
      kiln.showError(verdict + ' refused: ' + e.message);
    }
  }

  document.getElementById('approve').addEventListener('click', () => decide('approve'));
  document.getElementById('reject').addEventListener('click', () => decide('reject'));
  document.getElementById('cancel').addEventListener('click', () => act('cancel'));
  document.getElementById('retry').addEventListener('click', () => act('retry'));
  document.getElementById('attempt').addEventListener('change', () => openLog().catch((e) => kiln.showError(e.message)));
  document.getElementById('explain').addEventListener('toggle', (e) => { if (e.target.open) explain(); });
  document.getElementById('search').addEventListener('input', (e) => {
    const needle = e.target.value.toLowerCase();
    for (const line of document.querySelectorAll('#log .line')) {
      line.hidden = needle !== '' && !line.dataset.text.includes(needle);
    }
  });
  // Durations of what is still running grow every second.
  setInterval(() => {
    if (!run || kiln.runIsFinal(run.state)) return;
    header();
    if (selected) info(tasks.get(selected) || {});
  }, 1000);
  kiln.start().then(() => load(true)).catch((e) => kiln.showError(e.message));
})();
