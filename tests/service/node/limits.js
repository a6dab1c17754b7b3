// Drives `kiln serve` (started by node_limits_test.sh with small limits)
// from the .proto files alone and checks the service's bounds: streams per
// client and in all with an admin reserve, no reflection on TCP, paused
// watchers bounded in memory and cut off, idle connections closed,
// protobuf pipelines bounded and validated in linear memory, run replies
// fitted and paged, and secret param values never returned. Sections run
// against servers of their own (KILN_SECTION): the plain-TCP connection cap
// ('connections'), the cap on TLS and unix-socket listeners ('gated';
// KILN_CERT: the server's certificate), and the global upload/extraction
// budget ('budget').
//
// Environment: KILN_ADDR, KILN_PROTO_DIR, KILN_PID (the server, to read its
// memory), KILN_STORE (its store directory), KILN_ADMIN / KILN_SUBMITTER / KILN_VIEWER1 / KILN_VIEWER2
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
const storeDir = process.env.KILN_STORE;
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
  // 1 MiB of each attempt's log as events (17 lines, and two markers), so
  // the run streams ~32 MiB: far more than one watcher's 4 MiB queue and
  // what gRPC's windows buffer. Each command differs (`: N`): identical
  // commands would be one action, and the other 31 tasks cache hits that
  // stream no log at all (then the whole run was 104 events, ~2 MiB, and
  // no watcher could fall behind). Four watchers that never read.
  let tasks = '';
  for (let t = 0; t < 32; ++t) {
    tasks += `  - name: talk${t}
    run:
      command: [/bin/sh, -c, ": ${t}; l=$(head -c 60000 /dev/zero | tr '\\\\0' x); i=0; while [ $i -lt 40 ]; do echo $l; i=$((i+1)); done"]
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
    // `status` comes last, once, whether the stream ended or failed.
    const w = {call, received: 0, last: 0, error: null, status: null,
               ended: false};
    call.on('data', (e) => { w.received++; w.last = Number(e.sequence); });
    call.on('error', (e) => { w.error = e; });
    call.on('status', (st) => { w.status = st; });
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
    // An OK stream's events are all delivered at 'end'.
    for (let i = 0; i < 300 &&
         (!w.status || (w.status.code === grpc.status.OK && !w.ended)); ++i) {
      await new Promise((res) => setTimeout(res, 100));
    }
    // A watcher that was following live events when it fell 4 MiB behind
    // is cut off (CANCELLED, or RESOURCE_EXHAUSTED if the server noticed
    // first). One whose server side was still sending the backlog from the
    // run store when the client's window filled waits at its page, paced
    // by the client, and ends normally with every event. Never a hang.
    assert.ok(w.status,
              `a paused watcher neither ended nor was cut off (${w.received} events)`);
    if (w.status.code !== grpc.status.OK) {
      assert.ok([grpc.status.CANCELLED, grpc.status.RESOURCE_EXHAUSTED]
                    .includes(w.status.code), `${w.status.code} ${w.status.details}`);
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
  const total = Number(rest[rest.length - 1].sequence);
  // Every task ran and streamed its 1 MiB: 32 x (2 states + 17 lines + 2
  // markers) + 2 run states.
  assert.ok(total >= 32 * 21, `the run recorded only ${total} events`);
  for (const w of watchers) {
    if (w.status.code === grpc.status.OK) {
      assert.equal(w.received, total, 'a watcher ended without every event');
    } else {
      assert.ok(w.received < total, 'a cut-off watcher had every event');
    }
  }
  const outcomes = watchers.map((w) =>
      `${w.received}/${total} ${w.status.code === grpc.status.OK ? 'ended' : `cut off (code ${w.status.code})`}`);
  console.log(`ok: paused watchers bounded (+${Math.round(peak - before)} MB; ` +
              `events received, of the run's: ${outcomes.join(', ')})`);
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

// A forged source archive: a tar header announcing one 3 GiB file of
// zeros, then zstd RLE blocks of zeros (4 bytes per 128 KiB): ~96 KiB that
// expand 32,000-fold. Built by hand, so no zstd library is needed.
function zstdBomb(fileBytes) {
  const header = Buffer.alloc(512);
  header.write('zeros', 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(fileBytes.toString(8).padStart(11, '0') + '\0', 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148);  // checksum: spaces while summing
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const block = 128 << 10;
  const blocks = fileBytes / block;
  const parts = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38])];
  const raw = (512 << 3) | (0 << 1);  // raw block of the header
  parts.push(Buffer.from([raw & 0xff, (raw >> 8) & 0xff, raw >> 16]), header);
  for (let i = 0; i < blocks; ++i) {
    const h = (block << 3) | (1 << 1) | (i === blocks - 1 ? 1 : 0);  // RLE
    parts.push(Buffer.from([h & 0xff, (h >> 8) & 0xff, h >> 16, 0x00]));
  }
  return Buffer.concat(parts);
}

function du(dir) {
  let total = 0;
  if (!fs.existsSync(dir)) return 0;
  for (const e of fs.readdirSync(dir, {withFileTypes: true})) {
    const p = `${dir}/${e.name}`;
    total += e.isDirectory() ? du(p) : fs.lstatSync(p).size;
  }
  return total;
}

async function sourceBombStopped() {
  freshClient();
  const crypto = require('node:crypto');
  const bomb = zstdBomb(3 * 1024 * 1024 * 1024);
  assert.ok(bomb.length < 128 << 10, `${bomb.length} bytes`);
  const digest = 'sha256:' + crypto.createHash('sha256').update(bomb).digest('hex');
  assert.equal((await upload(client, digest, bomb.length, [bomb], true).done).digest,
               digest);
  const before = rssMb();
  const t = Date.now();
  // The tree digest is a forgery too: the bomb must be stopped before any
  // check of the tree could run.
  const tree = 'sha256:' + 'ab'.repeat(32);
  await expectCode(unary('SubmitRun', {
    yaml: SLEEPER, source: {tree_digest: tree, archive_digest: digest}},
                         'submitter'),
                   grpc.status.RESOURCE_EXHAUSTED, 'zstd bomb');
  await assert.rejects(unary('SubmitRun', {
    yaml: SLEEPER, source: {tree_digest: tree, archive_digest: digest}},
                             'submitter'),
                       (err) => /decompression bomb/.test(err.details) ||
                           assert.fail(err.details));
  const seconds = (Date.now() - t) / 1000;
  const grown = rssMb() - before;
  // Stopped after the first 64 MiB (the grace before the ratio applies),
  // not after 3 GiB; nothing of it stays in the store's sources/.
  const sources = `${storeDir}/sources`;
  const left = fs.existsSync(sources) ? fs.readdirSync(sources) : [];
  assert.deepEqual(left, [], 'extraction left files behind');
  assert.ok(du(storeDir) < 32 << 20, `store holds ${du(storeDir)} bytes`);
  assert.ok(grown < 64, `server grew ${Math.round(grown)} MB`);
  console.log(`ok: zstd bomb stopped while streaming (${seconds.toFixed(1)} s ` +
              `for two, +${Math.round(grown)} MB)`);
}

function fdCount() {
  return fs.readdirSync(`/proc/${serverPid}/fd`).length;
}

// Opens a TCP connection and sends the HTTP/2 preface and SETTINGS.
// Resolves 'served' when the server answers (gRPC took the connection), or
// 'closed' when the server closes it without a word (refused at the cap).
function rawConnection() {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')),
                        Number(addr.slice(addr.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const sock = net.connect(port, host.replace(/^\[|\]$/g, ''), () => {
      sock.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      sock.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));  // SETTINGS
    });
    sock.once('data', () => resolve({sock, outcome: 'served'}));
    sock.on('error', () => {});
    sock.on('close', () => resolve({sock, outcome: 'closed'}));
  });
}

// Run against a server started with --max-connections 8 (and the default
// 2 min idle timeout): connections past the cap are closed at once, the
// server's descriptors stay bounded, and a freed place is taken again.
async function connectionCap() {
  const cap = 8;
  const fdsBefore = fdCount();
  const held = [];
  let refused = 0;
  for (let i = 0; i < 200; ++i) {
    const c = await rawConnection();
    if (c.outcome === 'served') {
      held.push(c.sock);
    } else {
      ++refused;
    }
  }
  assert.equal(held.length, cap, `${held.length} connections served`);
  assert.equal(refused, 200 - cap);
  const fdsAt = fdCount();
  assert.ok(fdsAt - fdsBefore <= cap + 4,
            `server descriptors ${fdsBefore} -> ${fdsAt}`);
  // A real client is refused too (UNAVAILABLE) while all places are taken.
  const c = newClient();
  await expectCode(unary('ListRuns', {page_size: 1}, 'viewer1', c, 5),
                   grpc.status.UNAVAILABLE, 'client past the cap');
  c.close();
  // One connection leaves: its place is taken again (gRPC closes the
  // socket when it sees the end, then the next accept finds it free).
  held.pop().destroy();
  let again = null;
  for (let i = 0; i < 100 && !again; ++i) {
    const r = await rawConnection();
    if (r.outcome === 'served') again = r.sock;
    else await new Promise((res) => setTimeout(res, 100));
  }
  assert.ok(again, 'a freed place was never taken again');
  held.push(again);
  for (const s of held) s.destroy();
  // And real clients are served once the connections are gone.
  let served = false;
  for (let i = 0; i < 100 && !served; ++i) {
    const d = newClient();
    try {
      await unary('ListRuns', {page_size: 1}, 'viewer1', d, 5);
      served = true;
    } catch (err) {
      assert.equal(err.code, grpc.status.UNAVAILABLE, err.details);
      await new Promise((res) => setTimeout(res, 100));
    }
    d.close();
  }
  assert.ok(served, 'no client served after the connections closed');
  console.log(`ok: connections capped at ${cap} (${refused} refused, ` +
              `descriptors ${fdsBefore} -> ${fdsAt})`);
}

// The cap on a listener gRPC accepts itself (TLS over TCP, or the unix
// socket), against a server started with --max-connections 4. A held
// connection finishes its TLS handshake and HTTP/2 start, so only the
// gate (not the handshake timeout) can close it; a refused one is closed
// before a byte of TLS or HTTP/2 is answered.
const tls = require('node:tls');
function gatedConnection() {
  return new Promise((resolve) => {
    const preface = (sock) => {
      sock.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      sock.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));  // SETTINGS
    };
    let sock;
    if (addr.startsWith('unix:')) {
      sock = net.connect(addr.slice(5), () => preface(sock));
    } else {
      const port = Number(addr.slice(addr.lastIndexOf(':') + 1));
      sock = tls.connect({host: '127.0.0.1', port, servername: 'localhost',
                          ca: fs.readFileSync(process.env.KILN_CERT),
                          ALPNProtocols: ['h2']}, () => preface(sock));
    }
    sock.once('data', () => resolve({sock, outcome: 'served'}));
    sock.on('error', () => {});
    sock.on('close', () => resolve({sock, outcome: 'closed'}));
  });
}

function gatedClient() {
  if (addr.startsWith('unix:')) {
    return new kiln.Kiln(addr, grpc.credentials.createInsecure(),
                         {'grpc.use_local_subchannel_pool': 1});
  }
  return new kiln.Kiln(
      addr, grpc.credentials.createSsl(fs.readFileSync(process.env.KILN_CERT)),
      {'grpc.use_local_subchannel_pool': 1,
       'grpc.ssl_target_name_override': 'localhost'});
}

async function gatedConnectionCap() {
  const cap = 4;
  const kind = addr.startsWith('unix:') ? 'unix socket' : 'TLS';
  const who = addr.startsWith('unix:') ? 'admin' : 'viewer1';
  const held = [];
  let refused = 0;
  for (let i = 0; i < 40; ++i) {
    const c = await gatedConnection();
    if (c.outcome === 'served') held.push(c.sock);
    else ++refused;
  }
  assert.equal(held.length, cap, `${kind}: ${held.length} connections served`);
  assert.equal(refused, 40 - cap);
  // A real client is refused too while all places are taken.
  const c = gatedClient();
  await expectCode(unary('ListRuns', {page_size: 1}, who, c, 5),
                   grpc.status.UNAVAILABLE, `${kind} client past the cap`);
  c.close();
  // One leaves: its place is taken again.
  held.pop().destroy();
  let again = null;
  for (let i = 0; i < 100 && !again; ++i) {
    const r = await gatedConnection();
    if (r.outcome === 'served') again = r.sock;
    else await new Promise((res) => setTimeout(res, 100));
  }
  assert.ok(again, `${kind}: a freed place was never taken again`);
  held.push(again);
  for (const s of held) s.destroy();
  let served = false;
  for (let i = 0; i < 100 && !served; ++i) {
    const d = gatedClient();
    try {
      await unary('ListRuns', {page_size: 1}, who, d, 5);
      served = true;
    } catch (err) {
      assert.equal(err.code, grpc.status.UNAVAILABLE, err.details);
      await new Promise((res) => setTimeout(res, 100));
    }
    d.close();
  }
  assert.ok(served, `${kind}: no client served after the connections closed`);
  console.log(`ok: ${kind} connections capped at ${cap} (${refused} refused)`);
}
function blobTemps() {
  const dir = `${storeDir}/cas/tmp`;
  return fs.existsSync(dir) ?
      fs.readdirSync(dir).filter((n) => n.startsWith('.kiln-blob-')) : [];
}

async function until(what, cond, seconds = 30) {
  const end = Date.now() + seconds * 1000;
  while (!cond()) {
    assert.ok(Date.now() < end, `timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

// A zstd frame of one raw block: a tar holding `name` with `content`.
function tarZst(name, content) {
  const header = Buffer.alloc(512);
  header.write(name, 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(content.length.toString(8).padStart(11, '0') + '\0', 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const body = Buffer.alloc(Math.ceil(content.length / 512) * 512);
  content.copy(body);
  const tar = Buffer.concat([header, body, Buffer.alloc(1024)]);
  const h = (tar.length << 3) | 1;  // raw, last block
  return Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38]),
                        Buffer.from([h & 0xff, (h >> 8) & 0xff, h >> 16]), tar]);
}

// Run against a server started with --max-uploads 3,
// --max-upload-temp-bytes 4 MiB and --max-source-bytes 1 MiB: the budget
// holds over all clients at once (each upload on its own connection),
// refused requests leave nothing behind, and the admitted ones succeed.
async function uploadBudget() {
  const crypto = require('node:crypto');
  const sha = (b) => 'sha256:' + crypto.createHash('sha256').update(b).digest('hex');
  const MiB = 1 << 20;
  // A small source archive, uploaded while nothing else is in progress.
  const archive = tarZst('hello.txt', Buffer.from('hello\n'));
  const archiveDigest = sha(archive);
  assert.equal((await upload(newClient(), archiveDigest, archive.length,
                             [archive], true).done).digest, archiveDigest);
  assert.deepEqual(blobTemps(), []);
  // Two clients each announce 1.6 MiB and send part of it: 3.2 MiB of the
  // 4 MiB are reserved (each is admitted once its temp file exists).
  const blobs = [crypto.randomBytes(1.6 * MiB), crypto.randomBytes(1.6 * MiB)];
  const held = [];
  for (const b of blobs) {
    held.push(upload(newClient(), sha(b), b.length, [b.subarray(0, MiB)], false));
    await until(`upload ${held.length} admitted`,
                () => blobTemps().length === held.length);
  }
  // A third client's 1 MiB would pass the budget: refused at once.
  const third = crypto.randomBytes(MiB);
  await assert.rejects(upload(newClient(), sha(third), third.length, [third],
                              true).done, (err) => {
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED, err.details);
    assert.match(err.details, /temporary space \(limit 4194304, --max-upload-temp-bytes\)/);
    return true;
  });
  // So is a source extraction (it reserves up to --max-source-bytes).
  const tree = 'sha256:' + 'cd'.repeat(32);
  await assert.rejects(unary('SubmitRun', {
    yaml: SLEEPER, source: {tree_digest: tree, archive_digest: archiveDigest}},
                             'submitter', newClient()), (err) => {
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED, err.details);
    assert.match(err.details, /source extraction refused: it may take 1048576 bytes/);
    return true;
  });
  // A small upload fits beside them and succeeds.
  const small = crypto.randomBytes(512 << 10);
  assert.equal((await upload(newClient(), sha(small), small.length, [small],
                             true).done).digest, sha(small));
  // A third upload in progress, then a fourth is refused by count.
  const tiny = crypto.randomBytes(1000);
  const third2 = upload(newClient(), sha(tiny), tiny.length,
                        [tiny.subarray(0, 10)], false);
  await until('third upload admitted', () => blobTemps().length === 3);
  const extra = crypto.randomBytes(100);
  await assert.rejects(upload(newClient(), sha(extra), extra.length, [extra],
                              true).done, (err) => {
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED, err.details);
    assert.match(err.details, /too many uploads in progress \(limit 3, --max-uploads\)/);
    return true;
  });
  // Nothing of the refused requests is on disk: only the three in progress.
  assert.equal(blobTemps().length, 3);
  const sources = `${storeDir}/sources`;
  assert.deepEqual(fs.existsSync(sources) ? fs.readdirSync(sources) : [], []);
  // The admitted uploads complete with their digests.
  third2.call.write({data: tiny.subarray(10)});
  third2.call.end();
  held.forEach((h, i) => {
    h.call.write({data: blobs[i].subarray(MiB)});
    h.call.end();
  });
  assert.equal((await third2.done).digest, sha(tiny));
  for (let i = 0; i < held.length; ++i) {
    assert.equal((await held[i].done).digest, sha(blobs[i]));
  }
  await until('temps gone', () => blobTemps().length === 0);
  // With the space free again, the extraction is admitted: it runs and
  // fails on the forged tree digest, not on the budget.
  await assert.rejects(unary('SubmitRun', {
    yaml: SLEEPER, source: {tree_digest: tree, archive_digest: archiveDigest}},
                             'submitter', newClient()), (err) => {
    assert.doesNotMatch(err.details, /temporary space|in progress/);
    return true;
  });
  console.log('ok: uploads and extractions share a global budget ' +
              '(count and temporary space); refused ones leave nothing');
}

// Run against a server started with --min-free-bytes 2^60 (more than any
// filesystem has): every upload and source extraction is refused before
// anything is written, naming the flag; reads still work.
async function freeSpaceKept() {
  const crypto = require('node:crypto');
  const sha = (b) => 'sha256:' + crypto.createHash('sha256').update(b).digest('hex');
  const blob = crypto.randomBytes(4096);
  await assert.rejects(upload(newClient(), sha(blob), blob.length, [blob],
                              true).done, (err) => {
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED, err.details);
    assert.match(err.details, /^upload of 4096 bytes refused: the store's filesystem has \d+ bytes available, requests in progress reserve 4096 of them, and it must keep 1152921504606846976 free \(--min-free-bytes\)/);
    return true;
  });
  assert.deepEqual(blobTemps(), []);
  const tree = 'sha256:' + 'cd'.repeat(32);
  const archive = 'sha256:' + 'ef'.repeat(32);
  await assert.rejects(unary('SubmitRun', {
    yaml: SLEEPER, source: {tree_digest: tree, archive_digest: archive}},
                             'submitter', newClient()), (err) => {
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED, err.details);
    assert.match(err.details, /^source extraction \(up to \d+ bytes\) refused: .*--min-free-bytes/);
    return true;
  });
  const sources = `${storeDir}/sources`;
  assert.deepEqual(fs.existsSync(sources) ? fs.readdirSync(sources) : [], []);
  // Reading is not affected.
  const missing = await unary('FindMissingBlobs', {digests: [sha(blob)]},
                              'viewer1', newClient());
  assert.deepEqual(missing.missing, [sha(blob)]);
  console.log('ok: uploads and extractions keep --min-free-bytes free on ' +
              'the store\'s filesystem');
}

async function main() {
  if (process.env.KILN_SECTION === 'diskfree') {
    await freeSpaceKept();
    return;
  }
  if (process.env.KILN_SECTION === 'connections') {
    await connectionCap();
    return;
  }
  if (process.env.KILN_SECTION === 'gated') {
    await gatedConnectionCap();
    return;
  }
  if (process.env.KILN_SECTION === 'budget') {
    await uploadBudget();
    return;
  }
  await sourceBombStopped();
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
