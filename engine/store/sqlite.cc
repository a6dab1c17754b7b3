#include "engine/store/sqlite.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace kiln::store {

absl::Status SqliteError(int code, absl::string_view context,
                         absl::string_view detail) {
  std::string message =
      absl::StrCat(context, ": ", detail, " (sqlite code ", code, ")");
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(message);
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return absl::PermissionDeniedError(message);
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

// ---- Statement ----

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)),
      in_use_(std::exchange(other.in_use_, nullptr)),
      bind_status_(std::move(other.bind_status_)) {}

Statement::~Statement() {
  if (stmt_ == nullptr) return;
  if (in_use_ == nullptr) {
    sqlite3_finalize(stmt_);
    return;
  }
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  *in_use_ = false;
}

namespace {
void NoteBind(absl::Status* status, sqlite3_stmt* stmt, int rc, int index) {
  if (rc != SQLITE_OK && status->ok()) {
    *status = SqliteError(rc, absl::StrCat("binding parameter ", index),
                          sqlite3_errmsg(sqlite3_db_handle(stmt)));
  }
}
}  // namespace

Statement& Statement::Bind(int index, int64_t value) {
  NoteBind(&bind_status_, stmt_, sqlite3_bind_int64(stmt_, index, value),
           index);
  return *this;
}

Statement& Statement::BindText(int index, absl::string_view value) {
  NoteBind(&bind_status_, stmt_,
           sqlite3_bind_text64(stmt_, index, value.data(), value.size(),
                               SQLITE_TRANSIENT, SQLITE_UTF8),
           index);
  return *this;
}

namespace {
void BindBlobWith(sqlite3_stmt* stmt, absl::Status* status, int index,
                  absl::string_view value, sqlite3_destructor_type copy) {
  // A zero-length blob must still bind as a blob, not NULL.
  static const char kEmpty = 0;
  NoteBind(
      status, stmt,
      sqlite3_bind_blob64(stmt, index, value.empty() ? &kEmpty : value.data(),
                          value.size(), copy),
      index);
}
}  // namespace

Statement& Statement::BindBlob(int index, absl::string_view value) {
  BindBlobWith(stmt_, &bind_status_, index, value, SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::BindBlobRef(int index, absl::string_view value) {
  // The destructor clears a cached statement's bindings, so no pointer to
  // `value` outlives this object.
  BindBlobWith(stmt_, &bind_status_, index, value, SQLITE_STATIC);
  return *this;
}

Statement& Statement::BindNull(int index) {
  NoteBind(&bind_status_, stmt_, sqlite3_bind_null(stmt_, index), index);
  return *this;
}

Statement& Statement::BindTextOrNull(int index, absl::string_view value) {
  return value.empty() ? BindNull(index) : BindText(index, value);
}

absl::StatusOr<bool> Statement::Step() {
  if (!bind_status_.ok()) return bind_status_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(rc, sqlite3_sql(stmt_),
                     sqlite3_errmsg(sqlite3_db_handle(stmt_)));
}

absl::Status Statement::Run() {
  absl::Status status;
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) {
      status = row.status();
      break;
    }
    if (!*row) break;
  }
  Reset();
  return status;
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  bind_status_ = absl::OkStatus();
}

bool Statement::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

int64_t Statement::Int(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

std::string Statement::Text(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(text),
                     sqlite3_column_bytes(stmt_, column));
}

std::string Statement::Blob(int column) const {
  return std::string(BlobView(column));
}

absl::string_view Statement::BlobView(int column) const {
  const void* blob = sqlite3_column_blob(stmt_, column);
  if (blob == nullptr) return "";
  return absl::string_view(static_cast<const char*>(blob),
                           sqlite3_column_bytes(stmt_, column));
}

// ---- Database ----

absl::StatusOr<std::unique_ptr<Database>> Database::Open(
    const std::string& path, const Options& options) {
  sqlite3* raw = nullptr;
  // NOMUTEX: the owner serializes access; SQLite's own mutex would be waste.
  int rc = sqlite3_open_v2(path.c_str(), &raw,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                               SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string detail = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close_v2(raw);
    return SqliteError(rc, absl::StrCat("opening ", path), detail);
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(
      raw, static_cast<int>(absl::ToInt64Milliseconds(options.busy_timeout)));
  std::unique_ptr<Database> db(new Database(path, raw, options));

  // journal_mode=WAL is persistent in the file; it needs a brief lock.
  absl::StatusOr<Statement> mode = db->Prepare("PRAGMA journal_mode=WAL");
  if (!mode.ok()) return mode.status();
  absl::StatusOr<bool> row = mode->Step();
  if (!row.ok()) return row.status();
  std::string journal = *row ? absl::AsciiStrToLower(mode->Text(0)) : "";
  if (journal != "wal") {
    return absl::UnavailableError(
        absl::StrCat(path, ": cannot use WAL journal mode (got '", journal,
                     "'); is the store on a network file system?"));
  }
  // The -wal and -shm files stay between connections (a clean close
  // checkpoints the WAL and truncates it to zero bytes instead of deleting
  // both files), so a short-lived process does not create and delete two
  // files per database each time. journal_size_limit >= 0 is what makes
  // the close truncate; it also bounds a WAL left after a checkpoint.
  int persist = 1;
  sqlite3_file_control(raw, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
  if (absl::Status s = db->Exec(
          absl::StrCat("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                       " PRAGMA journal_size_limit=67108864; PRAGMA mmap_size=",
                       options.mmap_bytes, ";"));
      !s.ok()) {
    return s;
  }
  return db;
}

MappedReads::MappedReads(Database* db, int64_t bytes)
    : db_(db),
      restore_(db->options_.mmap_bytes),
      changed_(bytes != restore_ &&
               db_->Exec(absl::StrCat("PRAGMA mmap_size=", bytes, ";")).ok()) {}

MappedReads::~MappedReads() {
  if (changed_) {
    (void)db_->Exec(absl::StrCat("PRAGMA mmap_size=", restore_, ";"));
  }
}

Database::~Database() {
  for (auto& [sql, cached] : statements_) sqlite3_finalize(cached.stmt);
  // A clean close of the last connection checkpoints the WAL and
  // truncates it (persistent WAL: the -wal/-shm files stay, see Open).
  sqlite3_close_v2(db_);
}

absl::Status Database::LastError(int code, absl::string_view context) const {
  return SqliteError(code, absl::StrCat(path_, ": ", context),
                     sqlite3_errmsg(db_));
}

absl::Status Database::Exec(absl::string_view sql) {
  std::string text(sql);
  char* error = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteError(rc, absl::StrCat(path_, ": ", sql),
                                 error ? error : sqlite3_errstr(rc));
    sqlite3_free(error);
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<Statement> Database::Prepare(absl::string_view sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end() && !it->second.in_use) {
    it->second.in_use = true;
    return Statement(it->second.stmt, &it->second.in_use);
  }
  sqlite3_stmt* stmt = nullptr;
  bool cache = it == statements_.end();
  int rc =
      sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                         cache ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, nullptr);
  if (rc != SQLITE_OK) return LastError(rc, absl::StrCat("preparing ", sql));
  if (!cache) return Statement(stmt, nullptr);
  CachedStatement& slot = statements_[std::string(sql)];
  slot.stmt = stmt;
  slot.in_use = true;
  return Statement(stmt, &slot.in_use);
}

absl::StatusOr<int64_t> Database::QueryInt(absl::string_view sql) {
  absl::StatusOr<Statement> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) {
    return absl::InternalError(absl::StrCat(path_, ": no row from ", sql));
  }
  return stmt->Int(0);
}

absl::Status Database::BeginImmediate() {
  // The busy handler covers ordinary lock waits; a few BUSY variants (WAL
  // recovery by another connection) return without calling it, so retry.
  absl::Time deadline = absl::Now() + options_.busy_timeout;
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return absl::OkStatus();
    if ((rc & 0xff) != SQLITE_BUSY || absl::Now() >= deadline) {
      return LastError(rc, "BEGIN IMMEDIATE");
    }
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(50));
  }
}

absl::Status Database::BeginRead() {
  int rc = sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return LastError(rc, "BEGIN");
  return absl::OkStatus();
}

absl::Status Database::Commit() {
  int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return LastError(rc, "COMMIT");
  return absl::OkStatus();
}

void Database::Rollback() {
  if (InTransaction()) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

bool Database::InTransaction() const {
  return sqlite3_get_autocommit(db_) == 0;
}

int64_t Database::Changes() const { return sqlite3_changes64(db_); }

}  // namespace kiln::store
