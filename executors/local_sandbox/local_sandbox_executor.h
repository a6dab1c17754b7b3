// LocalSandboxExecutor runs each command in fresh Linux namespaces (user,
// mount, pid, ipc, uts and, unless request.network, net). The threat model
// and the exact policy are in docs/h-sandbox.md; in short:
//   - host mode (no request.rootfs): the root is a fresh read-only tmpfs
//     holding read-only, nosuid, nodev binds of an allow-list of host trees
//     (root_paths: /usr, /bin, /sbin, /lib*, /etc) and nothing else of the
//     host: no store, no $HOME, no other workspace, no host socket under
//     /run, /var or /tmp exists inside, whether it exists yet or not;
//     hidden_paths inside those trees (e.g. /etc/shadow) are covered by an
//     empty read-only tmpfs (files: by /dev/null);
//   - rootfs mode: request.rootfs, recursively read-only, nosuid, nodev;
//   - image mode (request.image, docs/image-sandbox.md): the image is
//     prepared through an ImageAccess (LocalSandboxOptions.images, or
//     HostWorkspaceOptions.images per request); the root is an overlay of
//     its layer directories (read-only) under a per-task writable layer on
//     a private tmpfs (of tmp_bytes) that vanishes with the sandbox; the
//     workspace is mounted at the image's working directory (default
//     /workspace), the image's env is under the request's, and the task
//     runs as the image's user. An image that cannot be prepared is the
//     result INPUTS_FAILED ("image 'REF': ..."): nothing runs, never on the
//     host;
//   - the workspace (request.workspace, or in the location-independent mode
//     a fresh directory under work_root, staged through `artifacts` and
//     removed afterwards: executors/host_workspace.h) is mounted read-write
//     at the SAME path inside; it is
//     the only writable place besides the private tmpfs /tmp, /var/tmp,
//     /run and /dev/shm (each of at most tmp_bytes); the command runs in
//     workspace/workdir with umask 022 (the host's umask does not leak in);
//   - a fresh /proc (only the task's processes), a minimal /dev (null, zero,
//     full, random, urandom; no tty), no /sys;
//   - no network but a loopback interface (or, with kSharedEmpty, no
//     usable interface at all); fds 0 (/dev/null), 1, 2 (pipes)
//     only; exactly request.env; a new session (no controlling tty);
//     no capabilities (bounding set empty), no_new_privs and a seccomp
//     filter (sandbox_init.cc);
//   - pid 1 of the namespace is kiln-sandbox-init, a small static binary
//     exec'd before any task code runs (no copy of the engine's memory is
//     reachable), non-dumpable: the task cannot ptrace it or read its
//     memory. When the command exits, every other process of the task is
//     killed; when the engine dies, the task is killed.
// Limits (request value, else the engine's DefaultLimits): wall timeout
// (SIGTERM to every task process, SIGKILL after kill_grace), memory and pids
// through per-execution cgroup v1 directories (or, when cgroups are
// unavailable, only explicit request limits as RLIMIT_AS and RLIMIT_NPROC,
// the latter ineffective for uid 0, as the result message says), /tmp size,
// log size (SIGKILL once max_log_bytes is exceeded).
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
#include "executors/artifact_access.h"
#include "executors/executor.h"
#include "executors/local_sandbox/network_pool.h"

namespace kiln {

struct LocalSandboxOptions {
  enum class Cgroups {
    kAuto,     // use cgroups when writable, else the rlimit fallback
    kRequire,  // Create() fails when cgroups are not usable
    kOff,      // always the rlimit fallback
  };
  // Limits for a request that leaves one unset (zero). Every task is
  // bounded: overridable per engine here and per task in ExecLimits.
  struct DefaultLimits {
    absl::Duration timeout = absl::Hours(4);
    // Enforced only with cgroups (as RLIMIT_AS it would break programs that
    // reserve address space, e.g. JVMs and sanitized binaries).
    uint64_t memory_bytes = uint64_t{8} << 30;
    uint32_t max_pids = 1024;  // with cgroups only (see RLIMIT_NPROC)
    uint64_t tmp_bytes = uint64_t{1} << 30;  // each of /tmp, /var/tmp, ...
  };
  // Host trees visible read-only in host mode. Empty: DefaultRootPaths().
  std::vector<std::string> root_paths;
  // Paths inside the visible trees covered by an empty read-only tmpfs
  // (files: /dev/null). Paths that do not exist (yet) are checked again at
  // every Start(). Default: DefaultHiddenPaths(store_dir).
  std::vector<std::string> hidden_paths;
  DefaultLimits default_limits;
  Cgroups cgroups = Cgroups::kAuto;
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string cgroup_parent = "kiln";
  // The kiln-sandbox-init binary. Empty: $KILN_SANDBOX_INIT (an absolute
  // path), next to the running executable,
  // then in an install tree's libexec/kiln/ (seen from the executable and
  // from libkiln.so), then in Bazel runfiles; Create() fails when it is not
  // found.
  std::string init_binary;
  // Lines longer than this are split.
  size_t max_line_bytes = 64 * 1024;
  // Used when a request leaves limits.kill_grace unset.
  absl::Duration default_kill_grace = absl::Seconds(2);
  // Location-independent requests (no request.workspace): where their
  // workspaces are made (absolute; created if missing) and how inputs are
  // materialized and outputs captured (must outlive the executor). Without
  // `artifacts`, such requests are refused with InvalidArgument.
  std::string work_root;
  ArtifactAccess* artifacts = nullptr;
  // Prepares request.image (must outlive the executor). Without it (and
  // without HostWorkspaceOptions.images), requests naming an image are
  // refused with InvalidArgument. Capabilities().images is true when set.
  ImageAccess* images = nullptr;
  // Image mode only: host directories bound read-write at absolute paths
  // inside every task, after the workspace, ancestors first (a pod's
  // emptyDir volumes, for a kubelet running containers with this
  // sandbox). Each host path must be a directory reached without a symlink
  // (the bind never follows one). A request in host or rootfs mode is
  // refused when volumes are set.
  struct Volume {
    std::string host;
    std::string target;
  };
  std::vector<Volume> volumes;
  // Tasks without `network`: kPerTask (the documented default) runs each
  // alone in a network namespace with its own loopback, up, and nothing
  // else: namespaces are made in this process's user namespace (where
  // tasks hold no capability) and reused from one task to the next when
  // the earlier task left no socket, TIME_WAIT connection or IP fragment
  // in it (network_pool.h; at most max_idle_network_namespaces kept).
  // When none can be made (no CAP_SYS_ADMIN), the task makes a new
  // namespace of its own as it starts. kFreshPerTask: a new
  // namespace for every task, never reused (the cost of making and
  // tearing one down each time: bench/README.md, B2).
  // kSharedEmpty makes
  // ONE empty network namespace at Create() and starts every such task in
  // it: no interface but `lo`, which stays down and which no task can bring
  // up (the namespace belongs to this process's user namespace, where tasks
  // hold no capability), so nothing is reachable over IP, not even
  // 127.0.0.1; the abstract unix sockets that namespace shares are scoped
  // per task with Landlock (LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET), so a task
  // cannot connect to another task's. Needs
  // CAP_SYS_ADMIN (setns) and Landlock ABI >= 6 (Linux 6.12); without them
  // Create() keeps kPerTask and says why in network_fallback_reason().
  enum class NetworkNamespaces { kPerTask, kFreshPerTask, kSharedEmpty };
  NetworkNamespaces network_namespaces = NetworkNamespaces::kPerTask;
  size_t max_idle_network_namespaces = 8;
};

// /usr, /bin, /sbin, /lib, /lib32, /lib64, /libx32, /etc.
std::vector<std::string> DefaultRootPaths();
// Secrets under /etc (shadow files, ssh host keys, TLS private keys,
// sudoers), $HOME, /root, /home and `store_dir` (when not empty).
std::vector<std::string> DefaultHiddenPaths(const std::string& store_dir);

// Cancels `execution` (started by a LocalSandboxExecutor) with `grace`
// between SIGTERM and SIGKILL instead of the request's kill_grace, as a
// kubelet honours a deletion's grace period. Other executions: Cancel().
void CancelWithGrace(Execution* execution, absl::Duration grace);

class LocalSandboxExecutor : public Executor {
 public:
  // Fails (Unavailable) when cgroups are required but not usable, and
  // (FailedPrecondition) when kiln-sandbox-init cannot be found. With
  // cgroups, removes the task cgroups left behind by dead engines.
  static absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>> Create(
      LocalSandboxOptions options);
  ~LocalSandboxExecutor() override;

  std::string Name() const override { return "local-sandbox"; }
  // "linux/<arch>/local-sandbox/v3", with "+empty-net" when tasks share
  // the empty network namespace (no loopback: a different environment).
  std::string Platform() const override;
  // images: true when LocalSandboxOptions.images is set.
  ExecutorCapabilities Capabilities() const override;
  absl::StatusOr<std::unique_ptr<Execution>> Start(
      const v1::ExecRequest& request, OutputSink* sink) override;
  absl::StatusOr<std::unique_ptr<Execution>> StartStaged(
      const v1::ExecRequest& request, OutputSink* sink,
      const HostWorkspaceOptions& host) override;

  // True when memory/pids limits are enforced by cgroups.
  bool cgroups_active() const { return cgroups_active_; }
  // Why cgroups are not used (empty when they are).
  const std::string& cgroup_fallback_reason() const {
    return cgroup_fallback_reason_;
  }
  // The init binary in use.
  const std::string& init_binary() const { return init_binary_; }
  // How many stale task cgroup directories Create() removed.
  int stale_cgroups_removed() const { return stale_cgroups_removed_; }
  // True when tasks without `network` share the executor's empty network
  // namespace (LocalSandboxOptions::NetworkNamespaces::kSharedEmpty).
  bool shared_network_active() const { return shared_netns_fd_ >= 0; }
  // True when tasks without `network` get namespaces from the pool
  // (kPerTask); its counts (all 0 otherwise).
  bool network_pool_active() const { return netns_pool_ != nullptr; }
  sandbox::NetworkNamespacePool::Stats network_pool_stats() const {
    return netns_pool_ != nullptr ? netns_pool_->stats()
                                  : sandbox::NetworkNamespacePool::Stats();
  }
  // Why kSharedEmpty was asked for but is not used (empty otherwise).
  const std::string& network_fallback_reason() const {
    return network_fallback_reason_;
  }

 private:
  explicit LocalSandboxExecutor(LocalSandboxOptions options);
  struct Image;
  // Starts a request whose workspace exists (`image`: null in host mode).
  absl::StatusOr<std::unique_ptr<Execution>> StartPrepared(
      const v1::ExecRequest& request, OutputSink* sink, const Image* image);

  LocalSandboxOptions options_;
  bool cgroups_active_ = false;
  std::string cgroup_fallback_reason_;
  std::string init_binary_;
  int init_binary_fd_ = -1;  // O_PATH
  int stale_cgroups_removed_ = 0;
  unsigned long last_capability_ = 40;
  // Image mode's uid/gid maps: every id this process has, identically.
  std::string image_uid_map_;
  std::string image_gid_map_;
  std::atomic<uint64_t> next_id_{0};
  // kSharedEmpty: the empty network namespace (-1: tasks get their own).
  int shared_netns_fd_ = -1;
  // kPerTask: the namespaces lent to tasks (null: a new one each time).
  std::shared_ptr<sandbox::NetworkNamespacePool> netns_pool_;
  std::string network_fallback_reason_;
};

}  // namespace kiln

#endif  // KILN_EXECUTORS_LOCAL_SANDBOX_LOCAL_SANDBOX_EXECUTOR_H_
