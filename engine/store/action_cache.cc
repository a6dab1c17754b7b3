#include "engine/store/action_cache.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "engine/store/action_cache_schema.h"
#include "engine/store/action_hit.h"
#include "engine/store/migrate.h"
#include "engine/store/time_codec.h"

namespace kiln::store {

namespace {

const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

absl::Status ValidateKey(absl::string_view key) {
  if (key.empty() || key.size() > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("action cache: bad key length ", key.size()));
  }
  for (char c : key) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(
          "action cache: key must be printable ASCII without spaces");
    }
  }
  return absl::OkStatus();
}

constexpr char kFileName[] = "action_cache.db";

absl::StatusOr<std::unique_ptr<Database>> OpenCacheDb(
    const std::string& store_dir) {
  return OpenMigrated(store_dir, kFileName, "action cache",
                      ActionCacheMigrations());
}

// Moves <store_dir>/action_cache.db and its -wal aside (the -shm is
// rebuilt by SQLite and simply removed) and says so on stderr.
absl::Status MoveAside(const std::string& store_dir, const absl::Status& why) {
  const std::string db = absl::StrCat(store_dir, "/", kFileName);
  const std::string aside =
      absl::StrCat(db, ".damaged-", absl::ToUnixSeconds(absl::Now()));
  if (rename(db.c_str(), aside.c_str()) != 0 && errno != ENOENT) {
    return absl::UnavailableError(absl::StrCat(
        "action cache: ", why.message(), "; and moving ", db,
        " aside failed: ", strerror(errno), " (delete it by hand)"));
  }
  if (rename((db + "-wal").c_str(), (aside + "-wal").c_str()) != 0 &&
      errno != ENOENT) {
    unlink((db + "-wal").c_str());
  }
  unlink((db + "-shm").c_str());
  std::fprintf(stderr,
               "kiln: WARNING: the action cache %s is damaged (%s); moved it "
               "to %s and started an empty cache (tasks rerun once)\n",
               db.c_str(), std::string(why.message()).c_str(), aside.c_str());
  return absl::OkStatus();
}

}  // namespace

ActionCache::ActionCache(std::string store_dir, std::unique_ptr<Database> db)
    : store_dir_(std::move(store_dir)), db_(std::move(db)) {}

ActionCache::~ActionCache() = default;

absl::StatusOr<std::unique_ptr<ActionCache>> ActionCache::Open(
    const std::string& store_dir) {
  absl::StatusOr<std::unique_ptr<Database>> db = OpenCacheDb(store_dir);
  int recovered = 0;
  if (!db.ok() && absl::IsDataLoss(db.status())) {
    KILN_RETURN_IF_ERROR(MoveAside(store_dir, db.status()));
    db = OpenCacheDb(store_dir);
    recovered = 1;
  }
  if (!db.ok()) return db.status();
  auto cache =
      std::unique_ptr<ActionCache>(new ActionCache(store_dir, std::move(*db)));
  kiln::MutexLock lock(&cache->mu_);
  cache->recoveries_ = recovered;
  return cache;
}

int ActionCache::recoveries() const {
  kiln::MutexLock lock(&mu_);
  return recoveries_;
}

absl::Status ActionCache::RecoverLocked(const absl::Status& cause) {
  db_.reset();  // closes the damaged file first
  KILN_RETURN_IF_ERROR(MoveAside(store_dir_, cause));
  KILN_ASSIGN_OR_RETURN(db_, OpenCacheDb(store_dir_));
  ++recoveries_;
  return absl::OkStatus();
}

template <typename Op>
std::invoke_result_t<Op&> ActionCache::WithRecovery(Op op) {
  auto result = op();
  if (result.ok() || !absl::IsDataLoss(StatusOf(result))) return result;
  if (absl::Status s = RecoverLocked(StatusOf(result)); !s.ok()) return s;
  return op();
}

absl::Status ActionCache::Put(absl::string_view key,
                              const ActionResult& result) {
  KILN_RETURN_IF_ERROR(ValidateKey(key));
  const absl::Time created =
      result.created == absl::InfinitePast() ? absl::Now() : result.created;
  kiln::MutexLock lock(&mu_);
  return WithRecovery([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return PutLocked(key, result, created);
  });
}

absl::Status ActionCache::PutLocked(absl::string_view key,
                                    const ActionResult& result,
                                    absl::Time created) {
  Transaction txn(db_.get());
  KILN_RETURN_IF_ERROR(txn.Begin());
  {
    // Children go with the row (ON DELETE CASCADE).
    KILN_ASSIGN_OR_RETURN(Statement remove,
                          db_->Prepare("DELETE FROM actions WHERE key = ?1"));
    remove.BindText(1, key);
    KILN_RETURN_IF_ERROR(remove.Run());
  }
  {
    KILN_ASSIGN_OR_RETURN(
        Statement insert,
        db_->Prepare("INSERT INTO actions (key, exit_code, log_digest,"
                     " log_path, created_us, pipeline_name, task_name, run_id,"
                     " hit) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
    insert.BindText(1, key)
        .Bind(2, result.exit_code)
        .BindText(3, result.log_digest)
        .BindText(4, result.log_path)
        .Bind(5, ToMicros(created))
        .BindText(6, result.pipeline_name)
        .BindText(7, result.task_name)
        .BindText(8, result.run_id)
        .BindBlob(9, EncodeHit(result));
    KILN_RETURN_IF_ERROR(insert.Run());
  }
  {
    KILN_ASSIGN_OR_RETURN(
        Statement insert,
        db_->Prepare("INSERT INTO action_values (key, kind, name, value)"
                     " VALUES (?1, ?2, ?3, ?4)"));
    for (const auto& [kind, map] :
         {std::make_pair("output", &result.outputs),
          std::make_pair("result", &result.results)}) {
      for (const auto& [name, value] : *map) {
        insert.BindText(1, key).BindText(2, kind).BindText(3, name).BindText(
            4, value);
        KILN_RETURN_IF_ERROR(insert.Run());
      }
    }
  }
  if (!result.archives.empty()) {
    KILN_ASSIGN_OR_RETURN(
        Statement insert,
        db_->Prepare("INSERT INTO action_archives (key, artifact, archive,"
                     " size) VALUES (?1, ?2, ?3, ?4)"));
    for (const auto& [artifact, archive] : result.archives) {
      insert.BindText(1, key)
          .BindText(2, artifact)
          .BindText(3, archive.digest)
          .Bind(4, archive.size);
      KILN_RETURN_IF_ERROR(insert.Run());
    }
  }
  {
    KILN_ASSIGN_OR_RETURN(
        Statement insert,
        db_->Prepare("INSERT INTO action_components (key, position, name,"
                     " value_digest) VALUES (?1, ?2, ?3, ?4)"));
    for (size_t i = 0; i < result.components.size(); ++i) {
      insert.BindText(1, key)
          .Bind(2, static_cast<int64_t>(i))
          .BindText(3, result.components[i].name)
          .BindText(4, result.components[i].value_digest);
      KILN_RETURN_IF_ERROR(insert.Run());
    }
  }
  return txn.Commit();
}

absl::StatusOr<absl::optional<ActionResult>> ActionCache::LoadLocked(
    absl::string_view key, bool with_components) {
  // The entry with its values and archives in one row (the hit column);
  // an entry written before schema 3, or whose hit does not decode, has
  // them read from their tables in the same snapshot.
  ActionResult result;
  bool found = false;
  bool decoded = false;
  {
    KILN_ASSIGN_OR_RETURN(
        Statement stmt,
        db_->Prepare("SELECT exit_code, log_digest, log_path, created_us,"
                     " pipeline_name, task_name, run_id, hit FROM actions"
                     " WHERE key = ?1"));
    stmt.BindText(1, key);
    KILN_ASSIGN_OR_RETURN(found, stmt.Step());
    if (found) {
      result.exit_code = static_cast<int32_t>(stmt.Int(0));
      result.log_digest = stmt.Text(1);
      result.log_path = stmt.Text(2);
      result.created = absl::FromUnixMicros(stmt.Int(3));
      result.pipeline_name = stmt.Text(4);
      result.task_name = stmt.Text(5);
      result.run_id = stmt.Text(6);
      decoded = !stmt.IsNull(7) && DecodeHit(stmt.Blob(7), &result);
    }
  }
  if (found && !decoded) {
    // Values and archives in one statement; the rows of the two parts are
    // told apart by the first column, not by their order.
    KILN_ASSIGN_OR_RETURN(
        Statement stmt,
        db_->Prepare("SELECT 1, kind, name, value, 0 FROM action_values"
                     " WHERE key = ?1 UNION ALL SELECT 2, artifact, archive,"
                     " NULL, size FROM action_archives WHERE key = ?1"));
    stmt.BindText(1, key);
    while (true) {
      KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      if (stmt.Int(0) == 1) {
        auto& map = stmt.Text(1) == "output" ? result.outputs : result.results;
        map[stmt.Text(2)] = stmt.Text(3);
      } else {
        result.archives[stmt.Text(1)] =
            OutputArchive{stmt.Text(2), stmt.Int(4)};
      }
    }
  }
  if (!found) return absl::optional<ActionResult>();
  result.key = std::string(key);
  if (with_components) {
    KILN_ASSIGN_OR_RETURN(
        Statement stmt,
        db_->Prepare("SELECT name, value_digest FROM action_components"
                     " WHERE key = ?1 ORDER BY position"));
    stmt.BindText(1, key);
    while (true) {
      KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      result.components.push_back(KeyComponent{stmt.Text(0), stmt.Text(1)});
    }
  }
  return absl::optional<ActionResult>(std::move(result));
}

absl::StatusOr<absl::optional<ActionResult>> ActionCache::Lookup(
    absl::string_view key, bool with_components) {
  KILN_RETURN_IF_ERROR(ValidateKey(key));
  kiln::MutexLock lock(&mu_);
  return WithRecovery([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS
                      -> absl::StatusOr<absl::optional<ActionResult>> {
    Transaction snapshot(db_.get());
    KILN_RETURN_IF_ERROR(snapshot.BeginRead());
    return LoadLocked(key, with_components);
  });
}

absl::StatusOr<std::vector<absl::optional<ActionResult>>>
ActionCache::LookupMany(const std::vector<std::string>& keys) {
  for (const std::string& key : keys) KILN_RETURN_IF_ERROR(ValidateKey(key));
  kiln::MutexLock lock(&mu_);
  return WithRecovery(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS
      -> absl::StatusOr<std::vector<absl::optional<ActionResult>>> {
        Transaction snapshot(db_.get());
        KILN_RETURN_IF_ERROR(snapshot.BeginRead());
        std::vector<absl::optional<ActionResult>> out;
        out.reserve(keys.size());
        for (const std::string& key : keys) {
          KILN_ASSIGN_OR_RETURN(absl::optional<ActionResult> r,
                                LoadLocked(key, /*with_components=*/false));
          out.push_back(std::move(r));
        }
        return out;
      });
}

absl::StatusOr<int64_t> ActionCache::Epoch() {
  kiln::MutexLock lock(&mu_);
  return WithRecovery([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return db_->QueryInt("SELECT n FROM cache_epoch WHERE id = 0");
  });
}

absl::StatusOr<absl::optional<ActionResult>> ActionCache::LatestForTask(
    absl::string_view pipeline_name, absl::string_view task_name) {
  kiln::MutexLock lock(&mu_);
  return WithRecovery([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS
                      -> absl::StatusOr<absl::optional<ActionResult>> {
    Transaction snapshot(db_.get());
    KILN_RETURN_IF_ERROR(snapshot.BeginRead());
    std::string key;
    {
      KILN_ASSIGN_OR_RETURN(
          Statement stmt,
          db_->Prepare("SELECT key FROM actions WHERE pipeline_name = ?1 AND"
                       " task_name = ?2 ORDER BY created_us DESC, key DESC"
                       " LIMIT 1"));
      stmt.BindText(1, pipeline_name).BindText(2, task_name);
      KILN_ASSIGN_OR_RETURN(bool found, stmt.Step());
      if (!found) return absl::optional<ActionResult>();
      key = stmt.Text(0);
    }
    return LoadLocked(key, /*with_components=*/true);
  });
}

absl::StatusOr<std::set<std::string>> ActionCache::PinnedKeysLocked(
    const CachePins& pins) {
  std::set<std::string> keys = pins.keys;
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT key FROM actions WHERE run_id = ?1"));
  for (const std::string& run : pins.run_ids) {
    stmt.BindText(1, run);
    while (true) {
      KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      keys.insert(stmt.Text(0));
    }
    stmt.Reset();
  }
  KILN_ASSIGN_OR_RETURN(
      Statement by_task,
      db_->Prepare("SELECT key FROM actions WHERE pipeline_name = ?1 AND"
                   " task_name = ?2"));
  for (const auto& [pipeline, task] : pins.tasks) {
    by_task.BindText(1, pipeline).BindText(2, task);
    while (true) {
      KILN_ASSIGN_OR_RETURN(bool row, by_task.Step());
      if (!row) break;
      keys.insert(by_task.Text(0));
    }
    by_task.Reset();
  }
  return keys;
}

absl::StatusOr<std::vector<std::string>> ActionCache::ReferencedDigests(
    absl::Time since, const CachePins& pins) {
  kiln::MutexLock lock(&mu_);
  return WithRecovery([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS
                      -> absl::StatusOr<std::vector<std::string>> {
    Transaction snapshot(db_.get());
    KILN_RETURN_IF_ERROR(snapshot.BeginRead());
    std::set<std::string> digests;
    {
      KILN_ASSIGN_OR_RETURN(
          Statement stmt,
          db_->Prepare("SELECT v.value FROM action_values v JOIN actions a"
                       " ON a.key = v.key WHERE v.kind = 'output'"
                       " AND a.created_us >= ?1"
                       " UNION SELECT log_digest FROM actions"
                       " WHERE log_digest != '' AND created_us >= ?1"));
      stmt.Bind(1, since == absl::InfinitePast() ? INT64_MIN : ToMicros(since));
      while (true) {
        KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
        if (!row) break;
        digests.insert(stmt.Text(0));
      }
    }
    // Pinned entries keep what they reference, whatever their age.
    KILN_ASSIGN_OR_RETURN(std::set<std::string> pinned, PinnedKeysLocked(pins));
    KILN_ASSIGN_OR_RETURN(
        Statement stmt,
        db_->Prepare("SELECT value FROM action_values WHERE key = ?1 AND"
                     " kind = 'output' UNION SELECT log_digest FROM actions"
                     " WHERE key = ?1 AND log_digest != ''"));
    for (const std::string& key : pinned) {
      stmt.BindText(1, key);
      while (true) {
        KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
        if (!row) break;
        digests.insert(stmt.Text(0));
      }
      stmt.Reset();
    }
    return std::vector<std::string>(digests.begin(), digests.end());
  });
}

absl::StatusOr<std::vector<std::string>> ActionCache::ExpiredKeysLocked(
    absl::Time before, const CachePins& pins) {
  KILN_ASSIGN_OR_RETURN(std::set<std::string> pinned, PinnedKeysLocked(pins));
  std::vector<std::string> expired;
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT key FROM actions WHERE created_us < ?1"));
  stmt.Bind(1, ToMicros(before));
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    std::string key = stmt.Text(0);
    if (!pinned.count(key)) expired.push_back(std::move(key));
  }
  return expired;
}

absl::StatusOr<int64_t> ActionCache::RemoveOlderThan(absl::Time before,
                                                     const CachePins& pins) {
  kiln::MutexLock lock(&mu_);
  return WithRecovery(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<int64_t> {
        Transaction txn(db_.get());
        KILN_RETURN_IF_ERROR(txn.Begin());
        KILN_ASSIGN_OR_RETURN(std::vector<std::string> expired,
                              ExpiredKeysLocked(before, pins));
        KILN_ASSIGN_OR_RETURN(
            Statement remove,
            db_->Prepare("DELETE FROM actions WHERE key = ?1"));
        for (const std::string& key : expired) {
          remove.BindText(1, key);
          KILN_RETURN_IF_ERROR(remove.Run());
        }
        KILN_RETURN_IF_ERROR(txn.Commit());
        return static_cast<int64_t>(expired.size());
      });
}

absl::StatusOr<int64_t> ActionCache::CountOlderThan(absl::Time before,
                                                    const CachePins& pins) {
  kiln::MutexLock lock(&mu_);
  return WithRecovery(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<int64_t> {
        KILN_ASSIGN_OR_RETURN(std::vector<std::string> expired,
                              ExpiredKeysLocked(before, pins));
        return static_cast<int64_t>(expired.size());
      });
}

std::vector<ComponentChange> DiffKeyComponents(
    const std::vector<KeyComponent>& old_key,
    const std::vector<KeyComponent>& new_key) {
  // name -> positions in old_key not yet matched, in order.
  absl::flat_hash_map<std::string, std::vector<size_t>> unmatched;
  for (size_t i = old_key.size(); i-- > 0;) {
    unmatched[old_key[i].name].push_back(i);  // reversed: pop from the back
  }
  std::vector<bool> matched(old_key.size(), false);
  std::vector<ComponentChange> changes;
  for (const KeyComponent& now : new_key) {
    auto it = unmatched.find(now.name);
    if (it == unmatched.end() || it->second.empty()) {
      changes.push_back(
          {ComponentChange::Kind::kAdded, now.name, "", now.value_digest});
      continue;
    }
    size_t i = it->second.back();
    it->second.pop_back();
    matched[i] = true;
    if (old_key[i].value_digest != now.value_digest) {
      changes.push_back({ComponentChange::Kind::kChanged, now.name,
                         old_key[i].value_digest, now.value_digest});
    }
  }
  for (size_t i = 0; i < old_key.size(); ++i) {
    if (!matched[i]) {
      changes.push_back({ComponentChange::Kind::kRemoved, old_key[i].name,
                         old_key[i].value_digest, ""});
    }
  }
  return changes;
}

}  // namespace kiln::store
