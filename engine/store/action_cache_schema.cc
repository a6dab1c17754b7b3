#include "engine/store/action_cache_schema.h"

namespace kiln::store {

namespace {

// Times are microseconds since the Unix epoch (UTC).
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE actions (
  key           TEXT PRIMARY KEY,
  exit_code     INTEGER NOT NULL,
  log_digest    TEXT NOT NULL DEFAULT '',
  log_path      TEXT NOT NULL DEFAULT '',
  created_us    INTEGER NOT NULL,
  pipeline_name TEXT NOT NULL DEFAULT '',
  task_name     TEXT NOT NULL DEFAULT '',
  run_id        TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX actions_by_task ON actions(pipeline_name, task_name, created_us);
CREATE INDEX actions_by_created ON actions(created_us);

-- Output digests (kind 'output') and results (kind 'result').
CREATE TABLE action_values (
  key   TEXT NOT NULL REFERENCES actions(key) ON DELETE CASCADE,
  kind  TEXT NOT NULL CHECK (kind IN ('output', 'result')),
  name  TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (key, kind, name)
) WITHOUT ROWID;

CREATE TABLE action_components (
  key          TEXT NOT NULL REFERENCES actions(key) ON DELETE CASCADE,
  position     INTEGER NOT NULL,
  name         TEXT NOT NULL,
  value_digest TEXT NOT NULL,
  PRIMARY KEY (key, position)
) WITHOUT ROWID;
)sql"},
    {2, R"sql(
-- The archive blob of each output (kind 'output' in action_values) that
-- the recording process had verified: a hit then checks its outputs are
-- present without reading the artifact index's records.
CREATE TABLE action_archives (
  key      TEXT NOT NULL REFERENCES actions(key) ON DELETE CASCADE,
  artifact TEXT NOT NULL,
  archive  TEXT NOT NULL,
  size     INTEGER NOT NULL,
  PRIMARY KEY (key, artifact)
) WITHOUT ROWID;
)sql"},
    {3, R"sql(
-- What a lookup needs of an entry's values and archives, in one value
-- (action_hit.h): a no-op run then reads one row per task,
-- not three. action_values and action_archives stay the record every
-- other query reads; entries written before schema 3 have NULL here and
-- are read from them.
ALTER TABLE actions ADD COLUMN hit BLOB;
)sql"},
    {4, R"sql(
-- Counts changes to recorded entries: every deleted, replaced (a Put of
-- an existing key deletes it first) or altered entry, value or archive
-- adds one, whoever changes it. A new entry adds nothing. A whole-run replay
-- (run_store_replay.cc) holds only while the epoch it was recorded at is
-- still the current one. It starts at a random value, so that a database
-- created afresh (after a damaged one was set aside) never repeats an
-- epoch an earlier one had.
CREATE TABLE cache_epoch (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  n  INTEGER NOT NULL
);
INSERT INTO cache_epoch (id, n) VALUES (0, abs(random() / 4));
CREATE TRIGGER actions_removed AFTER DELETE ON actions
BEGIN
  UPDATE cache_epoch SET n = n + 1 WHERE id = 0;
END;
CREATE TRIGGER actions_altered AFTER UPDATE ON actions
BEGIN
  UPDATE cache_epoch SET n = n + 1 WHERE id = 0;
END;
CREATE TRIGGER action_values_removed AFTER DELETE ON action_values
BEGIN
  UPDATE cache_epoch SET n = n + 1 WHERE id = 0;
END;
CREATE TRIGGER action_values_altered AFTER UPDATE ON action_values
BEGIN
  UPDATE cache_epoch SET n = n + 1 WHERE id = 0;
END;
CREATE TRIGGER action_archives_removed AFTER DELETE ON action_archives
BEGIN
  UPDATE cache_epoch SET n = n + 1 WHERE id = 0;
END;
CREATE TRIGGER action_archives_altered AFTER UPDATE ON action_archives
BEGIN
  UPDATE cache_epoch SET n = n + 1 WHERE id = 0;
END;
)sql"},
};

}  // namespace

absl::Span<const Migration> ActionCacheMigrations() { return kMigrations; }

}  // namespace kiln::store
