// Per-attempt scratch directories under <store>/work/<run>/: created
// fresh, removed when the attempt ends (unless kept); a removal that fails
// is reported on the task's log, never silently left behind.
#ifndef KILN_ENGINE_KINDS_WORKSPACE_H_
#define KILN_ENGINE_KINDS_WORKSPACE_H_

#include <string>

#include "absl/status/statusor.h"
#include "engine/cas/beneath.h"
#include "engine/kinds/kind_env.h"

namespace kiln::kinds {

class ScopedWorkDir {
 public:
  // Names the directory for this attempt (nothing is created yet).
  ScopedWorkDir(KindEnv* env, const v1::Task& task, int attempt, bool keep);
  // Removes it (unless kept), warning on the task's log if that fails.
  ~ScopedWorkDir();
  ScopedWorkDir(const ScopedWorkDir&) = delete;
  ScopedWorkDir& operator=(const ScopedWorkDir&) = delete;

  // Opens the run's work directory (mode 0755) and creates this one afresh
  // (a leftover of an earlier process is removed first).
  absl::Status Create();

  const std::string& path() const { return path_; }      // shown path
  const std::string& parent() const { return parent_; }  // shown parent
  const std::string& name() const { return name_; }
  int parent_fd() const { return parent_fd_.get(); }
  int fd() const { return fd_.get(); }

 private:
  KindEnv* env_;
  std::string task_;
  int attempt_;
  bool keep_;
  std::string path_, parent_, name_;
  cas::UniqueFd parent_fd_, fd_;
};

}  // namespace kiln::kinds

#endif  // KILN_ENGINE_KINDS_WORKSPACE_H_
