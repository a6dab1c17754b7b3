#include "executors/local_sandbox/sandbox_plan.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace kiln {
namespace sandbox {
namespace {

constexpr char kDefaultPath[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

absl::StatusOr<std::string> RealDirectory(const std::string& path,
                                          absl::string_view what) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be an absolute path: '", path, "'"));
  }
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
  }
  struct stat st;
  if (stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, " is not a directory"));
  }
  return std::string(resolved);
}

// Joins the workspace and a relative workdir, rejecting any escape.
absl::StatusOr<std::string> ResolveWorkdir(const std::string& workspace,
                                           const std::string& workdir) {
  if (!workdir.empty() && workdir[0] == '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "workdir must be relative to the workspace: '", workdir, "'"));
  }
  std::string cwd = workspace;
  for (absl::string_view part : absl::StrSplit(workdir, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("workdir must not contain '..': '", workdir, "'"));
    }
    absl::StrAppend(&cwd, "/", part);
  }
  return cwd;
}

std::vector<std::string> ExecCandidates(const v1::ExecRequest& request) {
  const std::string& name = request.argv(0);
  if (name.find('/') != std::string::npos) return {name};
  auto it = request.env().find("PATH");
  std::string path = it == request.env().end() ? kDefaultPath : it->second;
  std::vector<std::string> candidates;
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    if (dir.empty()) dir = ".";
    candidates.push_back(absl::StrCat(dir, "/", name));
  }
  return candidates;
}

// True when a strict ancestor of `path` is hidden already (then `path` is
// not visible anyway, and has no mountpoint inside the empty tmpfs).
bool UnderAnother(const std::string& path,
                  const std::vector<std::string>& hidden) {
  for (const std::string& other : hidden) {
    if (other.size() < path.size() && !other.empty() &&
        path.compare(0, other.size(), other) == 0 &&
        (other.back() == '/' || path[other.size()] == '/')) {
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SandboxPlan>> BuildSandboxPlan(
    const v1::ExecRequest& request, const PlanOptions& options) {
  if (request.argv_size() == 0 || request.argv(0).empty()) {
    return absl::InvalidArgumentError("argv must not be empty");
  }
  for (const std::string& arg : request.argv()) {
    if (arg.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError("argv element contains a NUL byte");
    }
  }
  auto plan = std::make_unique<SandboxPlan>();
  absl::StatusOr<std::string> workspace =
      RealDirectory(request.workspace(), "workspace");
  if (!workspace.ok()) return workspace.status();
  plan->workspace = *workspace;
  absl::StatusOr<std::string> cwd =
      ResolveWorkdir(plan->workspace, request.workdir());
  if (!cwd.ok()) return cwd.status();
  plan->cwd = *cwd;
  plan->root_source = "/";
  if (!request.rootfs().empty()) {
    absl::StatusOr<std::string> rootfs =
        RealDirectory(request.rootfs(), "rootfs");
    if (!rootfs.ok()) return rootfs.status();
    plan->root_source = *rootfs;
  }

  // Environment: exactly the request's.
  std::vector<std::pair<std::string, std::string>> env(request.env().begin(),
                                                       request.env().end());
  std::sort(env.begin(), env.end());
  for (const auto& [key, value] : env) {
    if (key.empty() || key.find('=') != std::string::npos ||
        key.find('\0') != std::string::npos ||
        value.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid environment variable name or value: '", key, "'"));
    }
    plan->env_storage.push_back(absl::StrCat(key, "=", value));
  }
  plan->argv_storage.assign(request.argv().begin(), request.argv().end());
  for (std::string& arg : plan->argv_storage) plan->argv.push_back(arg.data());
  plan->argv.push_back(nullptr);
  for (std::string& var : plan->env_storage) plan->envp.push_back(var.data());
  plan->envp.push_back(nullptr);
  plan->exec_candidates = ExecCandidates(request);

  // Mounts under the new root. Ancestors must be mounted before descendants,
  // so the list is ordered by path length; the workspace goes last among
  // equals so that it is never covered.
  const std::string root = kAssemblyPoint;
  const unsigned long kSafe = MS_NOSUID | MS_NODEV;
  std::vector<MountOp> mounts;
  mounts.push_back({MountOp::Kind::kTmpfs, root + "/tmp", "mode=1777", kSafe});
  mounts.push_back(
      {MountOp::Kind::kTmpfs, root + "/dev/shm", "mode=1777", kSafe});
  if (plan->root_source == "/") {
    for (const std::string& hidden : options.hidden_paths) {
      struct stat st;
      if (hidden.empty() || hidden == "/" || stat(hidden.c_str(), &st) != 0 ||
          UnderAnother(hidden, options.hidden_paths)) {
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        mounts.push_back({MountOp::Kind::kTmpfs, root + hidden, "mode=755",
                          kSafe | MS_NOEXEC, /*remount_read_only=*/true});
      } else {
        mounts.push_back({MountOp::Kind::kDevNullFile, root + hidden, "", 0});
      }
    }
  }
  mounts.push_back({MountOp::Kind::kWorkspace, root + plan->workspace, "", 0});
  std::stable_sort(mounts.begin(), mounts.end(),
                   [](const MountOp& a, const MountOp& b) {
                     return a.target.size() < b.target.size();
                   });
  // Drop duplicates of one target (e.g. $HOME == /root).
  std::vector<MountOp> unique;
  for (MountOp& op : mounts) {
    bool seen = false;
    for (const MountOp& u : unique) seen = seen || u.target == op.target;
    if (!seen || op.kind == MountOp::Kind::kWorkspace) {
      unique.push_back(std::move(op));
    }
  }
  plan->mounts = std::move(unique);

  plan->uid_map = absl::StrCat(geteuid(), " ", geteuid(), " 1\n");
  plan->gid_map = absl::StrCat(getegid(), " ", getegid(), " 1\n");
  plan->new_network = !request.network();
  plan->last_capability = options.last_capability;
  if (!options.cgroups_active) {
    plan->rlimit_as = request.limits().memory_bytes();
    // pid 1 of the sandbox counts too.
    if (request.limits().max_pids() > 0) {
      plan->rlimit_nproc = request.limits().max_pids() + 1;
    }
  }
  plan->exec_stack_size = 64 * 1024;
  plan->exec_stack = std::make_unique<char[]>(plan->exec_stack_size);
  return plan;
}

}  // namespace sandbox
}  // namespace kiln
