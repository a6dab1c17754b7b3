#include "engine/store/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace kiln::store {

absl::StatusOr<int64_t> SchemaVersion(Database& db) {
  return db.QueryInt("PRAGMA user_version");
}

namespace {

absl::Status TooNew(Database& db, absl::string_view what, int64_t found,
                    int64_t known) {
  return absl::FailedPreconditionError(absl::StrCat(
      db.path(), ": this ", what, " was written by a newer kiln (schema ",
      found, "; this kiln knows up to ", known,
      "); upgrade kiln or use another store directory"));
}

}  // namespace

absl::Status MakeOwnerOnly(const std::string& store_dir,
                           const std::string& db_path) {
  // The store holds run records, logs and keys: owner-only, whatever the
  // umask and whatever an older kiln left.
  if (chmod(store_dir.c_str(), 0700) != 0) {
    return absl::UnavailableError(absl::StrCat(
        "restricting ", store_dir, " to its owner: ", std::strerror(errno)));
  }
  // Created owner-only before SQLite opens it; SQLite gives the -wal and
  // -shm files the database file's mode.
  int fd =
      open(db_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("opening ", db_path, ": ", std::strerror(errno)));
  }
  int rc = fchmod(fd, 0600);
  close(fd);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat(
        "restricting ", db_path, " to its owner: ", std::strerror(errno)));
  }
  for (const char* suffix : {"-wal", "-shm", "-journal"}) {
    std::string side = db_path + suffix;
    if (chmod(side.c_str(), 0600) != 0 && errno != ENOENT) {
      return absl::UnavailableError(absl::StrCat(
          "restricting ", side, " to its owner: ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

absl::Status Migrate(Database& db, absl::string_view what,
                     absl::Span<const Migration> migrations) {
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int64_t>(i + 1)) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": migration ", i, " has version ",
                       migrations[i].version, ", want ", i + 1));
    }
  }
  const int64_t latest = static_cast<int64_t>(migrations.size());

  // Fast path without the write lock: already current (or too new).
  absl::StatusOr<int64_t> version = SchemaVersion(db);
  if (!version.ok()) return version.status();
  if (*version > latest) return TooNew(db, what, *version, latest);
  if (*version == latest) return absl::OkStatus();

  while (true) {
    Transaction txn(&db);
    if (absl::Status s = txn.Begin(); !s.ok()) return s;
    version = SchemaVersion(db);
    if (!version.ok()) return version.status();
    if (*version > latest) return TooNew(db, what, *version, latest);
    if (*version == latest) return absl::OkStatus();
    const Migration& step = migrations[*version];
    if (absl::Status s = db.Exec(step.sql); !s.ok()) {
      return absl::Status(
          s.code(), absl::StrCat(what, ": migrating to schema ", step.version,
                                 ": ", s.message()));
    }
    // PRAGMA takes no bound parameters; the version is our own integer.
    if (absl::Status s =
            db.Exec(absl::StrCat("PRAGMA user_version = ", step.version));
        !s.ok()) {
      return s;
    }
    if (absl::Status s = txn.Commit(); !s.ok()) return s;
  }
}

absl::StatusOr<std::unique_ptr<Database>> OpenMigrated(
    const std::string& store_dir, absl::string_view file_name,
    absl::string_view what, absl::Span<const Migration> migrations) {
  if (store_dir.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": empty store directory"));
  }
  std::error_code ec;
  std::filesystem::create_directories(store_dir, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat(
        what, ": creating store directory ", store_dir, ": ", ec.message()));
  }
  const std::string path = absl::StrCat(store_dir, "/", file_name);
  if (absl::Status s = MakeOwnerOnly(store_dir, path); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
  }
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(path);
  if (!db.ok()) return db.status();
  if (absl::Status s = Migrate(**db, what, migrations); !s.ok()) return s;
  return db;
}

}  // namespace kiln::store
