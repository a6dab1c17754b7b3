#include "engine/archive/safe_extract.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/archive/hash_worker.h"
#include "engine/archive/prefetch_source.h"
#include "engine/archive/zstd_stream.h"
#include "engine/cas/beneath.h"
#include "engine/cas/file_io.h"

namespace kiln::archive {
namespace {

using cas::EntryType;
using cas::ErrnoStatus;
using cas::TreeEntry;

struct ReadContext {
  ByteSource* source;
  absl::Status status;  // the source's own error, if it failed
};

la_ssize_t ReadCallback(struct archive* a, void* opaque, const void** buf) {
  auto* ctx = static_cast<ReadContext*>(opaque);
  absl::StatusOr<absl::string_view> chunk = ctx->source->Next();
  if (!chunk.ok()) {
    ctx->status = chunk.status();
    archive_set_error(a, EIO, "%s",
                      std::string(chunk.status().message()).c_str());
    return -1;
  }
  *buf = chunk->data();
  return static_cast<la_ssize_t>(chunk->size());
}

const char* TypeName(mode_t type) {
  switch (type) {
    case AE_IFCHR:
      return "character device";
    case AE_IFBLK:
      return "block device";
    case AE_IFIFO:
      return "FIFO";
    case AE_IFSOCK:
      return "socket";
    default:
      return "unknown file type";
  }
}

// Normalizes an archive path to '/'-joined parts without "." or empty
// parts. Rejects absolute paths and "..".
absl::StatusOr<std::vector<std::string>> SplitEntryPath(absl::string_view raw) {
  if (raw.empty()) return absl::InvalidArgumentError("entry with empty path");
  if (raw[0] == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("absolute path \"", raw, "\" in archive"));
  }
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(raw, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("path \"", raw, "\" has a \"..\" component"));
    }
    parts.emplace_back(part);
  }
  return parts;
}

// Extraction state for one archive.
class Extractor {
 public:
  Extractor(struct archive* a, int root_fd, const ExtractLimits& limits)
      : a_(a), limits_(limits) {
    stack_.push_back({"", root_fd, false});
  }
  ~Extractor() {
    for (const OpenDir& d : stack_) {
      if (d.owned) close(d.fd);
    }
  }

  absl::Status Entry(struct archive_entry* e, std::vector<TreeEntry>* out,
                     const std::function<void(const TreeEntry&)>& hook);
  // Waits for the file hashes (computed on a worker while the next files
  // are read and written) and sets each file entry's digest.
  absl::Status SetDigests(std::vector<TreeEntry>* out);

 private:
  struct OpenDir {
    std::string path;
    int fd;
    bool owned;
  };
  struct Seen {
    EntryType type;
    bool implied;
  };

  absl::StatusOr<int> OpenParent(const std::vector<std::string>& parts,
                                 std::vector<TreeEntry>* out);
  absl::Status WriteFile(int dir_fd, const std::string& name,
                         const std::string& path, int64_t size,
                         bool executable);

  struct archive* a_;
  const ExtractLimits& limits_;
  std::vector<OpenDir> stack_;  // root, then open directories on the path
  absl::flat_hash_map<std::string, Seen> seen_;
  int64_t entries_ = 0;
  int64_t bytes_ = 0;
  HashWorker hasher_;
  std::vector<size_t> file_slots_;  // index in `out` of each hashed file
};

absl::StatusOr<int> Extractor::OpenParent(const std::vector<std::string>& parts,
                                          std::vector<TreeEntry>* out) {
  // Pop open directories that are not ancestors of this entry.
  size_t common = 1;
  while (common < stack_.size() && common < parts.size() &&
         stack_[common].path ==
             absl::StrJoin(parts.begin(), parts.begin() + common, "/")) {
    ++common;
  }
  while (stack_.size() > common) {
    close(stack_.back().fd);
    stack_.pop_back();
  }
  for (size_t i = stack_.size() - 1; i + 1 < parts.size(); ++i) {
    std::string path = absl::StrJoin(parts.begin(), parts.begin() + i + 1, "/");
    const std::string& name = parts[i];
    int parent = stack_.back().fd;
    auto it = seen_.find(path);
    if (it == seen_.end()) {
      // A directory the archive implies without listing it.
      absl::StatusOr<cas::UniqueFd> made = cas::MakeDirAt(parent, name, 0755);
      if (!made.ok()) return made.status();
      seen_[path] = Seen{EntryType::kDirectory, true};
      TreeEntry dir;
      dir.path = path;
      dir.type = EntryType::kDirectory;
      out->push_back(std::move(dir));
    } else if (it->second.type != EntryType::kDirectory) {
      return absl::InvalidArgumentError(absl::StrCat(
          "entry \"", absl::StrJoin(parts, "/"), "\" goes through ",
          it->second.type == EntryType::kSymlink ? "symlink" : "file", " \"",
          path, "\""));
    }
    int fd = openat(parent, name.c_str(),
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      return ErrnoStatus(errno, absl::StrCat("open directory ", path,
                                             " (replaced while extracting?)"));
    }
    stack_.push_back({path, fd, true});
  }
  return stack_.back().fd;
}

absl::Status Extractor::WriteFile(int dir_fd, const std::string& name,
                                  const std::string& path, int64_t size,
                                  bool executable) {
  int fd = openat(dir_fd, name.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", path));
  // The content is hashed on the worker, from a copy of what is written
  // here (the bytes of the stream, not of the file: nothing written below
  // the private directory is read back).
  hasher_.Begin();
  int64_t written = 0;
  absl::Status st;
  while (st.ok()) {
    const void* buf = nullptr;
    size_t len = 0;
    la_int64_t offset = 0;
    int r = archive_read_data_block(a_, &buf, &len, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      const char* msg = archive_error_string(a_);
      st = absl::DataLossError(
          absl::StrCat("reading file ", path,
                       " from the archive: ", msg ? msg : "archive error"));
      break;
    }
    if (offset != written) {
      st = absl::InvalidArgumentError(
          absl::StrCat("file ", path, " has holes (sparse entries refused)"));
      break;
    }
    written += static_cast<int64_t>(len);
    if (written > size) {
      st = absl::InvalidArgumentError(
          absl::StrCat("file ", path, " has more data than its size"));
      break;
    }
    absl::string_view data(static_cast<const char*>(buf), len);
    hasher_.Update(data);
    st = cas::WriteAll(fd, data, path);
  }
  if (st.ok() && written != size) {
    st = absl::DataLossError(
        absl::StrCat("file ", path, " is truncated in the archive"));
  }
  if (st.ok() && fchmod(fd, executable ? 0755 : 0644) != 0) {
    st = ErrnoStatus(errno, absl::StrCat("chmod ", path));
  }
  close(fd);
  hasher_.End();
  return st;
}

absl::Status Extractor::SetDigests(std::vector<TreeEntry>* out) {
  std::vector<cas::Digest> digests = hasher_.Finish();
  if (digests.size() != file_slots_.size()) {
    return absl::InternalError(absl::StrCat("hashed ", digests.size(),
                                            " files of ", file_slots_.size(),
                                            " extracted"));
  }
  for (size_t i = 0; i < digests.size(); ++i) {
    (*out)[file_slots_[i]].digest = digests[i];
  }
  return absl::OkStatus();
}

absl::Status Extractor::Entry(
    struct archive_entry* e, std::vector<TreeEntry>* out,
    const std::function<void(const TreeEntry&)>& hook) {
  if (++entries_ > limits_.max_entries) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "archive has more than ", limits_.max_entries, " entries"));
  }
  const char* raw = archive_entry_pathname(e);
  if (raw == nullptr) {
    return absl::InvalidArgumentError("entry without a readable path");
  }
  if (strlen(raw) > limits_.max_path_length) {
    return absl::ResourceExhaustedError(
        absl::StrCat("path longer than ", limits_.max_path_length, " bytes: \"",
                     absl::string_view(raw).substr(0, 80), "...\""));
  }
  absl::StatusOr<std::vector<std::string>> parts = SplitEntryPath(raw);
  if (!parts.ok()) return parts.status();
  std::string path = absl::StrJoin(*parts, "/");
  if (archive_entry_hardlink(e) != nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("hardlink \"", raw, "\" -> \"", archive_entry_hardlink(e),
                     "\" is not allowed"));
  }
  mode_t type = archive_entry_filetype(e);
  TreeEntry entry;
  entry.path = path;
  if (type == AE_IFDIR) {
    entry.type = EntryType::kDirectory;
  } else if (type == AE_IFREG) {
    entry.type = EntryType::kFile;
  } else if (type == AE_IFLNK) {
    entry.type = EntryType::kSymlink;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("entry \"", raw, "\" is a ", TypeName(type),
                     "; only files, "
                     "directories and symlinks are allowed"));
  }
  if (parts->empty()) {
    if (entry.type == EntryType::kDirectory) return absl::OkStatus();  // "./"
    return absl::InvalidArgumentError(
        absl::StrCat("entry \"", raw, "\" names the archive root"));
  }
  auto it = seen_.find(path);
  if (it != seen_.end()) {
    if (entry.type == EntryType::kDirectory && it->second.implied) {
      it->second.implied = false;  // listed after its children: fine
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(
        absl::StrCat("duplicate entry \"", path, "\" in archive"));
  }
  absl::StatusOr<int> dir_fd = OpenParent(*parts, out);
  if (!dir_fd.ok()) return dir_fd.status();
  const std::string& name = parts->back();
  switch (entry.type) {
    case EntryType::kDirectory: {
      // Exactly 0755, whatever the umask.
      absl::StatusOr<cas::UniqueFd> made = cas::MakeDirAt(*dir_fd, name, 0755);
      if (!made.ok()) return made.status();
      break;
    }
    case EntryType::kSymlink: {
      const char* target = archive_entry_symlink(e);
      if (target == nullptr || target[0] == '\0') {
        return absl::InvalidArgumentError(
            absl::StrCat("symlink \"", path, "\" has no target"));
      }
      if (strlen(target) > limits_.max_path_length) {
        return absl::ResourceExhaustedError(
            absl::StrCat("symlink \"", path, "\" target is too long"));
      }
      entry.link_target = target;
      if (symlinkat(target, *dir_fd, name.c_str()) != 0) {
        return ErrnoStatus(errno, absl::StrCat("symlink ", path));
      }
      break;
    }
    case EntryType::kFile: {
      if (archive_entry_sparse_count(e) > 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("file ", path, " is sparse; sparse files refused"));
      }
      int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
      if (size < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("file ", path, " has a negative size"));
      }
      bytes_ += size;
      if (bytes_ > limits_.max_total_bytes) {
        return absl::ResourceExhaustedError(
            absl::StrCat("archive content exceeds ", limits_.max_total_bytes,
                         " bytes (at ", path, ")"));
      }
      entry.executable = (archive_entry_mode(e) & 0100) != 0;
      absl::Status st = WriteFile(*dir_fd, name, path, size, entry.executable);
      if (!st.ok()) return st;
      file_slots_.push_back(out->size());
      break;
    }
  }
  seen_[path] = Seen{entry.type, false};
  out->push_back(std::move(entry));
  if (hook) hook(out->back());
  return absl::OkStatus();
}

// What is at `name` in parent_fd: nothing, an empty directory, or other.
enum class TargetState { kAbsent, kEmptyDir, kOther };

absl::StatusOr<TargetState> InspectTarget(int parent_fd,
                                          const std::string& name) {
  struct stat st;
  if (fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return TargetState::kAbsent;
    return ErrnoStatus(errno, absl::StrCat("stat ", name));
  }
  if (!S_ISDIR(st.st_mode)) return TargetState::kOther;
  int fd = openat(parent_fd, name.c_str(),
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", name));
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return ErrnoStatus(errno, absl::StrCat("opendir ", name));
  }
  TargetState state = TargetState::kEmptyDir;
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
      state = TargetState::kOther;
      break;
    }
  }
  closedir(d);
  return state;
}

// Moves the finished private directory to `name`, replacing what is there.
absl::Status ReplaceWith(int parent_fd, const std::string& private_name,
                         const std::string& name, const std::string& shown) {
  absl::Status st = cas::ExchangeAt(parent_fd, private_name, name);
  if (st.ok()) {
    // private_name now holds the old tree.
    return cas::RemoveTreeAt(parent_fd, private_name);
  }
  if (!absl::IsUnimplemented(st)) return st;
  std::string old = cas::TempName("old");
  if (renameat(parent_fd, name.c_str(), parent_fd, old.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("move aside ", shown));
  }
  if (renameat(parent_fd, private_name.c_str(), parent_fd, name.c_str()) != 0) {
    st = ErrnoStatus(errno, absl::StrCat("rename into ", shown));
    renameat(parent_fd, old.c_str(), parent_fd, name.c_str());
    return st;
  }
  return cas::RemoveTreeAt(parent_fd, old);
}

}  // namespace

absl::StatusOr<std::vector<TreeEntry>> ExtractTarAt(
    ByteSource* tar, int root_fd, const ExtractLimits& limits,
    const std::function<void(const TreeEntry&)>& after_entry) {
  struct archive* a = archive_read_new();
  if (a == nullptr) return absl::ResourceExhaustedError("archive_read_new");
  archive_read_support_format_tar(a);
  ReadContext ctx{tar, absl::OkStatus()};
  std::vector<TreeEntry> out;
  absl::Status st;
  if (archive_read_open(a, &ctx, nullptr, ReadCallback, nullptr) !=
      ARCHIVE_OK) {
    const char* msg = archive_error_string(a);
    st = !ctx.status.ok() ? ctx.status
                          : absl::DataLossError(absl::StrCat(
                                "not a tar archive: ", msg ? msg : "?"));
  }
  {
    Extractor extractor(a, root_fd, limits);
    while (st.ok()) {
      struct archive_entry* entry = nullptr;
      int r = archive_read_next_header(a, &entry);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) {
        const char* msg = archive_error_string(a);
        st = absl::DataLossError(
            absl::StrCat("corrupt tar stream: ", msg ? msg : "?"));
        break;
      }
      st = extractor.Entry(entry, &out, after_entry);
    }
    if (st.ok()) st = extractor.SetDigests(&out);
  }
  if (!ctx.status.ok()) st = ctx.status;  // the precise cause
  archive_read_free(a);
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<std::vector<TreeEntry>> ExtractArchive(
    std::unique_ptr<ByteSource> zstd_tar, const std::string& target,
    const ExtractOptions& options, const ExtractVerifier& verify) {
  std::string clean = target;
  while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
  size_t slash = clean.rfind('/');
  std::string parent = slash == std::string::npos ? "."
                       : slash == 0               ? "/"
                                                  : clean.substr(0, slash);
  std::string name =
      slash == std::string::npos ? clean : clean.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot extract into \"", target, "\""));
  }
  absl::Status st = cas::MakeDirs(parent);
  if (!st.ok()) return st;
  absl::StatusOr<cas::UniqueFd> parent_fd = cas::OpenTrustedDir(parent);
  if (!parent_fd.ok()) return parent_fd.status();
  return ExtractArchiveAt(std::move(zstd_tar), parent_fd->get(), name, parent,
                          options, verify, /*replace=*/false);
}

absl::StatusOr<std::vector<TreeEntry>> ExtractArchiveAt(
    std::unique_ptr<ByteSource> zstd_tar, int parent_fd,
    const std::string& name, const std::string& shown_parent,
    const ExtractOptions& options, const ExtractVerifier& verify,
    bool replace) {
  std::string shown = absl::StrCat(shown_parent, "/", name);
  if (name.empty() || name.find('/') != std::string::npos || name == "." ||
      name == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot extract into \"", shown, "\""));
  }
  absl::StatusOr<TargetState> state = InspectTarget(parent_fd, name);
  if (!state.ok()) return state.status();
  if (*state == TargetState::kOther && !replace) {
    return absl::FailedPreconditionError(absl::StrCat(
        shown,
        " exists and is not an empty directory; unstash needs a new "
        "or empty directory"));
  }
  // Private (0700) while being filled; named so that a dead process's
  // leftover is recognized and swept (cas::SweepDeadTemps).
  std::string private_name = cas::TempName("unstash");
  std::string private_dir = absl::StrCat(shown_parent, "/", private_name);
  absl::StatusOr<cas::UniqueFd> root =
      cas::MakeDirAt(parent_fd, private_name, 0700);
  if (!root.ok()) return root.status();
  int root_fd = root->get();
  absl::Status st;
  const ExtractLimits& limits = options.limits;
  // Headers and padding come on top of file content.
  int64_t max_stream =
      limits.max_total_bytes + limits.max_entries * 3072 + (int64_t{1} << 20);
  std::unique_ptr<ByteSource> decompressed;
  auto raw = std::make_unique<ZstdDecompressSource>(
      zstd_tar.get(), max_stream, limits.max_expansion_ratio,
      limits.expansion_grace_bytes);
  if (options.prefetch) {
    decompressed = std::make_unique<PrefetchSource>(std::move(raw));
  } else {
    decompressed = std::move(raw);
  }
  std::function<void(const TreeEntry&)> hook;
  if (options.after_entry_for_testing) {
    hook = [&](const TreeEntry& e) {
      options.after_entry_for_testing(private_dir, e);
    };
  }
  absl::StatusOr<std::vector<TreeEntry>> entries =
      ExtractTarAt(decompressed.get(), root_fd, limits, hook);
  decompressed.reset();  // stops the prefetch thread before zstd_tar dies
  if (!entries.ok()) st = entries.status();
  if (st.ok() && verify) st = verify(*entries);
  if (st.ok() && fchmod(root_fd, 0755) != 0) {
    st = ErrnoStatus(errno, absl::StrCat("chmod ", private_dir));
  }
  *root = cas::UniqueFd();
  if (st.ok() && *state == TargetState::kOther) {
    st = ReplaceWith(parent_fd, private_name, name, shown);
  } else if (st.ok() && renameat(parent_fd, private_name.c_str(), parent_fd,
                                 name.c_str()) != 0) {
    st = errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR
             ? absl::FailedPreconditionError(
                   absl::StrCat(shown,
                                " stopped being an empty directory while "
                                "extracting"))
             : ErrnoStatus(errno, absl::StrCat("rename into ", shown));
  }
  if (!st.ok()) {
    cas::RemoveTreeAt(parent_fd, private_name).IgnoreError();
    return st;
  }
  return entries;
}

}  // namespace kiln::archive
