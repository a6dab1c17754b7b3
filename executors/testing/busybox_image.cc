#include "executors/testing/busybox_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"

namespace kiln {
namespace conformance {
namespace {

// Applets the conformance programs and the image tests use.
const char* const kApplets[] = {
    "sh",    "cat",  "printf", "sleep", "yes",  "env",      "id",    "ls",
    "mkdir", "echo", "rm",     "touch", "test", "true",     "false", "pwd",
    "stat",  "wc",   "grep",   "cp",    "mv",   "readlink", "head",  "tr",
};

absl::Status MakeParents(const std::string& layer, const std::string& path) {
  std::filesystem::path parent =
      std::filesystem::path(layer + "/" + path).parent_path();
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("mkdir ", parent.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::Status CopyFile(const std::string& from, const std::string& to,
                      mode_t mode) {
  std::ifstream in(from, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", from));
  std::ostringstream content;
  content << in.rdbuf();
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  out << content.str();
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", to));
  if (chmod(to.c_str(), mode) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chmod ", to));
  }
  return absl::OkStatus();
}

}  // namespace

std::string TestReference(const std::string& name) {
  size_t h1 = std::hash<std::string>()(name);
  size_t h2 = std::hash<std::string>()(name + "#");
  std::string hex = absl::StrFormat("%016x%016x", h1, h2);
  return absl::StrCat(name, "@sha256:", hex, hex);
}

BusyboxImageAccess::BusyboxImageAccess(std::string root)
    : root_(std::move(root)) {}

absl::StatusOr<std::string> BusyboxImageAccess::NewLayer(
    const std::string& name) {
  std::string dir = absl::StrCat(root_, "/", name);
  if (mkdir(dir.c_str(), 0755) != 0) {
    return ErrnoStatus(errno, absl::StrCat("mkdir ", dir));
  }
  chmod(dir.c_str(), 0755);
  return dir;
}

absl::StatusOr<std::string> BusyboxImageAccess::BusyboxLayer(
    const std::string& name) {
  absl::StatusOr<std::string> layer = NewLayer(name);
  if (!layer.ok()) return layer.status();
  const std::string& l = *layer;
  for (const char* dir : {"bin", "usr/bin", "etc", "root", "home/builder"}) {
    std::error_code ec;
    std::filesystem::create_directories(l + "/" + dir, ec);
    if (ec) return absl::InternalError(ec.message());
  }
  std::string tmp = l + "/tmp";
  if (mkdir(tmp.c_str(), 01777) != 0 || chmod(tmp.c_str(), 01777) != 0) {
    return ErrnoStatus(errno, "mkdir tmp");
  }
  if (chown((l + "/home/builder").c_str(), 1000, 1000) != 0) {
    return ErrnoStatus(errno, "chown home/builder");
  }
  absl::Status copied = CopyFile(kHostBusybox, l + "/bin/busybox", 0755);
  if (!copied.ok()) return copied;
  for (const char* applet : kApplets) {
    std::string link = absl::StrCat(l, "/bin/", applet);
    if (symlink("busybox", link.c_str()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("symlink ", link));
    }
  }
  if (symlink("/bin/busybox", (l + "/usr/bin/env").c_str()) != 0) {
    return ErrnoStatus(errno, "symlink usr/bin/env");
  }
  for (const auto& [path, content] :
       {std::pair<const char*, const char*>{"etc/passwd", kBusyboxPasswd},
        {"etc/group", kBusyboxGroup}}) {
    absl::Status s = WriteLayerFile(l, path, content);
    if (!s.ok()) return s;
  }
  return layer;
}

void BusyboxImageAccess::Add(const std::string& reference,
                             PreparedImage image) {
  image.reference = reference;
  MutexLock lock(&mu_);
  images_.insert_or_assign(reference, std::move(image));
}

void BusyboxImageAccess::AddFailing(const std::string& reference,
                                    absl::Status status) {
  MutexLock lock(&mu_);
  images_.insert_or_assign(reference, std::move(status));
}

int BusyboxImageAccess::prepare_calls() const {
  MutexLock lock(&mu_);
  return prepare_calls_;
}

absl::StatusOr<PreparedImage> BusyboxImageAccess::Prepare(
    const std::string& reference) {
  MutexLock lock(&mu_);
  ++prepare_calls_;
  if (!absl::StrContains(reference, "@sha256:")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", reference, "' is not pinned by digest (name@sha256:...)"));
  }
  auto it = images_.find(reference);
  if (it == images_.end()) {
    return absl::NotFoundError(
        absl::StrCat("image ", reference, " is not known"));
  }
  return it->second;
}

absl::Status WriteLayerFile(const std::string& layer, const std::string& path,
                            const std::string& content, mode_t mode) {
  absl::Status parents = MakeParents(layer, path);
  if (!parents.ok()) return parents;
  std::string full = absl::StrCat(layer, "/", path);
  std::ofstream out(full, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", full));
  if (chmod(full.c_str(), mode) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chmod ", full));
  }
  return absl::OkStatus();
}

absl::Status MakeWhiteout(const std::string& layer, const std::string& path) {
  absl::Status parents = MakeParents(layer, path);
  if (!parents.ok()) return parents;
  std::string full = absl::StrCat(layer, "/", path);
  if (mknod(full.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
    return ErrnoStatus(errno, absl::StrCat("mknod whiteout ", full));
  }
  return absl::OkStatus();
}

absl::Status MakeOpaqueDir(const std::string& layer, const std::string& path) {
  std::string full = absl::StrCat(layer, "/", path);
  std::error_code ec;
  std::filesystem::create_directories(full, ec);
  if (ec) return absl::InternalError(ec.message());
  if (setxattr(full.c_str(), "user.overlay.opaque", "y", 1, 0) != 0) {
    return ErrnoStatus(errno,
                       absl::StrCat("setxattr user.overlay.opaque ", full));
  }
  // Needs CAP_SYS_ADMIN of the host; the sandbox reads the user.* one.
  setxattr(full.c_str(), "trusted.overlay.opaque", "y", 1, 0);
  return absl::OkStatus();
}

std::vector<std::string> TreeSnapshot(const std::string& dir) {
  std::vector<std::string> entries;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::none, ec);
       !ec && it != std::filesystem::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string path = it->path().string();
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;
    std::string line =
        absl::StrFormat("%s %o %u:%u %d", path.substr(dir.size()), st.st_mode,
                        st.st_uid, st.st_gid, static_cast<int64_t>(st.st_size));
    if (S_ISREG(st.st_mode)) {
      std::ifstream in(path, std::ios::binary);
      std::ostringstream content;
      content << in.rdbuf();
      absl::StrAppend(&line, " ", std::hash<std::string>()(content.str()));
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = readlink(path.c_str(), target, sizeof(target));
      if (n > 0) absl::StrAppend(&line, " -> ", std::string(target, n));
    }
    for (const char* name : {"user.overlay.opaque", "trusted.overlay.opaque"}) {
      char value[8];
      ssize_t n = lgetxattr(path.c_str(), name, value, sizeof(value));
      if (n > 0) absl::StrAppend(&line, " ", name, "=", std::string(value, n));
    }
    entries.push_back(std::move(line));
  }
  std::sort(entries.begin(), entries.end());
  return entries;
}

}  // namespace conformance
}  // namespace kiln
