// RunStore: a task's attempts and their log references (run_store.h).
#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/store/run_store.h"

namespace kiln::store {

namespace {
std::atomic<AttemptReservedHook> attempt_reserved_hook{nullptr};
}  // namespace

void SetAttemptReservedHookForTesting(AttemptReservedHook hook) {
  attempt_reserved_hook.store(hook);
}

absl::Status RunStore::ReserveAttempt(absl::string_view run_id,
                                      absl::string_view task,
                                      uint32_t attempt) {
  if (attempt == 0) {
    return absl::InvalidArgumentError("ReserveAttempt: attempts count from 1");
  }
  {
    kiln::MutexLock lock(&mu_);
    Transaction txn(db_.get());
    KILN_RETURN_IF_ERROR(txn.Begin());
    KILN_RETURN_IF_ERROR(ReserveAttemptLocked(run_id, task, attempt));
    KILN_RETURN_IF_ERROR(txn.Commit());
  }
  if (AttemptReservedHook hook = attempt_reserved_hook.load()) {
    hook(run_id, task, attempt);
  }
  return absl::OkStatus();
}

absl::Status RunStore::ReserveAttemptLocked(absl::string_view run_id,
                                            absl::string_view task,
                                            uint32_t attempt) {
  {
    KILN_ASSIGN_OR_RETURN(
        Statement update,
        db_->Prepare("UPDATE tasks SET attempts = MAX(attempts, ?3)"
                     " WHERE run_id = ?1 AND name = ?2"));
    update.BindText(1, run_id).BindText(2, task).Bind(3, attempt);
    KILN_RETURN_IF_ERROR(update.Run());
    if (db_->Changes() == 0) {
      // A task the pipeline did not list (as ApplyEvent handles it).
      KILN_RETURN_IF_ERROR(CheckRunExists(run_id));
      KILN_ASSIGN_OR_RETURN(
          Statement add,
          db_->Prepare("INSERT INTO tasks (run_id, name, position, state,"
                       " attempts) VALUES (?1, ?2, (SELECT"
                       " COALESCE(MAX(position), -1) + 1 FROM tasks"
                       " WHERE run_id = ?1), ?3, ?4)"));
      add.BindText(1, run_id)
          .BindText(2, task)
          .Bind(3, v1::TASK_PENDING)
          .Bind(4, attempt);
      KILN_RETURN_IF_ERROR(add.Run());
    }
    KILN_ASSIGN_OR_RETURN(
        Statement insert,
        db_->Prepare("INSERT INTO attempts (run_id, task, attempt, state)"
                     " VALUES (?1, ?2, ?3, ?4)"
                     " ON CONFLICT (run_id, task, attempt) DO NOTHING"));
    insert.BindText(1, run_id)
        .BindText(2, task)
        .Bind(3, attempt)
        .Bind(4, v1::TASK_PENDING);
    KILN_RETURN_IF_ERROR(insert.Run());
  }
  return absl::OkStatus();
}

absl::Status RunStore::RecordAttemptLog(absl::string_view run_id,
                                        absl::string_view task,
                                        uint32_t attempt,
                                        absl::string_view log_path,
                                        int64_t bytes) {
  if (attempt == 0) {
    return absl::InvalidArgumentError(
        "RecordAttemptLog: attempts count from 1");
  }
  kiln::MutexLock lock(&mu_);
  Transaction txn(db_.get());
  KILN_RETURN_IF_ERROR(txn.Begin());
  {
    KILN_ASSIGN_OR_RETURN(
        Statement find,
        db_->Prepare("SELECT 1 FROM tasks WHERE run_id = ?1 AND name = ?2"));
    find.BindText(1, run_id).BindText(2, task);
    KILN_ASSIGN_OR_RETURN(bool found, find.Step());
    if (!found) {
      return absl::NotFoundError(
          absl::StrCat("run ", run_id, " has no task ", task));
    }
  }
  KILN_ASSIGN_OR_RETURN(
      Statement upsert,
      db_->Prepare("INSERT INTO attempts (run_id, task, attempt, state,"
                   " log_path, log_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                   " ON CONFLICT (run_id, task, attempt) DO UPDATE SET"
                   " log_path = excluded.log_path,"
                   " log_bytes = excluded.log_bytes"));
  upsert.BindText(1, run_id)
      .BindText(2, task)
      .Bind(3, attempt)
      .Bind(4, v1::TASK_PENDING)
      .BindText(5, log_path)
      .Bind(6, bytes);
  KILN_RETURN_IF_ERROR(upsert.Run());
  return txn.Commit();
}

absl::StatusOr<std::vector<AttemptLog>> RunStore::AttemptLogs(
    absl::string_view run_id, absl::string_view task) {
  kiln::MutexLock lock(&mu_);
  KILN_RETURN_IF_ERROR(CheckRunExists(run_id));
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT a.task, a.attempt, a.log_path, a.log_bytes"
                   " FROM attempts a JOIN tasks t"
                   " ON t.run_id = a.run_id AND t.name = a.task"
                   " WHERE a.run_id = ?1 AND a.log_path IS NOT NULL"
                   " AND (?2 = '' OR a.task = ?2)"
                   " ORDER BY t.position, a.attempt"));
  stmt.BindText(1, run_id).BindText(2, task);
  std::vector<AttemptLog> logs;
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    logs.push_back(AttemptLog{stmt.Text(0), static_cast<uint32_t>(stmt.Int(1)),
                              stmt.Text(2), stmt.Int(3)});
  }
  return logs;
}

}  // namespace kiln::store
