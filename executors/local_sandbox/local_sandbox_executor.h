// LocalSandboxExecutor runs each command in fresh Linux namespaces (user,
// mount, pid, ipc, uts and, unless request.network, net) created by one
// in-process clone():
//   - the root is the host's / (or request.rootfs), recursively read-only,
//     nosuid and nodev;
//   - request.workspace is mounted read-write at the SAME path inside; it is
//     the only writable place besides the private tmpfs /tmp and /dev/shm;
//     the command runs in workspace/workdir;
//   - a fresh /proc (only the task's processes), a minimal /dev (null, zero,
//     full, random, urandom; no tty), hidden paths covered by empty
//     read-only tmpfs (files: by /dev/null);
//   - no network but a loopback interface; fds 0 (/dev/null), 1, 2 (pipes)
//     only; exactly request.env; a new session (no controlling tty);
//     no capabilities (bounding set empty) and no_new_privs;
//   - pid 1 of the namespace is the executor's own init: when the command
//     exits, every other process of the task is killed.
// Limits: wall timeout (SIGTERM to every task process, SIGKILL after
// kill_grace), memory and pids through per-execution cgroup v1 directories
// (or, when cgroups are unavailable, RLIMIT_AS and RLIMIT_NPROC, the latter
// ineffective for uid 0, as the result message says), log size (SIGKILL once
// max_log_bytes is exceeded).
//
// Output is read on one thread per execution, which also delivers lines to
// the sink; a sink that blocks stalls the reading, the task then blocks on a
// full pipe (64 KiB), and the timeout is only enforced after the sink
// returns. Sinks must therefore be quick (buffer, don't do I/O that can hang).
//
// Thread-safety: Start() may be called concurrently from any threads.
#ifndef KILN_EXECUTORS_LOCAL_SANDBOX_LOCAL_SANDBOX_EXECUTOR_H_
#define KILN_EXECUTORS_LOCAL_SANDBOX_LOCAL_SANDBOX_EXECUTOR_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "executors/executor.h"

namespace kiln {

struct LocalSandboxOptions {
  enum class Cgroups {
    kAuto,     // use cgroups when writable, else the rlimit fallback
    kRequire,  // Create() fails when cgroups are not usable
    kOff,      // always the rlimit fallback
  };
  // Paths covered by an empty read-only tmpfs inside the sandbox. Missing
  // paths are skipped. Default: DefaultHiddenPaths(store_dir).
  std::vector<std::string> hidden_paths;
  Cgroups cgroups = Cgroups::kAuto;
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string cgroup_parent = "kiln";
  // Lines longer than this are split.
  size_t max_line_bytes = 64 * 1024;
  // Used when a request leaves limits.kill_grace unset.
  absl::Duration default_kill_grace = absl::Seconds(2);
};

// $HOME, /root, /home and `store_dir` (when not empty).
std::vector<std::string> DefaultHiddenPaths(const std::string& store_dir);

class LocalSandboxExecutor : public Executor {
 public:
  // Fails (Unavailable) when cgroups are required but not usable.
  static absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>> Create(
      LocalSandboxOptions options);

  std::string Name() const override { return "local-sandbox"; }
  // "linux/<arch>/local-sandbox/v1/<root policy>".
  std::string Platform() const override;
  absl::StatusOr<std::unique_ptr<Execution>> Start(
      const v1::ExecRequest& request, OutputSink* sink) override;

  // True when memory/pids limits are enforced by cgroups.
  bool cgroups_active() const { return cgroups_active_; }
  // Why cgroups are not used (empty when they are).
  const std::string& cgroup_fallback_reason() const {
    return cgroup_fallback_reason_;
  }

 private:
  explicit LocalSandboxExecutor(LocalSandboxOptions options);

  LocalSandboxOptions options_;
  bool cgroups_active_ = false;
  std::string cgroup_fallback_reason_;
  unsigned long last_capability_ = 40;
  std::atomic<uint64_t> next_id_{0};
};

}  // namespace kiln

#endif  // KILN_EXECUTORS_LOCAL_SANDBOX_LOCAL_SANDBOX_EXECUTOR_H_
