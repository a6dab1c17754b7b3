#include "base/remove_tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"

namespace kiln {
namespace {

// A name for a subtree moved up (fresh per call; reseeded after fork).
std::string MovedName() {
  thread_local pid_t seeded_for = 0;
  thread_local std::mt19937_64 rng;
  if (seeded_for != getpid()) {
    seeded_for = getpid();
    std::random_device rd;
    rng.seed((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
             static_cast<uint64_t>(seeded_for));
  }
  return absl::StrFormat(".kiln-deep-%016x", rng());
}

}  // namespace

namespace {

// Gives the owner full access to directory `name` under `parent_fd` without
// following a symlink: the directory is opened with O_PATH|O_NOFOLLOW and
// its mode changed through /proc/self/fd, which names that very inode.
bool MakeOwnerAccessible(int parent_fd, const std::string& name) {
  int path_fd = openat(parent_fd, name.c_str(),
                       O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (path_fd < 0) return false;
  std::string proc = absl::StrCat("/proc/self/fd/", path_fd);
  bool ok = chmod(proc.c_str(), 0700) == 0;
  int saved = errno;
  close(path_fd);
  errno = saved;
  return ok;
}

}  // namespace

namespace {

constexpr int kOpenDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

// Opens directory `name` of parent_fd for removal: an unreadable one (mode
// 0) is made accessible first, and one its owner cannot write or search
// (e.g. 0555) is fixed, so that a non-root engine removes what a task left.
// The mode is changed through the directory's own descriptor (never by
// name, which a task could swap for a symlink).
int OpenDirForRemoval(int parent_fd, const std::string& name) {
  int fd = openat(parent_fd, name.c_str(), kOpenDirFlags);
  if (fd < 0) {
    if (errno != EACCES || !MakeOwnerAccessible(parent_fd, name)) return -1;
    return openat(parent_fd, name.c_str(), kOpenDirFlags);
  }
  struct stat st;
  if (fstat(fd, &st) == 0 && (st.st_mode & 0700) != 0700) fchmod(fd, 0700);
  return fd;
}

// The names in the directory open at fd (without "." and "..").
absl::Status ListNames(int fd, const std::string& shown,
                       std::vector<std::string>* names) {
  int list_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (list_fd < 0) return ErrnoStatus(errno, absl::StrCat("dup ", shown));
  DIR* d = fdopendir(list_fd);
  if (d == nullptr) {
    close(list_fd);
    return ErrnoStatus(errno, absl::StrCat("opendir ", shown));
  }
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    names->emplace_back(e->d_name);
  }
  closedir(d);
  return absl::OkStatus();
}

// One open directory on RemoveTreeAt's path down the tree.
struct RemovalFrame {
  int fd = -1;
  std::string name;  // its name in the frame above
  std::vector<std::string>
      pending;          // entries of this directory still to remove
  bool failed = false;  // something below could not be removed
};

}  // namespace

// Iterative, so that neither the stack nor the descriptors grow with the
// depth of the tree (a task can make a tree of any depth): at most
// kMaxRemovalDepth directories are open at once. A directory found below
// that depth is moved (renameat, beneath the top directory's descriptor)
// up into the top directory under a fresh name and removed from there
// later; the move shortens the chain, so any depth is removed with bounded
// descriptors. Every step is relative to an open directory and never
// follows a symlink.
absl::Status RemoveTreeAt(int parent_fd, const std::string& name) {
  struct stat st;
  if (fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, absl::StrCat("stat ", name));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(parent_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, absl::StrCat("unlink ", name));
    }
    return absl::OkStatus();
  }
  absl::Status result;
  auto note = [&result](absl::Status s) {
    if (result.ok()) result = std::move(s);
  };
  std::vector<RemovalFrame> stack;
  // Opens directory `child` of the frame on top (or of parent_fd) and
  // pushes it; false (with the error noted) if it cannot be opened.
  auto push = [&](int dir_fd, const std::string& child) {
    int fd = OpenDirForRemoval(dir_fd, child);
    if (fd < 0) {
      const int err = errno;
      note(ErrnoStatus(
          err, absl::StrCat("open ", child, " (in ", name, ") to remove it")));
      return false;
    }
    RemovalFrame f;
    f.fd = fd;
    f.name = child;
    absl::Status listed = ListNames(fd, child, &f.pending);
    if (!listed.ok()) {
      note(listed);
      f.failed = true;
      f.pending.clear();
    }
    stack.push_back(std::move(f));
    return true;
  };
  if (!push(parent_fd, name)) return result;
  while (!stack.empty()) {
    RemovalFrame& top = stack.back();
    if (top.pending.empty()) {
      // Everything below is gone (or failed): remove the directory itself.
      RemovalFrame done = std::move(top);
      stack.pop_back();
      close(done.fd);
      int above = stack.empty() ? parent_fd : stack.back().fd;
      if (done.failed) {
        if (!stack.empty()) stack.back().failed = true;
        continue;
      }
      if (unlinkat(above, done.name.c_str(), AT_REMOVEDIR) != 0 &&
          errno != ENOENT) {
        const int err = errno;
        note(ErrnoStatus(
            err, absl::StrCat("rmdir ", done.name, " (in ", name, ")")));
        if (!stack.empty()) stack.back().failed = true;
      }
      continue;
    }
    std::string child = std::move(top.pending.back());
    top.pending.pop_back();
    if (fstatat(top.fd, child.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      const int err = errno;
      note(ErrnoStatus(err, absl::StrCat("stat ", child, " (in ", name, ")")));
      top.failed = true;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (unlinkat(top.fd, child.c_str(), 0) != 0 && errno != ENOENT) {
        const int err = errno;
        note(ErrnoStatus(err,
                         absl::StrCat("unlink ", child, " (in ", name, ")")));
        top.failed = true;
      }
      continue;
    }
    if (stack.size() >= static_cast<size_t>(kMaxRemovalDepth)) {
      // Too deep to descend: move the subtree up into the top directory.
      std::string moved = MovedName();
      if (renameat(top.fd, child.c_str(), stack.front().fd, moved.c_str()) !=
          0) {
        const int err = errno;
        note(ErrnoStatus(
            err, absl::StrCat("move ", child, " (more than ", kMaxRemovalDepth,
                              " levels deep in ", name, ") up to remove it")));
        top.failed = true;
        continue;
      }
      stack.front().pending.push_back(std::move(moved));
      continue;
    }
    const size_t top_index = stack.size() - 1;
    if (!push(top.fd, child)) stack[top_index].failed = true;  // no realloc
  }
  return result;
}

}  // namespace kiln
