#include "engine/cas/tree_walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/cas/beneath.h"
#include "engine/cas/file_io.h"

namespace kiln::cas {
namespace {

std::string Join(absl::string_view prefix, absl::string_view name) {
  return prefix.empty() ? std::string(name) : absl::StrCat(prefix, "/", name);
}

absl::Status Unsupported(const std::string& display, mode_t mode) {
  const char* what = S_ISFIFO(mode)                   ? "a FIFO"
                     : S_ISSOCK(mode)                 ? "a socket"
                     : S_ISCHR(mode) || S_ISBLK(mode) ? "a device file"
                                                      : "an unknown file type";
  return absl::InvalidArgumentError(
      absl::StrCat(display, " is ", what,
                   "; only regular files, directories and symlinks can be "
                   "stashed"));
}

absl::Status ReadLink(int dir_fd, const std::string& name,
                      const std::string& display, std::string* target) {
  std::string buf(4096, '\0');
  while (true) {
    ssize_t n = readlinkat(dir_fd, name.c_str(), buf.data(), buf.size());
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("readlink ", display));
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      *target = std::move(buf);
      return absl::OkStatus();
    }
    buf.resize(buf.size() * 2);
  }
}

// Classifies `name` in dir_fd and appends it (and, for a directory, its
// contents) to out.
absl::Status AddEntry(int dir_fd, const std::string& name,
                      const std::string& rel, const std::string& display_root,
                      const std::vector<std::string>& exclude,
                      std::vector<WalkedEntry>* out);

absl::Status WalkDir(int dir_fd, const std::string& prefix,
                     const std::string& display_root,
                     const std::vector<std::string>& exclude,
                     std::vector<WalkedEntry>* out) {
  int list_fd = dup(dir_fd);
  if (list_fd < 0) return ErrnoStatus(errno, "dup");
  DIR* d = fdopendir(list_fd);
  if (d == nullptr) {
    close(list_fd);
    return ErrnoStatus(errno,
                       absl::StrCat("opendir ", display_root, "/", prefix));
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    names.emplace_back(e->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    std::string rel = Join(prefix, name);
    if (!exclude.empty() && IsExcluded(exclude, rel)) continue;
    absl::Status st = AddEntry(dir_fd, name, rel, display_root, exclude, out);
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status AddEntry(int dir_fd, const std::string& name,
                      const std::string& rel, const std::string& display_root,
                      const std::vector<std::string>& exclude,
                      std::vector<WalkedEntry>* out) {
  std::string display = absl::StrCat(display_root, "/", rel);
  struct stat st;
  if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat ", display));
  }
  WalkedEntry e;
  e.path = rel;
  e.stat = FileStat::From(st);
  if (S_ISREG(st.st_mode)) {
    e.type = EntryType::kFile;
    out->push_back(std::move(e));
    return absl::OkStatus();
  }
  if (S_ISLNK(st.st_mode)) {
    e.type = EntryType::kSymlink;
    absl::Status s = ReadLink(dir_fd, name, display, &e.link_target);
    if (!s.ok()) return s;
    out->push_back(std::move(e));
    return absl::OkStatus();
  }
  if (!S_ISDIR(st.st_mode)) return Unsupported(display, st.st_mode);
  e.type = EntryType::kDirectory;
  // One descriptor and one stack frame per level: a task-made tree of any
  // depth must end in a clear error, not in EMFILE or a stack overflow.
  if (std::count(rel.begin(), rel.end(), '/') + 1 > kMaxWalkDepth) {
    return absl::InvalidArgumentError(absl::StrCat(
        display, " is more than ", kMaxWalkDepth,
        " directory levels deep; kiln does not stash trees that deep"));
  }
  out->push_back(std::move(e));
  int fd = openat(dir_fd, name.c_str(),
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", display));
  absl::Status s = WalkDir(fd, rel, display_root, exclude, out);
  close(fd);
  return s;
}

// The pattern without "./" prefixes and trailing "/"; *anchored is set if
// it matches whole paths from the root rather than names.
absl::string_view CleanPattern(absl::string_view p, bool* anchored) {
  *anchored = false;
  while (true) {
    if (absl::ConsumePrefix(&p, "./")) continue;
    if (absl::ConsumePrefix(&p, "/")) {
      *anchored = true;
      continue;
    }
    break;
  }
  while (absl::ConsumeSuffix(&p, "/")) {
  }
  if (p.find('/') != absl::string_view::npos) *anchored = true;
  return p;
}

}  // namespace

bool IsExcluded(const std::vector<std::string>& patterns,
                absl::string_view rel_path) {
  std::string path(rel_path);
  size_t slash = path.rfind('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  for (const std::string& raw : patterns) {
    bool anchored = false;
    std::string pattern(CleanPattern(raw, &anchored));
    if (pattern.empty()) continue;
    const std::string& subject = anchored ? path : name;
    if (fnmatch(pattern.c_str(), subject.c_str(), FNM_PATHNAME) == 0) {
      return true;
    }
  }
  return false;
}

bool ArchiveOrderLess(absl::string_view a, absl::string_view b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (a[i] == b[i]) continue;
    if (a[i] == '/') return true;
    if (b[i] == '/') return false;
    return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[i]);
  }
  return a.size() < b.size();
}

absl::StatusOr<std::vector<WalkedEntry>> WalkTree(
    int root_fd, const std::string& display_root,
    const std::vector<std::string>& exclude) {
  std::vector<WalkedEntry> out;
  absl::Status st = WalkDir(root_fd, "", display_root, exclude, &out);
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<std::vector<WalkedEntry>> WalkPaths(
    int root_fd, const std::string& display_root,
    const std::vector<std::string>& paths) {
  std::vector<WalkedEntry> all;
  for (const std::string& raw : paths) {
    if (raw.empty() || raw[0] == '/') {
      return absl::InvalidArgumentError(absl::StrCat(
          "output path \"", raw, "\" must be relative to ", display_root));
    }
    std::vector<std::string> parts;
    for (absl::string_view p : absl::StrSplit(raw, '/')) {
      if (p.empty() || p == ".") continue;
      if (p == "..") {
        return absl::InvalidArgumentError(
            absl::StrCat("output path \"", raw, "\" leaves ", display_root));
      }
      parts.emplace_back(p);
    }
    if (parts.empty()) {  // "." : the whole root
      absl::Status st = WalkDir(root_fd, "", display_root, {}, &all);
      if (!st.ok()) return st;
      continue;
    }
    // Descend through the parents, never through a symlink.
    int dir_fd = dup(root_fd);
    std::string rel;
    absl::Status st;
    for (size_t i = 0; i + 1 < parts.size() && st.ok(); ++i) {
      rel = Join(rel, parts[i]);
      struct stat sb;
      if (fstatat(dir_fd, parts[i].c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0) {
        st = ErrnoStatus(errno, absl::StrCat("stat ", display_root, "/", rel));
        break;
      }
      int next = openat(dir_fd, parts[i].c_str(),
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (next < 0) {
        st = ErrnoStatus(
            errno, absl::StrCat("open directory ", display_root, "/", rel));
        break;
      }
      close(dir_fd);
      dir_fd = next;
      WalkedEntry parent;
      parent.path = rel;
      parent.type = EntryType::kDirectory;
      parent.stat = FileStat::From(sb);
      all.push_back(std::move(parent));
    }
    if (st.ok()) {
      st = AddEntry(dir_fd, parts.back(), Join(rel, parts.back()), display_root,
                    {}, &all);
    }
    close(dir_fd);
    if (!st.ok()) return st;
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const WalkedEntry& a, const WalkedEntry& b) {
                     return ArchiveOrderLess(a.path, b.path);
                   });
  // Overlapping selections ("a" and "a/b") list some entries twice.
  std::vector<WalkedEntry> unique;
  for (WalkedEntry& e : all) {
    if (!unique.empty() && unique.back().path == e.path) continue;
    unique.push_back(std::move(e));
  }
  return unique;
}

absl::StatusOr<int> OpenFileBeneath(int root_fd, const std::string& rel_path) {
  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd = syscall(SYS_openat2, root_fd, rel_path.c_str(), &how, sizeof(how));
  if (fd < 0 && errno == ENOSYS) {
    // Kernels before 5.6: walk the parents with O_NOFOLLOW, then the file.
    size_t slash = rel_path.rfind('/');
    absl::StatusOr<UniqueFd> parent = OpenDirBeneath(
        root_fd, slash == std::string::npos ? "" : rel_path.substr(0, slash));
    if (!parent.ok()) return parent.status();
    std::string name =
        slash == std::string::npos ? rel_path : rel_path.substr(slash + 1);
    fd = openat(parent->get(), name.c_str(),
                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  }
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", rel_path));
  return static_cast<int>(fd);
}

}  // namespace kiln::cas
