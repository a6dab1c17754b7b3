// Drives `kiln serve` (started by node_limits_test.sh with small limits)
// from the .proto files alone and checks the service's bounds: streams per
// client and in all with an admin reserve, no reflection on TCP, paused
// watchers bounded in memory and cut off, idle connections closed,
// protobuf pipelines bounded and validated in linear memory, run replies
// fitted and paged, and secret param values never returned.
//
// Environment: KILN_ADDR, KILN_PROTO_DIR, KILN_PID (the server, to read its
// memory), KILN_ADMIN / KILN_SUBMITTER / KILN_VIEWER1 / KILN_VIEWER2
// (tokens). The server runs with --max-streams 16 (2 kept for admins),
// --max-streams-per-client 8, --idle-timeout 2s, --max-reply-bytes 65536,
// --max-uploads 1.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const addr = process.env.KILN_ADDR;
const protoDir = process.env.KILN_PROTO_DIR;
const serverPid = process.env.KILN_PID;
const tokens = {
  admin: process.env.KILN_ADMIN,
  submitter: process.env.KILN_SUBMITTER,
  viewer1: process.env.KILN_VIEWER1,
  viewer2: process.env.KILN_VIEWER2,
};
for (const [k, v] of Object.entries(tokens)) assert.ok(v, `token ${k}`);

const kiln = grpc.loadPackageDefinition(protoLoader.loadSync(
    'kiln/v1/service.proto', {
      keepCase: true, longs: String, enums: String, defaults: true,
      oneofs: true, includeDirs: [protoDir],
    })).kiln.v1;

// Each client its own connection, so stream counts are the server's.
function newClient() {
  return new kiln.Kiln(addr, grpc.credentials.createInsecure(),
                       {'grpc.use_local_subchannel_pool': 1});
}
// The shared channel is replaced before each section: node's event loop
// may have been blocked (encoding big messages) past the server's 2 s idle
// timeout, and grpc-js can then start a call on a connection the server
// is closing.
let client = newClient();
function freshClient() {
  client.close();
  client = newClient();
}

function md(who) {
  const m = new grpc.Metadata();
  m.set('authorization', `Bearer ${tokens[who]}`);
  return m;
}

function unary(method, request, who, c = client, seconds = 60) {
  return new Promise((resolve, reject) => {
    c[method](request, md(who), {deadline: Date.now() + seconds * 1000},
              (err, resp) => err ? reject(err) : resolve(resp));
  });
}

function rssMb() {
  const status = fs.readFileSync(`/proc/${serverPid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024;
}

// Resolves with the first event, or rejects with the stream's error.
function openWatch(runId, who, c = client) {
  const call = c.WatchRun({run_id: runId, after_sequence: 0}, md(who));
  const first = new Promise((resolve, reject) => {
    call.once('data', resolve);
    call.once('error', reject);
  });
  call.on('error', () => {});
  return {call, first};
}

async function expectCode(promise, code, what) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.code, code, `${what}: ${err.code} ${err.details}`);
    return true;
  });
}

const SLEEPER = `name: sleeper
tasks:
  - name: nap
    run: {command: [/bin/sleep, "120"]}
`;

async function streamLimits() {
  freshClient();
  const run = await unary('SubmitRun', {yaml: SLEEPER}, 'submitter');
  const held = [];
  // One client: 8 streams, the 9th refused.
  for (let i = 0; i < 8; ++i) {
    const w = openWatch(run.run_id, 'viewer1', newClient());
    held.push(w);
    await w.first;
  }
  await expectCode(openWatch(run.run_id, 'viewer1', newClient()).first,
                   grpc.status.RESOURCE_EXHAUSTED, 'per-client limit');
  // Non-admins together: 14 (16 less the admin reserve of 2).
  for (let i = 0; i < 6; ++i) {
    const w = openWatch(run.run_id, 'viewer2', newClient());
    held.push(w);
    await w.first;
  }
  await expectCode(openWatch(run.run_id, 'viewer2', newClient()).first,
                   grpc.status.RESOURCE_EXHAUSTED, 'non-admin total');
  await expectCode(openWatch(run.run_id, 'submitter', newClient()).first,
                   grpc.status.RESOURCE_EXHAUSTED, 'non-admin total (other)');
  // An admin can still watch and act.
  const adminWatch = openWatch(run.run_id, 'admin', newClient());
  await adminWatch.first;
  const got = await unary('GetRun', {run_id: run.run_id}, 'admin');
  assert.equal(got.id, run.run_id);
  await unary('CancelRun', {run_id: run.run_id}, 'admin');
  for (const w of held) w.call.cancel();
  adminWatch.call.cancel();
  console.log('ok: stream limits (per client 8, non-admin 14, admin reserve)');
}

async function noReflectionOnTcp() {
  freshClient();
  const Generic = grpc.makeGenericClientConstructor({
    Info: {
      path: '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
      requestStream: true, responseStream: true,
      requestSerialize: (b) => b, requestDeserialize: (b) => b,
      responseSerialize: (b) => b, responseDeserialize: (b) => b,
    },
  });
  const g = new Generic(addr, grpc.credentials.createInsecure());
  const call = g.Info();
  const done = new Promise((resolve, reject) => {
    call.on('data', () => reject(new Error('reflection answered on TCP')));
    call.on('error', resolve);
    call.on('end', () => reject(new Error('reflection stream ended OK')));
  });
  // list_services: field 7 (string) = "".
  call.write(Buffer.from([0x3a, 0x00]));
  const err = await done;
  assert.equal(err.code, grpc.status.UNIMPLEMENTED, err.details);
  g.close();
  console.log('ok: no reflection on TCP');
}

async function pausedWatchers() {
  freshClient();
  // 32 tasks of ~2.4 MB of 60 KB lines each; the engine streams at most
  // 1 MiB of each attempt's log as events, so the run streams ~32 MiB: far
  // more than one watcher's 4 MiB queue and what gRPC's windows buffer.
  // Four watchers that never read.
  let tasks = '';
  for (let t = 0; t < 32; ++t) {
    tasks += `  - name: talk${t}
    run:
      command: [/bin/sh, -c, "l=$(head -c 60000 /dev/zero | tr '\\\\0' x); i=0; while [ $i -lt 40 ]; do echo $l; i=$((i+1)); done"]
`;
  }
  const yaml = `name: chatty
tasks:
${tasks}`;
  const run = await unary('SubmitRun', {yaml}, 'submitter');
  const before = rssMb();
  const watchers = [];
  for (let i = 0; i < 4; ++i) {
    const call = newClient().WatchRun({run_id: run.run_id, after_sequence: 0},
                                      md('viewer1'));
    const w = {call, received: 0, last: 0, error: null, ended: false};
    call.on('data', (e) => { w.received++; w.last = Number(e.sequence); });
    call.on('error', (e) => { w.error = e; });
    call.on('end', () => { w.ended = true; });
    call.pause();
    watchers.push(w);
  }
  let peak = before;
  for (let i = 0; i < 600; ++i) {  // up to 60 s
    peak = Math.max(peak, rssMb());
    const r = await unary('GetRun', {run_id: run.run_id}, 'viewer2');
    if (r.state === 'RUN_SUCCEEDED' || r.state === 'RUN_FAILED') break;
    await new Promise((res) => setTimeout(res, 100));
  }
  const final = await unary('GetRun', {run_id: run.run_id}, 'viewer2');
  assert.equal(final.state, 'RUN_SUCCEEDED', JSON.stringify(final));
  peak = Math.max(peak, rssMb());
  // Before the bound: ~100 MB per paused watcher.
  assert.ok(peak - before < 120,
            `server grew ${Math.round(peak - before)} MB for 4 paused watchers`);
  // Each paused watcher ends or is cut off (it resumes by sequence).
  for (const w of watchers) w.call.resume();
  for (const w of watchers) {
    for (let i = 0; i < 300 && !w.error && !w.ended; ++i) {
      await new Promise((res) => setTimeout(res, 100));
    }
    // Since the engine bounds the log it streams per attempt, a run may no
    // longer hold enough events to overflow a watcher: then it ends
    // normally. Either way it never hangs, and a cut-off is a clean one.
    assert.ok(w.error || w.ended,
              `a paused watcher neither ended nor was cut off (${w.received} events)`);
    if (w.error) {
      assert.ok([grpc.status.CANCELLED, grpc.status.RESOURCE_EXHAUSTED]
                    .includes(w.error.code), `${w.error.code} ${w.error.details}`);
    }
  }
  // Resuming after the last sequence received reaches the end, gap-free.
  // (Buffered events may still reach a cut-off stream: take `last` now.)
  const from = Math.max(0, Math.min(...watchers.map((w) => w.last)) - 50);
  const rest = await new Promise((resolve, reject) => {
    const events = [];
    const call = client.WatchRun({run_id: run.run_id, after_sequence: from},
                                 md('viewer1'));
    call.on('data', (e) => events.push(e));
    call.on('error', reject);
    call.on('end', () => resolve(events));
  });
  rest.forEach((e, i) => assert.equal(Number(e.sequence), from + i + 1));
  assert.equal(rest[rest.length - 1].run_state.state, 'RUN_SUCCEEDED');
  console.log(`ok: paused watchers bounded (+${Math.round(peak - before)} MB)`);
}

async function idleConnectionClosed() {
  freshClient();
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')),
                        Number(addr.slice(addr.lastIndexOf(':') + 1))];
  const started = Date.now();
  const closed = await new Promise((resolve, reject) => {
    const sock = net.connect(port, host.replace(/^\[|\]$/g, ''), () => {
      sock.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      sock.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));  // SETTINGS
    });
    sock.on('data', () => {});
    sock.on('error', () => {});
    sock.on('close', () => resolve(true));
    setTimeout(() => { sock.destroy(); resolve(false); }, 30000);
  });
  assert.ok(closed, 'an idle connection stayed open 30 s');
  const seconds = (Date.now() - started) / 1000;
  assert.ok(seconds >= 1, `closed too soon (${seconds} s)`);
  console.log(`ok: idle connection closed after ${seconds.toFixed(1)} s`);
}

function chain(n) {
  const tasks = [];
  for (let i = 0; i < n; ++i) {
    tasks.push({
      name: `t${i}`,
      needs: i > 0 ? [`t${i - 1}`] : [],
      run: {command: ['/bin/true']},
    });
  }
  return {name: 'chain', tasks};
}

async function boundedPipelineMessages() {
  freshClient();
  const before = rssMb();
  let t = Date.now();
  // Fresh channels: encoding a big message blocks node's event loop for
  // seconds, longer than the server's idle timeout for a reused connection.
  await expectCode(unary('ValidatePipeline', {message: chain(140000)}, 'viewer1',
                         newClient()),
                   grpc.status.RESOURCE_EXHAUSTED, '140k-task message');
  await expectCode(unary('SubmitRun', {message: chain(140000)}, 'submitter',
                         newClient()),
                   grpc.status.RESOURCE_EXHAUSTED, '140k-task submit');
  const refused = (Date.now() - t) / 1000;
  t = Date.now();
  const ok = await unary('ValidatePipeline', {message: chain(9000)}, 'viewer1',
                         newClient());
  assert.equal(ok.valid, true, JSON.stringify(ok.diagnostics.slice(0, 3)));
  const took = (Date.now() - t) / 1000;
  const grown = rssMb() - before;
  assert.ok(took < 10, `9000-task chain took ${took} s`);
  assert.ok(grown < 200, `validation grew the server by ${grown} MB`);
  console.log(`ok: pipeline messages bounded (refused in ${refused} s; ` +
              `9000 tasks valid in ${took} s, +${Math.round(grown)} MB)`);
}

async function repliesFitAndPage() {
  freshClient();
  // 1500 pending tasks (behind a sleeper): the run is ~100 KB, over the
  // server's 64 KiB reply limit.
  let yaml = 'name: wide\ntasks:\n  - name: gate\n    run: {command: [/bin/sleep, "120"]}\n';
  for (let i = 0; i < 1500; ++i) {
    yaml += `  - name: task-with-a-rather-long-name-${i}\n    needs: [gate]\n` +
        '    run: {command: [/bin/true]}\n';
  }
  const submitted = await unary('SubmitRun', {
    yaml, trigger: {commit_message: 'c'.repeat(40000)}}, 'submitter');
  assert.equal(submitted.run.tasks_omitted, true);
  const second = await unary('SubmitRun', {
    yaml: SLEEPER, trigger: {commit_message: 'd'.repeat(40000)}}, 'submitter');
  const run = await unary('GetRun', {run_id: submitted.run_id}, 'viewer1');
  assert.equal(run.tasks_omitted, true);
  assert.equal(run.tasks.length, 0);
  // Every task, once, in pages of at most 64 KiB.
  const names = [];
  let token = '';
  let pages = 0;
  do {
    const page = await unary('GetRunTasks', {
      run_id: submitted.run_id, page_size: 1000, page_token: token}, 'viewer1');
    assert.ok(page.tasks.length > 0);
    page.tasks.forEach((t) => names.push(t.name));
    token = page.next_page_token;
    ++pages;
  } while (token);
  assert.equal(names.length, 1501);
  assert.equal(new Set(names).size, 1501);
  assert.ok(pages >= 2, `${pages} page(s)`);
  // Listing: summaries, and one page never more than the limit.
  const one = await unary('ListRuns', {page_size: 1}, 'viewer2');
  assert.equal(one.runs.length, 1);
  assert.equal(one.runs[0].tasks.length, 0);
  const listed = await unary('ListRuns', {page_size: 100}, 'viewer2');
  assert.equal(listed.runs[0].id, second.run_id);
  assert.ok(listed.runs.length < 3, 'two 40 KB summaries in a 64 KiB page');
  assert.ok(listed.next_page_token);
  const next = await unary('ListRuns', {page_size: 100,
                                        page_token: listed.next_page_token},
                           'viewer2');
  assert.ok(next.runs.some((r) => r.id === submitted.run_id) ||
            listed.runs.some((r) => r.id === submitted.run_id));
  await unary('CancelRun', {run_id: submitted.run_id}, 'admin');
  await unary('CancelRun', {run_id: second.run_id}, 'admin');
  console.log(`ok: replies fitted; ${names.length} tasks in ${pages} pages`);
}

async function secretsNeverReturned() {
  freshClient();
  const SECRET = `hunter2-${process.pid}-${Date.now()}`;
  const DEFAULT = `default-${process.pid}-secret`;
  const yaml = `name: secretive
params:
  - name: token
    secret: true
  - name: other
    secret: true
    default: ${DEFAULT}
tasks:
  - name: use
    run: {command: [/bin/sh, -c, "test -n \\"$T\\""], env: {T: "\${params.token}"}}
`;
  const leaks = (what, reply) => {
    const text = JSON.stringify(reply);
    assert.ok(!text.includes(SECRET), `${what} returned the secret`);
    assert.ok(!text.includes(DEFAULT), `${what} returned the secret default`);
  };
  const validated = await unary('ValidatePipeline', {yaml}, 'viewer1');
  assert.equal(validated.valid, true, JSON.stringify(validated.diagnostics));
  leaks('ValidatePipeline', validated);
  const submitted = await unary('SubmitRun', {
    yaml, trigger: {params: {token: SECRET}}}, 'submitter');
  leaks('SubmitRun', submitted);
  assert.equal(submitted.run.trigger.params.token, '[redacted]');
  for (const who of ['viewer1', 'submitter', 'admin']) {
    leaks(`GetRun (${who})`,
          await unary('GetRun', {run_id: submitted.run_id}, who));
    leaks(`ListRuns (${who})`,
          await unary('ListRuns', {pipeline_name: 'secretive'}, who));
    leaks(`GetRunTasks (${who})`,
          await unary('GetRunTasks', {run_id: submitted.run_id}, who));
  }
  // Retry needs a finished run; the task succeeds only if the secret
  // reached it.
  let done = null;
  for (let i = 0; i < 600; ++i) {  // up to 60 s
    done = await unary('GetRun', {run_id: submitted.run_id}, 'viewer1');
    if (done.state === 'RUN_SUCCEEDED' || done.state === 'RUN_FAILED') break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(done.state, 'RUN_SUCCEEDED', JSON.stringify(done));
  const retried = await unary('RetryRun', {run_id: submitted.run_id},
                              'submitter');
  leaks('RetryRun', retried);
  assert.equal(retried.run.trigger.params.token, '[redacted]');
  console.log('ok: secret param values never returned');
}

function upload(c, digest, size, chunks, end) {
  let call;
  const done = new Promise((resolve, reject) => {
    call = c.UploadBlob(md('submitter'), {deadline: Date.now() + 60000},
                        (err, resp) => err ? reject(err) : resolve(resp));
  });
  done.catch(() => {});
  chunks.forEach((data, i) => call.write(i === 0 ? {digest, size, data} : {data}));
  if (end) call.end();
  return {call, done};
}

async function boundedUploads() {
  freshClient();
  // --max-uploads 1: while one upload is open, another is refused.
  const crypto = require('node:crypto');
  const big = crypto.randomBytes(2 << 20);
  const bigDigest = 'sha256:' + crypto.createHash('sha256').update(big).digest('hex');
  // A and B race to be admitted: if B wins, A is refused; start A again.
  let held = null;
  let refused = null;
  for (let i = 0; i < 100 && !refused; ++i) {
    if (held === null || held.failed) {
      const h = upload(newClient(), bigDigest, big.length,
                       [big.subarray(0, 1 << 20)], false);
      h.failed = false;
      h.done.catch(() => { h.failed = true; });
      held = h;
    }
    const small = crypto.randomBytes(1024);
    const d = 'sha256:' + crypto.createHash('sha256').update(small).digest('hex');
    try {
      await upload(newClient(), d, small.length, [small], true).done;
      await new Promise((res) => setTimeout(res, 50));  // A not admitted yet
    } catch (err) {
      refused = err;
    }
  }
  assert.ok(refused, 'a second concurrent upload was never refused');
  assert.equal(refused.code, grpc.status.RESOURCE_EXHAUSTED, refused.details);
  // The first completes, and then uploads are admitted again.
  held.call.write({data: big.subarray(1 << 20)});
  held.call.end();
  assert.equal((await held.done).digest, bigDigest);
  const again = crypto.randomBytes(1024);
  const d = 'sha256:' + crypto.createHash('sha256').update(again).digest('hex');
  assert.equal((await upload(client, d, again.length, [again], true).done).digest, d);
  console.log('ok: concurrent uploads bounded');
}

async function main() {
  await boundedUploads();
  await noReflectionOnTcp();
  await idleConnectionClosed();
  await secretsNeverReturned();
  await boundedPipelineMessages();
  await repliesFitAndPage();
  await streamLimits();
  await pausedWatchers();
}

main().then(() => process.exit(0), (err) => {
  console.error('FAILED:', err && err.stack ? err.stack : err);
  process.exit(1);
});
