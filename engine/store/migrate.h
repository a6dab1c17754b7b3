// Forward-only schema migrations keyed on SQLite's PRAGMA user_version.
//
// Version 0 is an empty database. Migration N takes the schema from N-1 to
// N; each runs in its own IMMEDIATE transaction together with the
// user_version bump, so a crash or error leaves the database at the previous
// version, never half-migrated. Concurrent openers are safe: the version is
// re-read under the write lock, so each step runs exactly once.
#ifndef KILN_ENGINE_STORE_MIGRATE_H_
#define KILN_ENGINE_STORE_MIGRATE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/store/sqlite.h"

namespace kiln::store {

struct Migration {
  int64_t version;  // 1, 2, 3, ... in order, without gaps
  const char* sql;  // statements taking version-1 to version
};

// Brings `db` to the version of the last migration. `what` names the store
// in messages ("run store"). Fails with FailedPrecondition if the database
// was written by a newer kiln (its version is above every migration's) or if
// `migrations` is not numbered 1..N; with the SQL error if a step fails.
absl::Status Migrate(Database& db, absl::string_view what,
                     absl::Span<const Migration> migrations);

// Creates `store_dir` if needed, opens <store_dir>/<file_name> and migrates
// it: how every kiln store opens its database.
absl::StatusOr<std::unique_ptr<Database>> OpenMigrated(
    const std::string& store_dir, absl::string_view file_name,
    absl::string_view what, absl::Span<const Migration> migrations);

// Restricts `store_dir` to mode 0700 and the database at `db_path` (created
// empty if missing, never through a symlink) and its -wal/-shm/-journal
// side files to 0600. Called by OpenMigrated.
absl::Status MakeOwnerOnly(const std::string& store_dir,
                           const std::string& db_path);

// The database's PRAGMA user_version.
absl::StatusOr<int64_t> SchemaVersion(Database& db);

}  // namespace kiln::store

#endif  // KILN_ENGINE_STORE_MIGRATE_H_
