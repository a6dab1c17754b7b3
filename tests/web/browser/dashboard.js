// Drives the kiln dashboard in headless chromium (puppeteer-core, the
// system browser): login, the runs list, the live DAG, the followed log,
// a viewer refused, cancel from the page, a branch name holding a
// <script> shown as text, and the environments page (deployment records
// written to the server's store by KILN_RECORD for the run) with one
// environment's history. Every assertion lives here; exit 0: all held.
//
// Environment: KILN_URL (the dashboard), KILN_BIN, KILN_GRPC, KILN_PIPELINE,
// KILN_TOKEN_FILE and KILN_STORE (to submit the run), KILN_RECORD (writes
// a deployment record), KILN_VIEWER
// and KILN_SUBMITTER (tokens), KILN_CHROMIUM, KILN_OUT (screenshots),
// KILN_PROFILE (a fresh browser profile directory).
'use strict';

const assert = require('node:assert/strict');
const path = require('node:path');
const puppeteer = require('puppeteer-core');

const url = process.env.KILN_URL;
const {execFileSync} = require('node:child_process');
let runId = '';
const out = process.env.KILN_OUT;
for (const v of ['KILN_URL', 'KILN_BIN', 'KILN_RECORD', 'KILN_STORE', 'KILN_GRPC', 'KILN_PIPELINE', 'KILN_TOKEN_FILE', 'KILN_VIEWER', 'KILN_SUBMITTER', 'KILN_CHROMIUM', 'KILN_OUT']) {
  assert.ok(process.env[v], v + ' is required');
}

function step(name) { console.log('-- ' + name); }

async function login(page, token) {
  await page.goto(url + '/login');
  await page.type('#token', token);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
}

async function nodeState(page, task) {
  return page.$eval(`#dag g.node[data-task="${task}"]`, (g) => g.dataset.state);
}

// Nothing the server sent ran as script: no marker, no foreign elements.
async function assertInert(page) {
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  const scripts = await page.$$eval('script', (s) => s.map((e) => e.getAttribute('src')));
  assert.ok(scripts.every((src) => src && src.startsWith('/static/')), 'only our scripts: ' + scripts);
  assert.equal(await page.$$eval('b', (b) => b.length), 0, 'log markup is text');
}

(async () => {
  const browser = await puppeteer.launch({
    executablePath: process.env.KILN_CHROMIUM,
    headless: true,
    userDataDir: process.env.KILN_PROFILE,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--no-first-run', '--disable-extensions', '--disable-background-networking'],
  });
  const pageErrors = [];
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.setViewport({width: 1280, height: 900});

    step('unauthenticated: the login page');
    await page.goto(url + '/');
    assert.equal(new URL(page.url()).pathname, '/login');
    assert.ok(await page.$('form#login input#token'));
    const api = await page.evaluate(async () => (await fetch('/api/runs')).status);
    assert.equal(api, 401);

    step('a wrong token is refused');
    await login(page, 'not-a-valid-token-000000');
    assert.equal(new URL(page.url()).pathname, '/login');
    assert.equal(await page.$eval('#failed', (p) => p.hidden), false);

    step('the DAG updates while the sleeping task runs');
    await login(page, process.env.KILN_SUBMITTER);
    assert.equal(new URL(page.url()).pathname, '/');
    // Submitted now that the browser is up: the first task sleeps 8 s.
    runId = execFileSync(process.env.KILN_BIN, ['submit', process.env.KILN_PIPELINE,
      '--server', process.env.KILN_GRPC, '--token-file', process.env.KILN_TOKEN_FILE,
      '--branch', '<script>window.__pwned=1</script>', '--event', 'push'],
    {encoding: 'utf8'}).trim().split('\n').pop();
    assert.match(runId, /^r[0-9a-z-]+$/);
    await page.goto(url + '/run?id=' + encodeURIComponent(runId));
    await page.waitForSelector('#dag g.node[data-task="warm-up"]');
    assert.equal(await page.$$eval('#dag g.node', (n) => n.length), 3);
    assert.equal(await page.$$eval('#dag .edges path', (n) => n.length), 2);
    await page.evaluate(() => { window.__sameDocument = true; });
    const warm = await nodeState(page, 'warm-up');
    assert.ok(['pending', 'running'].includes(warm), 'warm-up is ' + warm + ' (the test was too slow)');
    assert.equal(await nodeState(page, 'slow'), 'pending');
    await page.waitForFunction(() => {
      const g = document.querySelector('#dag g.node[data-task="slow"]');
      return g && g.dataset.state === 'running';
    }, {timeout: 30000});
    assert.equal(await nodeState(page, 'warm-up'), 'succeeded');
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'updated live, not reloaded');
    assert.match(await page.$eval('#run-state', (s) => s.textContent), /running/);

    step("a finished task's output is listed and downloads (tar.zst and tar)");
    await page.waitForSelector('#artifact-list tr[data-task="warm-up"][data-name="warm"]', {timeout: 15000});
    assert.equal(await page.$eval('#artifacts', (s) => s.hidden), false);
    const got = await page.evaluate(async (id) => {
      const list = await (await fetch('/api/runs/' + encodeURIComponent(id) + '/artifacts')).json();
      const row = document.querySelector('#artifact-list tr[data-task="warm-up"]');
      const zstd = await fetch(row.querySelector('a.dl-zstd').href);
      const zbytes = new Uint8Array(await zstd.arrayBuffer());
      const tar = await fetch(row.querySelector('a.dl-tar').href);
      const tbytes = new Uint8Array(await tar.arrayBuffer());
      const text = new TextDecoder('latin1').decode(tbytes);
      return {
        listed: list.artifacts.filter((a) => a.task === 'warm-up'),
        zstdStatus: zstd.status, zstdSize: zbytes.length,
        zstdMagic: Array.from(zbytes.slice(0, 4)),
        zstdDisposition: zstd.headers.get('content-disposition'),
        archiveHeader: zstd.headers.get('x-kiln-archive-digest'),
        tarStatus: tar.status, ustar: text.slice(257, 262),
        hasFile: text.includes('warm.txt'), hasContent: text.includes('warm\n'),
      };
    }, runId);
    assert.equal(got.listed.length, 1, JSON.stringify(got.listed));
    const listed = got.listed[0];
    assert.equal(listed.name, 'warm');
    assert.equal(listed.files, 1);
    assert.equal(got.zstdStatus, 200);
    assert.equal(got.zstdSize, listed.archive_size, 'the stored archive, whole');
    assert.deepEqual(got.zstdMagic, [0x28, 0xb5, 0x2f, 0xfd], 'zstd frame');
    assert.equal(got.zstdDisposition, 'attachment; filename="warm-up-warm.tar.zst"');
    assert.equal(got.archiveHeader, listed.archive_digest);
    assert.equal(got.tarStatus, 200);
    assert.equal(got.ustar, 'ustar', 'a tar stream');
    assert.ok(got.hasFile && got.hasContent, 'the tar holds warm.txt and its bytes');

    step('the log view follows new lines');
    await page.click('#dag g.node[data-task="slow"]');
    await page.waitForFunction(() => document.querySelectorAll('#log .line').length >= 2, {timeout: 15000});
    const before = await page.$$eval('#log .line', (l) => l.length);
    await page.waitForFunction((n) => document.querySelectorAll('#log .line').length >= n + 5,
        {timeout: 15000}, before);
    const last = await page.$eval('#log .line:last-child', (l) => l.textContent);
    assert.match(last, /^tick \d+ <b>not bold<\/b>$/);
    assert.ok(await page.$('#log .line span.ansi-fg2'), 'ANSI green rendered');
    assert.equal(await page.$eval('#following', (s) => s.hidden), false);
    // Search filters the lines.
    await page.type('#search', 'tick 1');
    const shown = await page.$$eval('#log .line', (l) => l.filter((x) => !x.hidden).map((x) => x.textContent));
    assert.ok(shown.length >= 1 && shown.every((t) => t.includes('tick 1')), 'search: ' + shown.slice(0, 3));
    await page.click('#search', {clickCount: 3});
    await page.keyboard.press('Backspace');
    await assertInert(page);
    await page.screenshot({path: path.join(out, 'run.png'), fullPage: true});

    step('runs list shows the run');
    await page.goto(url + '/');
    await page.waitForSelector(`tr[data-run="${runId}"]`, {timeout: 15000});
    const row = await page.$eval(`tr[data-run="${runId}"]`, (tr) =>
        Array.from(tr.children).map((td) => td.textContent));
    assert.equal(row[2], 'dashboard-demo');
    assert.equal(row[3], '<script>window.__pwned=1</script>');
    assert.equal(row[4], 'push');
    assert.equal(row[0], 'running');
    await assertInert(page);
    await page.screenshot({path: path.join(out, 'runs.png')});

    await page.goto(url + '/run?id=' + encodeURIComponent(runId));
    await page.waitForSelector('#dag g.node[data-task="slow"]');
    await page.evaluate(() => { window.__sameDocument = true; });
    step('a viewer cannot cancel');
    const viewerContext = await browser.createBrowserContext();
    const viewer = await viewerContext.newPage();
    await login(viewer, process.env.KILN_VIEWER);
    await viewer.goto(url + '/run?id=' + encodeURIComponent(runId));
    await viewer.waitForSelector('#dag g.node[data-task="slow"]');
    assert.equal(await viewer.$eval('#cancel', (b) => b.hidden), true, 'no cancel button for a viewer');
    const refused = await viewer.evaluate(async (id) => {
      const session = await (await fetch('/api/session')).json();
      const res = await fetch('/api/runs/' + encodeURIComponent(id) + '/cancel',
          {method: 'POST', headers: {'X-Kiln-CSRF': session.csrf_token}});
      return {status: res.status, body: await res.json(), role: session.role};
    }, runId);
    assert.equal(refused.role, 'viewer');
    assert.equal(refused.status, 403);
    assert.match(refused.body.error, /needs role submitter/);
    // Nor can a page without the CSRF token (a cross-site form would be one).
    const noCsrf = await page.evaluate(async (id) =>
      (await fetch('/api/runs/' + encodeURIComponent(id) + '/cancel', {method: 'POST'})).status, runId);
    assert.equal(noCsrf, 403);
    assert.match(await nodeState(page, 'slow'), /running/);
    await viewerContext.close();

    step('cancel works from the page');
    assert.equal(await page.$eval('#cancel', (b) => b.hidden), false);
    await page.click('#cancel');
    await page.waitForFunction(() => document.querySelector('#run-state').textContent === 'cancelled',
        {timeout: 30000});
    await page.waitForFunction(() => {
      const g = document.querySelector('#dag g.node[data-task="slow"]');
      return g && g.dataset.state === 'cancelled';
    }, {timeout: 15000});
    assert.notEqual(await nodeState(page, 'after'), 'running');
    assert.equal(await page.$eval('#cancel', (b) => b.hidden), true);
    assert.equal(await page.$eval('#retry', (b) => b.hidden), false);
    assert.equal(await page.evaluate(() => window.__sameDocument), true);
    await assertInert(page);
    await page.screenshot({path: path.join(out, 'run-cancelled.png'), fullPage: true});

    step('the runs list shows the outcome');
    await page.goto(url + '/');
    await page.waitForFunction((id) => {
      const tr = document.querySelector(`tr[data-run="${id}"]`);
      return tr && tr.children[0].textContent === 'cancelled';
    }, {timeout: 10000}, runId);

    step('the environments page lists recorded deployments; a click shows the history');
    const branch = '<script>window.__pwned=1</script>';
    const record = (...args) => execFileSync(process.env.KILN_RECORD,
        [process.env.KILN_STORE, ...args], {encoding: 'utf8'}).trim();
    const digest1 = 'sha256:' + '1'.repeat(64);
    const digest2 = 'sha256:' + '2'.repeat(64);
    const first = record('prod', 'demo-prod', runId, 'deploy', 'succeeded', 'registry.test/demo@' + digest1);
    const second = record('prod', 'demo-prod', runId, 'deploy', 'failed', 'registry.test/demo@' + digest2);
    record('pr-' + branch, 'demo-script-window-pwned-1-script', runId, 'deploy', 'succeeded',
        'registry.test/demo@' + digest2, '<b>odd</b>:1');
    assert.ok(Number(second) > Number(first), first + ' then ' + second);
    await page.goto(url + '/');
    await Promise.all([page.waitForNavigation(), page.click('header nav a[href="/environments"]')]);
    assert.equal(new URL(page.url()).pathname, '/environments');
    await page.waitForSelector('#environments tr.environment', {timeout: 10000});
    const envRows = await page.$$eval('#environments tr.environment', (trs) => trs.map((tr) => ({
      env: tr.dataset.env, cells: Array.from(tr.children).map((td) => td.textContent),
      runHref: tr.querySelector('a.run-link') && tr.querySelector('a.run-link').getAttribute('href'),
    })));
    assert.equal(envRows.length, 2, JSON.stringify(envRows));
    // Permanent first, then the preview with its branch and expiry.
    assert.equal(envRows[0].env, 'prod');
    assert.equal(envRows[0].cells[0], 'permanent');
    assert.equal(envRows[0].cells[2], 'demo-prod');
    assert.match(envRows[0].cells[5], new RegExp('^#' + second + ' failed$'));
    assert.equal(envRows[0].runHref, '/run?id=' + encodeURIComponent(runId));
    assert.match(envRows[0].cells[7], /registry\.test\/demo@222222222222/);
    assert.equal(envRows[0].cells[9], '', 'a permanent environment does not expire');
    assert.equal(envRows[1].cells[0], 'preview');
    assert.equal(envRows[1].cells[1], 'pr-' + branch);
    assert.equal(envRows[1].cells[4], branch);
    assert.match(envRows[1].cells[7], /<b>odd<\/b>:1 \(no digest\)/);
    const expiresIso = await page.$eval('#environments tr.kind-preview td:last-child', (td) => td.title);
    const hours = (new Date(expiresIso).getTime() - Date.now()) / 3600e3;
    assert.ok(hours > 47 && hours <= 48, 'preview expires in ' + hours + ' h');
    await assertInert(page);
    await page.click('#environments tr[data-env="prod"] a.env-link');
    await page.waitForSelector('#history:not([hidden]) #deployments tr.deployment');
    assert.equal(new URL(page.url()).search, '?env=prod&namespace=demo-prod');
    assert.equal(await page.$eval('#history-title', (s) => s.textContent), 'prod (demo-prod)');
    const hist = await page.$$eval('#deployments tr.deployment', (trs) => trs.map((tr) => ({
      id: tr.dataset.id, outcome: tr.children[1].textContent, reason: tr.children[7].textContent,
      run: tr.querySelector('a.run-link').getAttribute('href'),
    })));
    assert.deepEqual(hist.map((h) => h.id), [second, first]);
    assert.deepEqual(hist.map((h) => h.outcome), ['failed', 'succeeded']);
    assert.equal(hist[0].reason, 'rollout did not finish in time');
    assert.ok(hist.every((h) => h.run === '/run?id=' + encodeURIComponent(runId)));
    await page.screenshot({path: path.join(out, 'environments.png'), fullPage: true});
    // The history is linkable; the preview's too (its name URL-encoded).
    await page.goto(url + '/environments?env=' + encodeURIComponent('pr-' + branch));
    await page.waitForSelector('#history:not([hidden]) #deployments tr.deployment');
    assert.equal(await page.$$eval('#deployments tr.deployment', (t) => t.length), 1);
    await assertInert(page);
    // A deployment links to its run.
    await page.goto(url + '/environments?env=prod');
    await page.waitForSelector('#deployments tr.deployment a.run-link');
    await Promise.all([page.waitForNavigation(), page.click('#deployments tr.deployment a.run-link')]);
    assert.equal(new URL(page.url()).pathname, '/run');
    assert.equal(new URL(page.url()).searchParams.get('id'), runId);

    step('the first load of a run page is small');
    const sizes = [];
    const fresh = await browser.newPage();
    fresh.on('response', async (res) => {
      try { sizes.push((await res.buffer()).length); } catch (e) { /* a stream */ }
    });
    await fresh.goto(url + '/run?id=' + encodeURIComponent(runId), {waitUntil: 'networkidle0'});
    const total = sizes.reduce((a, b) => a + b, 0);
    console.log('   run page: ' + sizes.length + ' responses, ' + total + ' bytes');
    assert.ok(total <= 200 * 1024, 'first load ' + total + ' bytes');

    assert.deepEqual(pageErrors, [], 'no script errors in the pages');
    console.log('dashboard browser test: all passed');
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
