#include "engine/exec/workspace_merge.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/cas/beneath.h"
#include "engine/cas/file_io.h"

namespace kiln {

namespace {

// Moves the entries of `tmp` (beneath parent_fd) into `path` of the
// workspace; MergeInput removes `tmp` afterwards, whatever happened.
absl::Status MoveEntries(int parent_fd, const std::string& tmp, int ws_fd,
                         const std::string& path, const std::string& artifact) {
  absl::StatusOr<cas::UniqueFd> into = cas::MakeDirsBeneath(ws_fd, path, 0755);
  if (!into.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        artifact.empty() ? "" : absl::StrCat("input '", artifact, "' "),
        "path '", path, "': ", into.status().message()));
  }
  absl::StatusOr<cas::UniqueFd> from = cas::OpenDirBeneath(parent_fd, tmp);
  if (!from.ok()) return from.status();
  std::vector<std::string> names;
  {
    DIR* d = fdopendir(fcntl(from->get(), F_DUPFD_CLOEXEC, 0));
    if (d == nullptr) {
      return cas::ErrnoStatus(errno, "listing an extracted input");
    }
    while (dirent* e = readdir(d)) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      names.emplace_back(e->d_name);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    absl::Status st =
        cas::RenameNoReplace(from->get(), name, into->get(), name);
    if (absl::IsAlreadyExists(st)) {
      std::string shown = path.empty() ? name : absl::StrCat(path, "/", name);
      return absl::AlreadyExistsError(absl::StrCat(
          "two inputs both provide ", shown,
          artifact.empty() ? "" : absl::StrCat(" (input '", artifact, "')")));
    }
    if (!st.ok()) {
      return absl::InternalError(
          absl::StrCat("moving input into the workspace: ", st.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status MergeInput(int parent_fd, const std::string& tmp, int ws_fd,
                        const std::string& path, const std::string& artifact) {
  absl::Status merged = MoveEntries(parent_fd, tmp, ws_fd, path, artifact);
  absl::Status removed = cas::RemoveTreeAt(parent_fd, tmp);
  // The merge's own error comes first; a scratch directory left behind
  // after a good merge would sit in the task's workspace, so it is one too.
  if (merged.ok() && !removed.ok()) {
    return absl::InternalError(absl::StrCat(
        "removing the scratch directory of an input: ", removed.message()));
  }
  return merged;
}

absl::Status CheckProduced(int ws_fd, const std::string& path) {
  absl::StatusOr<std::vector<std::string>> parts = cas::SplitRelativePath(path);
  if (!parts.ok()) return parts.status();
  if (parts->empty()) return absl::OkStatus();  // the whole workspace
  std::string name = parts->back();
  parts->pop_back();
  absl::StatusOr<cas::UniqueFd> dir =
      cas::OpenDirBeneath(ws_fd, absl::StrJoin(*parts, "/"));
  if (!dir.ok()) return dir.status();
  struct stat st;
  if (fstatat(dir->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return absl::NotFoundError("was not produced");
  }
  return absl::OkStatus();
}

}  // namespace kiln
