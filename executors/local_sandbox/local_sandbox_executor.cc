#include "executors/local_sandbox/local_sandbox_executor.h"

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/landlock.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "base/status.h"
#include "executors/host_workspace.h"
#include "executors/local_sandbox/cgroup.h"
#include "executors/local_sandbox/image_user.h"
#include "executors/local_sandbox/sandbox_child.h"
#include "executors/local_sandbox/sandbox_execution.h"
#include "executors/local_sandbox/sandbox_plan.h"
#include "executors/local_sandbox/shared_network.h"

namespace kiln {
namespace {

constexpr size_t kSetupStackBytes = 256 * 1024;

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

unsigned long ReadLastCapability() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  unsigned long value = 0;
  if (in >> value) return value;
  return 63;  // PR_CAPBSET_DROP of an unknown capability fails with EINVAL
}

// Absolute and, when the path exists, resolved; a path that does not exist
// yet is kept (BuildSandboxPlan resolves it again at every Start()).
std::vector<std::string> NormalizePaths(const std::vector<std::string>& paths) {
  std::vector<std::string> normalized;
  for (const std::string& path : paths) {
    if (path.empty() || path[0] != '/') continue;
    char buf[PATH_MAX];
    normalized.emplace_back(realpath(path.c_str(), buf) != nullptr ? buf
                                                                   : path);
  }
  return normalized;
}

// Closes every fd in `fds` that is still open.
void CloseAll(std::initializer_list<int> fds) {
  for (int fd : fds) {
    if (fd >= 0) close(fd);
  }
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// Where kiln-sandbox-init may be: next to the executable, then the Bazel
// runfiles of the executable (or of the test).
std::vector<std::string> InitBinaryCandidates() {
  std::vector<std::string> candidates;
  // In runfiles: kiln's own workspace (or its sources as @kiln), and an
  // installed tree used as the repository @kiln (PREFIX/share/kiln/bazel,
  // docs/embedding.md), whose libexec/ is the installed one.
  const std::string relatives[] = {
      absl::StrCat("kiln/executors/local_sandbox/", sandbox::kInitBinaryName),
      absl::StrCat("kiln/libexec/kiln/", sandbox::kInitBinaryName)};
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  std::string self = n > 0 ? std::string(exe, static_cast<size_t>(n)) : "";
  // Set by whoever starts the program (a statically linked embedder that
  // does not live in PREFIX/bin: kiln.pc's `sandbox_init` variable).
  if (const char* env = getenv("KILN_SANDBOX_INIT");
      env != nullptr && env[0] == '/') {
    candidates.push_back(env);
  }
  // An installed kiln (docs/embedding.md): PREFIX/libexec/kiln/, seen from
  // PREFIX/bin/ (the kiln executable, or a program linking libkiln.a) and
  // from PREFIX/lib/ (libkiln.so, wherever the program lives).
  const std::string installed =
      absl::StrCat("/../libexec/kiln/", sandbox::kInitBinaryName);
  if (!self.empty()) {
    candidates.push_back(
        absl::StrCat(Dirname(self), "/", sandbox::kInitBinaryName));
    candidates.push_back(absl::StrCat(Dirname(self), installed));
  }
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&InitBinaryCandidates), &info) != 0 &&
      info.dli_fname != nullptr && info.dli_fname[0] == '/' &&
      info.dli_fname != self) {
    candidates.push_back(absl::StrCat(Dirname(info.dli_fname), installed));
    // Loaded through a link (a Bazel consumer's _solib directory, a
    // distribution's library directory): the installed tree it belongs to.
    char real[PATH_MAX];
    if (realpath(info.dli_fname, real) != nullptr &&
        info.dli_fname != std::string(real)) {
      candidates.push_back(absl::StrCat(Dirname(real), installed));
    }
  }
  for (const std::string& relative : relatives) {
    for (const char* var : {"RUNFILES_DIR", "TEST_SRCDIR"}) {
      if (const char* dir = getenv(var); dir != nullptr && dir[0] != '\0') {
        candidates.push_back(absl::StrCat(dir, "/", relative));
      }
    }
    if (!self.empty()) {
      candidates.push_back(absl::StrCat(self, ".runfiles/", relative));
    }
  }
  return candidates;
}

// Opens the init binary (O_PATH); FailedPrecondition naming every place
// looked at when there is none.
absl::StatusOr<int> OpenInitBinary(const std::string& configured,
                                   std::string* found) {
  std::vector<std::string> candidates =
      configured.empty() ? InitBinaryCandidates()
                         : std::vector<std::string>{configured};
  for (const std::string& candidate : candidates) {
    struct stat st;
    if (stat(candidate.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
        access(candidate.c_str(), X_OK) != 0) {
      continue;
    }
    int fd = open(candidate.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) continue;
    *found = candidate;
    return fd;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the sandbox init binary ", sandbox::kInitBinaryName,
      " was not found (looked at: ", absl::StrJoin(candidates, ", "),
      "); install it next to the kiln executable or set "
      "LocalSandboxOptions.init_binary"));
}

#if defined(__x86_64__)
// clone3() with `fn(arg)` run on args->stack in the child, which exits with
// its result. Raw, because sanitizer runtimes intercept libc's clone() and
// treat it as a fork (ThreadSanitizer aborts on a CLONE_VM child).
long Clone3(struct clone_args* args, int (*fn)(void*), void* arg) {
  register long number asm("rax") = SYS_clone3;
  register struct clone_args* a asm("rdi") = args;
  register size_t size asm("rsi") = sizeof(*args);
  register int (*function)(void*) asm("r12") = fn;
  register void* argument asm("r13") = arg;
  asm volatile(
      "syscall\n"
      "test %%rax, %%rax\n"
      "jnz 1f\n"
      // The child, on its own stack.
      "xor %%ebp, %%ebp\n"
      "mov %%r13, %%rdi\n"
      "call *%%r12\n"
      "mov %%eax, %%edi\n"
      "mov %[exit], %%eax\n"
      "syscall\n"
      "hlt\n"
      "1:\n"
      : "+r"(number)
      : "r"(a), "r"(size), "r"(function), "r"(argument), [exit] "i"(SYS_exit)
      : "rcx", "r11", "memory");
  return number;
}
#endif

// Starts `fn(plan)` in a child on `stack` with the clone `flags`; returns
// the pid (or -1 with errno) and the child's pidfd in *pidfd.
pid_t StartChild(int (*fn)(void*), void* plan, char* stack, size_t size,
                 uint64_t flags, int* pidfd) {
#if defined(__x86_64__)
  struct clone_args args = {};
  args.flags = flags | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(pidfd);
  args.exit_signal = SIGCHLD;
  args.stack = reinterpret_cast<uint64_t>(stack);
  args.stack_size = size;
  long pid = Clone3(&args, fn, plan);
  if (pid < 0) {
    errno = static_cast<int>(-pid);
    return -1;
  }
  return static_cast<pid_t>(pid);
#else
  return clone(fn, stack + size,
               static_cast<int>(flags) | CLONE_PIDFD | SIGCHLD, plan, pidfd);
#endif
}

// Makes the tree at `dir_fd` (the workspace, before the task runs) owned
// by uid:gid, so that an image's non-root user can write it. Never follows
// a symlink (a link itself is re-owned).
absl::Status ChownTree(int dir_fd, uint32_t uid, uint32_t gid, int depth) {
  if (fchown(dir_fd, uid, gid) != 0) return ErrnoStatus(errno, "chown");
  if (depth > 256) {
    return absl::FailedPreconditionError("the workspace is nested too deeply");
  }
  int list_fd = dup(dir_fd);
  if (list_fd < 0) return ErrnoStatus(errno, "dup");
  DIR* dir = fdopendir(list_fd);
  if (dir == nullptr) {
    int error = errno;
    close(list_fd);
    return ErrnoStatus(error, "fdopendir");
  }
  absl::Status status;
  while (status.ok()) {
    errno = 0;
    struct dirent* entry = readdir(dir);
    if (entry == nullptr) {
      if (errno != 0) status = ErrnoStatus(errno, "readdir");
      break;
    }
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      status = ErrnoStatus(errno, absl::StrCat("stat ", name));
    } else if (S_ISDIR(st.st_mode)) {
      int child = openat(dir_fd, name.c_str(),
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child < 0) {
        status = ErrnoStatus(errno, absl::StrCat("open ", name));
      } else {
        status = ChownTree(child, uid, gid, depth + 1);
        close(child);
      }
    } else if (fchownat(dir_fd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) !=
               0) {
      status = ErrnoStatus(errno, absl::StrCat("chown ", name));
    }
  }
  closedir(dir);
  return status;
}

// Writes the image-mode id maps to the child's uid_map and gid_map;
// returns 0 or the errno.
int WriteIdMaps(pid_t pid, const std::string& uid_map,
                const std::string& gid_map) {
  for (const auto& [file, map] :
       {std::pair<const char*, const std::string*>{"uid_map", &uid_map},
        {"gid_map", &gid_map}}) {
    if (map->empty()) return EINVAL;
    std::string path = absl::StrCat("/proc/", pid, "/", file);
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    const size_t n = map->size();
    ssize_t written = write(fd, map->data(), n);
    int error = errno;
    close(fd);
    if (written != static_cast<ssize_t>(n)) return written < 0 ? error : EIO;
  }
  return 0;
}

}  // namespace

struct LocalSandboxExecutor::Image {
  PreparedImage prepared;
  sandbox::ImageIdentity identity;
};

std::vector<std::string> DefaultRootPaths() {
  return sandbox::DefaultRootPaths();
}

std::vector<std::string> DefaultHiddenPaths(const std::string& store_dir) {
  std::vector<std::string> paths = {
      "/etc/shadow", "/etc/shadow-",         "/etc/gshadow", "/etc/gshadow-",
      "/etc/ssh",    "/etc/ssl/private",     "/etc/sudoers", "/etc/sudoers.d",
      "/etc/kiln",   "/etc/security/opasswd"};
  if (const char* home = getenv("HOME"); home != nullptr && home[0] == '/') {
    paths.emplace_back(home);
  }
  paths.emplace_back("/root");
  paths.emplace_back("/home");
  if (!store_dir.empty()) paths.push_back(store_dir);
  return paths;
}

LocalSandboxExecutor::LocalSandboxExecutor(LocalSandboxOptions options)
    : options_(std::move(options)) {}

LocalSandboxExecutor::~LocalSandboxExecutor() {
  if (init_binary_fd_ >= 0) close(init_binary_fd_);
  if (shared_netns_fd_ >= 0) close(shared_netns_fd_);
}

absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>>
LocalSandboxExecutor::Create(LocalSandboxOptions options) {
  std::unique_ptr<LocalSandboxExecutor> executor(
      new LocalSandboxExecutor(std::move(options)));
  LocalSandboxOptions& o = executor->options_;
  o.hidden_paths = NormalizePaths(o.hidden_paths);
  if (o.root_paths.empty()) o.root_paths = DefaultRootPaths();
  absl::StatusOr<int> init_fd =
      OpenInitBinary(o.init_binary, &executor->init_binary_);
  if (!init_fd.ok()) return init_fd.status();
  executor->init_binary_fd_ = *init_fd;
  executor->last_capability_ = ReadLastCapability();
  executor->image_uid_map_ = sandbox::ImageIdMap("/proc/self/uid_map");
  executor->image_gid_map_ = sandbox::ImageIdMap("/proc/self/gid_map");
  if (o.network_namespaces ==
      LocalSandboxOptions::NetworkNamespaces::kPerTask) {
    executor->netns_pool_ = sandbox::NetworkNamespacePool::Create(
        std::max<size_t>(1, o.max_idle_network_namespaces));
  } else if (o.network_namespaces ==
             LocalSandboxOptions::NetworkNamespaces::kSharedEmpty) {
    // Without the abstract-socket scope, tasks sharing the namespace could
    // connect to each other's abstract unix sockets: keep one per task.
    if (int abi = sandbox::LandlockAbi(); abi < 6) {
      executor->network_fallback_reason_ = absl::StrCat(
          "Landlock ABI ", abi,
          " cannot scope abstract unix sockets (6 or later needed)");
    } else if (absl::StatusOr<int> netns = sandbox::MakeEmptyNetworkNamespace();
               netns.ok()) {
      executor->shared_netns_fd_ = *netns;
    } else {
      executor->network_fallback_reason_ =
          std::string(netns.status().message());
    }
  }
  if (o.cgroups == LocalSandboxOptions::Cgroups::kOff) {
    executor->cgroup_fallback_reason_ = "cgroups disabled by options";
  } else {
    absl::Status probe = sandbox::ProbeCgroups(o.cgroup_root, o.cgroup_parent);
    if (probe.ok()) {
      executor->cgroups_active_ = true;
      executor->stale_cgroups_removed_ =
          sandbox::RemoveStaleCgroups(o.cgroup_root, o.cgroup_parent);
    } else if (o.cgroups == LocalSandboxOptions::Cgroups::kRequire) {
      return probe;
    } else {
      executor->cgroup_fallback_reason_ = std::string(probe.message());
    }
  }
  return executor;
}

std::string LocalSandboxExecutor::Platform() const {
  // Asked once per task key: the machine does not change while we run.
  static const std::string machine = [] {
    struct utsname u;
    return std::string(uname(&u) == 0 ? u.machine : "unknown");
  }();
  // The root policy (allow-listed host trees read-only, same-path
  // workspace, private /tmp, umask 022, kernel controls in /proc
  // read-only) is fixed in v3; changing it must bump the version.
  return absl::StrCat("linux/", machine, "/local-sandbox/v3",
                      shared_network_active() ? "+empty-net" : "");
}

absl::StatusOr<std::unique_ptr<Execution>> LocalSandboxExecutor::Start(
    const v1::ExecRequest& request, OutputSink* sink) {
  return StartStaged(request, sink, HostWorkspaceOptions());
}

ExecutorCapabilities LocalSandboxExecutor::Capabilities() const {
  ExecutorCapabilities capabilities;
  capabilities.images = options_.images != nullptr;
  return capabilities;
}

absl::StatusOr<std::unique_ptr<Execution>> LocalSandboxExecutor::StartStaged(
    const v1::ExecRequest& request, OutputSink* sink,
    const HostWorkspaceOptions& host) {
  if (sink == nullptr) return absl::InvalidArgumentError("sink is null");
  ImageAccess* images = host.images != nullptr ? host.images : options_.images;
  // "host" is the host's root filesystem, as "" is.
  const bool image_mode = !request.image().empty() && request.image() != "host";
  if (absl::Status mode =
          CheckRequestMode(request, images != nullptr || !image_mode);
      !mode.ok()) {
    return mode;
  }
  if (request.argv_size() == 0) {
    return absl::InvalidArgumentError("argv must not be empty");
  }
  // The image is prepared before a workspace exists; failing, the task is
  // the result INPUTS_FAILED and nothing runs (never on the host).
  std::unique_ptr<Image> image;
  if (image_mode) {
    absl::Status prepared = [&]() -> absl::Status {
      absl::StatusOr<PreparedImage> p = images->Prepare(request.image());
      if (!p.ok()) return p.status();
      image = std::make_unique<Image>();
      image->prepared = std::move(*p);
      if (image->prepared.layer_dirs.empty()) {
        return absl::FailedPreconditionError("the image has no layers");
      }
      for (const std::string& entry : image->prepared.env) {
        size_t eq = entry.find('=');
        if (eq == std::string::npos || eq == 0 ||
            entry.find('\0') != std::string::npos) {
          return absl::InvalidArgumentError(absl::StrCat(
              "the image's environment entry '", entry, "' is not KEY=VALUE"));
        }
      }
      absl::StatusOr<std::string> workdir =
          sandbox::ImageWorkdir(image->prepared.workdir);
      if (!workdir.ok()) return workdir.status();
      absl::StatusOr<sandbox::ImageIdentity> identity =
          sandbox::ResolveImageUser(image->prepared.layer_dirs,
                                    image->prepared.user);
      if (!identity.ok()) return identity.status();
      image->identity = std::move(*identity);
      return absl::OkStatus();
    }();
    if (!prepared.ok()) {
      v1::ExecResult result;
      result.set_status(v1::INPUTS_FAILED);
      result.set_message(
          absl::StrCat("image '", request.image(), "': ", prepared.message()));
      return FinishedExecution(std::move(result));
    }
  }
  const Image* image_ptr = image.get();
  if (!request.workspace().empty()) {
    return StartPrepared(request, sink, image_ptr);
  }
  HostWorkspaceOptions own;
  own.work_root = options_.work_root;
  own.artifacts = options_.artifacts;
  own.images = options_.images;
  return StartInHostWorkspace(
      request, MergeHostWorkspace(host, own),
      [this, sink, image_ptr](const v1::ExecRequest& prepared) {
        return StartPrepared(prepared, sink, image_ptr);
      });
}

absl::StatusOr<std::unique_ptr<Execution>> LocalSandboxExecutor::StartPrepared(
    const v1::ExecRequest& request, OutputSink* sink, const Image* image) {
  const v1::ExecLimits& limits = request.limits();
  const LocalSandboxOptions::DefaultLimits& defaults = options_.default_limits;
  sandbox::PlanOptions plan_options;
  plan_options.root_paths = options_.root_paths;
  plan_options.hidden_paths = options_.hidden_paths;
  plan_options.cgroups_active = cgroups_active_;
  plan_options.last_capability = last_capability_;
  plan_options.tmp_bytes =
      limits.tmp_bytes() > 0 ? limits.tmp_bytes() : defaults.tmp_bytes;
  // Memory and pids: the request's, else the defaults (cgroups only).
  uint64_t memory_bytes = limits.memory_bytes();
  uint32_t max_pids = limits.max_pids();
  const bool explicit_limits = memory_bytes > 0 || max_pids > 0;
  if (cgroups_active_) {
    if (memory_bytes == 0) memory_bytes = defaults.memory_bytes;
    if (max_pids == 0) max_pids = defaults.max_pids;
  } else {
    plan_options.rlimit_as = memory_bytes;
    // pid 1 of the sandbox counts too.
    plan_options.rlimit_nproc = max_pids > 0 ? uint64_t{max_pids} + 1 : 0;
  }
  if (image != nullptr) {
    plan_options.image = true;
    plan_options.layer_dirs = image->prepared.layer_dirs;
    plan_options.image_env = image->prepared.env;
    plan_options.image_workdir = image->prepared.workdir;
    plan_options.uid = image->identity.uid;
    plan_options.gid = image->identity.gid;
    plan_options.groups = image->identity.groups;
    for (const LocalSandboxOptions::Volume& v : options_.volumes) {
      plan_options.volumes.push_back({v.host, v.target});
    }
  }
  if (image == nullptr && !options_.volumes.empty()) {
    return absl::InvalidArgumentError(
        "this sandbox has volumes, which only image mode mounts: the request "
        "names no image");
  }
  absl::StatusOr<std::unique_ptr<sandbox::SandboxPlan>> plan_or =
      sandbox::BuildSandboxPlan(request, plan_options);
  if (!plan_or.ok()) return plan_or.status();
  sandbox::SandboxPlan& plan = **plan_or;
  if (image != nullptr &&
      (image->identity.uid != 0 || image->identity.gid != 0)) {
    // The image's user must be able to write its workspace.
    int fd = open(plan.workspace.c_str(),
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    absl::Status owned =
        fd < 0 ? ErrnoStatus(errno, "open workspace")
               : ChownTree(fd, image->identity.uid, image->identity.gid, 0);
    if (fd >= 0) close(fd);
    if (!owned.ok()) {
      return absl::Status(
          owned.code(),
          absl::StrCat("giving the workspace to the image's user ",
                       image->identity.uid, ":", image->identity.gid, ": ",
                       owned.message()));
    }
  }

  sandbox::ExecutionSetup setup;
  setup.sink = sink;
  setup.argv0 = request.argv(0);
  setup.timeout =
      limits.has_timeout() && FromProto(limits.timeout()) > absl::ZeroDuration()
          ? FromProto(limits.timeout())
          : defaults.timeout;
  setup.kill_grace = limits.has_kill_grace() ? FromProto(limits.kill_grace())
                                             : options_.default_kill_grace;
  setup.max_log_bytes = limits.max_log_bytes();
  setup.max_line_bytes = options_.max_line_bytes;
  if (cgroups_active_ && (memory_bytes > 0 || max_pids > 0)) {
    std::string name =
        absl::StrCat(getpid(), "-", next_id_.fetch_add(1), "-",
                     absl::ToUnixNanos(absl::Now()) % 1000000007);
    absl::StatusOr<std::unique_ptr<sandbox::TaskCgroup>> cgroup =
        sandbox::TaskCgroup::Create(options_.cgroup_root,
                                    options_.cgroup_parent, name, memory_bytes,
                                    max_pids);
    if (!cgroup.ok()) return cgroup.status();
    setup.cgroup = std::move(*cgroup);
    plan.cgroup_procs_fds = setup.cgroup->procs_fds();
  } else if (explicit_limits) {
    setup.limits_note = absl::StrCat(
        "limits enforced without cgroups (", cgroup_fallback_reason_,
        "): memory by RLIMIT_AS (address space, not RSS)",
        max_pids > 0 && geteuid() == 0
            ? "; the pids limit is NOT enforced: RLIMIT_NPROC does not apply "
              "to uid 0"
            : "; pids by RLIMIT_NPROC");
  }

  int out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 ||
      pipe2(report, O_CLOEXEC) != 0) {
    int error = errno;
    CloseAll({out[0], out[1], err[0], err[1], report[0], report[1]});
    return absl::ResourceExhaustedError(
        absl::StrCat("pipe: ", std::strerror(error)));
  }
  int dev_null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (dev_null < 0) {
    int error = errno;
    CloseAll({out[0], out[1], err[0], err[1], report[0], report[1]});
    return absl::UnavailableError(
        absl::StrCat("open /dev/null: ", std::strerror(error)));
  }
  // The setup child's stack: mmap'd, not from the (possibly instrumented)
  // heap, since the child shares this process's memory.
  void* stack = mmap(nullptr, kSetupStackBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    int error = errno;
    CloseAll({out[0], out[1], err[0], err[1], report[0], report[1], dev_null});
    return absl::ResourceExhaustedError(
        absl::StrCat("mmap setup stack: ", std::strerror(error)));
  }
  plan.stdin_fd = dev_null;
  plan.stdout_fd = out[1];
  plan.stderr_fd = err[1];
  plan.report_fd = report[1];
  plan.init_binary_fd = init_binary_fd_;
  const bool shared_network = !request.network() && shared_network_active();
  if (shared_network) {
    plan.new_network = false;  // lo stays down
    plan.scope_abstract_sockets = true;
  } else if (!request.network() && netns_pool_ != nullptr) {
    // A pooled namespace, `lo` already up. Should none be made (no
    // CAP_SYS_ADMIN here, or the machine out of namespaces for a moment),
    // the task makes its own as its sandbox starts, as kFreshPerTask.
    absl::StatusOr<std::unique_ptr<sandbox::NetworkNamespacePool::Lease>>
        lease = netns_pool_->Acquire();
    if (lease.ok()) {
      setup.network = *std::move(lease);
      plan.new_network = false;
    }
  }
  const int netns_fd = shared_network  ? shared_netns_fd_
                       : setup.network ? setup.network->fd()
                                       : -1;

  // Image mode: the child's uid/gid maps must be written by a process
  // outside its user namespace (only then may they map more than one id).
  // The calling thread is suspended (CLONE_VFORK) until the child execs, so
  // a helper thread does it: the child writes its pid (as the host sees it)
  // to `ready` and waits for the errno of writing the maps on `go`.
  int ready[2] = {-1, -1}, go[2] = {-1, -1};
  std::thread mapper;
  if (plan.image) {
    if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(go, O_CLOEXEC) != 0) {
      int error = errno;
      munmap(stack, kSetupStackBytes);
      CloseAll({out[0], out[1], err[0], err[1], report[0], report[1], dev_null,
                ready[0], ready[1], go[0], go[1]});
      return absl::ResourceExhaustedError(
          absl::StrCat("pipe: ", std::strerror(error)));
    }
    plan.map_ready_fd = ready[1];
    plan.map_wait_fd = go[0];
    mapper = std::thread([this, ready_fd = ready[0], go_fd = go[1]] {
      char text[32];
      ssize_t n;
      do {
        n = read(ready_fd, text, sizeof(text) - 1);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) return;  // the child failed before; its report says why
      int pid = 0;
      int32_t error =
          absl::SimpleAtoi(absl::string_view(text, static_cast<size_t>(n)),
                           &pid) &&
                  pid > 0
              ? WriteIdMaps(pid, image_uid_map_, image_gid_map_)
              : EINVAL;
      if (write(go_fd, &error, sizeof(error)) < 0) {
        // The child is gone; its report says why.
      }
    });
  }

  // CLONE_VM | CLONE_VFORK: no copy of the engine's page tables (the cost
  // of a sandboxed `true` does not grow with the engine), and this thread
  // waits until the child has exec'd kiln-sandbox-init (or failed).
  uint64_t flags = CLONE_VM | CLONE_VFORK | CLONE_NEWUSER | CLONE_NEWNS |
                   CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
  if (!request.network() && netns_fd < 0) flags |= CLONE_NEWNET;
  // The child starts with every signal blocked, so a SIGTERM sent before
  // init is ready waits instead of being dropped (pid 1 ignores default
  // signals); init keeps them blocked and takes them with sigwaitinfo().
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  int pidfd = -1;
  setup.start = absl::Now();
  auto start_child = [&] {
    return StartChild(sandbox::SandboxSetupMain, &plan,
                      static_cast<char*>(stack), kSetupStackBytes, flags,
                      &pidfd);
  };
  absl::StatusOr<pid_t> started =
      netns_fd >= 0 ? sandbox::StartInNetworkNamespace(netns_fd, start_child)
                    : absl::StatusOr<pid_t>(start_child());
  pid_t pid = started.ok() ? *started : -1;
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (plan.image) {
    // The child has exec'd or exited: the helper's read ends now at the
    // latest (this was the last other copy of the write end).
    close(ready[1]);
    close(go[0]);
    mapper.join();
    close(ready[0]);
    close(go[1]);
  }
  munmap(stack, kSetupStackBytes);
  CloseAll({out[1], err[1], report[1], dev_null});
  if (setup.cgroup) setup.cgroup->CloseProcsFds();
  if (!started.ok()) {
    CloseAll({out[0], err[0], report[0]});
    return absl::UnavailableError(started.status().message());
  }
  if (pid < 0) {
    CloseAll({out[0], err[0], report[0]});
    return absl::UnavailableError(absl::StrCat(
        "clone (new user/mount/pid namespaces): ", std::strerror(clone_errno)));
  }
  setup.init_pid = pid;
  setup.pidfd = pidfd;
  setup.stdout_fd = out[0];
  setup.stderr_fd = err[0];
  setup.report_fd = report[0];
  return std::make_unique<sandbox::SandboxExecution>(std::move(setup));
}

void CancelWithGrace(Execution* execution, absl::Duration grace) {
  auto* sandboxed = dynamic_cast<sandbox::SandboxExecution*>(execution);
  if (sandboxed != nullptr) {
    sandboxed->CancelWithGrace(grace);
  } else {
    execution->Cancel();
  }
}

}  // namespace kiln
