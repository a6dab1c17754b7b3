#include "executors/local_sandbox/sandbox_child.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/mount.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "executors/local_sandbox/sandbox_plan.h"

// The child shares the memory of a multithreaded process whose calling
// thread is suspended: sanitizer runtimes may hold locks or per-thread state
// that must not be touched, so the child is not instrumented and calls the
// kernel directly.
#if defined(__clang__)
#define KILN_SANDBOX_CHILD \
  __attribute__((no_sanitize("address", "thread", "undefined")))
#else
#define KILN_SANDBOX_CHILD __attribute__((no_sanitize_address))
#endif

namespace kiln {
namespace sandbox {
namespace {

const char* const kDevices[] = {"null", "zero", "full", "random", "urandom"};
constexpr int kDeviceCount = 5;

struct KernelSigaction {
  void* handler;
  unsigned long flags;
  void* restorer;
  uint64_t mask;
};

KILN_SANDBOX_CHILD size_t Length(const char* s) {
  size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

// Appends `s` to the NUL-terminated `buf` of `cap` bytes, truncating.
KILN_SANDBOX_CHILD void Append(char* buf, size_t cap, const char* s) {
  size_t n = Length(buf);
  while (*s != '\0' && n + 1 < cap) buf[n++] = *s++;
  buf[n] = '\0';
}

struct Child {
  const SandboxPlan* plan;
  int report_fd;
};

KILN_SANDBOX_CHILD void Report(int fd, int32_t kind, int32_t error,
                               const char* step, const char* detail) {
  ChildReport report;
  report.kind = kind;
  report.error = error;
  report.wait_status = 0;
  report.step[0] = '\0';
  Append(report.step, sizeof(report.step), step);
  if (detail != nullptr) {
    Append(report.step, sizeof(report.step), " ");
    Append(report.step, sizeof(report.step), detail);
  }
  syscall(SYS_write, fd, &report, sizeof(report));
}

// Reports a failed setup step (with errno) and ends the sandbox.
[[noreturn]] KILN_SANDBOX_CHILD void Fail(const Child& c, const char* step,
                                          const char* detail = nullptr) {
  int error = errno;
  Report(c.report_fd, ChildReport::kSetupFailed, error, step, detail);
  syscall(SYS_exit_group, kSetupExitCode);
  __builtin_unreachable();
}

// The path as the task will see it (without the assembly point).
KILN_SANDBOX_CHILD const char* Visible(const char* path) {
  size_t n = Length(kAssemblyPoint);
  for (size_t i = 0; i < n; ++i) {
    if (path[i] != kAssemblyPoint[i]) return path;
  }
  return path[n] == '\0' ? "/" : path + n;
}

KILN_SANDBOX_CHILD int Mount(const char* source, const char* target,
                             const char* type, unsigned long flags,
                             const char* data) {
  return static_cast<int>(
      syscall(SYS_mount, source, target, type, flags, data));
}

KILN_SANDBOX_CHILD int WriteFile(const char* path, const char* content) {
  int fd = static_cast<int>(
      syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CLOEXEC));
  if (fd < 0) return -1;
  size_t n = Length(content);
  long written = syscall(SYS_write, fd, content, n);
  int error = errno;
  syscall(SYS_close, fd);
  errno = error;
  return written == static_cast<long>(n) ? 0 : -1;
}

// mkdir -p; errors are left for the following mount to report.
KILN_SANDBOX_CHILD void MakeDirectories(const char* path, bool include_last) {
  char buf[PATH_MAX];
  buf[0] = '\0';
  Append(buf, sizeof(buf), path);
  size_t n = Length(buf);
  for (size_t i = 1; i < n; ++i) {
    if (buf[i] != '/') continue;
    buf[i] = '\0';
    syscall(SYS_mkdirat, AT_FDCWD, buf, 0755);
    buf[i] = '/';
  }
  if (include_last) syscall(SYS_mkdirat, AT_FDCWD, buf, 0755);
}

// An empty regular file to mount a file over (errors: see MakeDirectories).
KILN_SANDBOX_CHILD void MakeFile(const char* path) {
  MakeDirectories(path, false);
  int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, path,
                                    O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  if (fd >= 0) syscall(SYS_close, fd);
}

KILN_SANDBOX_CHILD void JoinPath(char* buf, size_t cap, const char* a,
                                 const char* b) {
  buf[0] = '\0';
  Append(buf, cap, a);
  Append(buf, cap, b);
}

KILN_SANDBOX_CHILD void ResetSignals() {
  KernelSigaction action = {};
  action.handler = nullptr;  // SIG_DFL
  for (int sig = 1; sig < 65; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    syscall(SYS_rt_sigaction, sig, &action, nullptr, 8);
  }
}

KILN_SANDBOX_CHILD void JoinCgroups(const Child& c) {
  for (int fd : c.plan->cgroup_procs_fds) {
    if (syscall(SYS_write, fd, "0", 1) != 1) Fail(c, "join cgroup");
  }
}

KILN_SANDBOX_CHILD void MapIdentity(const Child& c) {
  if (WriteFile("/proc/self/setgroups", "deny") != 0 && errno != ENOENT) {
    Fail(c, "write /proc/self/setgroups");
  }
  if (WriteFile("/proc/self/uid_map", c.plan->uid_map.c_str()) != 0) {
    Fail(c, "write /proc/self/uid_map");
  }
  if (WriteFile("/proc/self/gid_map", c.plan->gid_map.c_str()) != 0) {
    Fail(c, "write /proc/self/gid_map");
  }
}

// Leaves exactly: 0 = /dev/null, 1 = stdout pipe, 2 = stderr pipe,
// kReportFd = report pipe (inherited by init), kInitBinaryFd = the init
// binary (close-on-exec); everything else is closed.
KILN_SANDBOX_CHILD void ArrangeFds(Child& c) {
  const SandboxPlan& p = *c.plan;
  constexpr int kCount = 5;
  int moved[kCount];
  const int sources[kCount] = {p.stdin_fd, p.stdout_fd, p.stderr_fd,
                               p.report_fd, p.init_binary_fd};
  for (int i = 0; i < kCount; ++i) {
    moved[i] =
        static_cast<int>(syscall(SYS_fcntl, sources[i], F_DUPFD_CLOEXEC, 64));
    if (moved[i] < 0) Fail(c, "duplicate standard fds");
  }
  c.report_fd = moved[3];
  for (int i = 0; i < 3; ++i) {
    if (syscall(SYS_dup3, moved[i], i, 0) < 0) Fail(c, "dup3 standard fd");
  }
  if (syscall(SYS_dup3, moved[3], kReportFd, 0) < 0) Fail(c, "dup3 report fd");
  c.report_fd = kReportFd;
  if (syscall(SYS_dup3, moved[4], kInitBinaryFd, O_CLOEXEC) < 0) {
    Fail(c, "dup3 init binary fd");
  }
  if (syscall(SYS_close_range, kInitBinaryFd + 1, ~0U, 0) != 0) {
    Fail(c, "close inherited fds");
  }
}

KILN_SANDBOX_CHILD int CloneTree(const Child& c, const char* path,
                                 unsigned int recursive, const char* step) {
  int fd = static_cast<int>(
      syscall(SYS_open_tree, AT_FDCWD, path,
              OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | recursive));
  if (fd < 0) Fail(c, step, path);
  return fd;
}

KILN_SANDBOX_CHILD void SetAttributes(const Child& c, int tree, uint64_t set,
                                      const char* step) {
  struct mount_attr attr = {};
  attr.attr_set = set;
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr,
              sizeof(attr)) != 0) {
    Fail(c, step);
  }
}

KILN_SANDBOX_CHILD void Attach(const Child& c, int tree, const char* target,
                               const char* step) {
  if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target,
              MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    Fail(c, step, Visible(target));
  }
  syscall(SYS_close, tree);
}

KILN_SANDBOX_CHILD void Remount(const Child& c, const char* target,
                                unsigned long flags) {
  if (Mount(nullptr, target, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | flags,
            nullptr) != 0) {
    Fail(c, "remount read-only", Visible(target));
  }
}

// Appends the decimal `value` to the NUL-terminated `buf` of `cap` bytes.
// The parts of a procfs the kernel guards by file mode alone: owned by
// root, writable by their owner, no capability checked on write. A task's
// uid is the engine's (root when kiln runs as root), so from inside they
// would be writable: every sysctl under /proc/sys, the machine-wide ones
// included (kernel.core_pattern names a program the kernel runs as root
// on the host), interrupt affinities, /proc/sysrq-trigger. Each is bound
// over itself read-only. (The covered procfs is then not "fully visible",
// so the kernel also refuses a fresh, unprotected procfs to a nested user
// namespace.)
KILN_SANDBOX_CHILD void ProtectProc(const Child& c, const char* proc) {
  static const char* const kReadOnly[] = {
      "/sys", "/sysrq-trigger", "/irq", "/bus", "/fs", "/acpi"};
  for (const char* name : kReadOnly) {
    char path[PATH_MAX];
    JoinPath(path, sizeof(path), proc, name);
    int tree = static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, path,
                                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
    if (tree < 0) {
      if (errno == ENOENT) continue;  // not in this kernel
      Fail(c, "clone", Visible(path));
    }
    SetAttributes(c, tree,
                  MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                      MOUNT_ATTR_NOEXEC,
                  "make /proc part read-only");
    Attach(c, tree, path, "attach read-only /proc part at");
  }
}

KILN_SANDBOX_CHILD void AppendNumber(char* buf, size_t cap, unsigned value) {
  char digits[16];
  size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0 && n < sizeof(digits));
  char text[17];
  for (size_t i = 0; i < n; ++i) text[i] = digits[n - 1 - i];
  text[n] = '\0';
  Append(buf, cap, text);
}

// /dev under `root` (the assembly point, or "" once inside the new root).
KILN_SANDBOX_CHILD void BuildDev(const Child& c, const int* device_trees,
                                 const char* root = kAssemblyPoint) {
  char path[PATH_MAX];
  JoinPath(path, sizeof(path), root, "/dev");
  MakeDirectories(path, true);
  if (Mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NOEXEC,
            "mode=755,size=64k") != 0) {
    Fail(c, "mount tmpfs", "/dev");
  }
  for (int i = 0; i < kDeviceCount; ++i) {
    JoinPath(path, sizeof(path), root, "/dev/");
    Append(path, sizeof(path), kDevices[i]);
    int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, path,
                                      O_CREAT | O_WRONLY | O_CLOEXEC, 0666));
    if (fd < 0) Fail(c, "create device mountpoint", Visible(path));
    syscall(SYS_close, fd);
    Attach(c, device_trees[i], path, "bind device");
  }
  const char* const links[][2] = {{"/proc/self/fd", "/dev/fd"},
                                  {"/proc/self/fd/0", "/dev/stdin"},
                                  {"/proc/self/fd/1", "/dev/stdout"},
                                  {"/proc/self/fd/2", "/dev/stderr"}};
  for (const auto& link : links) {
    JoinPath(path, sizeof(path), root, link[1]);
    if (syscall(SYS_symlinkat, link[0], AT_FDCWD, path) != 0) {
      Fail(c, "symlink", link[1]);
    }
  }
  JoinPath(path, sizeof(path), root, "/dev/shm");
  if (syscall(SYS_mkdirat, AT_FDCWD, path, 01777) != 0) {
    Fail(c, "mkdir", "/dev/shm");
  }
}

KILN_SANDBOX_CHILD void BuildFilesystem(const Child& c) {
  const SandboxPlan& p = *c.plan;
  if (Mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    Fail(c, "make mounts private");
  }
  // Everything the new root is made of is cloned before anything is attached,
  // so no later mount can shadow a source path.
  int root = -1;
  if (!p.root_is_tmpfs) {
    root = CloneTree(c, p.root_source.c_str(), AT_RECURSIVE, "clone root");
    SetAttributes(c, root,
                  MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                  "make root read-only");
  }
  int workspace =
      CloneTree(c, p.workspace.c_str(), AT_RECURSIVE, "clone workspace");
  SetAttributes(c, workspace, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                "set workspace nosuid");
  int devices[kDeviceCount];
  char path[PATH_MAX];
  for (int i = 0; i < kDeviceCount; ++i) {
    JoinPath(path, sizeof(path), "/dev/", kDevices[i]);
    devices[i] = CloneTree(c, path, 0, "clone device");
  }
  int binds[kMaxMounts];
  const size_t mount_count = p.mounts.size();
  for (size_t i = 0; i < mount_count; ++i) {
    const MountOp& op = p.mounts[i];
    binds[i] = -1;
    if (op.kind != MountOp::Kind::kBind) continue;
    binds[i] =
        CloneTree(c, op.source.c_str(), op.is_file ? 0 : AT_RECURSIVE, "clone");
    SetAttributes(c, binds[i],
                  MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                  "make bind read-only");
  }
  if (p.root_is_tmpfs) {
    if (Mount("tmpfs", kAssemblyPoint, "tmpfs", MS_NOSUID | MS_NODEV,
              "mode=755,size=1m,nr_inodes=4096") != 0) {
      Fail(c, "mount tmpfs", "/");
    }
    JoinPath(path, sizeof(path), kAssemblyPoint, "/proc");
    MakeDirectories(path, true);
  } else {
    Attach(c, root, kAssemblyPoint, "attach root at");
  }

  BuildDev(c, devices);
  JoinPath(path, sizeof(path), kAssemblyPoint, "/proc");
  if (Mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) !=
      0) {
    Fail(c, "mount proc", "/proc");
  }
  ProtectProc(c, path);
  char dev_null[PATH_MAX];
  JoinPath(dev_null, sizeof(dev_null), kAssemblyPoint, "/dev/null");
  for (size_t i = 0; i < mount_count; ++i) {
    const MountOp& op = p.mounts[i];
    const char* target = op.target.c_str();
    switch (op.kind) {
      case MountOp::Kind::kTmpfs:
        MakeDirectories(target, true);
        if (Mount("tmpfs", target, "tmpfs", op.flags, op.data.c_str()) != 0) {
          Fail(c, "mount tmpfs", Visible(target));
        }
        break;
      case MountOp::Kind::kBind:
        if (op.is_file) {
          MakeFile(target);
        } else {
          MakeDirectories(target, true);
        }
        Attach(c, binds[i], target, "bind");
        break;
      case MountOp::Kind::kSymlink:
        MakeDirectories(target, false);
        if (syscall(SYS_symlinkat, op.source.c_str(), AT_FDCWD, target) != 0) {
          Fail(c, "symlink", Visible(target));
        }
        break;
      case MountOp::Kind::kWorkspace:
        MakeDirectories(target, true);
        Attach(c, workspace, target, "mount workspace at");
        break;
      case MountOp::Kind::kDevNullFile:
        MakeDirectories(target, false);
        if (Mount(dev_null, target, nullptr, MS_BIND, nullptr) != 0) {
          Fail(c, "hide file", Visible(target));
        }
        break;
    }
  }
  JoinPath(path, sizeof(path), kAssemblyPoint, "/dev");
  Remount(c, path, MS_NOSUID | MS_NOEXEC);
  for (const MountOp& op : p.mounts) {
    if (op.remount_read_only) Remount(c, op.target.c_str(), op.flags);
  }
  if (p.root_is_tmpfs) Remount(c, kAssemblyPoint, MS_NOSUID | MS_NODEV);

  if (syscall(SYS_chdir, kAssemblyPoint) != 0) Fail(c, "chdir new root");
  if (syscall(SYS_pivot_root, ".", ".") != 0) Fail(c, "pivot_root");
  if (syscall(SYS_umount2, ".", MNT_DETACH) != 0) Fail(c, "detach old root");
  if (syscall(SYS_chdir, "/") != 0) Fail(c, "chdir /");
}

// Image mode. The layers are opened here, in the sandbox's own mount
// namespace (overlayfs refuses a layer reached through a descriptor of
// another namespace), and named to overlayfs as /proc/self/fd/N, so no
// mount made below can shadow a layer path. The writable layer lives on a
// private tmpfs that disappears with the sandbox. Everything inside the
// image (mountpoints, /dev, /proc, the workspace) is made after pivot_root,
// where a symlink of the image resolves within the image, never on the host.
KILN_SANDBOX_CHILD void BuildImageFilesystem(const Child& c) {
  const SandboxPlan& p = *c.plan;
  syscall(SYS_umask, 022);
  if (Mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    Fail(c, "make mounts private");
  }
  int layers[kMaxImageLayers];
  const size_t layer_count = p.layer_paths.size();
  if (layer_count == 0 || layer_count > kMaxImageLayers) {
    errno = EINVAL;
    Fail(c, "image layer count");
  }
  for (size_t i = 0; i < layer_count; ++i) {
    layers[i] =
        static_cast<int>(syscall(SYS_openat, AT_FDCWD, p.layer_paths[i].c_str(),
                                 O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (layers[i] < 0) Fail(c, "open image layer", p.layer_paths[i].c_str());
  }
  int workspace =
      CloneTree(c, p.workspace.c_str(), AT_RECURSIVE, "clone workspace");
  SetAttributes(c, workspace, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                "set workspace nosuid");
  int devices[kDeviceCount];
  char path[PATH_MAX];
  for (int i = 0; i < kDeviceCount; ++i) {
    JoinPath(path, sizeof(path), "/dev/", kDevices[i]);
    devices[i] = CloneTree(c, path, 0, "clone device");
  }
  int binds[kMaxMounts];
  const size_t mount_count = p.mounts.size();
  for (size_t i = 0; i < mount_count; ++i) {
    const MountOp& op = p.mounts[i];
    binds[i] = -1;
    if (op.kind != MountOp::Kind::kBind) continue;
    if (op.writable) {
      // A volume: read-write, never reached through a symlink.
      binds[i] = CloneTree(c, op.source.c_str(),
                           AT_RECURSIVE | AT_SYMLINK_NOFOLLOW, "clone volume");
      SetAttributes(c, binds[i], MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                    "set volume nosuid");
      continue;
    }
    binds[i] =
        CloneTree(c, op.source.c_str(), op.is_file ? 0 : AT_RECURSIVE, "clone");
    SetAttributes(c, binds[i],
                  MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                  "make bind read-only");
  }
  // /proc of the new pid namespace, made while the host's /proc is still
  // visible in this mount namespace (the kernel requires one) and attached
  // inside the image later.
  int proc_context =
      static_cast<int>(syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC));
  if (proc_context < 0) Fail(c, "fsopen proc");
  if (syscall(SYS_fsconfig, proc_context, FSCONFIG_CMD_CREATE, nullptr, nullptr,
              0) != 0) {
    Fail(c, "create proc");
  }
  int proc = static_cast<int>(
      syscall(SYS_fsmount, proc_context, FSMOUNT_CLOEXEC,
              MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  if (proc < 0) Fail(c, "mount proc");
  syscall(SYS_close, proc_context);

  if (Mount("tmpfs", kAssemblyPoint, "tmpfs", MS_NOSUID | MS_NODEV,
            p.upper_tmpfs_data.c_str()) != 0) {
    Fail(c, "mount tmpfs", "for the writable layer");
  }
  char upper[PATH_MAX], work[PATH_MAX];
  JoinPath(upper, sizeof(upper), kAssemblyPoint, "/upper");
  JoinPath(work, sizeof(work), kAssemblyPoint, "/work");
  if (syscall(SYS_mkdirat, AT_FDCWD, upper, 0755) != 0 ||
      syscall(SYS_mkdirat, AT_FDCWD, work, 0755) != 0) {
    Fail(c, "mkdir writable layer");
  }
  // lowerdir lists the top layer first.
  char data[4096];
  data[0] = '\0';
  Append(data, sizeof(data), "lowerdir=");
  for (size_t i = 0; i < layer_count; ++i) {
    if (i > 0) Append(data, sizeof(data), ":");
    Append(data, sizeof(data), "/proc/self/fd/");
    AppendNumber(data, sizeof(data), static_cast<unsigned>(layers[i]));
  }
  Append(data, sizeof(data), ",upperdir=");
  Append(data, sizeof(data), upper);
  Append(data, sizeof(data), ",workdir=");
  Append(data, sizeof(data), work);
  // In a user namespace overlayfs keeps its whiteout/opaque marks in
  // user.overlay.* xattrs (the layers carry them, see image_access.h).
  Append(data, sizeof(data), ",userxattr");
  if (Length(data) + 1 >= sizeof(data)) {
    errno = E2BIG;
    Fail(c, "overlay options");
  }
  if (Mount("overlay", kAssemblyPoint, "overlay", MS_NOSUID | MS_NODEV, data) !=
      0) {
    Fail(c, "mount overlay of the image layers");
  }
  for (size_t i = 0; i < layer_count; ++i) syscall(SYS_close, layers[i]);

  if (syscall(SYS_chdir, kAssemblyPoint) != 0) Fail(c, "chdir new root");
  if (syscall(SYS_pivot_root, ".", ".") != 0) Fail(c, "pivot_root");
  if (syscall(SYS_umount2, ".", MNT_DETACH) != 0) Fail(c, "detach old root");
  if (syscall(SYS_chdir, "/") != 0) Fail(c, "chdir /");

  // Inside the image from here on.
  BuildDev(c, devices, "");
  MakeDirectories("/proc", true);
  if (syscall(SYS_move_mount, proc, "", AT_FDCWD, "/proc",
              MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    Fail(c, "attach proc at", "/proc");
  }
  syscall(SYS_close, proc);
  ProtectProc(c, "/proc");
  for (size_t i = 0; i < mount_count; ++i) {
    const MountOp& op = p.mounts[i];
    const char* target = op.target.c_str();
    switch (op.kind) {
      case MountOp::Kind::kTmpfs:
        MakeDirectories(target, true);
        if (Mount("tmpfs", target, "tmpfs", op.flags, op.data.c_str()) != 0) {
          Fail(c, "mount tmpfs", target);
        }
        break;
      case MountOp::Kind::kBind:
        if (op.is_file) {
          MakeFile(target);
        } else {
          MakeDirectories(target, true);
        }
        if (syscall(SYS_move_mount, binds[i], "", AT_FDCWD, target,
                    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS) != 0) {
          Fail(c, "bind", target);
        }
        syscall(SYS_close, binds[i]);
        break;
      case MountOp::Kind::kWorkspace:
        MakeDirectories(target, true);
        // A symlink of the image is followed, inside the image (the
        // host's root is gone).
        if (syscall(SYS_move_mount, workspace, "", AT_FDCWD, target,
                    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS) != 0) {
          Fail(c, "mount workspace at", target);
        }
        syscall(SYS_close, workspace);
        break;
      case MountOp::Kind::kSymlink:
      case MountOp::Kind::kDevNullFile:
        errno = EINVAL;
        Fail(c, "unexpected mount in image mode", target);
    }
  }
  Remount(c, "/dev", MS_NOSUID | MS_NOEXEC);
}

// Image mode: the executor (outside the namespace) writes the uid/gid maps
// and then the errno of that (0 = done).
KILN_SANDBOX_CHILD void WaitForMaps(const Child& c) {
  // This mount namespace still shows the host's /proc: "self" names this
  // process by its pid outside the new pid namespace.
  char pid[32];
  long length =
      syscall(SYS_readlinkat, AT_FDCWD, "/proc/self", pid, sizeof(pid));
  if (length <= 0 || length >= static_cast<long>(sizeof(pid))) {
    Fail(c, "readlink /proc/self");
  }
  if (syscall(SYS_write, c.plan->map_ready_fd, pid, length) != length) {
    Fail(c, "ask for the uid/gid maps");
  }
  syscall(SYS_close, c.plan->map_ready_fd);
  int32_t error = 0;
  long n = syscall(SYS_read, c.plan->map_wait_fd, &error, sizeof(error));
  if (n != static_cast<long>(sizeof(error))) {
    errno = n < 0 ? errno : EPIPE;
    Fail(c, "wait for the uid/gid maps");
  }
  if (error != 0) {
    errno = error;
    Fail(c, "write uid/gid maps (by the executor)");
  }
  syscall(SYS_close, c.plan->map_wait_fd);
}

KILN_SANDBOX_CHILD void BringUpLoopback(const Child& c) {
  int fd = static_cast<int>(
      syscall(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd < 0) Fail(c, "socket for loopback");
  struct ifreq ifr = {};
  ifr.ifr_name[0] = 'l';
  ifr.ifr_name[1] = 'o';
  if (syscall(SYS_ioctl, fd, SIOCGIFFLAGS, &ifr) != 0) Fail(c, "get lo flags");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (syscall(SYS_ioctl, fd, SIOCSIFFLAGS, &ifr) != 0) Fail(c, "bring up lo");
  syscall(SYS_close, fd);
}

KILN_SANDBOX_CHILD void ApplyRlimit(const Child& c, int resource,
                                    uint64_t value, const char* step) {
  if (value == 0) return;
  struct rlimit limit = {value, value};
  if (syscall(SYS_prlimit64, 0, resource, &limit, nullptr) != 0) Fail(c, step);
}

KILN_SANDBOX_CHILD void DropPrivileges(const Child& c) {
  for (unsigned long cap = 0; cap <= c.plan->last_capability; ++cap) {
    if (syscall(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 &&
        errno != EINVAL) {
      Fail(c, "drop bounding capability");
    }
  }
  if (syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) !=
          0 &&
      errno != EINVAL) {
    Fail(c, "clear ambient capabilities");
  }
  if (c.plan->image) {
    // The image's user; the capabilities still held allow it, and going
    // to a non-zero uid clears them (the capset below clears them for 0).
    const SandboxPlan& p = *c.plan;
    if (syscall(SYS_setgroups, p.groups.size(), p.groups.data()) != 0) {
      Fail(c, "setgroups");
    }
    if (syscall(SYS_setresgid, p.gid, p.gid, p.gid) != 0) Fail(c, "setresgid");
    if (syscall(SYS_setresuid, p.uid, p.uid, p.uid) != 0) Fail(c, "setresuid");
  }
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capset, &header, data) != 0) Fail(c, "capset");
  if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    Fail(c, "set no_new_privs");
  }
}

// Landlock's ruleset attributes up to ABI 6 (the `scoped` field is newer
// than some installed headers).
struct LandlockRulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};
constexpr uint64_t kLandlockScopeAbstractUnixSocket = 1;

// A task in the executor's shared network namespace gets its own Landlock
// domain that may connect only to abstract unix sockets made inside it
// (inherited by everything the task starts), so concurrent tasks cannot
// reach each other's. After DropPrivileges: needs no_new_privs.
KILN_SANDBOX_CHILD void ScopeAbstractSockets(const Child& c) {
  LandlockRulesetAttr attr = {0, 0, kLandlockScopeAbstractUnixSocket};
  int ruleset = static_cast<int>(
      syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0));
  if (ruleset < 0) Fail(c, "landlock_create_ruleset");
  if (syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) {
    Fail(c, "landlock_restrict_self");
  }
  syscall(SYS_close, ruleset);
}

// The engine's death must end the task: ask for SIGIO when the report
// pipe's last reader closes (O_ASYNC on the write end; the flag and the
// owner survive the exec of init, which takes the signal).
// PR_SET_PDEATHSIG would tie the task to the starting *thread*.
KILN_SANDBOX_CHILD void WatchEngine(const Child& c) {
  long flags = syscall(SYS_fcntl, c.report_fd, F_GETFL);
  if (flags < 0 ||
      syscall(SYS_fcntl, c.report_fd, F_SETOWN, syscall(SYS_getpid)) != 0 ||
      syscall(SYS_fcntl, c.report_fd, F_SETFL, flags | O_ASYNC) != 0) {
    Fail(c, "fcntl O_ASYNC on the report pipe");
  }
}

}  // namespace

KILN_SANDBOX_CHILD int SandboxSetupMain(void* arg) {
  Child c{static_cast<const SandboxPlan*>(arg), -1};
  c.report_fd = c.plan->report_fd;
  // Every signal arrives blocked (the executor blocks them around clone())
  // and stays blocked across the exec of init; dispositions inherited from
  // the host process are reset.
  ResetSignals();
  WatchEngine(c);
  JoinCgroups(c);
  if (c.plan->image) {
    WaitForMaps(c);
  } else {
    MapIdentity(c);
  }
  ArrangeFds(c);
  if (c.plan->image) {
    BuildImageFilesystem(c);
  } else {
    BuildFilesystem(c);
  }
  if (syscall(SYS_sethostname, "kiln-sandbox", 12) != 0) Fail(c, "sethostname");
  if (c.plan->new_network) BringUpLoopback(c);
  if (syscall(SYS_chdir, c.plan->cwd.c_str()) != 0) {
    Fail(c, "chdir", c.plan->cwd.c_str());
  }
  ApplyRlimit(c, RLIMIT_AS, c.plan->rlimit_as, "setrlimit RLIMIT_AS");
  ApplyRlimit(c, RLIMIT_NPROC, c.plan->rlimit_nproc, "setrlimit RLIMIT_NPROC");
  // A fixed umask: the host's must not change the modes of what the task
  // creates (reproducible archives, cache keys).
  syscall(SYS_umask, 022);
  if (syscall(SYS_setsid) < 0) Fail(c, "setsid");
  DropPrivileges(c);
  if (c.plan->scope_abstract_sockets) ScopeAbstractSockets(c);
  syscall(SYS_execveat, kInitBinaryFd, "", c.plan->init_argv.data(),
          c.plan->envp.data(), AT_EMPTY_PATH);
  Fail(c, "exec", kInitBinaryName);
}

}  // namespace sandbox
}  // namespace kiln
