// The environments page: each environment's latest recorded deployment
// (permanent ones first, then previews with their branch and expiry), and
// one environment's history below it (?env=NAME&namespace=NS). Every string
// from the server is inserted as text (kiln.el).
'use strict';

(function () {
  const tbody = document.querySelector('#environments tbody');
  const history = document.getElementById('history');
  const historyBody = document.querySelector('#deployments tbody');
  const older = document.getElementById('older');
  let shown = {env: '', namespace: '', limit: 50};

  function shortDigest(d) {
    return d ? String(d).replace(/^sha256:/, '').slice(0, 12) : '';
  }

  // Images as "name@digest" lines (the digest shortened, full in the title).
  function images(list) {
    const cell = kiln.el('td', {class: 'images'});
    for (const img of list || []) {
      cell.append(kiln.el('div', {class: 'image', title: img.image}, img.name,
          img.digest ? kiln.el('span', {class: 'digest'}, '@' + shortDigest(img.digest))
                     : kiln.el('span', {class: 'meta'}, ' (no digest)')));
    }
    if (!cell.childNodes.length) cell.append('-');
    return cell;
  }

  function runCell(d) {
    if (d.rollback_to) return kiln.el('td', {}, 'rollback to ' + d.rollback_to);
    if (!d.run_id) return kiln.el('td', {}, d.task || '');
    return kiln.el('td', {},
        kiln.el('a', {class: 'run-link', href: '/run?id=' + encodeURIComponent(d.run_id)}, d.run_id),
        ' / ' + (d.task || ''));
  }

  function outcome(d) {
    return kiln.el('span', {class: 'state state-' + (d.outcome === 'succeeded' ? 'succeeded' : 'failed')}, d.outcome);
  }

  function historyHref(env, ns) {
    const q = new URLSearchParams({env: env});
    if (ns) q.set('namespace', ns);
    return '/environments?' + q.toString();
  }

  function expires(e) {
    if (e.kind !== 'preview') return kiln.el('td', {}, '');
    if (!e.expires_at) {
      return kiln.el('td', {class: 'meta'}, e.declared ? 'unknown' : 'never (undeclared)');
    }
    return kiln.el('td', {class: e.expired ? 'expired' : '', title: e.expires_at},
        kiln.time(e.expires_at) + (e.expired ? ' (expired)' : ''));
  }

  function row(e) {
    const d = e.latest || {};
    const link = kiln.el('a', {class: 'env-link', href: historyHref(e.environment, e.namespace)}, e.environment);
    link.addEventListener('click', (ev) => {
      ev.preventDefault();
      window.history.pushState(null, '', link.getAttribute('href'));
      showHistory(e.environment, e.namespace, 50);
    });
    return kiln.el('tr', {class: 'environment kind-' + e.kind, 'data-env': e.environment, 'data-namespace': e.namespace},
        kiln.el('td', {}, kiln.el('span', {class: 'kind kind-' + e.kind}, e.kind)),
        kiln.el('td', {class: 'pipeline'}, link),
        kiln.el('td', {}, e.namespace),
        kiln.el('td', {}, e.context || '(current)'),
        kiln.el('td', {class: 'branch'}, e.branch || ''),
        kiln.el('td', {}, '#' + d.id + ' ', outcome(d)),
        runCell(d),
        images(d.images),
        kiln.el('td', {title: d.finished || ''}, kiln.time(d.finished)),
        expires(e));
  }

  function historyRow(d) {
    return kiln.el('tr', {class: 'deployment', 'data-id': d.id},
        kiln.el('td', {}, '#' + d.id),
        kiln.el('td', {}, outcome(d)),
        kiln.el('td', {title: d.finished || ''}, kiln.time(d.finished)),
        kiln.el('td', {}, d.namespace),
        runCell(d),
        kiln.el('td', {class: 'digest', title: d.manifests_digest}, shortDigest(d.manifests_digest)),
        images(d.images),
        kiln.el('td', {class: 'reason'}, d.reason || ''));
  }

  async function showHistory(env, namespace, limit) {
    shown = {env: env, namespace: namespace || '', limit: limit};
    const q = new URLSearchParams({limit: String(limit)});
    if (namespace) q.set('namespace', namespace);
    try {
      const page = await kiln.api('/api/environments/' + encodeURIComponent(env) +
          '/deployments?' + q.toString());
      document.getElementById('history-title').textContent =
          env + (namespace ? ' (' + namespace + ')' : '');
      historyBody.replaceChildren(...page.deployments.map(historyRow));
      older.hidden = !page.more;
      history.hidden = false;
      for (const tr of tbody.children) {
        tr.classList.toggle('selected', tr.dataset.env === env &&
            (!namespace || tr.dataset.namespace === namespace));
      }
      kiln.showError('');
    } catch (e) {
      history.hidden = true;
      kiln.showError('Could not load the history of ' + env + ': ' + e.message);
    }
  }

  function fromLocation() {
    const q = new URLSearchParams(location.search);
    if (q.get('env')) showHistory(q.get('env'), q.get('namespace') || '', 50);
    else history.hidden = true;
  }

  async function load() {
    const reply = await kiln.api('/api/environments');
    tbody.replaceChildren(...reply.environments.map(row));
    document.getElementById('empty').hidden = reply.environments.length > 0;
    document.getElementById('expiry-note').textContent =
        'Preview expiry: ' + reply.expiry_source + '.';
  }

  older.addEventListener('click', () => showHistory(shown.env, shown.namespace, shown.limit * 2));
  window.addEventListener('popstate', fromLocation);
  kiln.start().then(load).then(fromLocation)
      .catch((e) => kiln.showError('Could not load environments: ' + e.message));
})();
