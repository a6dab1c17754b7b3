// A thin RAII layer over one SQLite connection: open with the pragmas every
// kiln store uses, cached prepared statements, IMMEDIATE transactions, and
// SQLite result codes mapped to absl::Status.
//
// Durability: journal_mode=WAL with synchronous=NORMAL. A committed
// transaction survives a crash of the process (kill -9) at any point: its WAL
// frames are in the OS before COMMIT returns. On power loss or a kernel crash
// the most recent commits (since the last WAL sync at checkpoint) may be rolled
// back, but the database is never left torn or corrupt. FULL would fsync every
// commit and cost roughly 10x in event throughput; kiln chooses NORMAL.
//
// Several processes may open the same file at once; writers serialize on
// SQLite's lock and wait up to busy_timeout for it.
//
// Thread-safety: a Database and its Statements are NOT thread-safe; the owner
// serializes every use (RunStore and ActionCache hold a mutex).
#ifndef KILN_ENGINE_STORE_SQLITE_H_
#define KILN_ENGINE_STORE_SQLITE_H_

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace kiln::store {

// Maps a SQLite result code to a Status: BUSY/LOCKED -> Unavailable, FULL ->
// ResourceExhausted, CORRUPT/NOTADB -> DataLoss, CONSTRAINT ->
// AlreadyExists, READONLY/PERM -> PermissionDenied, others -> Internal.
absl::Status SqliteError(int code, absl::string_view context,
                         absl::string_view detail);

class Database;

// A prepared statement borrowed from Database's cache. It is reset and its
// bindings cleared when the Statement is destroyed; it must not outlive the
// Database. Bind indexes are 1-based, column indexes 0-based.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  ~Statement();

  Statement& Bind(int index, int64_t value);
  Statement& BindText(int index, absl::string_view value);
  Statement& BindBlob(int index, absl::string_view value);
  // As BindBlob, without SQLite's copy: `value` must stay valid until the
  // statement is destroyed (for large blobs such as a run's replay record).
  Statement& BindBlobRef(int index, absl::string_view value);
  Statement& BindNull(int index);
  // Binds NULL when value is empty, else the text.
  Statement& BindTextOrNull(int index, absl::string_view value);

  // true: a row is available; false: the statement is done.
  absl::StatusOr<bool> Step();
  // Steps to completion, ignoring rows, then Reset()s: the statement can be
  // bound and run again (bindings not re-set keep their values).
  absl::Status Run();
  // Rewinds the statement so it can be re-bound and stepped again.
  void Reset();

  bool IsNull(int column) const;
  int64_t Int(int column) const;
  std::string Text(int column) const;  // NULL reads as ""
  std::string Blob(int column) const;  // NULL reads as ""
  // The blob in place: valid until the next Step, Reset or destruction.
  absl::string_view BlobView(int column) const;

 private:
  friend class Database;
  Statement(sqlite3_stmt* stmt, bool* in_use) : stmt_(stmt), in_use_(in_use) {}

  sqlite3_stmt* stmt_;
  bool* in_use_;  // the cache slot's flag; nullptr: transient, finalize
  absl::Status bind_status_;
};

class Database {
 public:
  struct Options {
    // How long a writer waits for another connection's lock.
    absl::Duration busy_timeout = absl::Seconds(30);
    // Reads through a shared mapping of the file, up to this many bytes,
    // instead of a pread per page. SQLite remaps when another connection
    // changes the file's size; 0 (the default) reads with pread only. Every
    // mapped page read stays resident in this process while the mapping
    // lives (a 10,000-task cold run's store added ~30 MB to its RSS): map
    // around one large read instead (MappedReads).
    int64_t mmap_bytes = 0;
  };

  // Opens (creating if absent) the database file at `path` in WAL mode with
  // synchronous=NORMAL and foreign keys on. Fails with Unavailable if the
  // file cannot be opened or WAL is not supported on its file system, and
  // DataLoss if it is not a SQLite database.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path,
                                                        const Options& options);
  static absl::StatusOr<std::unique_ptr<Database>> Open(
      const std::string& path) {
    return Open(path, Options());
  }

  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements that return no rows.
  absl::Status Exec(absl::string_view sql);

  // Returns a statement for `sql`, compiled once per Database and reused.
  // If the cached one is in use (nested use of one sql), a transient
  // statement is compiled and finalized when the Statement dies.
  absl::StatusOr<Statement> Prepare(absl::string_view sql);

  // The first column of the first row of `sql`, which must yield a row.
  absl::StatusOr<int64_t> QueryInt(absl::string_view sql);

  // BEGIN IMMEDIATE (takes the write lock now, so a transaction never fails
  // half-way on a lock upgrade), retrying on SQLITE_BUSY until busy_timeout.
  absl::Status BeginImmediate();
  // BEGIN (deferred): a consistent read snapshot for several SELECTs.
  absl::Status BeginRead();
  absl::Status Commit();
  // Rolls back the open transaction, if any. Never fails.
  void Rollback();
  bool InTransaction() const;

  // Rows changed by the last INSERT/UPDATE/DELETE.
  int64_t Changes() const;
  const std::string& path() const { return path_; }
  sqlite3* raw() const { return db_; }

  // A Status for the connection's last error.
  absl::Status LastError(int code, absl::string_view context) const;

 private:
  Database(std::string path, sqlite3* db, const Options& options)
      : path_(std::move(path)), db_(db), options_(options) {}
  friend class MappedReads;

  std::string path_;
  sqlite3* db_;
  Options options_;
  struct CachedStatement {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };
  // std::map: node addresses (and so &in_use) are stable.
  std::map<std::string, CachedStatement, std::less<>> statements_;
};

// Maps the database file for the reads made while it lives (PRAGMA
// mmap_size), then removes the mapping, so that its pages stop counting as
// this process's memory. For one large read, such as a run's 3 MB replay
// record, which was ~800 preads of 4 KiB pages. Statements that read inside
// the scope must be reset or destroyed before it ends (SQLite keeps a
// mapping with pages still in use). Mapping is an optimisation only: if it
// cannot be set, reads use pread as before.
class MappedReads {
 public:
  MappedReads(Database* db, int64_t bytes);
  ~MappedReads();
  MappedReads(const MappedReads&) = delete;
  MappedReads& operator=(const MappedReads&) = delete;

 private:
  Database* db_;
  int64_t restore_;  // the connection's setting (Options::mmap_bytes)
  bool changed_;
};

// RAII over a transaction: rolls back unless Commit() succeeded.
class Transaction {
 public:
  explicit Transaction(Database* db) : db_(db) {}
  ~Transaction() {
    if (open_) db_->Rollback();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // A write transaction (holds the write lock until Commit/rollback).
  absl::Status Begin() {
    absl::Status s = db_->BeginImmediate();
    open_ = s.ok();
    return s;
  }
  // A read snapshot; Commit() (or destruction) ends it.
  absl::Status BeginRead() {
    absl::Status s = db_->BeginRead();
    open_ = s.ok();
    return s;
  }
  absl::Status Commit() {
    absl::Status s = db_->Commit();
    if (s.ok()) open_ = false;
    return s;
  }

 private:
  Database* db_;
  bool open_ = false;
};

}  // namespace kiln::store

#endif  // KILN_ENGINE_STORE_SQLITE_H_
