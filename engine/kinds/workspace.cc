#include "engine/kinds/workspace.h"

#include "absl/strings/str_cat.h"
#include "engine/cas/file_io.h"
#include "engine/store/log_file.h"

namespace kiln::kinds {

ScopedWorkDir::ScopedWorkDir(KindEnv* env, const v1::Task& task, int attempt,
                             bool keep)
    : env_(env), task_(task.name()), attempt_(attempt), keep_(keep) {
  const TaskRunnerContext& ctx = env->ctx();
  parent_ = absl::StrCat(ctx.store_dir, "/work/", ctx.run_id);
  name_ = absl::StrCat(store::SafeFileName(task.name()), ".", attempt);
  path_ = absl::StrCat(parent_, "/", name_);
}

absl::Status ScopedWorkDir::Create() {
  const TaskRunnerContext& ctx = env_->ctx();
  absl::StatusOr<cas::UniqueFd> store = cas::OpenTrustedDir(ctx.store_dir);
  if (!store.ok()) return store.status();
  absl::StatusOr<cas::UniqueFd> parent = cas::MakeDirsBeneath(
      store->get(), absl::StrCat("work/", ctx.run_id), 0755);
  if (!parent.ok()) return parent.status();
  parent_fd_ = std::move(*parent);
  // A leftover of a killed engine: MakeDirAt reports it if it stays.
  cas::RemoveTreeAt(parent_fd_.get(), name_).IgnoreError();
  absl::StatusOr<cas::UniqueFd> dir =
      cas::MakeDirAt(parent_fd_.get(), name_, 0755);
  if (!dir.ok()) return dir.status();
  fd_ = std::move(*dir);
  return absl::OkStatus();
}

ScopedWorkDir::~ScopedWorkDir() {
  if (keep_ || parent_fd_.get() < 0 || fd_.get() < 0) return;
  fd_ = cas::UniqueFd();
  absl::Status removed = cas::RemoveTreeAt(parent_fd_.get(), name_);
  if (!removed.ok()) {
    env_->Warn(task_, attempt_,
               absl::StrCat("could not remove the work directory ", path_, ": ",
                            removed.message()));
  }
}

}  // namespace kiln::kinds
