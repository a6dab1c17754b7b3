#include "executors/results_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln {
namespace {

class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads at most `limit` + 1 bytes of `fd` into *out.
absl::Status ReadBounded(int fd, size_t limit, std::string* out) {
  char buf[1024];
  while (out->size() <= limit) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read");
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckResultsDirName(const std::string& name) {
  if (name.empty() || name == "." || name == ".." ||
      name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "results_dir '", name, "' must be one plain directory name"));
  }
  return absl::OkStatus();
}

absl::Status MakeResultsDir(int workspace_fd, const std::string& name) {
  absl::Status ok = CheckResultsDirName(name);
  if (!ok.ok()) return ok;
  if (mkdirat(workspace_fd, name.c_str(), 0700) != 0) {
    return ErrnoStatus(errno,
                       absl::StrCat("creating the results directory ", name));
  }
  int fd = openat(workspace_fd, name.c_str(),
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoStatus(errno,
                       absl::StrCat("opening the results directory ", name));
  }
  ScopedFd dir(fd);
  // Exactly the workspace's mode (0755), whatever the umask.
  if (fchmod(dir.get(), 0755) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chmod ", name));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> ReadResultsDir(
    int workspace_fd, const std::string& name) {
  absl::Status ok = CheckResultsDirName(name);
  if (!ok.ok()) return ok;
  int fd = openat(workspace_fd, name.c_str(),
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP || errno == ENOTDIR) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the results directory ", name, " was replaced by a non-directory"));
    }
    return ErrnoStatus(errno,
                       absl::StrCat("opening the results directory ", name));
  }
  // fdopendir takes the fd; a second one stays ours for openat.
  int list_fd = dup(fd);
  ScopedFd dir(fd);
  if (list_fd < 0) return ErrnoStatus(errno, "dup");
  DIR* listing = fdopendir(list_fd);
  if (listing == nullptr) {
    int err = errno;
    close(list_fd);
    return ErrnoStatus(err, "listing the results directory");
  }
  std::map<std::string, std::string> out;
  size_t total = 0;
  absl::Status status = absl::OkStatus();
  size_t entries = 0;
  while (status.ok()) {
    errno = 0;
    struct dirent* e = readdir(listing);
    if (e == nullptr) {
      if (errno != 0) status = ErrnoStatus(errno, "reading the results");
      break;
    }
    std::string entry = e->d_name;
    if (entry == "." || entry == "..") continue;
    if (++entries > kMaxResultEntries) {
      status = absl::ResourceExhaustedError(absl::StrCat(
          "more than ", kMaxResultEntries, " entries in $KILN_RESULTS"));
      break;
    }
    int file =
        openat(dir.get(), entry.c_str(),
               O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (file < 0) {
      status = errno == ELOOP
                   ? absl::InvalidArgumentError(absl::StrCat(
                         "result '", entry,
                         "' is a symlink (results must be regular files)"))
                   : ErrnoStatus(errno,
                                 absl::StrCat("opening result '", entry, "'"));
      break;
    }
    ScopedFd f(file);
    struct stat st;
    if (fstat(f.get(), &st) != 0) {
      status = ErrnoStatus(errno, absl::StrCat("stat of result '", entry, "'"));
      break;
    }
    if (!S_ISREG(st.st_mode)) {
      status = absl::InvalidArgumentError(
          absl::StrCat("result '", entry, "' is not a regular file"));
      break;
    }
    if (static_cast<uint64_t>(st.st_size) > kMaxResultBytes) {
      status = absl::ResourceExhaustedError(
          absl::StrCat("result '", entry, "' has ", st.st_size,
                       " bytes; a result may have at most ", kMaxResultBytes));
      break;
    }
    std::string content;
    status = ReadBounded(f.get(), kMaxResultBytes, &content);
    if (!status.ok()) break;
    if (content.size() > kMaxResultBytes) {  // it grew after fstat
      status = absl::ResourceExhaustedError(
          absl::StrCat("result '", entry, "' has more than ", kMaxResultBytes,
                       " bytes (the limit of a result)"));
      break;
    }
    total += content.size();
    if (total > kMaxResultsTotalBytes) {
      status = absl::ResourceExhaustedError(
          absl::StrCat("the results have more than ", kMaxResultsTotalBytes,
                       " bytes together (the limit)"));
      break;
    }
    out[entry] = std::move(content);
  }
  closedir(listing);
  if (!status.ok()) return status;
  return out;
}

}  // namespace kiln
