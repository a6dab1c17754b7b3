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

absl::StatusOr<std::string> ReadStoreRecord(const std::string& path,
                                            size_t max) {
  char buf[1024];
  if (max >= sizeof(buf)) {
    return absl::InvalidArgumentError("ReadStoreRecord: max too large");
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  ssize_t n;
  do {
    n = read(fd, buf, max + 1);
  } while (n < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (n < 0) return ErrnoStatus(err, absl::StrCat("read ", path));
  if (static_cast<size_t>(n) > max) {
    return absl::DataLossError(
        absl::StrCat(path, ": longer than ", max, " bytes"));
  }
  return std::string(buf, static_cast<size_t>(n));
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
  return WriteFileAtomically(path, contents,
                             absl::StrCat(path, ".tmp-", RandomSuffix()));
}

namespace {

absl::Status ReplaceFile(const std::string& path, absl::string_view contents,
                         const std::string& tmp, bool sync) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
  absl::Status st = WriteAll(fd, contents, tmp);
  if (st.ok() && sync && fsync(fd) != 0) {
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
  return sync ? SyncDir(dir) : absl::OkStatus();
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents,
                                 const std::string& tmp) {
  return ReplaceFile(path, contents, tmp, /*sync=*/true);
}

absl::Status WriteCacheFileAtomically(const std::string& path,
                                      absl::string_view contents,
                                      const std::string& tmp) {
  return ReplaceFile(path, contents, tmp, /*sync=*/false);
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
