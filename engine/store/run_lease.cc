#include "engine/store/run_lease.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "engine/store/log_file.h"

namespace kiln::store {

namespace {

// "<what> <path>: <strerror(errno)>", coded by base/status.h's mapping.
absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  return ::kiln::ErrnoStatus(errno, absl::StrCat(what, " ", path));
}

// Creates `dir` (mode 0700) if it is missing; refuses a symlink or a
// non-directory in its place.
absl::Status MakePrivateDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoError("creating", dir);
  }
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return ErrnoError("checking", dir);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " is not a directory"));
  }
  return absl::OkStatus();
}

std::string LeasePath(const std::string& store_dir, absl::string_view run_id) {
  return absl::StrCat(LeaseDir(store_dir), "/", SafeFileName(run_id), ".lock");
}

struct flock WholeFile(short type) {
  struct flock fl;
  std::memset(&fl, 0, sizeof(fl));
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;  // to the end, however long
  fl.l_pid = 0;  // required for OFD locks
  return fl;
}

int OpenLockFile(const std::string& path, int flags) {
  return open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW, 0600);
}

// The pid recorded in a lock file, or 0.
long RecordedPid(int fd) {
  char buf[32];
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return 0;
  long pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(buf, n)),
                        &pid)) {
    return 0;
  }
  return pid;
}

}  // namespace

std::string LeaseDir(const std::string& store_dir) {
  return absl::StrCat(store_dir, "/leases");
}

FileLock::~FileLock() {
  if (fd_ >= 0) close(fd_);  // closing the description drops its locks
}

RunLease::~RunLease() {
  if (fd_ >= 0) close(fd_);
}

void RunLease::ReleaseFinished() {
  if (fd_ < 0) return;
  // Unlinked while still locked: a process that opened the old file and
  // locks it after we close sees that the path no longer names it, and
  // starts over (see Acquire).
  unlink(path_.c_str());
  close(fd_);
  fd_ = -1;
}

absl::StatusOr<std::unique_ptr<RunLease>> RunLease::Acquire(
    const std::string& store_dir, absl::string_view run_id) {
  if (run_id.empty()) {
    return absl::InvalidArgumentError("RunLease: empty run id");
  }
  if (absl::Status s = MakePrivateDir(LeaseDir(store_dir)); !s.ok()) return s;
  const std::string path = LeasePath(store_dir, run_id);
  // A few rounds at most: each retry means an owner finished in between.
  for (int round = 0; round < 16; ++round) {
    int fd = OpenLockFile(path, O_RDWR | O_CREAT);
    if (fd < 0) return ErrnoError("opening run lease", path);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(fd);
      return absl::FailedPreconditionError(
          absl::StrCat("run lease ", path, " is not a regular file"));
    }
    struct flock fl = WholeFile(F_WRLCK);
    if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
      if (errno != EAGAIN && errno != EACCES) {
        absl::Status s = ErrnoError("locking run lease", path);
        close(fd);
        return s;
      }
      long pid = RecordedPid(fd);
      close(fd);
      return absl::FailedPreconditionError(absl::StrCat(
          "run ", run_id, " is being executed by another kiln process",
          pid > 0 ? absl::StrCat(" (pid ", pid, ")") : std::string(),
          "; wait for it to finish, or stop that process and resume the "
          "run then"));
    }
    // Still the file the path names (not one a finishing owner unlinked)?
    struct stat now;
    if (stat(path.c_str(), &now) != 0 || now.st_ino != st.st_ino ||
        now.st_dev != st.st_dev) {
      close(fd);
      continue;
    }
    std::string pid = absl::StrCat(getpid(), "\n");
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) !=
                                     static_cast<ssize_t>(pid.size())) {
      absl::Status s = ErrnoError("writing run lease", path);
      close(fd);
      return s;
    }
    return std::unique_ptr<RunLease>(new RunLease(path, fd));
  }
  return absl::UnavailableError(
      absl::StrCat("run lease ", path, ": kept changing under us"));
}

absl::StatusOr<bool> RunLease::IsLeased(const std::string& store_dir,
                                        absl::string_view run_id) {
  absl::StatusOr<std::unique_ptr<FileLock>> creation =
      LockCreation(store_dir, /*exclusive=*/false);
  if (!creation.ok()) return creation.status();
  const std::string path = LeasePath(store_dir, run_id);
  int fd = OpenLockFile(path, O_RDONLY);
  if (fd < 0) {
    if (errno == ENOENT) return false;
    return ErrnoError("opening run lease", path);
  }
  // A read lock conflicts with the owner's write lock: GETLK reports it.
  struct flock fl = WholeFile(F_RDLCK);
  int rc = fcntl(fd, F_OFD_GETLK, &fl);
  int saved = errno;
  close(fd);
  if (rc != 0) {
    errno = saved;
    return ErrnoError("probing run lease", path);
  }
  return fl.l_type != F_UNLCK;
}

absl::StatusOr<std::unique_ptr<FileLock>> RunLease::LockCreation(
    const std::string& store_dir, bool exclusive) {
  if (absl::Status s = MakePrivateDir(LeaseDir(store_dir)); !s.ok()) return s;
  const std::string path = absl::StrCat(LeaseDir(store_dir), "/creation.lock");
  int fd = OpenLockFile(path, O_RDWR | O_CREAT);
  if (fd < 0) return ErrnoError("opening", path);
  struct flock fl = WholeFile(exclusive ? F_WRLCK : F_RDLCK);
  while (fcntl(fd, F_OFD_SETLKW, &fl) != 0) {
    if (errno == EINTR) continue;
    absl::Status s = ErrnoError("locking", path);
    close(fd);
    return s;
  }
  return std::unique_ptr<FileLock>(new FileLock(fd));
}

}  // namespace kiln::store
