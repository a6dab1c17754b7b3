#include "engine/store/action_cache.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "engine/store/action_cache_schema.h"
#include "engine/store/migrate.h"
#include "engine/store/status_macros.h"
#include "engine/store/time_codec.h"

namespace kiln::store {

namespace {

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

}  // namespace

ActionCache::ActionCache(std::unique_ptr<Database> db) : db_(std::move(db)) {}

ActionCache::~ActionCache() = default;

absl::StatusOr<std::unique_ptr<ActionCache>> ActionCache::Open(
    const std::string& store_dir) {
  KILN_STORE_ASSIGN_OR_RETURN(
      std::unique_ptr<Database> db,
      OpenMigrated(store_dir, "action_cache.db", "action cache",
                   ActionCacheMigrations()));
  return std::unique_ptr<ActionCache>(new ActionCache(std::move(db)));
}

absl::Status ActionCache::Put(absl::string_view key,
                              const ActionResult& result) {
  KILN_STORE_RETURN_IF_ERROR(ValidateKey(key));
  const absl::Time created =
      result.created == absl::InfinitePast() ? absl::Now() : result.created;
  kiln::MutexLock lock(&mu_);
  Transaction txn(db_.get());
  KILN_STORE_RETURN_IF_ERROR(txn.Begin());
  {
    // Children go with the row (ON DELETE CASCADE).
    KILN_STORE_ASSIGN_OR_RETURN(
        Statement remove, db_->Prepare("DELETE FROM actions WHERE key = ?1"));
    remove.BindText(1, key);
    KILN_STORE_RETURN_IF_ERROR(remove.Run());
  }
  {
    KILN_STORE_ASSIGN_OR_RETURN(
        Statement insert,
        db_->Prepare("INSERT INTO actions (key, exit_code, log_digest,"
                     " log_path, created_us, pipeline_name, task_name, run_id)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
    insert.BindText(1, key)
        .Bind(2, result.exit_code)
        .BindText(3, result.log_digest)
        .BindText(4, result.log_path)
        .Bind(5, ToMicros(created))
        .BindText(6, result.pipeline_name)
        .BindText(7, result.task_name)
        .BindText(8, result.run_id);
    KILN_STORE_RETURN_IF_ERROR(insert.Run());
  }
  {
    KILN_STORE_ASSIGN_OR_RETURN(
        Statement insert,
        db_->Prepare("INSERT INTO action_values (key, kind, name, value)"
                     " VALUES (?1, ?2, ?3, ?4)"));
    for (const auto& [kind, map] :
         {std::make_pair("output", &result.outputs),
          std::make_pair("result", &result.results)}) {
      for (const auto& [name, value] : *map) {
        insert.BindText(1, key).BindText(2, kind).BindText(3, name).BindText(
            4, value);
        KILN_STORE_RETURN_IF_ERROR(insert.Run());
      }
    }
  }
  {
    KILN_STORE_ASSIGN_OR_RETURN(
        Statement insert,
        db_->Prepare("INSERT INTO action_components (key, position, name,"
                     " value_digest) VALUES (?1, ?2, ?3, ?4)"));
    for (size_t i = 0; i < result.components.size(); ++i) {
      insert.BindText(1, key)
          .Bind(2, static_cast<int64_t>(i))
          .BindText(3, result.components[i].name)
          .BindText(4, result.components[i].value_digest);
      KILN_STORE_RETURN_IF_ERROR(insert.Run());
    }
  }
  return txn.Commit();
}

absl::StatusOr<absl::optional<ActionResult>> ActionCache::LoadLocked(
    absl::string_view key, bool with_components) {
  ActionResult result;
  {
    KILN_STORE_ASSIGN_OR_RETURN(
        Statement stmt,
        db_->Prepare("SELECT exit_code, log_digest, log_path, created_us,"
                     " pipeline_name, task_name, run_id FROM actions"
                     " WHERE key = ?1"));
    stmt.BindText(1, key);
    KILN_STORE_ASSIGN_OR_RETURN(bool found, stmt.Step());
    if (!found) return absl::optional<ActionResult>();
    result.key = std::string(key);
    result.exit_code = static_cast<int32_t>(stmt.Int(0));
    result.log_digest = stmt.Text(1);
    result.log_path = stmt.Text(2);
    result.created = absl::FromUnixMicros(stmt.Int(3));
    result.pipeline_name = stmt.Text(4);
    result.task_name = stmt.Text(5);
    result.run_id = stmt.Text(6);
  }
  {
    KILN_STORE_ASSIGN_OR_RETURN(
        Statement stmt,
        db_->Prepare("SELECT kind, name, value FROM action_values"
                     " WHERE key = ?1"));
    stmt.BindText(1, key);
    while (true) {
      KILN_STORE_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      auto& map = stmt.Text(0) == "output" ? result.outputs : result.results;
      map[stmt.Text(1)] = stmt.Text(2);
    }
  }
  if (with_components) {
    KILN_STORE_ASSIGN_OR_RETURN(
        Statement stmt,
        db_->Prepare("SELECT name, value_digest FROM action_components"
                     " WHERE key = ?1 ORDER BY position"));
    stmt.BindText(1, key);
    while (true) {
      KILN_STORE_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      result.components.push_back(KeyComponent{stmt.Text(0), stmt.Text(1)});
    }
  }
  return absl::optional<ActionResult>(std::move(result));
}

absl::StatusOr<absl::optional<ActionResult>> ActionCache::Lookup(
    absl::string_view key, bool with_components) {
  KILN_STORE_RETURN_IF_ERROR(ValidateKey(key));
  kiln::MutexLock lock(&mu_);
  Transaction snapshot(db_.get());
  KILN_STORE_RETURN_IF_ERROR(snapshot.BeginRead());
  return LoadLocked(key, with_components);
}

absl::StatusOr<absl::optional<ActionResult>> ActionCache::LatestForTask(
    absl::string_view pipeline_name, absl::string_view task_name) {
  kiln::MutexLock lock(&mu_);
  Transaction snapshot(db_.get());
  KILN_STORE_RETURN_IF_ERROR(snapshot.BeginRead());
  std::string key;
  {
    KILN_STORE_ASSIGN_OR_RETURN(
        Statement stmt,
        db_->Prepare("SELECT key FROM actions WHERE pipeline_name = ?1 AND"
                     " task_name = ?2 ORDER BY created_us DESC, key DESC"
                     " LIMIT 1"));
    stmt.BindText(1, pipeline_name).BindText(2, task_name);
    KILN_STORE_ASSIGN_OR_RETURN(bool found, stmt.Step());
    if (!found) return absl::optional<ActionResult>();
    key = stmt.Text(0);
  }
  return LoadLocked(key, /*with_components=*/true);
}

absl::StatusOr<std::vector<std::string>> ActionCache::ReferencedDigests(
    absl::Time since) {
  kiln::MutexLock lock(&mu_);
  KILN_STORE_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT v.value FROM action_values v JOIN actions a"
                   " ON a.key = v.key WHERE v.kind = 'output'"
                   " AND a.created_us >= ?1"
                   " UNION SELECT log_digest FROM actions"
                   " WHERE log_digest != '' AND created_us >= ?1"
                   " ORDER BY 1"));
  stmt.Bind(1, since == absl::InfinitePast() ? INT64_MIN : ToMicros(since));
  std::vector<std::string> digests;
  while (true) {
    KILN_STORE_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    digests.push_back(stmt.Text(0));
  }
  return digests;
}

absl::StatusOr<int64_t> ActionCache::RemoveOlderThan(absl::Time before) {
  kiln::MutexLock lock(&mu_);
  KILN_STORE_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("DELETE FROM actions WHERE created_us < ?1"));
  stmt.Bind(1, ToMicros(before));
  KILN_STORE_RETURN_IF_ERROR(stmt.Run());
  return db_->Changes();
}

absl::StatusOr<int64_t> ActionCache::CountOlderThan(absl::Time before) {
  kiln::MutexLock lock(&mu_);
  KILN_STORE_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT count(*) FROM actions WHERE created_us < ?1"));
  stmt.Bind(1, ToMicros(before));
  KILN_STORE_ASSIGN_OR_RETURN(bool row, stmt.Step());
  return row ? stmt.Int(0) : 0;
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
