#include "executors/local_sandbox/image_user.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "base/status.h"

namespace kiln {
namespace sandbox {
namespace {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset(int fd) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

bool IsWhiteout(const struct stat& st) {
  return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

bool IsOpaque(int dir_fd) {
  for (const char* name : {"user.overlay.opaque", "trusted.overlay.opaque"}) {
    char value[2] = {};
    if (fgetxattr(dir_fd, name, value, sizeof(value)) == 1 && value[0] == 'y') {
      return true;
    }
  }
  return false;
}

// What one layer says about a path.
enum class Verdict { kAbsent, kHidden, kFound };

absl::StatusOr<std::string> ReadAll(int fd, const std::string& what) {
  std::string content;
  char buffer[64 * 1024];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", what));
    if (n == 0) return content;
    if (content.size() + static_cast<size_t>(n) > kMaxImageAccountFileBytes) {
      return absl::FailedPreconditionError(absl::StrCat(
          what, " is larger than ", kMaxImageAccountFileBytes, " bytes"));
    }
    content.append(buffer, static_cast<size_t>(n));
  }
}

// Looks `parts` up in one layer. kHidden: a whiteout or an opaque directory
// on the way ends the search (lower layers do not show through).
absl::StatusOr<Verdict> LookUp(const std::string& layer,
                               const std::vector<std::string>& parts,
                               const std::string& what, std::string* content) {
  Fd dir(open(layer.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) {
    return ErrnoStatus(errno, absl::StrCat("open image layer ", layer));
  }
  // An opaque directory on the way hides whatever lower layers have below.
  bool opaque = false;
  for (size_t i = 0; i < parts.size(); ++i) {
    const bool last = i + 1 == parts.size();
    struct stat st;
    if (fstatat(dir.get(), parts[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) {
        return ErrnoStatus(errno, absl::StrCat("stat ", what, " in ", layer));
      }
      return opaque ? Verdict::kHidden : Verdict::kAbsent;
    }
    if (IsWhiteout(st)) return Verdict::kHidden;
    if (S_ISLNK(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(
          what, ": '", parts[i], "' is a symlink in the image (not followed)"));
    }
    if (!last) {
      if (!S_ISDIR(st.st_mode)) return Verdict::kHidden;
      dir.reset(openat(dir.get(), parts[i].c_str(),
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (dir.get() < 0) {
        return ErrnoStatus(errno, absl::StrCat("open ", what, " in ", layer));
      }
      opaque = opaque || IsOpaque(dir.get());
      continue;
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, " is not a regular file in the image"));
    }
    Fd file(openat(dir.get(), parts[i].c_str(),
                   O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (file.get() < 0) {
      return ErrnoStatus(errno, absl::StrCat("open ", what, " in ", layer));
    }
    absl::StatusOr<std::string> read = ReadAll(file.get(), what);
    if (!read.ok()) return read.status();
    *content = std::move(*read);
    return Verdict::kFound;
  }
  return Verdict::kAbsent;
}

// Fields of the colon-separated `line`.
std::vector<std::string> Fields(absl::string_view line) {
  return absl::StrSplit(line, ':');
}

bool ParseId(absl::string_view text, uint32_t* id) {
  if (text.empty() || text.size() > 10) return false;
  for (char ch : text) {
    if (ch < '0' || ch > '9') return false;
  }
  uint64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value >= 0xffffffffULL) return false;
  *id = static_cast<uint32_t>(value);
  return true;
}

struct Account {
  std::string name;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// The passwd entry matching `name` (or, when by_uid, `uid`).
bool FindPasswd(const std::string& passwd, const std::string& name, bool by_uid,
                uint32_t uid, Account* out) {
  for (absl::string_view line : absl::StrSplit(passwd, '\n')) {
    std::vector<std::string> f = Fields(line);
    if (f.size() < 4) continue;
    Account a;
    a.name = f[0];
    if (!ParseId(f[2], &a.uid) || !ParseId(f[3], &a.gid)) continue;
    if (by_uid ? a.uid == uid : a.name == name) {
      *out = a;
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<std::string> ReadImageFile(
    const std::vector<std::string>& layer_dirs, const std::string& relative) {
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(relative, '/')) {
    if (p.empty() || p == ".") continue;
    if (p == "..") return absl::InvalidArgumentError("'..' in an image path");
    parts.emplace_back(p);
  }
  const std::string what = absl::StrCat("/", relative);
  if (parts.empty()) return absl::InvalidArgumentError("empty image path");
  for (auto it = layer_dirs.rbegin(); it != layer_dirs.rend(); ++it) {
    std::string content;
    absl::StatusOr<Verdict> verdict = LookUp(*it, parts, what, &content);
    if (!verdict.ok()) return verdict.status();
    if (*verdict == Verdict::kFound) return content;
    if (*verdict == Verdict::kHidden) break;
  }
  return absl::NotFoundError(
      absl::StrCat(what, " does not exist in the image"));
}

absl::StatusOr<ImageIdentity> ResolveImageUser(
    const std::vector<std::string>& layer_dirs, const std::string& user) {
  ImageIdentity id;
  if (user.empty()) return id;
  size_t colon = user.find(':');
  const std::string user_part = user.substr(0, colon);
  const std::string group_part =
      colon == std::string::npos ? "" : user.substr(colon + 1);
  if (user_part.empty() || (colon != std::string::npos && group_part.empty())) {
    return absl::InvalidArgumentError(
        absl::StrCat("image user '", user, "' is malformed"));
  }
  uint32_t numeric = 0;
  const bool numeric_user = ParseId(user_part, &numeric);
  absl::StatusOr<std::string> passwd = ReadImageFile(layer_dirs, "etc/passwd");
  if (!passwd.ok() && !absl::IsNotFound(passwd.status())) {
    return absl::Status(
        passwd.status().code(),
        absl::StrCat("image user '", user, "': ", passwd.status().message()));
  }
  Account account;
  bool known = false;
  if (numeric_user) {
    id.uid = numeric;
    known = passwd.ok() && FindPasswd(*passwd, "", true, numeric, &account);
  } else {
    known = passwd.ok() && FindPasswd(*passwd, user_part, false, 0, &account);
    if (!known) {
      return absl::NotFoundError(absl::StrCat(
          "image user '", user_part, "' is not in the image's /etc/passwd"));
    }
    id.uid = account.uid;
  }
  if (known) id.gid = account.gid;
  absl::StatusOr<std::string> group = ReadImageFile(layer_dirs, "etc/group");
  if (!group.ok() && !absl::IsNotFound(group.status())) {
    return absl::Status(
        group.status().code(),
        absl::StrCat("image user '", user, "': ", group.status().message()));
  }
  if (!group_part.empty()) {
    uint32_t gid = 0;
    if (ParseId(group_part, &gid)) {
      id.gid = gid;
      return id;
    }
    bool found = false;
    if (group.ok()) {
      for (absl::string_view line : absl::StrSplit(*group, '\n')) {
        std::vector<std::string> f = Fields(line);
        if (f.size() >= 3 && f[0] == group_part && ParseId(f[2], &gid)) {
          found = true;
          break;
        }
      }
    }
    if (!found) {
      return absl::NotFoundError(absl::StrCat(
          "image group '", group_part, "' is not in the image's /etc/group"));
    }
    id.gid = gid;
    return id;
  }
  if (known && group.ok()) {
    for (absl::string_view line : absl::StrSplit(*group, '\n')) {
      std::vector<std::string> f = Fields(line);
      uint32_t gid = 0;
      if (f.size() < 4 || !ParseId(f[2], &gid) || gid == id.gid) continue;
      for (absl::string_view member : absl::StrSplit(f[3], ',')) {
        if (member == account.name) {
          id.groups.push_back(gid);
          break;
        }
      }
    }
    std::sort(id.groups.begin(), id.groups.end());
    id.groups.erase(std::unique(id.groups.begin(), id.groups.end()),
                    id.groups.end());
  }
  return id;
}

}  // namespace sandbox
}  // namespace kiln
