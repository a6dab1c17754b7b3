#include "engine/store/run_store_schema.h"

namespace kiln::store {

namespace {

// Times are microseconds since the Unix epoch (UTC). States are the
// kiln.v1 RunState/TaskState enum numbers. Proto payloads (pipeline,
// trigger, events) are opaque records, never keys.
// Secret param values, sealed (AES-256-GCM, run_store_secrets.cc): the
// trigger blob holds a placeholder in their place.
constexpr char kRunSecretsSchema[] = R"sql(
CREATE TABLE run_secrets (
  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  name   TEXT NOT NULL,
  sealed BLOB NOT NULL,
  PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
)sql";

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE runs (
  id              TEXT PRIMARY KEY,
  pipeline_name   TEXT NOT NULL,
  trigger         BLOB NOT NULL,
  pipeline        BLOB NOT NULL,
  source_dir      TEXT NOT NULL,
  state           INTEGER NOT NULL,
  reason          TEXT NOT NULL DEFAULT '',
  created_us      INTEGER NOT NULL,
  finished_us     INTEGER,
  idempotency_key TEXT UNIQUE,
  last_seq        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_state ON runs(state, id);
CREATE INDEX runs_by_pipeline ON runs(pipeline_name, id);

CREATE TABLE tasks (
  run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  name        TEXT NOT NULL,
  position    INTEGER NOT NULL,
  state       INTEGER NOT NULL,
  attempts    INTEGER NOT NULL DEFAULT 0,
  exit_code   INTEGER NOT NULL DEFAULT 0,
  reason      TEXT NOT NULL DEFAULT '',
  cache_key   TEXT NOT NULL DEFAULT '',
  started_us  INTEGER,
  finished_us INTEGER,
  PRIMARY KEY (run_id, name)
) WITHOUT ROWID;

-- Output digests (kind 'output') and results (kind 'result') of a task.
CREATE TABLE task_values (
  run_id TEXT NOT NULL,
  task   TEXT NOT NULL,
  kind   TEXT NOT NULL CHECK (kind IN ('output', 'result')),
  key    TEXT NOT NULL,
  value  TEXT NOT NULL,
  PRIMARY KEY (run_id, task, kind, key),
  FOREIGN KEY (run_id, task) REFERENCES tasks(run_id, name) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE attempts (
  run_id      TEXT NOT NULL,
  task        TEXT NOT NULL,
  attempt     INTEGER NOT NULL,
  state       INTEGER NOT NULL,
  exit_code   INTEGER NOT NULL DEFAULT 0,
  reason      TEXT NOT NULL DEFAULT '',
  log_path    TEXT,
  log_bytes   INTEGER NOT NULL DEFAULT 0,
  started_us  INTEGER,
  finished_us INTEGER,
  PRIMARY KEY (run_id, task, attempt),
  FOREIGN KEY (run_id, task) REFERENCES tasks(run_id, name) ON DELETE CASCADE
) WITHOUT ROWID;

-- payload: the kiln.v1.RunEvent, serialized, with run_id and sequence set.
CREATE TABLE events (
  run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  seq     INTEGER NOT NULL,
  time_us INTEGER NOT NULL,
  payload BLOB NOT NULL,
  PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
)sql"},
    {2, kRunSecretsSchema},
    // Runs recorded before schema 2 may hold secret param values in
    // plaintext in their trigger. Every run that exists now is listed;
    // RunStore::Open seals what it finds (run_store_secrets.cc), removes
    // the plaintext and the run's row here, one run per transaction.
    {3, R"sql(
CREATE TABLE reseal_pending (
  run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO reseal_pending (run_id) SELECT id FROM runs;
)sql"},
    // TaskStatus.error_code: the absl::StatusCode of an error the engine
    // hit running the task (0 when none). Tasks recorded before have 0.
    {4, R"sql(
ALTER TABLE tasks ADD COLUMN error_code INTEGER NOT NULL DEFAULT 0;
)sql"},
    // Approval gates (TaskStatus.approval): record is the serialized
    // kiln.v1.ApprovalStatus; decided mirrors its `decided` (a decision is
    // never overwritten by an undecided record).
    {5, R"sql(
CREATE TABLE approvals (
  run_id  TEXT NOT NULL,
  task    TEXT NOT NULL,
  decided INTEGER NOT NULL,
  record  BLOB NOT NULL,
  PRIMARY KEY (run_id, task),
  FOREIGN KEY (run_id, task) REFERENCES tasks(run_id, name) ON DELETE CASCADE
) WITHOUT ROWID;
)sql"},
    // Deployment records (run_store_deployments.cc): one row per deploy
    // task attempt that reached the cluster and per rollback; ids are never
    // reused (AUTOINCREMENT). run_id is not a foreign key: a rollback has
    // none. Times are microseconds; succeeded is 0 or 1.
    {6, R"sql(
CREATE TABLE deployments (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  environment      TEXT NOT NULL,
  namespace        TEXT NOT NULL,
  kube_context     TEXT NOT NULL,
  run_id           TEXT NOT NULL,
  task             TEXT NOT NULL,
  manifests_digest TEXT NOT NULL,
  started_us       INTEGER NOT NULL,
  finished_us      INTEGER NOT NULL,
  succeeded        INTEGER NOT NULL,
  reason           TEXT NOT NULL DEFAULT '',
  rollback_to      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX deployments_by_environment
  ON deployments(environment, namespace, id);

CREATE TABLE deployment_images (
  deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
  position      INTEGER NOT NULL,
  image         TEXT NOT NULL,
  PRIMARY KEY (deployment_id, position)
) WITHOUT ROWID;

CREATE TABLE deployment_objects (
  deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
  position      INTEGER NOT NULL,
  api_version   TEXT NOT NULL,
  kind          TEXT NOT NULL,
  namespace     TEXT NOT NULL,
  name          TEXT NOT NULL,
  PRIMARY KEY (deployment_id, position)
) WITHOUT ROWID;
)sql"},
    // Drift-aware deploys (engine/deploy/drift.h): whether the deploy
    // forced its fields, and each object's uid, resourceVersion and
    // metadata.generation as the apply (and wait) left them. Rows recorded
    // before have '' and 0, which never match a live object.
    {7, R"sql(
ALTER TABLE deployments ADD COLUMN force INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployment_objects ADD COLUMN uid TEXT NOT NULL DEFAULT '';
ALTER TABLE deployment_objects
  ADD COLUMN resource_version TEXT NOT NULL DEFAULT '';
ALTER TABLE deployment_objects
  ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
)sql"},
    // Whole-run replay (run_store_replay.cc). replay_sources: a finished
    // run every task of which succeeded or hit, as a replay needs it —
    // statuses (a serialized kiln.v1.Run holding only its tasks, in
    // pipeline order), order (the tasks' indexes in the order they
    // finished, space-separated), archives (each output's tree, archive
    // blob and size, one "TREE ARCHIVE SIZE" line each) and stamps (the
    // artifact index's shard directories as they were when the archives
    // were checked, one "SHARD INODE MTIME_NS CTIME_NS" line each). replays:
    // which source a run with this fingerprint replays, valid while the action
    // cache's epoch is cache_epoch. A replayed run has no task, attempt or
    // value rows: replay_of names its source, and its task events occupy
    // sequence numbers replay_seq .. replay_seq + 2 * tasks - 1 (read from
    // the source, at time replay_us).
    {8, R"sql(
ALTER TABLE runs ADD COLUMN replay_of TEXT;
ALTER TABLE runs ADD COLUMN replay_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN replay_us INTEGER NOT NULL DEFAULT 0;
CREATE TABLE replay_sources (
  run_id   TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
  statuses BLOB NOT NULL,
  task_order BLOB NOT NULL,
  archives BLOB NOT NULL,
  stamps   BLOB NOT NULL
) WITHOUT ROWID;
-- A run's pipeline is kept once per distinct serialization: runs rows
-- stay small (SQLite rewrites a whole row, overflow pages included, on
-- every update of it, and a run's row is updated with its events), and a
-- rerun of the same pipeline writes no copy. runs.pipeline is empty for a
-- run that names its pipeline here.
CREATE TABLE pipeline_blobs (
  digest TEXT PRIMARY KEY,
  bytes  BLOB NOT NULL
);
ALTER TABLE runs ADD COLUMN pipeline_digest TEXT;
CREATE TABLE replays (
  fingerprint TEXT PRIMARY KEY,
  source      TEXT NOT NULL
              REFERENCES replay_sources(run_id) ON DELETE CASCADE,
  cache_epoch INTEGER NOT NULL
) WITHOUT ROWID;
)sql"},
};

}  // namespace

absl::Span<const Migration> RunStoreMigrations() { return kMigrations; }

}  // namespace kiln::store
