#include "executors/local_sandbox/sandbox_plan.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "executors/local_sandbox/sandbox_protocol.h"

namespace kiln {
namespace sandbox {
namespace {

constexpr char kDefaultPath[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// The private writable places of every sandbox (fresh tmpfs each).
const char* const kPrivateTmpfs[] = {"/tmp", "/var/tmp", "/run", "/dev/shm"};

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

std::string RealPath(const std::string& path) {
  char resolved[PATH_MAX];
  if (path.empty() || realpath(path.c_str(), resolved) == nullptr) return "";
  return resolved;
}

// True when `path` is `dir` or below it.
bool IsUnder(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return path.compare(0, dir.size(), dir) == 0 &&
         (path.size() == dir.size() || path[dir.size()] == '/');
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

std::vector<std::string> ExecCandidates(
    const v1::ExecRequest& request,
    const std::map<std::string, std::string>& env) {
  const std::string& name = request.argv(0);
  if (name.find('/') != std::string::npos) return {name};
  auto it = env.find("PATH");
  std::string path = it == env.end() ? kDefaultPath : it->second;
  std::vector<std::string> candidates;
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    if (dir.empty()) dir = ".";
    candidates.push_back(absl::StrCat(dir, "/", name));
  }
  return candidates;
}

MountOp Op(MountOp::Kind kind, std::string target, std::string data = "",
           unsigned long flags = 0, bool remount_read_only = false) {
  MountOp op;
  op.kind = kind;
  op.target = std::move(target);
  op.data = std::move(data);
  op.flags = flags;
  op.remount_read_only = remount_read_only;
  return op;
}

// A visible host tree: `host` (real path) appears at `inside`.
struct VisibleTree {
  std::string host;
  std::string inside;
};

// Where the host's `real` path appears inside the sandbox ("" = nowhere).
std::string InsidePath(const std::string& real,
                       const std::vector<VisibleTree>& trees) {
  for (const VisibleTree& tree : trees) {
    if (!IsUnder(real, tree.host)) continue;
    return tree.inside + real.substr(tree.host == "/" ? 0 : tree.host.size());
  }
  return "";
}

// The volumes as mounts after the workspace, ancestors first.
absl::StatusOr<std::vector<MountOp>> VolumeMounts(
    const std::vector<VolumeMount>& volumes) {
  std::vector<MountOp> mounts;
  for (const VolumeMount& volume : volumes) {
    struct stat st;
    if (volume.host.empty() || volume.host[0] != '/' ||
        lstat(volume.host.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
        RealPath(volume.host) != volume.host) {
      return absl::InvalidArgumentError(
          absl::StrCat("volume source '", volume.host,
                       "' is not a directory reached without symlinks"));
    }
    absl::StatusOr<std::string> target = ImageWorkdir(volume.target);
    if (!target.ok() || volume.target.empty() || volume.target == "/") {
      return absl::InvalidArgumentError(
          absl::StrCat("volume target '", volume.target,
                       "' must be a clean absolute path below /, not under "
                       "/proc or /dev"));
    }
    for (const MountOp& other : mounts) {
      if (other.target == *target) {
        return absl::InvalidArgumentError(
            absl::StrCat("two volumes are mounted at '", *target, "'"));
      }
    }
    MountOp op = Op(MountOp::Kind::kBind, *target);
    op.source = volume.host;
    op.writable = true;
    mounts.push_back(std::move(op));
  }
  std::stable_sort(mounts.begin(), mounts.end(),
                   [](const MountOp& a, const MountOp& b) {
                     return a.target.size() < b.target.size();
                   });
  return mounts;
}

}  // namespace

absl::StatusOr<std::string> ImageWorkdir(const std::string& workdir) {
  if (!workdir.empty() && workdir[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "the image's working directory must be absolute: '", workdir, "'"));
  }
  std::string clean;
  for (absl::string_view part : absl::StrSplit(workdir, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("the image's working directory must not contain '..': '",
                       workdir, "'"));
    }
    absl::StrAppend(&clean, "/", part);
  }
  if (clean.empty()) return std::string(kDefaultImageWorkdir);
  if (IsUnder(clean, "/proc") || IsUnder(clean, "/dev")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the image's working directory cannot be under /proc or /dev: '",
        workdir, "'"));
  }
  return clean;
}

std::string ImageIdMap(const std::string& own_map_file) {
  int fd = open(own_map_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buffer[4096];
  ssize_t n = read(fd, buffer, sizeof(buffer) - 1);
  close(fd);
  if (n <= 0) return "";
  std::string map;
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(buffer, static_cast<size_t>(n)), '\n',
                      absl::SkipWhitespace())) {
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() != 3) return "";
    absl::StrAppend(&map, fields[0], " ", fields[0], " ", fields[2], "\n");
  }
  return map;
}

std::vector<std::string> DefaultRootPaths() {
  return {"/bin",   "/etc",    "/lib",  "/lib32",
          "/lib64", "/libx32", "/sbin", "/usr"};
}

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
  if (!options.volumes.empty() && !options.image) {
    return absl::InvalidArgumentError("volumes are for image mode only");
  }
  auto plan = std::make_unique<SandboxPlan>();
  absl::StatusOr<std::string> workspace =
      RealDirectory(request.workspace(), "workspace");
  if (!workspace.ok()) return workspace.status();
  plan->workspace = *workspace;
  plan->image = options.image;
  if (plan->image) {
    if (!request.rootfs().empty()) {
      return absl::InvalidArgumentError(
          "a request cannot name both an image and a rootfs");
    }
    if (options.layer_dirs.empty()) {
      return absl::InvalidArgumentError("the image has no layers");
    }
    if (options.layer_dirs.size() > kMaxImageLayers) {
      return absl::InvalidArgumentError(
          absl::StrCat("the image has ", options.layer_dirs.size(),
                       " layers (at most ", kMaxImageLayers, ")"));
    }
    for (auto it = options.layer_dirs.rbegin(); it != options.layer_dirs.rend();
         ++it) {
      absl::StatusOr<std::string> layer = RealDirectory(*it, "image layer");
      if (!layer.ok()) return layer.status();
      plan->layer_paths.push_back(*layer);
    }
    absl::StatusOr<std::string> target = ImageWorkdir(options.image_workdir);
    if (!target.ok()) return target.status();
    plan->workspace_target = *target;
    plan->upper_tmpfs_data =
        options.tmp_bytes > 0
            ? absl::StrCat("mode=755,size=", options.tmp_bytes)
            : std::string("mode=755");
    plan->uid = options.uid;
    plan->gid = options.gid;
    plan->groups.assign(options.groups.begin(), options.groups.end());
  }
  absl::StatusOr<std::string> cwd =
      ResolveWorkdir(plan->image ? plan->workspace_target : plan->workspace,
                     request.workdir());
  if (!cwd.ok()) return cwd.status();
  plan->cwd = *cwd;
  plan->root_is_tmpfs = request.rootfs().empty() && !plan->image;
  if (!request.rootfs().empty()) {
    absl::StatusOr<std::string> rootfs =
        RealDirectory(request.rootfs(), "rootfs");
    if (!rootfs.ok()) return rootfs.status();
    plan->root_source = *rootfs;
  }

  // Environment: exactly the request's (image mode: over the image's).
  std::map<std::string, std::string> env;
  for (const std::string& entry : options.image_env) {
    size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the image's environment entry '", entry, "' is not KEY=VALUE"));
    }
    env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& [key, value] : request.env()) env[key] = value;
  if (!request.results_dir().empty()) {
    // The results directory (made by the host workspace) as the command
    // sees the workspace: at its host path, or at the image's workdir.
    env["KILN_RESULTS"] =
        absl::StrCat(plan->image ? plan->workspace_target : plan->workspace,
                     "/", request.results_dir());
  }
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
  std::vector<std::string> candidates = ExecCandidates(request, env);
  plan->init_argv_storage.push_back(kInitBinaryName);
  plan->init_argv_storage.push_back(absl::StrCat(candidates.size()));
  for (std::string& c : candidates) plan->init_argv_storage.push_back(c);
  for (const std::string& a : plan->argv_storage) {
    plan->init_argv_storage.push_back(a);
  }
  for (std::string& arg : plan->init_argv_storage) {
    plan->init_argv.push_back(arg.data());
  }
  plan->init_argv.push_back(nullptr);
  for (std::string& var : plan->env_storage) plan->envp.push_back(var.data());
  plan->envp.push_back(nullptr);

  if (plan->image) {
    // Image mode: the mounts are made after pivot_root, inside the new root
    // (so that a symlink in the image resolves within it): a private /tmp,
    // the workspace at the image's working directory, and the resolver
    // configuration when the task has the network. /dev and /proc are
    // made by the child as in every mode.
    const std::string tmp_options =
        options.tmp_bytes > 0
            ? absl::StrCat("mode=1777,size=", options.tmp_bytes)
            : std::string("mode=1777");
    std::vector<MountOp> mounts;
    mounts.push_back(
        Op(MountOp::Kind::kTmpfs, "/tmp", tmp_options, MS_NOSUID | MS_NODEV));
    mounts.push_back(Op(MountOp::Kind::kTmpfs, "/dev/shm", tmp_options,
                        MS_NOSUID | MS_NODEV));
    if (request.network()) {
      std::string resolv = RealPath("/etc/resolv.conf");
      if (!resolv.empty()) {
        MountOp op = Op(MountOp::Kind::kBind, "/etc/resolv.conf");
        op.source = resolv;
        op.is_file = true;
        mounts.push_back(std::move(op));
      }
    }
    mounts.push_back(Op(MountOp::Kind::kWorkspace, plan->workspace_target));
    std::stable_sort(mounts.begin(), mounts.end(),
                     [](const MountOp& a, const MountOp& b) {
                       return a.target.size() < b.target.size();
                     });
    absl::StatusOr<std::vector<MountOp>> volumes =
        VolumeMounts(options.volumes);
    if (!volumes.ok()) return volumes.status();
    for (MountOp& op : *volumes) mounts.push_back(std::move(op));
    if (mounts.size() > kMaxMounts) {
      return absl::InvalidArgumentError(
          absl::StrCat("the sandbox would need ", mounts.size(),
                       " mounts (at most ", kMaxMounts, ")"));
    }
    plan->mounts = std::move(mounts);
    // Only a process outside the new user namespace may write a map of
    // more than its own id: the executor writes kImageIdMap.
    plan->new_network = !request.network();
    plan->last_capability = options.last_capability;
    plan->rlimit_as = options.rlimit_as;
    plan->rlimit_nproc = options.rlimit_nproc;
    return plan;
  }

  // Mounts under the new root. Ancestors must be mounted before descendants,
  // so the list is ordered by path length; the workspace goes last among
  // equals so that it is never covered.
  const std::string root = kAssemblyPoint;
  const unsigned long kSafe = MS_NOSUID | MS_NODEV;
  const std::string tmpfs_options =
      options.tmp_bytes > 0 ? absl::StrCat("mode=1777,size=", options.tmp_bytes)
                            : std::string("mode=1777");
  std::vector<MountOp> mounts;
  for (const char* tmp : kPrivateTmpfs) {
    if (!plan->root_is_tmpfs && std::string(tmp) != "/tmp" &&
        std::string(tmp) != "/dev/shm") {
      // A rootfs is read-only: only where it has a mountpoint.
      struct stat st;
      std::string in_rootfs = plan->root_source + tmp;
      if (lstat(in_rootfs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    }
    mounts.push_back(
        Op(MountOp::Kind::kTmpfs, root + tmp, tmpfs_options, kSafe));
  }
  if (plan->root_is_tmpfs) {
    // Host mode: only the allowed trees of the host; every path of the host
    // not named here (the store, $HOME, sockets under /run or /var, other
    // workspaces) does not exist inside, whether it exists yet or not.
    std::vector<VisibleTree> trees;
    std::vector<std::string> hidden;
    for (const std::string& path : options.hidden_paths) {
      std::string real = RealPath(path);
      if (!real.empty() && real != "/") hidden.push_back(real);
    }
    for (const std::string& path : options.root_paths) {
      struct stat st;
      if (path.empty() || path[0] != '/' || path == "/" ||
          lstat(path.c_str(), &st) != 0) {
        continue;
      }
      if (S_ISLNK(st.st_mode)) {
        char link[PATH_MAX];
        ssize_t n = readlink(path.c_str(), link, sizeof(link) - 1);
        if (n <= 0) continue;
        MountOp op = Op(MountOp::Kind::kSymlink, root + path);
        op.source.assign(link, static_cast<size_t>(n));
        mounts.push_back(std::move(op));
        continue;
      }
      std::string real = RealPath(path);
      if (real.empty()) continue;
      bool is_hidden = false;
      for (const std::string& h : hidden) is_hidden |= IsUnder(real, h);
      if (is_hidden) continue;
      MountOp op = Op(MountOp::Kind::kBind, root + path);
      op.source = real;
      op.is_file = !S_ISDIR(st.st_mode);
      mounts.push_back(std::move(op));
      trees.push_back({real, path});
    }
    trees.push_back({plan->workspace, plan->workspace});
    // With the network, the resolver configuration may point into /run
    // (systemd-resolved): that one file is shown.
    if (request.network()) {
      std::string resolv = RealPath("/etc/resolv.conf");
      if (!resolv.empty() && InsidePath(resolv, trees).empty()) {
        MountOp op = Op(MountOp::Kind::kBind, root + resolv);
        op.source = resolv;
        op.is_file = true;
        mounts.push_back(std::move(op));
      }
    }
    for (const std::string& real : hidden) {
      std::string inside = InsidePath(real, trees);
      struct stat st;
      if (inside.empty() || inside == "/" || stat(real.c_str(), &st) != 0) {
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        mounts.push_back(Op(MountOp::Kind::kTmpfs, root + inside, "mode=755",
                            kSafe | MS_NOEXEC, /*remount_read_only=*/true));
      } else {
        mounts.push_back(Op(MountOp::Kind::kDevNullFile, root + inside));
      }
    }
  }
  mounts.push_back(Op(MountOp::Kind::kWorkspace, root + plan->workspace));
  std::stable_sort(mounts.begin(), mounts.end(),
                   [](const MountOp& a, const MountOp& b) {
                     return a.target.size() < b.target.size();
                   });
  // One mount per target (e.g. $HOME == /root); a mount below a hidden
  // directory is dropped (it would be shown through the hiding tmpfs).
  std::vector<MountOp> unique;
  for (MountOp& op : mounts) {
    bool covered = false;
    for (const MountOp& u : unique) {
      covered = covered || u.target == op.target ||
                (u.remount_read_only && IsUnder(op.target, u.target));
    }
    if (!covered || op.kind == MountOp::Kind::kWorkspace) {
      unique.push_back(std::move(op));
    }
  }
  if (unique.size() > kMaxMounts) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the sandbox would need ", unique.size(), " mounts (at most ",
        kMaxMounts, "): too many hidden or root paths"));
  }
  plan->mounts = std::move(unique);

  plan->uid_map = absl::StrCat(geteuid(), " ", geteuid(), " 1\n");
  plan->gid_map = absl::StrCat(getegid(), " ", getegid(), " 1\n");
  plan->new_network = !request.network();
  plan->last_capability = options.last_capability;
  plan->rlimit_as = options.rlimit_as;
  plan->rlimit_nproc = options.rlimit_nproc;
  return plan;
}

}  // namespace sandbox
}  // namespace kiln
