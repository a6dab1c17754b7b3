#include "executors/testing/memory_artifact_access.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kiln {
namespace conformance {
namespace {

// The components of a relative path; InvalidArgument for "..", "/x".
absl::StatusOr<std::vector<std::string>> Split(const std::string& path) {
  if (!path.empty() && path[0] == '/') {
    return absl::InvalidArgumentError(absl::StrCat("absolute path ", path));
  }
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (p == ".") continue;
    if (p == "..") return absl::InvalidArgumentError("'..' in a path");
    parts.emplace_back(p);
  }
  return parts;
}

absl::Status WriteBeneath(int root_fd, const std::vector<std::string>& parts,
                          const std::string& content) {
  int dir = dup(root_fd);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    mkdirat(dir, parts[i].c_str(), 0755);
    int next = openat(dir, parts[i].c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(dir);
    if (next < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("directory ", parts[i], ": ", std::strerror(errno)));
    }
    dir = next;
  }
  int fd = openat(dir, parts.back().c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  int error = errno;
  close(dir);
  if (fd < 0) {
    return error == EEXIST
               ? absl::AlreadyExistsError(absl::StrCat(parts.back(), " exists"))
               : absl::InternalError(std::strerror(error));
  }
  bool ok = write(fd, content.data(), content.size()) ==
            static_cast<ssize_t>(content.size());
  close(fd);
  return ok ? absl::OkStatus() : absl::InternalError("short write");
}

// Adds the entry `name` of dir_fd (as `rel`) to `files`.
absl::Status ReadEntry(int dir_fd, const std::string& name,
                       const std::string& rel,
                       MemoryArtifactAccess::Files* files) {
  struct stat st;
  if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return absl::NotFoundError(
        absl::StrCat("path '", rel, "' was not produced"));
  }
  if (S_ISREG(st.st_mode)) {
    int fd = openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return absl::InternalError(std::strerror(errno));
    std::string content;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) content.append(buf, n);
    close(fd);
    (*files)[rel] = content;
    return absl::OkStatus();
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("path '", rel, "' is not a file or directory"));
  }
  int fd = openat(dir_fd, name.c_str(),
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(std::strerror(errno));
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return absl::InternalError(std::strerror(errno));
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
      names.emplace_back(e->d_name);
    }
  }
  absl::Status result;
  for (const std::string& child : names) {
    result.Update(
        ReadEntry(dirfd(d), child, absl::StrCat(rel, "/", child), files));
  }
  closedir(d);
  return result;
}

}  // namespace

std::string MemoryArtifactAccess::Put(Files files) {
  MutexLock lock(&mu_);
  std::string digest = absl::StrCat("mem:", artifacts_.size());
  artifacts_[digest] = std::move(files);
  return digest;
}

absl::StatusOr<MemoryArtifactAccess::Files> MemoryArtifactAccess::Get(
    const std::string& digest) const {
  MutexLock lock(&mu_);
  auto it = artifacts_.find(digest);
  if (it == artifacts_.end()) {
    return absl::NotFoundError(absl::StrCat("no artifact ", digest));
  }
  return it->second;
}

absl::Status MemoryArtifactAccess::Materialize(const std::string& digest,
                                               int workspace_fd,
                                               const std::string& path) {
  absl::StatusOr<Files> files = Get(digest);
  if (!files.ok()) return files.status();
  absl::StatusOr<std::vector<std::string>> base = Split(path);
  if (!base.ok()) return base.status();
  for (const auto& [file, content] : *files) {
    absl::StatusOr<std::vector<std::string>> parts = Split(file);
    if (!parts.ok()) return parts.status();
    std::vector<std::string> full = *base;
    full.insert(full.end(), parts->begin(), parts->end());
    absl::Status s = WriteBeneath(workspace_fd, full, content);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemoryArtifactAccess::Capture(
    int workspace_fd, const std::vector<std::string>& paths) {
  Files files;
  for (const std::string& path : paths) {
    absl::StatusOr<std::vector<std::string>> parts = Split(path);
    if (!parts.ok()) return parts.status();
    if (parts->empty()) return absl::InvalidArgumentError("empty path");
    int dir = dup(workspace_fd);
    for (size_t i = 0; i + 1 < parts->size() && dir >= 0; ++i) {
      int next = openat(dir, (*parts)[i].c_str(),
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      close(dir);
      dir = next;
    }
    if (dir < 0) {
      return absl::NotFoundError(
          absl::StrCat("path '", path, "' was not produced"));
    }
    absl::Status s = ReadEntry(dir, parts->back(), path, &files);
    close(dir);
    if (!s.ok()) return s;
  }
  return Put(std::move(files));
}

}  // namespace conformance
}  // namespace kiln
