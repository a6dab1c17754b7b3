// Per-execution cgroup v1 directories (memory and pids controllers) under a
// `kiln` parent, e.g. /sys/fs/cgroup/memory/kiln/<name>. The sandbox child
// joins them itself through the pre-opened cgroup.procs fds, so no round trip
// with the parent is needed. Not thread-safe per object; distinct objects are
// independent.
#ifndef KILN_EXECUTORS_LOCAL_SANDBOX_CGROUP_H_
#define KILN_EXECUTORS_LOCAL_SANDBOX_CGROUP_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kiln {
namespace sandbox {

// OK when `root`/{memory,pids}/`parent` exist (or could be created) and are
// writable; otherwise why not (e.g. read-only /sys/fs/cgroup in a sandbox).
absl::Status ProbeCgroups(const std::string& root, const std::string& parent);

// Removes the task cgroup directories under `root`/{memory,pids}/`parent`
// whose owner is dead. Task cgroups are named "<engine pid>-..."; one whose
// engine pid no longer exists (e.g. the engine was SIGKILLed) is stale. A
// directory that still holds processes cannot be removed and is kept.
// Returns how many directories were removed.
int RemoveStaleCgroups(const std::string& root, const std::string& parent);

class TaskCgroup {
 public:
  // Creates the directories and writes the limits (0 = unlimited; pids
  // counts the sandbox's pid 1 too, so the limit written is max_pids + 1).
  static absl::StatusOr<std::unique_ptr<TaskCgroup>> Create(
      const std::string& root, const std::string& parent,
      const std::string& name, uint64_t memory_bytes, uint32_t max_pids);
  // Removes the directories (best effort, retried briefly while busy).
  ~TaskCgroup();

  // Open O_WRONLY cgroup.procs fds for the child to write "0" into.
  const std::vector<int>& procs_fds() const { return procs_fds_; }
  void CloseProcsFds();

  // After the task is gone:
  uint64_t OomKills() const;        // memory.oom_control "oom_kill"
  uint64_t PidsLimitHits() const;   // pids.events "max"
  uint64_t MaxMemoryUsage() const;  // memory.max_usage_in_bytes

 private:
  TaskCgroup() = default;
  std::vector<std::string> dirs_;
  std::string memory_dir_;
  std::string pids_dir_;
  std::vector<int> procs_fds_;
};

}  // namespace sandbox
}  // namespace kiln

#endif  // KILN_EXECUTORS_LOCAL_SANDBOX_CGROUP_H_
