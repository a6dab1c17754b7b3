#include "executors/host_workspace.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/remove_tree.h"
#include "base/status.h"
#include "executors/results_dir.h"

namespace kiln {
namespace {

// [A-Za-z0-9_-] kept, anything else '_', at most 40 characters.
std::string SafePart(const std::string& text) {
  std::string out;
  for (char c : text.substr(0, 40)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-';
    out.push_back(ok ? c : '_');
  }
  return out.empty() ? "_" : out;
}

std::string RandomHex() {
  uint64_t value = 0;
  if (getrandom(&value, sizeof(value), 0) != sizeof(value)) {
    value = static_cast<uint64_t>(getpid()) * 0x9e3779b97f4a7c15ULL ^
            reinterpret_cast<uintptr_t>(&value);
  }
  return absl::StrFormat("%016x", value);
}

// mkdir -p of a trusted path.
absl::Status MakeTrustedDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i != path.size() && path[i] != '/') continue;
    std::string prefix = path.substr(0, i);
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("mkdir ", prefix));
    }
  }
  return absl::OkStatus();
}

// A created workspace: its parent (the work root), name, path and fd.
struct Workspace {
  int root_fd = -1;
  int fd = -1;
  std::string name;
  std::string path;

  ~Workspace() {
    if (fd >= 0) close(fd);
    if (root_fd >= 0) close(root_fd);
  }
  // Removes it unless `keep`; a failure becomes a warning.
  void Finish(bool keep, v1::ExecResult* result) {
    if (keep || root_fd < 0) return;
    if (fd >= 0) close(fd);
    fd = -1;
    absl::Status removed = RemoveTreeAt(root_fd, name);
    if (!removed.ok()) {
      result->add_warnings(absl::StrCat(
          "workspace ", path, " could not be removed: ", removed.message()));
    }
  }
};

absl::StatusOr<std::unique_ptr<Workspace>> CreateWorkspace(
    const std::string& work_root, const v1::ExecRequest& request) {
  if (work_root.empty() || work_root[0] != '/') {
    return absl::InvalidArgumentError(
        "the executor has no absolute work root for workspaces");
  }
  absl::Status made = MakeTrustedDirs(work_root);
  if (!made.ok()) return made;
  char resolved[PATH_MAX];
  if (realpath(work_root.c_str(), resolved) == nullptr) {
    return ErrnoStatus(errno, absl::StrCat("resolving ", work_root));
  }
  auto ws = std::make_unique<Workspace>();
  ws->root_fd = open(resolved, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (ws->root_fd < 0)
    return ErrnoStatus(errno, absl::StrCat("open ", resolved));
  for (int tries = 0;; ++tries) {
    ws->name =
        absl::StrCat(SafePart(request.run_id()), ".", SafePart(request.task()),
                     ".", request.attempt(), ".", RandomHex());
    if (mkdirat(ws->root_fd, ws->name.c_str(), 0755) == 0) break;
    if (errno != EEXIST || tries > 8) {
      return ErrnoStatus(errno,
                         absl::StrCat("creating a workspace in ", resolved));
    }
  }
  // mkdirat is subject to the umask: the exact mode, as the engine does.
  ws->fd = openat(ws->root_fd, ws->name.c_str(),
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (ws->fd < 0) return ErrnoStatus(errno, "opening the new workspace");
  fchmod(ws->fd, 0755);
  ws->path = absl::StrCat(resolved, "/", ws->name);
  return ws;
}

// Wait() returns the result fixed at construction (inputs failed).
class FixedExecution : public Execution {
 public:
  explicit FixedExecution(v1::ExecResult result) : result_(std::move(result)) {}
  v1::ExecResult Wait() override { return result_; }
  void Cancel() override {}

 private:
  const v1::ExecResult result_;
};

// Runs the inner execution, then captures and cleans up.
class StagedExecution : public Execution {
 public:
  StagedExecution(std::unique_ptr<Execution> inner,
                  std::unique_ptr<Workspace> workspace, v1::ExecRequest request,
                  ArtifactAccess* artifacts, std::function<void()> command_done)
      : inner_(std::move(inner)),
        workspace_(std::move(workspace)),
        request_(std::move(request)),
        artifacts_(artifacts),
        command_done_(std::move(command_done)) {}

  ~StagedExecution() override {
    if (!waited_) {
      inner_.reset();  // cancels and waits
      v1::ExecResult ignored;
      workspace_->Finish(request_.keep_workspace(), &ignored);
    }
  }

  v1::ExecResult Wait() override {
    waited_ = true;
    v1::ExecResult result = inner_->Wait();
    if (command_done_) command_done_();
    if (result.status() == v1::EXITED && result.exit_code() == 0) {
      if (ReadResults(&result)) Capture(&result);
    }
    workspace_->Finish(request_.keep_workspace(), &result);
    return result;
  }

  void Cancel() override { inner_->Cancel(); }

 private:
  // The declared results into `result`; false (OUTPUTS_FAILED) if they
  // cannot be read.
  bool ReadResults(v1::ExecResult* result) {
    if (request_.results_dir().empty()) return true;
    absl::StatusOr<std::map<std::string, std::string>> read =
        ReadResultsDir(workspace_->fd, request_.results_dir());
    if (!read.ok()) {
      result->set_status(v1::OUTPUTS_FAILED);
      result->set_message(
          absl::StrCat("$KILN_RESULTS: ", read.status().message()));
      return false;
    }
    for (auto& [name, value] : *read) {
      (*result->mutable_results())[name] = std::move(value);
    }
    return true;
  }

  void Capture(v1::ExecResult* result) {
    for (const v1::ExecOutput& output : request_.outputs()) {
      std::vector<std::string> paths(output.paths().begin(),
                                     output.paths().end());
      absl::StatusOr<std::string> digest =
          artifacts_->Capture(workspace_->fd, paths);
      if (!digest.ok()) {
        result->clear_outputs();
        result->set_status(v1::OUTPUTS_FAILED);
        result->set_message(absl::StrCat("output '", output.artifact(),
                                         "': ", digest.status().message()));
        return;
      }
      (*result->mutable_outputs())[output.artifact()] = *digest;
    }
    if (!request_.report().empty()) {
      absl::StatusOr<std::string> digest =
          artifacts_->Capture(workspace_->fd, {request_.report()});
      if (digest.ok()) {
        result->set_report_digest(*digest);
      } else if (!absl::IsNotFound(digest.status())) {
        result->add_warnings(absl::StrCat("report '", request_.report(),
                                          "': ", digest.status().message()));
      }
    }
  }

  std::unique_ptr<Execution> inner_;
  std::unique_ptr<Workspace> workspace_;
  const v1::ExecRequest request_;
  ArtifactAccess* artifacts_;
  const std::function<void()> command_done_;
  bool waited_ = false;
};

}  // namespace

std::unique_ptr<Execution> FinishedExecution(v1::ExecResult result) {
  return std::make_unique<FixedExecution>(std::move(result));
}

absl::Status CheckRequestMode(const v1::ExecRequest& request,
                              bool images_supported) {
  if (!request.image().empty() && !images_supported) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image '", request.image(),
        "': this executor runs only on the host's root filesystem (no image "
        "access configured)"));
  }
  if (!request.workspace().empty() &&
      (request.inputs_size() > 0 || request.outputs_size() > 0 ||
       !request.report().empty())) {
    return absl::InvalidArgumentError(
        "a request with a prepared workspace cannot also carry inputs, "
        "outputs or a report");
  }
  return absl::OkStatus();
}

HostWorkspaceOptions MergeHostWorkspace(const HostWorkspaceOptions& given,
                                        const HostWorkspaceOptions& fallback) {
  HostWorkspaceOptions out = given;
  if (out.work_root.empty()) out.work_root = fallback.work_root;
  if (out.artifacts == nullptr) out.artifacts = fallback.artifacts;
  if (out.images == nullptr) out.images = fallback.images;
  if (out.archives == nullptr) out.archives = fallback.archives;
  if (!out.command_done) out.command_done = fallback.command_done;
  return out;
}

absl::StatusOr<std::unique_ptr<Execution>> StartInHostWorkspace(
    const v1::ExecRequest& request, const HostWorkspaceOptions& options,
    const std::function<absl::StatusOr<std::unique_ptr<Execution>>(
        const v1::ExecRequest&)>& start) {
  if (options.artifacts == nullptr) {
    return absl::InvalidArgumentError(
        "a request without a workspace needs an executor with artifact "
        "access (none configured)");
  }
  absl::StatusOr<std::unique_ptr<Workspace>> ws =
      CreateWorkspace(options.work_root, request);
  if (!ws.ok()) return ws.status();
  for (const v1::ExecInput& input : request.inputs()) {
    absl::Status s =
        options.artifacts->Materialize(input.digest(), (*ws)->fd, input.path());
    if (!s.ok()) {
      v1::ExecResult result;
      result.set_status(v1::INPUTS_FAILED);
      result.set_message(
          absl::StrCat("input '", input.artifact(), "': ", s.message()));
      (*ws)->Finish(request.keep_workspace(), &result);
      return FinishedExecution(std::move(result));
    }
  }
  if (!request.results_dir().empty()) {
    absl::Status made = MakeResultsDir((*ws)->fd, request.results_dir());
    if (!made.ok()) {
      v1::ExecResult result;
      result.set_status(v1::SETUP_FAILED);
      result.set_message(made.ToString());
      (*ws)->Finish(request.keep_workspace(), &result);
      return FinishedExecution(std::move(result));
    }
  }
  v1::ExecRequest inner = request;
  inner.set_workspace((*ws)->path);
  inner.clear_inputs();
  inner.clear_outputs();
  inner.clear_report();
  absl::StatusOr<std::unique_ptr<Execution>> started = start(inner);
  if (!started.ok()) {
    v1::ExecResult ignored;
    (*ws)->Finish(request.keep_workspace(), &ignored);
    return started.status();
  }
  return std::make_unique<StagedExecution>(std::move(*started), std::move(*ws),
                                           request, options.artifacts,
                                           options.command_done);
}

}  // namespace kiln
