#include "engine/cas/beneath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/cas/file_io.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

namespace kiln::cas {
namespace {

std::atomic<bool> force_walk{false};

constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

// The error for a failed resolution of `shown` (errno `err`).
absl::Status ResolveError(int err, absl::string_view shown) {
  switch (err) {
    case ELOOP:
      return absl::InvalidArgumentError(
          absl::StrCat("path \"", shown,
                       "\" goes through or ends at a symlink; the engine "
                       "never follows symlinks in task or client trees"));
    case ENOTDIR:
      return absl::InvalidArgumentError(
          absl::StrCat("path \"", shown,
                       "\" goes through something that is not a "
                       "directory"));
    case EXDEV:
      return absl::InvalidArgumentError(
          absl::StrCat("path \"", shown, "\" leaves its root directory"));
    default:
      return ErrnoStatus(err, absl::StrCat("open directory \"", shown, "\""));
  }
}

int Openat2Dir(int root_fd, const char* path) {
  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = kDirFlags;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd;
  int tries = 0;
  do {  // EAGAIN: a concurrent rename somewhere; retrying is safe.
    fd = syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
  } while (fd < 0 && errno == EAGAIN && ++tries < 16);
  return static_cast<int>(fd);
}

// Opens parts[0..n) below root_fd component by component with O_NOFOLLOW,
// creating missing ones if `create`.
absl::StatusOr<UniqueFd> WalkComponents(int root_fd,
                                        const std::vector<std::string>& parts,
                                        size_t n, bool create, mode_t mode) {
  UniqueFd dir(fcntl(root_fd, F_DUPFD_CLOEXEC, 0));
  if (!dir.valid()) return ErrnoStatus(errno, "dup");
  for (size_t i = 0; i < n; ++i) {
    const std::string& name = parts[i];
    auto shown = [&] {
      return absl::StrJoin(parts.begin(), parts.begin() + i + 1, "/");
    };
    int fd = openat(dir.get(), name.c_str(), kDirFlags);
    if (fd < 0 && errno == ENOTDIR) {
      // O_DIRECTORY | O_NOFOLLOW on a symlink says ENOTDIR: name the cause.
      struct stat st;
      if (fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode)) {
        errno = ELOOP;
      } else {
        errno = ENOTDIR;
      }
    }
    if (fd < 0 && errno == ENOENT && create) {
      absl::StatusOr<UniqueFd> made = MakeDirAt(dir.get(), name, mode);
      if (made.ok()) {
        dir = std::move(*made);
        continue;
      }
      if (!absl::IsAlreadyExists(made.status())) return made.status();
      fd = openat(dir.get(), name.c_str(), kDirFlags);  // lost a race
    }
    if (fd < 0) return ResolveError(errno, shown());
    dir = UniqueFd(fd);
  }
  return dir;
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.Release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) close(fd_);
}

int UniqueFd::Release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

absl::StatusOr<std::vector<std::string>> SplitRelativePath(
    absl::string_view path) {
  if (path.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("path contains a NUL byte");
  }
  if (absl::StartsWith(path, "/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("path \"", path, "\" must be relative"));
  }
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(path, '/')) {
    if (p.empty() || p == ".") continue;
    if (p == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("path \"", path, "\" has a \"..\" component"));
    }
    parts.emplace_back(p);
  }
  return parts;
}

absl::StatusOr<UniqueFd> OpenTrustedDir(const std::string& path) {
  int fd = open(path.empty() ? "." : path.c_str(),
                O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open directory ", path));
  return UniqueFd(fd);
}

absl::StatusOr<UniqueFd> OpenDirBeneath(int root_fd, absl::string_view path) {
  absl::StatusOr<std::vector<std::string>> parts = SplitRelativePath(path);
  if (!parts.ok()) return parts.status();
  if (parts->empty()) {
    int fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return ErrnoStatus(errno, "dup");
    return UniqueFd(fd);
  }
  if (!force_walk.load(std::memory_order_relaxed)) {
    std::string joined = absl::StrJoin(*parts, "/");
    int fd = Openat2Dir(root_fd, joined.c_str());
    if (fd >= 0) return UniqueFd(fd);
    // ELOOP/ENOTDIR: the walk below names the cause precisely.
    if (errno != ENOSYS && errno != ELOOP && errno != ENOTDIR) {
      return ResolveError(errno, joined);
    }
  }
  return WalkComponents(root_fd, *parts, parts->size(), false, 0);
}

absl::StatusOr<UniqueFd> MakeDirsBeneath(int root_fd, absl::string_view path,
                                         mode_t mode) {
  absl::StatusOr<std::vector<std::string>> parts = SplitRelativePath(path);
  if (!parts.ok()) return parts.status();
  return WalkComponents(root_fd, *parts, parts->size(), true, mode);
}

absl::StatusOr<UniqueFd> MakeDirAt(int dir_fd, const std::string& name,
                                   mode_t mode) {
  if (mkdirat(dir_fd, name.c_str(), mode) != 0) {
    return ErrnoStatus(errno, absl::StrCat("mkdir ", name));
  }
  int fd = openat(dir_fd, name.c_str(), kDirFlags);
  if (fd < 0) {
    return ErrnoStatus(errno,
                       absl::StrCat("open ", name, " (replaced after mkdir?)"));
  }
  UniqueFd dir(fd);
  // mkdir's mode is cut by the umask; the engine's trees must not be.
  if (fchmod(dir.get(), mode) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chmod ", name));
  }
  return dir;
}

absl::Status RenameNoReplace(int from_dir, const std::string& from, int to_dir,
                             const std::string& to) {
  if (renameat2(from_dir, from.c_str(), to_dir, to.c_str(), RENAME_NOREPLACE) ==
      0) {
    return absl::OkStatus();
  }
  if (errno != EINVAL && errno != ENOSYS) {
    return ErrnoStatus(errno, absl::StrCat("rename ", from, " to ", to));
  }
  // No RENAME_NOREPLACE on this filesystem: check, then rename.
  struct stat st;
  if (fstatat(to_dir, to.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(to, " exists"));
  }
  if (renameat(from_dir, from.c_str(), to_dir, to.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename ", from, " to ", to));
  }
  return absl::OkStatus();
}

absl::Status ExchangeAt(int dir_fd, const std::string& a,
                        const std::string& b) {
  if (renameat2(dir_fd, a.c_str(), dir_fd, b.c_str(), RENAME_EXCHANGE) == 0) {
    return absl::OkStatus();
  }
  if (errno == EINVAL || errno == ENOSYS) {
    return absl::UnimplementedError("rename exchange not supported here");
  }
  return ErrnoStatus(errno, absl::StrCat("exchange ", a, " and ", b));
}

absl::Status RemoveTreeBeneath(int root_fd, absl::string_view path) {
  absl::StatusOr<std::vector<std::string>> parts = SplitRelativePath(path);
  if (!parts.ok()) return parts.status();
  if (parts->empty()) {
    return absl::InvalidArgumentError("refusing to remove the root itself");
  }
  std::string name = parts->back();
  parts->pop_back();
  absl::StatusOr<UniqueFd> parent =
      OpenDirBeneath(root_fd, absl::StrJoin(*parts, "/"));
  if (!parent.ok()) {
    return absl::IsNotFound(parent.status()) ? absl::OkStatus()
                                             : parent.status();
  }
  return RemoveTreeAt(parent->get(), name);
}

uint64_t ProcessStartTime(pid_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[1024];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return 0;
  // "pid (comm) state ppid ...": comm may hold anything, so fields are
  // counted from its last ')'; starttime is field 22, the 20th after it.
  absl::string_view text(buf, static_cast<size_t>(n));
  size_t paren = text.rfind(')');
  if (paren == absl::string_view::npos) return 0;
  std::vector<absl::string_view> fields =
      absl::StrSplit(text.substr(paren + 1), ' ', absl::SkipEmpty());
  uint64_t start = 0;
  if (fields.size() < 20 || !absl::SimpleAtoi(fields[19], &start)) return 0;
  return start;
}

std::string TempName(absl::string_view kind) {
  // The start time tells a reused pid from the creator (fork: recomputed).
  static std::atomic<pid_t> cached_pid{0};
  static std::atomic<uint64_t> cached_start{0};
  const pid_t pid = getpid();
  uint64_t start = cached_start.load();
  if (cached_pid.load() != pid) {
    start = ProcessStartTime(pid);
    cached_start.store(start);
    cached_pid.store(pid);
  }
  return absl::StrCat(".kiln-", kind, "-", pid, "-", start, "-",
                      RandomSuffix());
}

namespace {

struct Owner {
  pid_t pid = 0;       // 0: not a temp name
  uint64_t start = 0;  // the creator's start time; 0 if not recorded
};

bool AllDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// The creator of a temp entry, pid 0 if `name` is not a temp name.
Owner TempOwner(absl::string_view name) {
  Owner owner;
  absl::string_view pid_text;
  if (absl::ConsumePrefix(&name, ".kiln-")) {
    // <kind>-<pid>-<start>-<16 hex>, or (older) <kind>-<pid>-<16 hex>
    size_t dash = name.find('-');
    if (dash == 0 || dash == absl::string_view::npos) return owner;
    for (char c : name.substr(0, dash)) {
      if (!absl::ascii_islower(static_cast<unsigned char>(c))) return owner;
    }
    name.remove_prefix(dash + 1);
    dash = name.rfind('-');
    if (dash == absl::string_view::npos) return owner;
    absl::string_view hex = name.substr(dash + 1);
    if (hex.size() != 16) return owner;
    for (char c : hex) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return owner;
    }
    pid_text = name.substr(0, dash);
    size_t second = pid_text.find('-');
    if (second != absl::string_view::npos) {
      absl::string_view start_text = pid_text.substr(second + 1);
      if (!AllDigits(start_text) ||
          !absl::SimpleAtoi(start_text, &owner.start)) {
        return owner;
      }
      pid_text = pid_text.substr(0, second);
    }
    if (!AllDigits(pid_text)) return owner;
  } else {
    // The forms older engines left: <name>.kiln-unstash-<pid>, .kiln-old-<pid>.
    size_t at = name.rfind(".kiln-unstash-");
    size_t len = sizeof(".kiln-unstash-") - 1;
    if (at == absl::string_view::npos) {
      at = name.rfind(".kiln-old-");
      len = sizeof(".kiln-old-") - 1;
    }
    if (at == absl::string_view::npos || at == 0) return owner;
    pid_text = name.substr(at + len);
  }
  int pid = 0;
  if (pid_text.empty() || !absl::SimpleAtoi(pid_text, &pid) || pid <= 0) {
    return Owner{};
  }
  owner.pid = pid;
  return owner;
}

// True when the creator recorded in `owner` is certainly gone: no process
// has its pid, or the one that has it started at another time (the pid was
// reused). A process we cannot see the start of counts as alive.
bool OwnerGone(const Owner& owner) {
  if (kill(owner.pid, 0) != 0 && errno == ESRCH) return true;
  if (owner.start == 0) return false;
  const uint64_t now = ProcessStartTime(owner.pid);
  return now != 0 && now != owner.start;
}

}  // namespace

absl::StatusOr<int> SweepDeadTemps(int dir_fd) {
  int fd = openat(dir_fd, ".", kDirFlags);
  if (fd < 0) return ErrnoStatus(errno, "open directory to sweep");
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return ErrnoStatus(errno, "opendir to sweep");
  }
  std::vector<std::string> dead;
  while (dirent* e = readdir(d)) {
    Owner owner = TempOwner(e->d_name);
    if (owner.pid == 0) continue;
    if (owner.pid == getpid()) {
      // Ours, unless a process before us had our pid.
      if (owner.start == 0 || owner.start == ProcessStartTime(getpid())) {
        continue;
      }
      dead.emplace_back(e->d_name);
    } else if (OwnerGone(owner)) {
      dead.emplace_back(e->d_name);
    }
  }
  closedir(d);
  int removed = 0;
  absl::Status first;
  for (const std::string& name : dead) {
    absl::Status st = RemoveTreeAt(dir_fd, name);
    if (st.ok()) {
      ++removed;
    } else if (first.ok()) {
      first = st;
    }
  }
  if (!first.ok()) return first;
  return removed;
}

void ForceComponentWalkForTesting(bool force) {
  force_walk.store(force, std::memory_order_relaxed);
}

}  // namespace kiln::cas
