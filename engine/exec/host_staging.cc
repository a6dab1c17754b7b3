#include "engine/exec/host_staging.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"

namespace kiln {

absl::Status MergeInput(int parent_fd, const std::string& tmp, int ws_fd,
                        const std::string& path, const std::string& artifact) {
  struct RemoveTmp {
    int parent_fd;
    const std::string& tmp;
    ~RemoveTmp() { cas::RemoveTreeAt(parent_fd, tmp).IgnoreError(); }
  } remove_tmp{parent_fd, tmp};
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

absl::Status HostStaging::Materialize(const std::string& digest,
                                      int workspace_fd,
                                      const std::string& relative_path) {
  absl::StatusOr<cas::Digest> tree = cas::Digest::Parse(digest);
  if (!tree.ok()) return tree.status();
  // Refused before anything is unpacked.
  absl::StatusOr<std::vector<std::string>> parts =
      cas::SplitRelativePath(relative_path);
  if (!parts.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input path '", relative_path, "': ", parts.status().message()));
  }
  // Unpacked beside its target, inside the workspace: the same filesystem
  // (the merge renames) and nothing outside workspace_fd is touched.
  std::string tmp = cas::TempName("input");
  absl::Status s =
      artifacts_->UnstashAt(*tree, workspace_fd, tmp, "workspace", false);
  if (!s.ok()) {
    cas::RemoveTreeAt(workspace_fd, tmp).IgnoreError();
    return absl::Status(s.code(), absl::StrCat("unstashing: ", s.message()));
  }
  return MergeInput(workspace_fd, tmp, workspace_fd, relative_path, "");
}

absl::StatusOr<std::string> HostStaging::Capture(
    int workspace_fd, const std::vector<std::string>& paths) {
  for (const std::string& p : paths) {
    absl::Status produced = CheckProduced(workspace_fd, p);
    if (!produced.ok()) {
      return absl::Status(produced.code(),
                          absl::StrCat("path '", p, "' ", produced.message()));
    }
  }
  absl::StatusOr<cas::StashResult> stashed =
      artifacts_->StashPathsAt(workspace_fd, "workspace", paths);
  if (!stashed.ok()) {
    return absl::Status(stashed.status().code(),
                        absl::StrCat("stashing: ", stashed.status().message()));
  }
  return stashed->tree.ToString();
}

absl::StatusOr<std::string> HostStaging::ArchiveOf(const std::string& tree) {
  absl::StatusOr<cas::Digest> digest = cas::Digest::Parse(tree);
  if (!digest.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tree '", tree, "': ", digest.status().message()));
  }
  // Verified: an index entry naming another tree's archive (or a claim
  // that fails extraction) is dropped and reads as NotFound, never handed
  // to an agent as the input.
  absl::StatusOr<cas::Digest> archive = artifacts_->VerifiedArchiveOf(*digest);
  if (!archive.ok()) return archive.status();
  return archive->ToString();
}

absl::Status HostStaging::AdoptArchive(const std::string& tree,
                                       const std::string& archive) {
  absl::StatusOr<cas::Digest> t = cas::Digest::Parse(tree);
  if (!t.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tree '", tree, "': ", t.status().message()));
  }
  absl::StatusOr<cas::Digest> a = cas::Digest::Parse(archive);
  if (!a.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("archive '", archive, "': ", a.status().message()));
  }
  return artifacts_->AdoptArchive(*t, *a);
}

}  // namespace kiln
