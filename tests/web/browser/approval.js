// An approval gate in the dashboard (headless chromium, puppeteer-core):
// the runs list shows a new run without a reload (live, Server-Sent
// Events), the run page shows the waiting task with Approve/Reject to an
// approver only (a viewer sees no buttons and its POST is refused), and a
// click on Approve lets the run finish. Exit 0: every assertion held.
//
// Environment: KILN_URL, KILN_BIN, KILN_GRPC, KILN_PIPELINE,
// KILN_TOKEN_FILE (a submitter's, to submit), KILN_APPROVER, KILN_VIEWER
// (tokens), KILN_CHROMIUM, KILN_OUT (screenshots), KILN_PROFILE.
'use strict';

const assert = require('node:assert/strict');
const path = require('node:path');
const {execFileSync} = require('node:child_process');
const puppeteer = require('puppeteer-core');

const url = process.env.KILN_URL;
for (const v of ['KILN_URL', 'KILN_BIN', 'KILN_GRPC', 'KILN_PIPELINE', 'KILN_TOKEN_FILE',
  'KILN_APPROVER', 'KILN_VIEWER', 'KILN_CHROMIUM', 'KILN_OUT']) {
  assert.ok(process.env[v], v + ' is required');
}

function step(name) { console.log('-- ' + name); }

async function login(page, token) {
  await page.goto(url + '/login');
  await page.type('#token', token);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
}

function submit() {
  const id = execFileSync(process.env.KILN_BIN, ['submit', process.env.KILN_PIPELINE,
    '--server', process.env.KILN_GRPC, '--token-file', process.env.KILN_TOKEN_FILE],
  {encoding: 'utf8'}).trim().split('\n').pop();
  assert.match(id, /^r[0-9a-z-]+$/);
  return id;
}

async function nodeState(page, task) {
  return page.$eval(`#dag g.node[data-task="${task}"]`, (g) => g.dataset.state);
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
    await login(page, process.env.KILN_APPROVER);
    assert.equal(new URL(page.url()).pathname, '/');

    step('a new run appears in the runs list without a reload (live)');
    await page.waitForFunction(() => document.body.dataset.live === 'live', {timeout: 15000});
    await page.evaluate(() => { window.__sameDocument = true; });
    // Polling (every 2 s) is only the fallback: make it impossible to pass
    // the check by polling, then submit.
    await page.evaluate(() => { window.setInterval = () => 0; });
    const runId = submit();
    await page.waitForSelector(`tr[data-run="${runId}"]`, {timeout: 10000});
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'not reloaded');
    assert.equal(await page.evaluate(() => document.body.dataset.live), 'live');
    await page.screenshot({path: path.join(process.env.KILN_OUT, 'runs-live.png')});

    step('the gated task waits, with Approve/Reject for an approver');
    await page.goto(url + '/run?id=' + encodeURIComponent(runId));
    await page.waitForSelector('#dag g.node[data-task="deploy"]');
    await page.waitForFunction(() => {
      const g = document.querySelector('#dag g.node[data-task="deploy"]');
      return g && g.dataset.state === 'waiting_for_approval';
    }, {timeout: 30000});
    assert.equal(await nodeState(page, 'build'), 'succeeded');
    await page.click('#dag g.node[data-task="deploy"]');
    await page.waitForFunction(() => !document.querySelector('#approval').hidden, {timeout: 5000});
    assert.equal(await page.$eval('#approval-message', (s) => s.textContent), 'ship it?');
    assert.match(await page.$eval('#run-state', (s) => s.textContent), /running/);

    step('a viewer sees no buttons and cannot approve');
    const viewerContext = await browser.createBrowserContext();
    const viewer = await viewerContext.newPage();
    await login(viewer, process.env.KILN_VIEWER);
    await viewer.goto(url + '/run?id=' + encodeURIComponent(runId));
    await viewer.waitForSelector('#dag g.node[data-task="deploy"]');
    await viewer.click('#dag g.node[data-task="deploy"]');
    assert.equal(await viewer.$eval('#approval', (p) => p.hidden), true);
    const refused = await viewer.evaluate(async (id) => {
      const session = await (await fetch('/api/session')).json();
      const res = await fetch('/api/runs/' + encodeURIComponent(id) + '/tasks/deploy/approve',
          {method: 'POST', headers: {'X-Kiln-CSRF': session.csrf_token}});
      return {status: res.status, body: await res.json(), canApprove: session.can_approve};
    }, runId);
    assert.equal(refused.canApprove, false);
    assert.equal(refused.status, 403);
    assert.match(refused.body.error, /DecideApproval/);
    await viewerContext.close();
    // Nor an approver's page without the CSRF token.
    const noCsrf = await page.evaluate(async (id) =>
      (await fetch('/api/runs/' + encodeURIComponent(id) + '/tasks/deploy/approve',
          {method: 'POST'})).status, runId);
    assert.equal(noCsrf, 403);
    assert.equal(await nodeState(page, 'deploy'), 'waiting_for_approval');
    await page.screenshot({path: path.join(process.env.KILN_OUT, 'run-waiting.png'), fullPage: true});

    step('approve from the page: the run finishes');
    await page.type('#approval-comment', 'looks good');
    await page.click('#approve');
    await page.waitForFunction(() => document.querySelector('#run-state').textContent === 'succeeded',
        {timeout: 30000});
    assert.equal(await nodeState(page, 'deploy'), 'succeeded');
    assert.equal(await nodeState(page, 'done'), 'succeeded');
    assert.equal(await page.$eval('#approval', (p) => p.hidden), true);
    const run = await page.evaluate(async (id) =>
      (await (await fetch('/api/runs/' + encodeURIComponent(id))).json()).run, runId);
    const deploy = run.tasks.find((t) => t.name === 'deploy');
    assert.equal(deploy.approval.principal, 'ann');
    assert.equal(deploy.approval.comment, 'looks good');
    assert.equal(deploy.approval.approved, true);
    await page.screenshot({path: path.join(process.env.KILN_OUT, 'run-approved.png'), fullPage: true});

    assert.deepEqual(pageErrors, [], 'no script errors in the pages');
    console.log('approval browser test: all passed');
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
