// RunStore: secret params at rest (see run_store.h).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/store/key_file.h"
#include "engine/store/run_store.h"

namespace kiln::store {
namespace {

// What a sealed value is bound to: its run and param.
std::string Aad(absl::string_view run_id, absl::string_view name) {
  return absl::StrCat(run_id, std::string(1, '\0'), name);
}

}  // namespace

v1::Trigger RedactSecretParams(const v1::Pipeline& pipeline,
                               const v1::Trigger& trigger) {
  v1::Trigger out = trigger;
  for (const v1::Param& p : pipeline.params()) {
    if (!p.secret()) continue;
    auto it = out.mutable_params()->find(p.name());
    if (it != out.mutable_params()->end()) it->second = kSecretPlaceholder;
  }
  return out;
}

absl::StatusOr<std::string> RunStore::ParamsKeyLocked() {
  if (params_key_.empty()) {
    KILN_ASSIGN_OR_RETURN(
        params_key_,
        LoadOrCreateKey(
            absl::StrCat(store_dir_, "/params.key"),
            "secret params of runs recorded before cannot be decrypted: "
            "resuming or retrying those runs fails; start them anew"));
  }
  return params_key_;
}

absl::Status RunStore::SealSecretsLocked(absl::string_view run_id,
                                         const v1::Pipeline& pipeline,
                                         const v1::Trigger& trigger) {
  absl::optional<Statement> insert;
  for (const v1::Param& p : pipeline.params()) {
    if (!p.secret()) continue;
    auto it = trigger.params().find(p.name());
    if (it == trigger.params().end()) continue;
    KILN_ASSIGN_OR_RETURN(std::string key, ParamsKeyLocked());
    KILN_ASSIGN_OR_RETURN(std::string sealed,
                          SealValue(key, it->second, Aad(run_id, p.name())));
    if (!insert.has_value()) {
      KILN_ASSIGN_OR_RETURN(
          Statement stmt,
          db_->Prepare("INSERT INTO run_secrets (run_id, name, sealed)"
                       " VALUES (?1, ?2, ?3)"));
      insert.emplace(std::move(stmt));
    }
    insert->BindText(1, run_id).BindText(2, p.name()).BindBlob(3, sealed);
    KILN_RETURN_IF_ERROR(insert->Run());
  }
  return absl::OkStatus();
}

absl::Status RunStore::ResealPlaintextSecrets() {
  kiln::MutexLock lock(&mu_);
  std::vector<std::string> pending;
  {
    KILN_ASSIGN_OR_RETURN(Statement stmt,
                          db_->Prepare("SELECT run_id FROM reseal_pending"));
    while (true) {
      KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      pending.push_back(stmt.Text(0));
    }
  }
  if (pending.empty()) return absl::OkStatus();
  // Pages that held plaintext are zeroed when they are rewritten or freed,
  // and the checkpoint below copies them over the old ones in runs.db.
  KILN_RETURN_IF_ERROR(db_->Exec("PRAGMA secure_delete = ON"));
  absl::Status first;
  for (const std::string& run_id : pending) {
    absl::Status s = ResealRunLocked(run_id);
    if (!s.ok() && first.ok()) first = s;
  }
  // Blocked by another process's open read, the checkpoint copies what it
  // can now and the rest at a later checkpoint.
  absl::Status checkpoint = db_->Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  KILN_RETURN_IF_ERROR(db_->Exec("PRAGMA secure_delete = OFF"));
  if (first.ok()) first = checkpoint;
  return first;
}

absl::Status RunStore::ResealRunLocked(absl::string_view run_id) {
  Transaction txn(db_.get());
  KILN_RETURN_IF_ERROR(txn.Begin());
  KILN_ASSIGN_OR_RETURN(Statement stmt,
                        db_->Prepare("SELECT trigger FROM runs WHERE id = ?1"));
  stmt.BindText(1, run_id);
  KILN_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (found) {
    v1::Trigger trigger;
    if (!trigger.ParseFromString(stmt.Blob(0))) {
      return absl::DataLossError(
          absl::StrCat("run ", run_id, ": unreadable trigger"));
    }
    KILN_ASSIGN_OR_RETURN(v1::Pipeline pipeline, GetPipelineLocked(run_id));
    v1::Trigger redacted = RedactSecretParams(pipeline, trigger);
    bool plaintext = false;
    for (const v1::Param& p : pipeline.params()) {
      auto it = trigger.params().find(p.name());
      if (p.secret() && it != trigger.params().end() &&
          it->second != kSecretPlaceholder) {
        plaintext = true;
      }
    }
    if (plaintext) {
      // Seal what is not sealed yet (a sealed value is authoritative).
      v1::Pipeline unsealed = pipeline;
      unsealed.clear_params();
      for (const v1::Param& p : pipeline.params()) {
        if (!p.secret()) continue;
        KILN_ASSIGN_OR_RETURN(Statement has,
                              db_->Prepare("SELECT 1 FROM run_secrets"
                                           " WHERE run_id = ?1 AND name = ?2"));
        has.BindText(1, run_id).BindText(2, p.name());
        KILN_ASSIGN_OR_RETURN(bool sealed, has.Step());
        if (!sealed) *unsealed.add_params() = p;
      }
      KILN_RETURN_IF_ERROR(SealSecretsLocked(run_id, unsealed, trigger));
      std::string bytes;
      if (!redacted.SerializeToString(&bytes)) {
        return absl::InternalError("cannot serialize a trigger");
      }
      KILN_ASSIGN_OR_RETURN(
          Statement update,
          db_->Prepare("UPDATE runs SET trigger = ?2 WHERE id = ?1"));
      update.BindText(1, run_id).BindBlob(2, bytes);
      KILN_RETURN_IF_ERROR(update.Run());
    }
  }
  KILN_ASSIGN_OR_RETURN(
      Statement done,
      db_->Prepare("DELETE FROM reseal_pending WHERE run_id = ?1"));
  done.BindText(1, run_id);
  KILN_RETURN_IF_ERROR(done.Run());
  return txn.Commit();
}

absl::StatusOr<v1::Trigger> RunStore::GetTriggerWithSecrets(
    absl::string_view run_id) {
  kiln::MutexLock lock(&mu_);
  Transaction snapshot(db_.get());
  KILN_RETURN_IF_ERROR(snapshot.BeginRead());
  v1::Trigger trigger;
  {
    KILN_ASSIGN_OR_RETURN(
        Statement stmt, db_->Prepare("SELECT trigger FROM runs WHERE id = ?1"));
    stmt.BindText(1, run_id);
    KILN_ASSIGN_OR_RETURN(bool found, stmt.Step());
    if (!found) return absl::NotFoundError(absl::StrCat("no run ", run_id));
    if (!trigger.ParseFromString(stmt.Blob(0))) {
      return absl::DataLossError(
          absl::StrCat("run ", run_id, ": unreadable trigger record"));
    }
  }
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT name, sealed FROM run_secrets WHERE run_id = ?1"));
  stmt.BindText(1, run_id);
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    const std::string name = stmt.Text(0);
    KILN_ASSIGN_OR_RETURN(std::string key, ParamsKeyLocked());
    absl::StatusOr<std::string> value =
        OpenSealedValue(key, stmt.Blob(1), Aad(run_id, name));
    if (!value.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run ", run_id, ": secret param '", name,
          "' cannot be decrypted with ", store_dir_,
          "/params.key (replaced since the run was created?): ",
          value.status().message(), "; start a new run with the secret"));
    }
    (*trigger.mutable_params())[name] = *value;
  }
  return trigger;
}

}  // namespace kiln::store
