#include "engine/source/secrets.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln::source {
namespace {

constexpr int64_t kMaxSecretBytes = 64 << 10;
constexpr int kMaxSecrets = 1024;

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 255 || name[0] == '.') return false;
  for (char c : name) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
          c == '.')) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<Secrets> Secrets::Load(const std::string& dir) {
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    return ErrnoStatus(errno, absl::StrCat("secrets directory '", dir, "'"));
  }
  struct stat st;
  if (fstat(dfd, &st) != 0 || (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    close(dfd);
    return absl::FailedPreconditionError(
        absl::StrCat("secrets directory '", dir,
                     "' is accessible by group or others (chmod 700)"));
  }
  DIR* d = fdopendir(dfd);
  if (d == nullptr) {
    close(dfd);
    return ErrnoStatus(errno, absl::StrCat("reading '", dir, "'"));
  }
  std::unique_ptr<DIR, int (*)(DIR*)> closer(d, closedir);
  Secrets out;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.empty() || name[0] == '.') continue;
    if (!ValidName(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("secret file '", dir, "/", name,
                       "': names are letters, digits, '-', '_' and '.'"));
    }
    if (static_cast<int>(out.values_.size()) >= kMaxSecrets) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "'", dir, "' holds more than ", kMaxSecrets, " secrets"));
    }
    int fd = openat(dfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      return ErrnoStatus(errno, absl::StrCat("secret file '", dir, "/", name,
                                             "' (links are not followed)"));
    }
    struct stat fst;
    if (fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode) ||
        fst.st_size > kMaxSecretBytes) {
      close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat("secret file '", dir, "/", name,
                       "' is not a regular file of at most 64 KiB"));
    }
    std::string value(static_cast<size_t>(fst.st_size), '\0');
    size_t got = 0;
    while (got < value.size()) {
      ssize_t n = read(fd, value.data() + got, value.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    close(fd);
    value.resize(got);
    if (!value.empty() && value.back() == '\n') value.pop_back();
    if (!value.empty() && value.back() == '\r') value.pop_back();
    out.values_[name] = std::move(value);
  }
  return out;
}

absl::StatusOr<std::string> Secrets::Get(absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end()) {
    return absl::NotFoundError(absl::StrCat("no secret named '", name,
                                            "' (kiln serve --secrets-dir)"));
  }
  return it->second;
}

}  // namespace kiln::source
