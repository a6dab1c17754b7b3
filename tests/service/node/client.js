// Drives `kiln serve` from the .proto files alone: health check, validate a
// pipeline, submit a run, watch it to completion, fetch its logs. Every
// assertion lives here; exit status 0 means all held.
//
// Environment: KILN_ADDR (host:port or unix:path), KILN_TOKEN (bearer
// token), KILN_PROTO_DIR (the directory holding kiln/v1/*.proto).
'use strict';

const assert = require('node:assert/strict');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const addr = process.env.KILN_ADDR;
const token = process.env.KILN_TOKEN || '';
const protoDir = process.env.KILN_PROTO_DIR;
assert.ok(addr, 'KILN_ADDR is required');
assert.ok(protoDir, 'KILN_PROTO_DIR is required');

const loadOptions = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [protoDir, __dirname],
};
const kiln = grpc.loadPackageDefinition(
    protoLoader.loadSync('kiln/v1/service.proto', loadOptions)).kiln.v1;
const health = grpc.loadPackageDefinition(
    protoLoader.loadSync('health.proto', loadOptions)).grpc.health.v1;

const credentials = grpc.credentials.createInsecure();
const client = new kiln.Kiln(addr, credentials);
const healthClient = new health.Health(addr, credentials);

function metadata(withToken = true) {
  const md = new grpc.Metadata();
  if (withToken && token) md.set('authorization', `Bearer ${token}`);
  return md;
}

function deadline(seconds) {
  return {deadline: Date.now() + seconds * 1000};
}

function unary(stub, method, request, md = metadata()) {
  return new Promise((resolve, reject) => {
    stub[method](request, md, deadline(30), (err, response) => {
      if (err) reject(err); else resolve(response);
    });
  });
}

function collect(call) {
  return new Promise((resolve, reject) => {
    const items = [];
    call.on('data', (item) => items.push(item));
    call.on('error', reject);
    call.on('end', () => resolve(items));
  });
}

const PIPELINE = `name: node-client
tasks:
  - name: greet
    run:
      command: [/bin/sh, -c, "echo hello from kiln; echo second line"]
  - name: count
    needs: [greet]
    run:
      command: [/bin/sh, -c, "for i in 1 2 3; do echo n=$i; done"]
`;

async function main() {
  // 1. Health: open to probes, without a token.
  const status = await unary(healthClient, 'Check', {service: ''},
                             new grpc.Metadata());
  assert.equal(status.status, 'SERVING');

  // Auth is enforced on kiln.v1 (TCP).
  if (token) {
    await assert.rejects(
        unary(client, 'ListRuns', {}, metadata(false)),
        (err) => err.code === grpc.status.UNAUTHENTICATED);
  }

  // 2. Validate: a good pipeline, and a bad one with its position.
  const valid = await unary(client, 'ValidatePipeline',
                            {yaml: PIPELINE, filename: 'node.yaml'});
  assert.equal(valid.valid, true, JSON.stringify(valid.diagnostics));
  assert.equal(valid.pipeline.tasks.length, 2);
  const invalid = await unary(client, 'ValidatePipeline', {
    yaml: 'name: bad\ntasks:\n  - name: a\n    needs: [ghost]\n' +
        '    run: {command: [/bin/true]}\n',
    filename: 'bad.yaml',
  });
  assert.equal(invalid.valid, false);
  assert.ok(invalid.diagnostics.length >= 1);
  assert.match(invalid.diagnostics[0].text, /^bad\.yaml:\d+:\d+: /);

  // 3. Submit (idempotent).
  const key = `node-${process.pid}-${Date.now()}`;
  const submitted = await unary(client, 'SubmitRun', {
    yaml: PIPELINE,
    filename: 'node.yaml',
    trigger: {branch: 'main', event: 'MANUAL'},
    idempotency_key: key,
  });
  assert.ok(submitted.run_id);
  const again = await unary(client, 'SubmitRun',
                            {yaml: PIPELINE, idempotency_key: key});
  assert.equal(again.run_id, submitted.run_id);

  // 4. Watch to completion: sequences 1..N without gaps, ending in
  //    RUN_SUCCEEDED.
  const events = await collect(client.WatchRun(
      {run_id: submitted.run_id, after_sequence: 0}, metadata()));
  assert.ok(events.length > 0);
  events.forEach((e, i) => assert.equal(Number(e.sequence), i + 1));
  const last = events[events.length - 1];
  assert.equal(last.kind, 'run_state');
  assert.equal(last.run_state.state, 'RUN_SUCCEEDED');
  const finished = events.filter(
      (e) => e.kind === 'task_state' && e.task_state.state === 'TASK_SUCCEEDED')
      .map((e) => e.task_state.task);
  assert.deepEqual(finished.sort(), ['count', 'greet']);

  // Resuming after sequence 2 gives exactly the rest.
  const rest = await collect(client.WatchRun(
      {run_id: submitted.run_id, after_sequence: 2}, metadata()));
  assert.equal(rest.length, events.length - 2);
  assert.equal(Number(rest[0].sequence), 3);

  // 5. The run's final state.
  const run = await unary(client, 'GetRun', {run_id: submitted.run_id});
  assert.equal(run.state, 'RUN_SUCCEEDED');
  assert.equal(run.trigger.branch, 'main');

  // 6. Logs, and resuming them from an offset.
  const chunks = await collect(client.StreamLogs(
      {run_id: submitted.run_id, task: 'greet', offset: 0}, metadata()));
  const lines = chunks.flatMap((c) => c.lines.map((l) => l.text));
  assert.deepEqual(lines, ['hello from kiln', 'second line']);
  const firstEnd = Number(chunks[0].next_offset);
  assert.ok(firstEnd > 0);
  const countLogs = await collect(client.StreamLogs(
      {run_id: submitted.run_id, task: 'count', follow: true}, metadata()));
  assert.deepEqual(countLogs.flatMap((c) => c.lines.map((l) => l.text)),
                   ['n=1', 'n=2', 'n=3']);

  // 7. Listing finds it.
  const list = await unary(client, 'ListRuns',
                           {pipeline_name: 'node-client', page_size: 10});
  assert.ok(list.runs.some((r) => r.id === submitted.run_id));

  // 8. A blob round trip with digest verification.
  const crypto = require('node:crypto');
  const blob = crypto.randomBytes(3 * 1024 * 1024 + 17);
  const digest = 'sha256:' + crypto.createHash('sha256').update(blob).digest('hex');
  await new Promise((resolve, reject) => {
    const call = client.UploadBlob(metadata(), deadline(60), (err, resp) => {
      if (err) return reject(err);
      assert.equal(resp.digest, digest);
      resolve();
    });
    call.write({digest, size: blob.length, data: blob.subarray(0, 1 << 20)});
    for (let off = 1 << 20; off < blob.length; off += 1 << 20) {
      call.write({data: blob.subarray(off, off + (1 << 20))});
    }
    call.end();
  });
  const parts = await collect(client.DownloadBlob({digest}, metadata()));
  assert.ok(Buffer.concat(parts.map((p) => p.data)).equals(blob));

  console.log(`ok: run ${submitted.run_id}, ${events.length} events, ` +
              `${lines.length} log lines`);
}

main().then(() => process.exit(0), (err) => {
  console.error('FAILED:', err && err.stack ? err.stack : err);
  process.exit(1);
});
