// Checks docs/pipeline.schema.json against the loader (//docs:pipeline_schema_test).
//
//   node check.js SCHEMA KILN EVERY_FORM BAD_DIR GOOD_FILE...
//
// 1. ajv compiles the schema in strict mode.
// 2. Every GOOD_FILE (the repository's pipeline files) and EVERY_FORM
//    validate against it, and `kiln validate` accepts EVERY_FORM.
// 3. The bad corpus (tests/pipeline/bad): the schema never refuses a file
//    the loader accepts, and it refuses every file in MUST_REJECT (the ones whose fault is one of
//    shape, which a schema can express).
// 4. Probes: for every object of the schema, an unknown key injected at its
//    place in EVERY_FORM makes the loader list the keys it allows; they must
//    be exactly the schema's. For every enum, a bogus value makes the loader
//    list its values; they must be exactly the schema's (any letter case).
//    A definition with no probe fails the test, so a new message cannot slip
//    past it.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const {spawnSync} = require('child_process');
const Ajv = require('ajv');
const YAML = require('yaml');

const [schemaFile, kiln, everyForm, badDir, ...goodFiles] =
    process.argv.slice(2);

let failures = 0;
function fail(message) {
  failures++;
  console.log('FAIL: ' + message);
}

const schema = JSON.parse(fs.readFileSync(schemaFile, 'utf8'));
const ajv = new Ajv({
  strict: true,
  strictRequired: false,  // oneOf: [{required: [run]}, ...] picks a kind
  allowUnionTypes: true,
  allErrors: true,
});
const validate = ajv.compile(schema);

// YAML text -> the schema's verdict ({ok, why}); a YAML the parser refuses
// (duplicate keys, a second document, bad syntax) is refused.
function schemaCheck(text) {
  let docs;
  try {
    docs = YAML.parseAllDocuments(text, {uniqueKeys: true, maxAliasCount: 100});
  } catch (e) {
    return {ok: false, why: 'yaml: ' + e.message};
  }
  if (docs.length !== 1) return {ok: false, why: 'not one YAML document'};
  if (docs[0].errors.length) {
    return {ok: false, why: 'yaml: ' + docs[0].errors[0].message};
  }
  let value;
  try {
    value = docs[0].toJS({maxAliasCount: 100});
  } catch (e) {
    return {ok: false, why: 'yaml: ' + e.message};
  }
  if (validate(value)) return {ok: true};
  return {ok: false, why: ajv.errorsText(validate.errors)};
}

const tmp = fs.mkdtempSync(path.join(process.env.TEST_TMPDIR || os.tmpdir(),
                                     'schema-'));
// EVERY_FORM's preview names a factory file beside it.
fs.copyFileSync(path.join(path.dirname(everyForm), 'every.factory.yaml'),
                path.join(tmp, 'every.factory.yaml'));
function kilnValidate(text) {
  const file = path.join(tmp, 'pipeline.yaml');
  fs.writeFileSync(file, text);
  const r = spawnSync(kiln, ['validate', file], {encoding: 'utf8',
                                                 timeout: 30000});
  return {ok: r.status === 0, out: (r.stdout || '') + (r.stderr || '')};
}

// 2. Good files.
for (const file of [everyForm, ...goodFiles]) {
  const verdict = schemaCheck(fs.readFileSync(file, 'utf8'));
  if (!verdict.ok) fail(`${file}: the schema refuses it: ${verdict.why}`);
}
const base = fs.readFileSync(everyForm, 'utf8');
const loaded = kilnValidate(base);
if (!loaded.ok) fail(`kiln validate refuses ${everyForm}: ${loaded.out}`);

// 3. The bad corpus.
const MUST_REJECT = ['unknown_field.yaml', 'wrong_types.yaml', 'bad_enum.yaml',
                     'bad_duration.yaml', 'duplicate_keys.yaml',
                     'second_document.yaml', 'unterminated_quote.yaml',
                     'junk_after_document.yaml', 'empty_file.yaml',
                     'notify_unknown_outcome.yaml'];
const badFiles = fs.readdirSync(badDir).filter((f) => f.endsWith('.yaml'));
for (const m of MUST_REJECT) {
  if (!badFiles.includes(m)) fail(`${m} is missing from ${badDir}`);
}
for (const name of badFiles) {
  const text = fs.readFileSync(path.join(badDir, name), 'utf8');
  const bySchema = schemaCheck(text);
  const byLoader = kilnValidate(text);
  // Some files of the corpus are hostile yet valid (shell metacharacters
  // in a param): the schema must not be stricter than the loader on them.
  if (byLoader.ok && !bySchema.ok) {
    fail(`${name}: the loader accepts it but the schema refuses it: ` +
         bySchema.why);
  }
  if (MUST_REJECT.includes(name) && bySchema.ok) {
    fail(`${name}: the loader refuses it (${byLoader.out.trim()}) ` +
         'but the schema accepts it');
  }
}

// 4. Probes: where each definition sits in EVERY_FORM.
const OBJECT_PROBES = {
  Pipeline: [],
  Param: ['params', 0],
  PipelineOptions: ['options'],
  Environment: ['environments', 0],
  Task: ['tasks', 0],
  RunSpec: ['tasks', 0, 'run'],
  EnvVar: ['tasks', 0, 'run', 'env', 0],
  ArtifactInput: ['tasks', 0, 'inputs', 0],
  ArtifactOutput: ['tasks', 0, 'outputs', 0],
  Resources: ['tasks', 0, 'resources'],
  PodShape: ['tasks', 0, 'pod'],
  PodToleration: ['tasks', 0, 'pod', 'tolerations', 0],
  StashSpec: ['tasks', 1, 'stash'],
  UnstashSpec: ['tasks', 2, 'unstash'],
  ContainerizeSpec: ['tasks', 3, 'containerize'],
  ImageLayer: ['tasks', 3, 'containerize', 'layers', 0],
  RegistryAuth: ['tasks', 3, 'containerize', 'auth'],
  RenderSpec: ['tasks', 4, 'render'],
  ArtifactPath: ['tasks', 4, 'render', 'kustomization'],
  ImageOverride: ['tasks', 4, 'render', 'images', 0],
  DeploySpec: ['tasks', 5, 'deploy'],
  Promotion: ['tasks', 6, 'deploy', 'promote'],
  Approval: ['tasks', 5, 'approval'],
  Condition: ['tasks', 5, 'when'],
  StringMatch: ['tasks', 5, 'when', 'branch'],
  ParamMatch: ['tasks', 5, 'when', 'param'],
  ResultMatch: ['tasks', 5, 'when', 'result'],
  Notification: ['notify', 0],
};
const ENUM_PROBES = {
  ParamType: ['params', 0, 'type'],
  FailurePolicy: ['options', 'on_failure'],
  UnsupportedPolicy: ['options', 'unsupported'],
  Role: ['tasks', 0, 'run', 'role'],
  EnvironmentKind: ['environments', 0, 'kind'],
  EventKind: ['tasks', 5, 'when', 'event', 0],
  'Notification.Outcome': ['notify', 0, 'on', 0],
};
// Definitions that are neither an object nor an enum (a list-or-one form).
const NO_PROBE = {EventSet: 'one EventKind or a list (probed as EventKind)'};

function objectPart(def) {
  if (def.properties) return def;
  for (const alt of def.anyOf || []) if (alt.properties) return alt;
  return null;
}
function at(doc, where) {
  let node = doc;
  for (const step of where) node = node[step];
  return node;
}
function listAfter(text, marker) {
  const line = text.split('\n').find((l) => l.includes(marker));
  if (!line) return null;
  const m = line.match(/allowed: ([^;]*?)(; did you mean.*)?$/);
  if (!m) return null;
  return m[1].split(',').map((s) => s.trim()).filter(Boolean);
}
function sameSet(a, b) {
  const x = [...new Set(a)].sort();
  const y = [...new Set(b)].sort();
  return JSON.stringify(x) === JSON.stringify(y);
}

for (const [name, def] of Object.entries(schema.definitions)) {
  const isEnum = def.type === 'string' && def.pattern;
  if (!isEnum && !objectPart(def) && !(name in NO_PROBE)) {
    fail(`${name}: neither an object nor an enum, and not in NO_PROBE`);
    continue;
  }
  const where = isEnum ? ENUM_PROBES[name] : OBJECT_PROBES[name];
  if (name in NO_PROBE) continue;
  if (!where) {
    fail(`${name}: no probe in tests/schema/check.js (add where it sits in ` +
         `${path.basename(everyForm)})`);
    continue;
  }
  const doc = YAML.parse(base);
  let marker;
  if (isEnum) {
    const parent = at(doc, where.slice(0, -1));
    parent[where[where.length - 1]] = 'zz_probe_value';
    marker = "'zz_probe_value'";
  } else {
    const obj = at(doc, where);
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      fail(`${name}: probe ${JSON.stringify(where)} is not a mapping`);
      continue;
    }
    obj.zz_probe_key = 1;
    marker = "'zz_probe_key'";
  }
  const text = YAML.stringify(doc);
  if (schemaCheck(text).ok) fail(`${name}: the schema accepts the probe`);
  const result = kilnValidate(text);
  const allowed = listAfter(result.out, marker);
  if (allowed === null) {
    fail(`${name}: the loader did not list what it allows at ` +
         `${JSON.stringify(where)}: ${result.out.trim()}`);
    continue;
  }
  let schemaList;
  if (isEnum) {
    schemaList = def.description.match(/^One of: ([^(]*) \(/)[1].split(', ');
    allowed.forEach((v, i) => { allowed[i] = v.toLowerCase(); });
  } else {
    schemaList = Object.keys(objectPart(def).properties);
  }
  if (!sameSet(allowed, schemaList)) {
    fail(`${name}: the loader allows [${allowed.join(', ')}], the schema ` +
         `[${schemaList.join(', ')}]`);
  }
}

fs.rmSync(tmp, {recursive: true, force: true});
if (failures) {
  console.log(`${failures} failure(s)`);
  process.exit(1);
}
console.log(`schema ok: ${goodFiles.length + 1} pipelines, ${badFiles.length} ` +
            `bad files, ${Object.keys(schema.definitions).length} definitions`);
