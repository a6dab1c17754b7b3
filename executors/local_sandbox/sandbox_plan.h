// What the sandbox child does, prepared completely by the parent before
// clone(): every path, argv and env string, every fd. The child runs in a copy
// of a multithreaded process, so it may only read this plan and make system
// calls (no allocation, no locks).
#ifndef KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_PLAN_H_
#define KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_PLAN_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kiln/v1/exec.pb.h"

namespace kiln {
namespace sandbox {

// Where the new root is attached (in the sandbox's own mount namespace)
// while it is being assembled, before pivot_root.
inline constexpr char kAssemblyPoint[] = "/tmp";

// One mount made under the new root, in order.
struct MountOp {
  enum class Kind {
    kTmpfs,       // tmpfs at target (options in `data`)
    kWorkspace,   // the cloned workspace tree, attached at target
    kDevNullFile  // /dev/null bound over a hidden regular file
  };
  Kind kind;
  std::string target;  // absolute, under the assembly point
  std::string data;    // tmpfs options
  unsigned long flags = 0;
  bool remount_read_only = false;  // after everything is mounted
};

// Host paths and options that shape the sandbox; built by the executor.
struct PlanOptions {
  std::vector<std::string> hidden_paths;  // realpath'd, absolute
  bool cgroups_active = false;            // limits enforced by a cgroup
  unsigned long last_capability = 40;     // /proc/sys/kernel/cap_last_cap
};

struct SandboxPlan {
  // Everything as std::string (owned) plus the char* views the child uses.
  std::string root_source;  // "/" or the request's rootfs
  std::string workspace;    // realpath of request.workspace (host view)
  std::string cwd;          // inside the sandbox
  std::vector<std::string> exec_candidates;  // argv[0] resolved over PATH
  std::vector<std::string> argv_storage;
  std::vector<std::string> env_storage;
  std::vector<char*> argv;  // null-terminated
  std::vector<char*> envp;  // null-terminated
  std::vector<MountOp> mounts;
  std::string uid_map;  // "UID UID 1"
  std::string gid_map;
  bool new_network = true;
  unsigned long last_capability = 40;
  // rlimit fallback (0 = none).
  uint64_t rlimit_as = 0;
  uint64_t rlimit_nproc = 0;

  // Filled by the executor right before clone().
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  int report_fd = -1;
  std::vector<int> cgroup_procs_fds;
  // Stack for the CLONE_VM|CLONE_VFORK child that execs the command.
  std::unique_ptr<char[]> exec_stack;
  size_t exec_stack_size = 0;
};

// Validates `request` and builds the plan. InvalidArgument for a malformed
// request (empty argv, relative or missing workspace, workdir escaping the
// workspace, bad env names).
absl::StatusOr<std::unique_ptr<SandboxPlan>> BuildSandboxPlan(
    const v1::ExecRequest& request, const PlanOptions& options);

}  // namespace sandbox
}  // namespace kiln

#endif  // KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_PLAN_H_
