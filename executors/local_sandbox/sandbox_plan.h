// What the sandbox child does, prepared completely by the parent before
// clone(): every path, argv and env string, every fd. The child shares the
// memory of a multithreaded process, so it may only read this plan and make
// system calls (no allocation, no locks).
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
// At most this many mounts under the new root (the child keeps one fd per
// mount on its stack).
inline constexpr size_t kMaxMounts = 64;
// At most this many layers in an image (the child keeps one fd per layer on
// its stack and names them all in one overlay mount option page).
inline constexpr size_t kMaxImageLayers = 128;
// Where the workspace appears in image mode when the image names no working
// directory (or "/").
inline constexpr char kDefaultImageWorkdir[] = "/workspace";

// One mount made under the new root, in order.
struct MountOp {
  enum class Kind {
    kTmpfs,       // tmpfs at target (options in `data`)
    kBind,        // `source` (a host path) bound read-only, nosuid, nodev
    kSymlink,     // a symlink at target with contents `source`
    kWorkspace,   // the cloned workspace tree, attached at target
    kDevNullFile  // /dev/null bound over a hidden regular file
  };
  Kind kind = Kind::kTmpfs;
  std::string target;  // absolute, under the assembly point
  std::string data;    // tmpfs options
  unsigned long flags = 0;
  bool remount_read_only = false;  // after everything is mounted
  std::string source;              // kBind, kSymlink
  bool is_file = false;            // kBind of a single file
  bool writable = false;           // kBind of a volume: read-write
};

// Image mode: a host directory bound read-write (nosuid, nodev) at an
// absolute path inside, after the workspace (ancestors first), e.g. a pod's
// emptyDir volumes. `host` must be a real directory path (no symlink in
// it); the bind never follows a symlink.
struct VolumeMount {
  std::string host;
  std::string target;
};

// Host paths and options that shape the sandbox; built by the executor.
struct PlanOptions {
  // Host trees visible (read-only) in the host-root mode; everything else
  // of the host is absent. Symlinks are recreated as symlinks.
  std::vector<std::string> root_paths;
  // Covered by an empty read-only tmpfs (files: by /dev/null) when they
  // exist and are inside a visible tree; absolute, normalized.
  std::vector<std::string> hidden_paths;
  bool cgroups_active = false;         // limits enforced by a cgroup
  unsigned long last_capability = 40;  // /proc/sys/kernel/cap_last_cap
  uint64_t tmp_bytes = 0;              // size of each private tmpfs; 0 = none
  uint64_t rlimit_as = 0;              // fallback limits (0 = none)
  uint64_t rlimit_nproc = 0;
  // Image mode (request.image set): the root is an overlay of these layer
  // directories (host paths, bottom first; read-only lower layers) under a
  // per-task writable layer on a private tmpfs of tmp_bytes.
  bool image = false;
  std::vector<std::string> layer_dirs;
  std::vector<std::string> image_env;  // "KEY=VALUE", under request.env
  std::string image_workdir;           // absolute; "" = kDefaultImageWorkdir
  uint32_t uid = 0;                    // the task's identity in the image
  uint32_t gid = 0;
  std::vector<uint32_t> groups;      // supplementary groups
  std::vector<VolumeMount> volumes;  // image mode only
};

struct SandboxPlan {
  // Everything as std::string (owned) plus the char* views the child uses.
  bool root_is_tmpfs = true;  // host mode: a fresh tmpfs with allowed binds
  std::string root_source;    // the request's rootfs (when !root_is_tmpfs)
  std::string workspace;      // realpath of request.workspace (host view)
  std::string cwd;            // inside the sandbox
  std::vector<std::string> argv_storage;
  std::vector<std::string> env_storage;
  std::vector<std::string> init_argv_storage;
  std::vector<char*> init_argv;  // null-terminated; see sandbox_protocol.h
  std::vector<char*> envp;       // null-terminated
  std::vector<MountOp> mounts;   // at most kMaxMounts
  std::string uid_map;           // "UID UID 1"
  std::string gid_map;
  // Image mode: the layers (host paths, TOP first), the options of the
  // tmpfs holding the writable layer, the workspace's mount target inside,
  // and the task's identity. The child writes its pid (decimal, as the
  // host sees it) to map_ready_fd; the executor then writes the uid/gid
  // maps (an identity map of its ids, which only a process outside the
  // namespace may write) and a 4-byte errno (0 = written) to map_wait_fd,
  // which the child reads before it goes on.
  bool image = false;
  std::vector<std::string> layer_paths;
  std::string upper_tmpfs_data;
  std::string workspace_target;
  int map_ready_fd = -1;
  int map_wait_fd = -1;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<gid_t> groups;
  bool new_network = true;
  // The task shares the executor's empty network namespace: its abstract
  // unix sockets are scoped to it with Landlock (set by the executor).
  bool scope_abstract_sockets = false;
  unsigned long last_capability = 40;
  // rlimit fallback (0 = none).
  uint64_t rlimit_as = 0;
  uint64_t rlimit_nproc = 0;

  // Filled by the executor right before clone().
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  int report_fd = -1;
  int init_binary_fd = -1;  // O_PATH fd of kiln-sandbox-init
  std::vector<int> cgroup_procs_fds;
};

// The host trees visible in the host-root mode by default: /usr, /bin,
// /sbin, /lib* and /etc.
std::vector<std::string> DefaultRootPaths();

// The image's working directory (where the workspace is mounted) as a clean
// absolute path; "" or "/" gives kDefaultImageWorkdir. InvalidArgument when
// relative, with "..", or under /proc or /dev.
absl::StatusOr<std::string> ImageWorkdir(const std::string& workdir);

// The identity map the executor writes for an image-mode sandbox, from its
// own /proc/self/uid_map or gid_map ("first first count" per range it
// has; on a host's root user namespace "0 0 4294967295"). "" on error.
std::string ImageIdMap(const std::string& own_map_file);

// Validates `request` and builds the plan. InvalidArgument for a malformed
// request (empty argv, relative or missing workspace, workdir escaping the
// workspace, bad env names) or volume (host path not a real directory,
// target not a clean absolute path, under /proc or /dev, or twice).
absl::StatusOr<std::unique_ptr<SandboxPlan>> BuildSandboxPlan(
    const v1::ExecRequest& request, const PlanOptions& options);

}  // namespace sandbox
}  // namespace kiln

#endif  // KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_PLAN_H_
