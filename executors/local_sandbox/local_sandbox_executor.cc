#include "executors/local_sandbox/local_sandbox_executor.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "executors/local_sandbox/cgroup.h"
#include "executors/local_sandbox/sandbox_child.h"
#include "executors/local_sandbox/sandbox_execution.h"
#include "executors/local_sandbox/sandbox_plan.h"

namespace kiln {
namespace {

constexpr size_t kInitStackBytes = 128 * 1024;

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

unsigned long ReadLastCapability() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  unsigned long value = 0;
  if (in >> value) return value;
  return 63;  // PR_CAPBSET_DROP of an unknown capability fails with EINVAL
}

std::vector<std::string> RealPaths(const std::vector<std::string>& paths) {
  std::vector<std::string> resolved;
  for (const std::string& path : paths) {
    char buf[PATH_MAX];
    if (path.empty() || realpath(path.c_str(), buf) == nullptr) continue;
    resolved.emplace_back(buf);
  }
  return resolved;
}

// Closes every fd in `fds` that is still open.
void CloseAll(std::initializer_list<int> fds) {
  for (int fd : fds) {
    if (fd >= 0) close(fd);
  }
}

}  // namespace

std::vector<std::string> DefaultHiddenPaths(const std::string& store_dir) {
  std::vector<std::string> paths;
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

absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>>
LocalSandboxExecutor::Create(LocalSandboxOptions options) {
  std::unique_ptr<LocalSandboxExecutor> executor(
      new LocalSandboxExecutor(std::move(options)));
  LocalSandboxOptions& o = executor->options_;
  o.hidden_paths = RealPaths(o.hidden_paths);
  executor->last_capability_ = ReadLastCapability();
  if (o.cgroups == LocalSandboxOptions::Cgroups::kOff) {
    executor->cgroup_fallback_reason_ = "cgroups disabled by options";
  } else {
    absl::Status probe = sandbox::ProbeCgroups(o.cgroup_root, o.cgroup_parent);
    if (probe.ok()) {
      executor->cgroups_active_ = true;
    } else if (o.cgroups == LocalSandboxOptions::Cgroups::kRequire) {
      return probe;
    } else {
      executor->cgroup_fallback_reason_ = std::string(probe.message());
    }
  }
  return executor;
}

std::string LocalSandboxExecutor::Platform() const {
  struct utsname u;
  std::string machine = uname(&u) == 0 ? u.machine : "unknown";
  // The root policy (host root read-only, same-path workspace, private
  // /tmp) is fixed in v1; changing it must bump the version.
  return absl::StrCat("linux/", machine, "/local-sandbox/v1");
}

absl::StatusOr<std::unique_ptr<Execution>> LocalSandboxExecutor::Start(
    const v1::ExecRequest& request, OutputSink* sink) {
  if (sink == nullptr) return absl::InvalidArgumentError("sink is null");
  sandbox::PlanOptions plan_options;
  plan_options.hidden_paths = options_.hidden_paths;
  plan_options.cgroups_active = cgroups_active_;
  plan_options.last_capability = last_capability_;
  absl::StatusOr<std::unique_ptr<sandbox::SandboxPlan>> plan_or =
      sandbox::BuildSandboxPlan(request, plan_options);
  if (!plan_or.ok()) return plan_or.status();
  sandbox::SandboxPlan& plan = **plan_or;

  const v1::ExecLimits& limits = request.limits();
  sandbox::ExecutionSetup setup;
  setup.sink = sink;
  setup.argv0 = request.argv(0);
  setup.timeout = FromProto(limits.timeout());
  setup.kill_grace = limits.has_kill_grace() ? FromProto(limits.kill_grace())
                                             : options_.default_kill_grace;
  setup.max_log_bytes = limits.max_log_bytes();
  setup.max_line_bytes = options_.max_line_bytes;
  const bool wants_limits = limits.memory_bytes() > 0 || limits.max_pids() > 0;
  if (wants_limits && cgroups_active_) {
    std::string name =
        absl::StrCat(getpid(), "-", next_id_.fetch_add(1), "-",
                     absl::ToUnixNanos(absl::Now()) % 1000000007);
    absl::StatusOr<std::unique_ptr<sandbox::TaskCgroup>> cgroup =
        sandbox::TaskCgroup::Create(options_.cgroup_root,
                                    options_.cgroup_parent, name,
                                    limits.memory_bytes(), limits.max_pids());
    if (!cgroup.ok()) return cgroup.status();
    setup.cgroup = std::move(*cgroup);
    plan.cgroup_procs_fds = setup.cgroup->procs_fds();
  } else if (wants_limits) {
    setup.limits_note = absl::StrCat(
        "limits enforced without cgroups (", cgroup_fallback_reason_,
        "): memory by RLIMIT_AS (address space, not RSS)",
        limits.max_pids() > 0 && geteuid() == 0
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
  plan.stdin_fd = dev_null;
  plan.stdout_fd = out[1];
  plan.stderr_fd = err[1];
  plan.report_fd = report[1];

  int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC |
              CLONE_NEWUTS | CLONE_PIDFD;
  if (!request.network()) flags |= CLONE_NEWNET;
  std::unique_ptr<char[]> stack(new char[kInitStackBytes]);
  // The child starts with every signal blocked, so a SIGTERM sent before it
  // is ready waits instead of being dropped (pid 1 ignores default signals).
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  int pidfd = -1;
  setup.start = absl::Now();
  pid_t pid = clone(sandbox::SandboxInitMain, stack.get() + kInitStackBytes,
                    flags, &plan, &pidfd);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  CloseAll({out[1], err[1], report[1], dev_null});
  if (setup.cgroup) setup.cgroup->CloseProcsFds();
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

}  // namespace kiln
