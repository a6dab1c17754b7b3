#include "engine/cas/file_io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kiln::cas {

absl::Status WriteAll(int fd, absl::string_view data, absl::string_view what) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("write ", what));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> ReadFull(int fd, char* buf, size_t size,
                                absl::string_view what) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = read(fd, buf + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", what));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  std::string out;
  char buf[8192];
  while (true) {
    absl::StatusOr<size_t> n = ReadFull(fd, buf, sizeof(buf), path);
    if (!n.ok()) {
      close(fd);
      return n.status();
    }
    out.append(buf, *n);
    if (*n < sizeof(buf)) break;
  }
  close(fd);
  return out;
}

absl::Status SyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", dir));
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return ErrnoStatus(err, absl::StrCat("fsync ", dir));
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  std::string tmp = absl::StrCat(path, ".tmp-", RandomSuffix());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
  absl::Status st = WriteAll(fd, contents, tmp);
  if (st.ok() && fsync(fd) != 0) {
    st = ErrnoStatus(errno, absl::StrCat("fsync ", tmp));
  }
  close(fd);
  if (st.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    st = ErrnoStatus(errno, absl::StrCat("rename to ", path));
  }
  if (!st.ok()) {
    unlink(tmp.c_str());
    return st;
  }
  return SyncDir(dir);
}

absl::Status MakeDirs(const std::string& dir) {
  if (dir.empty()) return absl::OkStatus();
  struct stat st;
  if (stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " exists and is not a directory"));
  }
  size_t slash = dir.find_last_not_of('/');
  slash =
      slash == std::string::npos ? std::string::npos : dir.rfind('/', slash);
  if (slash != std::string::npos && slash > 0) {
    absl::Status parent = MakeDirs(dir.substr(0, slash));
    if (!parent.ok()) return parent;
  }
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, absl::StrCat("mkdir ", dir));
  }
  return absl::OkStatus();
}

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
  std::string name;               // its name in the frame above
  std::vector<std::string> todo;  // entries not yet removed
  bool failed = false;            // something below could not be removed
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
    absl::Status listed = ListNames(fd, child, &f.todo);
    if (!listed.ok()) {
      note(listed);
      f.failed = true;
      f.todo.clear();
    }
    stack.push_back(std::move(f));
    return true;
  };
  if (!push(parent_fd, name)) return result;
  while (!stack.empty()) {
    RemovalFrame& top = stack.back();
    if (top.todo.empty()) {
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
    std::string child = std::move(top.todo.back());
    top.todo.pop_back();
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
      std::string moved = absl::StrCat(".kiln-deep-", RandomSuffix());
      if (renameat(top.fd, child.c_str(), stack.front().fd, moved.c_str()) !=
          0) {
        const int err = errno;
        note(ErrnoStatus(
            err, absl::StrCat("move ", child, " (more than ", kMaxRemovalDepth,
                              " levels deep in ", name, ") up to remove it")));
        top.failed = true;
        continue;
      }
      stack.front().todo.push_back(std::move(moved));
      continue;
    }
    const size_t top_index = stack.size() - 1;
    if (!push(top.fd, child)) stack[top_index].failed = true;  // no realloc
  }
  return result;
}

absl::Status RemoveTree(const std::string& path) {
  return RemoveTreeAt(AT_FDCWD, path);
}

std::string RandomSuffix() {
  // Reseeded after fork so that parent and child never draw the same names.
  thread_local pid_t seeded_for = 0;
  thread_local std::mt19937_64 rng;
  if (seeded_for != getpid()) {
    seeded_for = getpid();
    std::random_device rd;
    rng.seed((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
             static_cast<uint64_t>(seeded_for));
  }
  return absl::StrFormat("%016x", rng());
}

}  // namespace kiln::cas
