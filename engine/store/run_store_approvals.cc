// RunStore: approval gates (the approvals table, schema 5).
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/store/run_store.h"

namespace kiln::store {

absl::Status RunStore::RecordApproval(absl::string_view run_id,
                                      absl::string_view task,
                                      const v1::ApprovalStatus& approval) {
  kiln::MutexLock lock(&mu_);
  Transaction txn(db_.get());
  KILN_RETURN_IF_ERROR(txn.Begin());
  {
    KILN_ASSIGN_OR_RETURN(
        Statement exists,
        db_->Prepare("SELECT 1 FROM tasks WHERE run_id = ?1 AND name = ?2"));
    exists.BindText(1, run_id).BindText(2, task);
    KILN_ASSIGN_OR_RETURN(bool found, exists.Step());
    if (!found) {
      KILN_RETURN_IF_ERROR(CheckRunExists(run_id));
      return absl::NotFoundError(
          absl::StrCat("run ", run_id, " has no task ", task));
    }
  }
  KILN_RETURN_IF_ERROR(RecordApprovalLocked(run_id, task, approval));
  return txn.Commit();
}

absl::Status RunStore::RecordApprovalLocked(
    absl::string_view run_id, absl::string_view task,
    const v1::ApprovalStatus& approval) {
  std::string record;
  if (!approval.SerializeToString(&record)) {
    return absl::InvalidArgumentError("RecordApproval: cannot serialize");
  }
  // An undecided record (a waiting event applied after the decision was
  // recorded) never replaces a decision.
  KILN_ASSIGN_OR_RETURN(
      Statement upsert,
      db_->Prepare("INSERT INTO approvals (run_id, task, decided, record)"
                   " VALUES (?1, ?2, ?3, ?4)"
                   " ON CONFLICT (run_id, task) DO UPDATE SET"
                   " decided = excluded.decided, record = excluded.record"
                   " WHERE excluded.decided = 1 OR approvals.decided = 0"));
  upsert.BindText(1, run_id)
      .BindText(2, task)
      .Bind(3, approval.decided() ? 1 : 0)
      .BindBlob(4, record);
  return upsert.Run();
}

absl::Status RunStore::LoadApprovals(
    absl::string_view run_id,
    const absl::flat_hash_map<std::string, v1::TaskStatus*>& by_name) {
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT task, record FROM approvals WHERE run_id = ?1"));
  stmt.BindText(1, run_id);
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    auto it = by_name.find(stmt.Text(0));
    if (it == by_name.end()) continue;
    if (!it->second->mutable_approval()->ParseFromString(stmt.Blob(1))) {
      return absl::DataLossError(absl::StrCat("run ", run_id, ": task ",
                                              stmt.Text(0),
                                              ": unreadable approval record"));
    }
  }
  return absl::OkStatus();
}

}  // namespace kiln::store
