#include "engine/cli/state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kiln::cli {
namespace {

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::FailedPreconditionError(
      absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::StatusOr<std::string> ReadExisting(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Errno("opening", path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    absl::Status s = Errno("reading", path);
    close(fd);
    return s;
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
      (st.st_mode & 077) != 0) {
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat(
        path,
        " must be a regular file owned by this user with mode 0600 (it "
        "holds a secret); fix or remove it"));
  }
  std::string text;
  char buf[512];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno("reading", path);
      close(fd);
      return s;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > 4096) break;
  }
  close(fd);
  // The first field of the first line that is neither empty nor a comment
  // (the format of `kiln serve --agent-token-file`).
  std::string first;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    first = std::string(line.substr(0, line.find_first_of(" \t")));
    break;
  }
  if (first.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is empty; remove it to make a new one"));
  }
  return first;
}

}  // namespace

absl::StatusOr<std::string> ReadOrCreateStateFile(
    const std::string& path,
    const std::function<absl::StatusOr<std::string>()>& make) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Errno("creating", dir);
  }
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) return ReadExisting(path);
  if (errno != ENOENT) return Errno("reading", path);

  absl::StatusOr<std::string> value = make();
  if (!value.ok()) return value.status();
  std::random_device random;
  std::string temp = absl::StrCat(path, ".tmp.", getpid(), ".", random());
  int fd = open(temp.c_str(),
                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("creating", temp);
  const std::string line = *value + "\n";
  bool written = write(fd, line.data(), line.size()) ==
                     static_cast<ssize_t>(line.size()) &&
                 fsync(fd) == 0;
  absl::Status write_error =
      written ? absl::OkStatus() : Errno("writing", temp);
  close(fd);
  if (!written) {
    unlink(temp.c_str());
    return write_error;
  }
  // link(2) fails with EEXIST if another process got there first: then its
  // value is the one.
  int linked = link(temp.c_str(), path.c_str());
  int link_errno = errno;
  unlink(temp.c_str());
  if (linked != 0) {
    if (link_errno == EEXIST) return ReadExisting(path);
    errno = link_errno;
    return Errno("creating", path);
  }
  int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return *value;
}

}  // namespace kiln::cli
