#include "engine/image/layer_unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/archive/byte_source.h"
#include "engine/archive/prefetch_source.h"
#include "engine/archive/zstd_stream.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "engine/oci/spec.h"

namespace kiln::image {
namespace {

using archive::ByteSource;
using cas::ErrnoStatus;

constexpr char kWhiteoutPrefix[] = ".wh.";
constexpr char kOpaqueMarker[] = ".wh..wh..opq";
constexpr char kMetaPrefix[] = ".wh..wh.";

// Reads an fd to its end, hashing and counting what it hands on.
class FdSource : public ByteSource {
 public:
  explicit FdSource(int fd) : fd_(fd), buf_(1 << 20, '\0') {}
  absl::StatusOr<absl::string_view> Next() override {
    absl::StatusOr<size_t> n =
        cas::ReadFull(fd_, buf_.data(), buf_.size(), "layer blob");
    if (!n.ok()) return n.status();
    absl::string_view chunk(buf_.data(), *n);
    hasher_.Update(chunk);
    consumed_ += static_cast<int64_t>(*n);
    return chunk;
  }
  int64_t consumed() const { return consumed_; }
  cas::Digest Finish() { return hasher_.Finish(); }

 private:
  int fd_;
  std::string buf_;
  cas::Sha256 hasher_;
  int64_t consumed_ = 0;
};

// A gzip stream (one or more members) decompressed through libarchive's
// gzip filter and its "raw" format, bounded like ZstdDecompressSource.
class GunzipSource : public ByteSource {
 public:
  GunzipSource(ByteSource* in, int64_t max_ratio, int64_t grace)
      : in_(in), max_ratio_(max_ratio), grace_(grace) {}
  ~GunzipSource() override {
    if (a_ != nullptr) archive_read_free(a_);
  }

  absl::StatusOr<absl::string_view> Next() override {
    if (!opened_) {
      opened_ = true;
      absl::Status st = Open();
      if (!st.ok()) {
        failed_ = st;
        return st;
      }
    }
    if (!failed_.ok()) return failed_;
    while (!done_) {
      const void* buf = nullptr;
      size_t len = 0;
      la_int64_t offset = 0;
      int r = archive_read_data_block(a_, &buf, &len, &offset);
      if (r == ARCHIVE_EOF) {
        done_ = true;
        break;
      }
      if (r < ARCHIVE_WARN) return Fail("corrupt gzip stream");
      if (len == 0) continue;
      produced_ += static_cast<int64_t>(len);
      if (max_ratio_ > 0 && produced_ > grace_ &&
          produced_ / max_ratio_ > consumed_) {
        failed_ = absl::ResourceExhaustedError(absl::StrCat(
            "layer expands more than ", max_ratio_,
            " times its compressed size (", produced_, " bytes from ",
            consumed_, "; a decompression bomb?)"));
        return failed_;
      }
      return absl::string_view(static_cast<const char*>(buf), len);
    }
    return absl::string_view();
  }

 private:
  static la_ssize_t Read(struct archive* a, void* opaque, const void** buf) {
    auto* self = static_cast<GunzipSource*>(opaque);
    absl::StatusOr<absl::string_view> chunk = self->in_->Next();
    if (!chunk.ok()) {
      self->in_status_ = chunk.status();
      archive_set_error(a, EIO, "%s",
                        std::string(chunk.status().message()).c_str());
      return -1;
    }
    self->consumed_ += static_cast<int64_t>(chunk->size());
    *buf = chunk->data();
    return static_cast<la_ssize_t>(chunk->size());
  }

  absl::Status Open() {
    a_ = archive_read_new();
    if (a_ == nullptr) return absl::ResourceExhaustedError("archive_read_new");
    archive_read_support_filter_gzip(a_);
    archive_read_support_format_raw(a_);
    if (archive_read_open(a_, this, nullptr, Read, nullptr) != ARCHIVE_OK) {
      return Fail("not a gzip stream").status();
    }
    struct archive_entry* entry = nullptr;
    int r = archive_read_next_header(a_, &entry);
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      return Fail("not a gzip stream").status();
    }
    if (archive_filter_code(a_, 0) != ARCHIVE_FILTER_GZIP) {
      return absl::InvalidArgumentError(
          "the layer's media type says gzip, but the blob is not gzip");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<absl::string_view> Fail(absl::string_view what) {
    if (!in_status_.ok()) {
      failed_ = in_status_;
    } else {
      const char* msg = archive_error_string(a_);
      failed_ = absl::DataLossError(
          absl::StrCat(what, ": ", msg != nullptr ? msg : "unknown error"));
    }
    return failed_;
  }

  ByteSource* in_;
  int64_t max_ratio_;
  int64_t grace_;
  struct archive* a_ = nullptr;
  bool opened_ = false;
  bool done_ = false;
  absl::Status failed_;
  absl::Status in_status_;
  int64_t produced_ = 0;
  int64_t consumed_ = 0;
};

// The uncompressed stream: hashed (the diff_id) and bounded.
class DiffIdSource : public ByteSource {
 public:
  DiffIdSource(ByteSource* in, int64_t max_bytes)
      : in_(in), max_bytes_(max_bytes) {}
  absl::StatusOr<absl::string_view> Next() override {
    absl::StatusOr<absl::string_view> chunk = in_->Next();
    if (!chunk.ok()) return chunk;
    if (chunk->empty()) {
      if (!finished_) {
        digest_ = hasher_.Finish();
        finished_ = true;
      }
      return chunk;
    }
    total_ += static_cast<int64_t>(chunk->size());
    if (total_ > max_bytes_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "uncompressed layer is longer than ", max_bytes_, " bytes"));
    }
    hasher_.Update(*chunk);
    return chunk;
  }
  // Valid once Next() returned the end of the stream.
  bool finished() const { return finished_; }
  const cas::Digest& digest() const { return digest_; }

 private:
  ByteSource* in_;
  int64_t max_bytes_;
  int64_t total_ = 0;
  cas::Sha256 hasher_;
  bool finished_ = false;
  cas::Digest digest_;
};

// Forwards to a DiffIdSource owned elsewhere (PrefetchSource takes
// ownership of its inner source; the DiffIdSource must outlive it).
class Borrowed : public ByteSource {
 public:
  explicit Borrowed(ByteSource* in) : in_(in) {}
  absl::StatusOr<absl::string_view> Next() override { return in_->Next(); }

 private:
  ByteSource* in_;
};

struct TarRead {
  ByteSource* source;
  absl::Status status;
};

la_ssize_t TarReadCallback(struct archive* a, void* opaque, const void** buf) {
  auto* ctx = static_cast<TarRead*>(opaque);
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
    case AE_IFSOCK:
      return "socket";
    default:
      return "unknown file type";
  }
}

// What one entry of the layer became.
enum class Kind { kDirectory, kFile, kSymlink, kFifo, kWhiteout };

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kDirectory:
      return "directory";
    case Kind::kFile:
      return "file";
    case Kind::kSymlink:
      return "symlink";
    case Kind::kFifo:
      return "FIFO";
    case Kind::kWhiteout:
      return "whiteout";
  }
  return "entry";
}

// The owner, permission bits and mtime an entry asks for.
struct Attrs {
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t mode = 0;
  struct timespec mtime = {0, 0};
};

class LayerExtractor {
 public:
  LayerExtractor(struct archive* a, int root_fd, const LayerLimits& limits)
      : a_(a), root_fd_(root_fd), limits_(limits) {
    stack_.push_back({"", root_fd, false});
  }
  ~LayerExtractor() {
    for (const OpenDir& d : stack_) {
      if (d.owned) close(d.fd);
    }
  }

  absl::Status Entry(struct archive_entry* e);
  // Directory mtimes, last (writing into a directory changes its mtime).
  absl::Status Finish();
  // Did the layer list "./" (and so set the root's mode)?
  bool root_listed() const { return root_listed_; }

 private:
  struct OpenDir {
    std::string path;
    int fd;
    bool owned;
  };
  struct Seen {
    Kind kind;
    bool implied;
  };

  absl::StatusOr<Attrs> AttrsOf(struct archive_entry* e,
                                const std::string& path);
  absl::StatusOr<int> OpenParent(const std::vector<std::string>& parts,
                                 size_t depth);
  absl::Status WriteFile(int dir_fd, const std::string& name,
                         const std::string& path, int64_t size,
                         const Attrs& attrs);
  absl::Status Whiteout(const std::vector<std::string>& parts,
                        const std::string& raw);
  absl::Status Hardlink(int dir_fd, const std::string& name,
                        const std::string& path, const char* target);

  struct archive* a_;
  int root_fd_;
  const LayerLimits& limits_;
  std::vector<OpenDir> stack_;
  absl::flat_hash_map<std::string, Seen> seen_;
  std::vector<std::pair<std::string, struct timespec>> dir_times_;
  int64_t entries_ = 0;
  int64_t bytes_ = 0;
  bool root_listed_ = false;
};

absl::StatusOr<Attrs> LayerExtractor::AttrsOf(struct archive_entry* e,
                                              const std::string& path) {
  Attrs a;
  la_int64_t uid = archive_entry_uid(e);
  la_int64_t gid = archive_entry_gid(e);
  if (uid < 0 || gid < 0 || uid >= 0xffffffffLL || gid >= 0xffffffffLL) {
    return absl::InvalidArgumentError(absl::StrCat(
        "entry \"", path, "\" has an invalid owner ", uid, ":", gid));
  }
  a.uid = static_cast<uid_t>(uid);
  a.gid = static_cast<gid_t>(gid);
  a.mode = archive_entry_perm(e) & 07777;
  if ((a.mode & 06000) != 0) {
    if (limits_.setuid == LayerLimits::Setuid::kRefuse) {
      return absl::InvalidArgumentError(absl::StrCat(
          "entry \"", path, "\" has the setuid or setgid bit (mode ",
          absl::StrFormat("%04o", a.mode), "); refused"));
    }
    a.mode &= ~static_cast<mode_t>(06000);
  }
  if (archive_entry_mtime_is_set(e)) {
    a.mtime.tv_sec = archive_entry_mtime(e);
    a.mtime.tv_nsec = archive_entry_mtime_nsec(e);
  }
  return a;
}

absl::StatusOr<int> LayerExtractor::OpenParent(
    const std::vector<std::string>& parts, size_t depth) {
  // Pop open directories that are not ancestors of this entry.
  size_t common = 1;
  while (common < stack_.size() && common <= depth &&
         stack_[common].path ==
             absl::StrJoin(parts.begin(), parts.begin() + common, "/")) {
    ++common;
  }
  while (stack_.size() > common) {
    close(stack_.back().fd);
    stack_.pop_back();
  }
  for (size_t i = stack_.size() - 1; i < depth; ++i) {
    std::string path = absl::StrJoin(parts.begin(), parts.begin() + i + 1, "/");
    const std::string& name = parts[i];
    int parent = stack_.back().fd;
    auto it = seen_.find(path);
    if (it == seen_.end()) {
      if (absl::StartsWith(name, kWhiteoutPrefix)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "whiteout name \"", name, "\" used as a directory in \"",
            absl::StrJoin(parts, "/"), "\""));
      }
      // A directory the layer implies without listing it.
      absl::StatusOr<cas::UniqueFd> made = cas::MakeDirAt(parent, name, 0755);
      if (!made.ok()) return made.status();
      seen_[path] = Seen{Kind::kDirectory, true};
    } else if (it->second.kind != Kind::kDirectory) {
      return absl::InvalidArgumentError(absl::StrCat(
          "entry \"", absl::StrJoin(parts, "/"), "\" goes through ",
          KindName(it->second.kind), " \"", path, "\""));
    }
    int fd = openat(parent, name.c_str(),
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      return ErrnoStatus(errno, absl::StrCat("open directory ", path,
                                             " (replaced while unpacking?)"));
    }
    stack_.push_back({path, fd, true});
  }
  return stack_.back().fd;
}

absl::Status LayerExtractor::WriteFile(int dir_fd, const std::string& name,
                                       const std::string& path, int64_t size,
                                       const Attrs& attrs) {
  int fd = openat(dir_fd, name.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", path));
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
                       " from the layer: ", msg ? msg : "archive error"));
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
    st = cas::WriteAll(
        fd, absl::string_view(static_cast<const char*>(buf), len), path);
  }
  if (st.ok() && written != size) {
    st = absl::DataLossError(
        absl::StrCat("file ", path, " is truncated in the layer"));
  }
  // Owner first: chown clears the setuid/setgid bits (none are left anyway).
  if (st.ok() && fchown(fd, attrs.uid, attrs.gid) != 0) {
    st = ErrnoStatus(errno, absl::StrCat("chown ", path));
  }
  if (st.ok() && fchmod(fd, attrs.mode) != 0) {
    st = ErrnoStatus(errno, absl::StrCat("chmod ", path));
  }
  if (st.ok()) {
    struct timespec times[2] = {attrs.mtime, attrs.mtime};
    if (futimens(fd, times) != 0) {
      st = ErrnoStatus(errno, absl::StrCat("set the mtime of ", path));
    }
  }
  close(fd);
  return st;
}

absl::Status LayerExtractor::Whiteout(const std::vector<std::string>& parts,
                                      const std::string& raw) {
  const std::string& base = parts.back();
  size_t depth = parts.size() - 1;
  std::string dir_path =
      absl::StrJoin(parts.begin(), parts.begin() + depth, "/");
  if (base == kOpaqueMarker) {
    std::string marker = absl::StrJoin(parts, "/");
    if (seen_.contains(marker)) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate entry \"", marker, "\" in layer"));
    }
    absl::StatusOr<int> dir_fd = OpenParent(parts, depth);
    if (!dir_fd.ok()) return dir_fd.status();
    seen_[marker] = Seen{Kind::kWhiteout, false};
    // The trusted.* form needs CAP_SYS_ADMIN in the initial user namespace
    // (an unprivileged engine, a test sandbox: skipped); the user.* form is
    // what an overlay mounted with "userxattr" in a user namespace reads.
    if (fsetxattr(*dir_fd, "trusted.overlay.opaque", "y", 1, 0) != 0 &&
        errno != EPERM) {
      return ErrnoStatus(errno, absl::StrCat("mark directory \"", dir_path,
                                             "\" opaque (trusted xattr)"));
    }
    if (fsetxattr(*dir_fd, "user.overlay.opaque", "y", 1, 0) != 0) {
      return ErrnoStatus(errno, absl::StrCat("mark directory \"", dir_path,
                                             "\" opaque (user xattr)"));
    }
    return absl::OkStatus();
  }
  if (absl::StartsWith(base, kMetaPrefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat("entry \"", raw,
                     "\" is AUFS metadata (\".wh..wh.\"), not an OCI "
                     "whiteout; refused"));
  }
  std::string target = base.substr(strlen(kWhiteoutPrefix));
  if (target.empty() || target == "." || target == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("whiteout \"", raw, "\" names no entry"));
  }
  std::string target_path =
      dir_path.empty() ? target : absl::StrCat(dir_path, "/", target);
  if (seen_.contains(target_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("whiteout \"", raw, "\" removes \"", target_path,
                     "\", which the same layer creates"));
  }
  absl::StatusOr<int> dir_fd = OpenParent(parts, depth);
  if (!dir_fd.ok()) return dir_fd.status();
  // Overlayfs' whiteout: a character device 0:0 (creating one needs no
  // privilege since Linux 5.8).
  if (mknodat(*dir_fd, target.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
    return ErrnoStatus(errno,
                       absl::StrCat("create the whiteout of ", target_path));
  }
  seen_[target_path] = Seen{Kind::kWhiteout, false};
  return absl::OkStatus();
}

absl::Status LayerExtractor::Hardlink(int dir_fd, const std::string& name,
                                      const std::string& path,
                                      const char* target) {
  std::string shown =
      absl::StrCat("hardlink \"", path, "\" -> \"", target, "\"");
  if (target[0] == '\0' || target[0] == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(shown, " points outside the layer; refused"));
  }
  absl::StatusOr<std::vector<std::string>> parts =
      cas::SplitRelativePath(target);
  if (!parts.ok() || parts->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(shown, " points outside the layer; refused"));
  }
  std::string target_path = absl::StrJoin(*parts, "/");
  auto it = seen_.find(target_path);
  if (it == seen_.end() || it->second.implied ||
      (it->second.kind != Kind::kFile && it->second.kind != Kind::kSymlink)) {
    return absl::InvalidArgumentError(absl::StrCat(
        shown, ": the target is not a file earlier in this layer; refused"));
  }
  const Kind kind = it->second.kind;  // `it` dies with the next insert
  std::string target_dir = absl::StrJoin(parts->begin(), parts->end() - 1, "/");
  absl::StatusOr<cas::UniqueFd> tdir =
      cas::OpenDirBeneath(root_fd_, target_dir);
  if (!tdir.ok()) return tdir.status();
  // Flags 0: the last component is not followed either.
  if (linkat(tdir->get(), parts->back().c_str(), dir_fd, name.c_str(), 0) !=
      0) {
    return ErrnoStatus(errno, shown);
  }
  seen_[path] = Seen{kind, false};
  return absl::OkStatus();
}

absl::Status LayerExtractor::Entry(struct archive_entry* e) {
  if (++entries_ > limits_.max_entries) {
    return absl::ResourceExhaustedError(
        absl::StrCat("layer has more than ", limits_.max_entries, " entries"));
  }
  const char* raw_c = archive_entry_pathname(e);
  if (raw_c == nullptr) {
    return absl::InvalidArgumentError("entry without a readable path");
  }
  std::string raw = raw_c;
  if (raw.size() > limits_.max_path_length) {
    return absl::ResourceExhaustedError(
        absl::StrCat("path longer than ", limits_.max_path_length, " bytes: \"",
                     raw.substr(0, 80), "...\""));
  }
  if (raw.empty()) return absl::InvalidArgumentError("entry with empty path");
  if (raw[0] == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("absolute path \"", raw, "\" in layer; refused"));
  }
  absl::StatusOr<std::vector<std::string>> parts = cas::SplitRelativePath(raw);
  if (!parts.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "path \"", raw, "\" has a \"..\" component (or a NUL); refused"));
  }
  std::string path = absl::StrJoin(*parts, "/");
  if (parts->empty()) {
    // "./": the layer root's attributes.
    if (archive_entry_filetype(e) != AE_IFDIR) {
      return absl::InvalidArgumentError(
          absl::StrCat("entry \"", raw, "\" names the layer root"));
    }
    absl::StatusOr<Attrs> attrs = AttrsOf(e, ".");
    if (!attrs.ok()) return attrs.status();
    if (fchown(root_fd_, attrs->uid, attrs->gid) != 0 ||
        fchmod(root_fd_, attrs->mode) != 0) {
      return ErrnoStatus(errno, "set the layer root's owner and mode");
    }
    root_listed_ = true;
    dir_times_.emplace_back("", attrs->mtime);
    return absl::OkStatus();
  }
  const std::string& name = parts->back();
  if (absl::StartsWith(name, kWhiteoutPrefix)) return Whiteout(*parts, raw);

  const char* link = archive_entry_hardlink(e);
  mode_t type = archive_entry_filetype(e);
  Kind kind;
  if (link != nullptr) {
    kind = Kind::kFile;  // checked against the target below
  } else if (type == AE_IFDIR) {
    kind = Kind::kDirectory;
  } else if (type == AE_IFREG) {
    kind = Kind::kFile;
  } else if (type == AE_IFLNK) {
    kind = Kind::kSymlink;
  } else if (type == AE_IFIFO) {
    kind = Kind::kFifo;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("entry \"", raw, "\" is a ", TypeName(type),
                     "; device nodes and sockets are refused in layers"));
  }
  absl::StatusOr<Attrs> attrs = AttrsOf(e, path);
  if (!attrs.ok()) return attrs.status();

  auto it = seen_.find(path);
  if (it != seen_.end()) {
    if (kind == Kind::kDirectory && link == nullptr &&
        it->second.kind == Kind::kDirectory) {
      // A directory listed again (or after its children): its attributes.
      it->second.implied = false;
      absl::StatusOr<int> dir_fd = OpenParent(*parts, parts->size() - 1);
      if (!dir_fd.ok()) return dir_fd.status();
      if (fchownat(*dir_fd, name.c_str(), attrs->uid, attrs->gid,
                   AT_SYMLINK_NOFOLLOW) != 0 ||
          fchmodat(*dir_fd, name.c_str(), attrs->mode, 0) != 0) {
        return ErrnoStatus(errno, absl::StrCat("set the mode of ", path));
      }
      dir_times_.emplace_back(path, attrs->mtime);
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(
        absl::StrCat("duplicate entry \"", path, "\" in layer (a ",
                     KindName(it->second.kind), " already)"));
  }
  absl::StatusOr<int> dir_fd = OpenParent(*parts, parts->size() - 1);
  if (!dir_fd.ok()) return dir_fd.status();
  if (link != nullptr) return Hardlink(*dir_fd, name, path, link);

  switch (kind) {
    case Kind::kDirectory: {
      absl::StatusOr<cas::UniqueFd> made = cas::MakeDirAt(*dir_fd, name, 0700);
      if (!made.ok()) return made.status();
      if (fchown(made->get(), attrs->uid, attrs->gid) != 0 ||
          fchmod(made->get(), attrs->mode) != 0) {
        return ErrnoStatus(errno,
                           absl::StrCat("set the owner and mode of ", path));
      }
      dir_times_.emplace_back(path, attrs->mtime);
      break;
    }
    case Kind::kSymlink: {
      const char* target = archive_entry_symlink(e);
      if (target == nullptr || target[0] == '\0') {
        return absl::InvalidArgumentError(
            absl::StrCat("symlink \"", path, "\" has no target"));
      }
      if (strlen(target) > limits_.max_path_length) {
        return absl::ResourceExhaustedError(
            absl::StrCat("symlink \"", path, "\" target is too long"));
      }
      if (symlinkat(target, *dir_fd, name.c_str()) != 0) {
        return ErrnoStatus(errno, absl::StrCat("symlink ", path));
      }
      struct timespec times[2] = {attrs->mtime, attrs->mtime};
      if (fchownat(*dir_fd, name.c_str(), attrs->uid, attrs->gid,
                   AT_SYMLINK_NOFOLLOW) != 0 ||
          utimensat(*dir_fd, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoStatus(errno, absl::StrCat("set the owner of ", path));
      }
      break;
    }
    case Kind::kFifo: {
      if (mkfifoat(*dir_fd, name.c_str(), 0600) != 0) {
        return ErrnoStatus(errno, absl::StrCat("create FIFO ", path));
      }
      if (fchownat(*dir_fd, name.c_str(), attrs->uid, attrs->gid,
                   AT_SYMLINK_NOFOLLOW) != 0 ||
          fchmodat(*dir_fd, name.c_str(), attrs->mode, 0) != 0) {
        return ErrnoStatus(errno,
                           absl::StrCat("set the owner and mode of ", path));
      }
      break;
    }
    case Kind::kFile: {
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
      if (bytes_ > limits_.max_layer_bytes) {
        return absl::ResourceExhaustedError(
            absl::StrCat("layer content exceeds ", limits_.max_layer_bytes,
                         " bytes (at ", path, ")"));
      }
      absl::Status st = WriteFile(*dir_fd, name, path, size, *attrs);
      if (!st.ok()) return st;
      break;
    }
    case Kind::kWhiteout:
      break;  // handled above
  }
  seen_[path] = Seen{kind, false};
  return absl::OkStatus();
}

absl::Status LayerExtractor::Finish() {
  while (stack_.size() > 1) {
    close(stack_.back().fd);
    stack_.pop_back();
  }
  // Deepest last-listed first, so that setting a child's time does not
  // disturb its parent's (utimens does not change the parent's mtime, but
  // keep the order obvious).
  for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it) {
    absl::StatusOr<cas::UniqueFd> dir =
        cas::OpenDirBeneath(root_fd_, it->first);
    if (!dir.ok()) return dir.status();
    struct timespec times[2] = {it->second, it->second};
    if (futimens(dir->get(), times) != 0) {
      return ErrnoStatus(errno, absl::StrCat("set the mtime of ", it->first));
    }
  }
  return absl::OkStatus();
}

absl::Status ExtractLayerTar(ByteSource* tar, int root_fd,
                             const UnpackOptions& options,
                             const std::string& private_dir,
                             bool* root_listed) {
  struct archive* a = archive_read_new();
  if (a == nullptr) return absl::ResourceExhaustedError("archive_read_new");
  archive_read_support_format_tar(a);
  TarRead ctx{tar, absl::OkStatus()};
  absl::Status st;
  if (archive_read_open(a, &ctx, nullptr, TarReadCallback, nullptr) !=
      ARCHIVE_OK) {
    const char* msg = archive_error_string(a);
    st = absl::DataLossError(
        absl::StrCat("not a tar archive: ", msg ? msg : "?"));
  }
  {
    LayerExtractor extractor(a, root_fd, options.limits);
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
      st = extractor.Entry(entry);
      if (st.ok() && options.after_entry_for_testing) {
        options.after_entry_for_testing(private_dir);
      }
    }
    if (st.ok()) st = extractor.Finish();
    *root_listed = extractor.root_listed();
  }
  if (!ctx.status.ok()) st = ctx.status;  // the precise cause
  archive_read_free(a);
  return st;
}

}  // namespace

absl::Status UnpackLayer(int blob_fd, const LayerBlob& blob, int parent_fd,
                         const std::string& name,
                         const std::string& shown_parent,
                         const UnpackOptions& options) {
  auto fail = [&](const absl::Status& st) {
    return absl::Status(
        st.code(), absl::StrCat("layer ", blob.digest, ": ", st.message()));
  };
  if (name.empty() || name.find('/') != std::string::npos || name == "." ||
      name == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot unpack a layer into \"", name, "\""));
  }
  absl::StatusOr<cas::Digest> want_diff = cas::Digest::Parse(blob.diff_id);
  if (!want_diff.ok()) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("bad diff_id \"", blob.diff_id, "\"")));
  }
  absl::StatusOr<cas::Digest> want_blob = cas::Digest::Parse(blob.digest);
  if (!want_blob.ok()) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("bad digest \"", blob.digest, "\"")));
  }
  absl::StatusOr<std::string> compression =
      oci::LayerCompression(blob.media_type);
  if (!compression.ok()) return fail(compression.status());
  if (lseek(blob_fd, 0, SEEK_SET) != 0) {
    return fail(ErrnoStatus(errno, "rewind the layer blob"));
  }

  const LayerLimits& limits = options.limits;
  std::string private_name = cas::TempName("layer");
  std::string private_dir = absl::StrCat(shown_parent, "/", private_name);
  absl::StatusOr<cas::UniqueFd> root =
      cas::MakeDirAt(parent_fd, private_name, 0700);
  if (!root.ok()) return fail(root.status());

  // Headers and padding come on top of file content.
  int64_t max_stream =
      limits.max_layer_bytes + limits.max_entries * 3072 + (int64_t{1} << 20);
  auto file = std::make_unique<FdSource>(blob_fd);
  std::unique_ptr<ByteSource> decompressed;
  if (*compression == "gzip") {
    decompressed = std::make_unique<GunzipSource>(
        file.get(), limits.max_expansion_ratio, limits.expansion_grace_bytes);
  } else if (*compression == "zstd") {
    decompressed = std::make_unique<archive::ZstdDecompressSource>(
        file.get(), max_stream, limits.max_expansion_ratio,
        limits.expansion_grace_bytes);
  } else {
    decompressed = std::make_unique<Borrowed>(file.get());
  }
  auto diff = std::make_unique<DiffIdSource>(decompressed.get(), max_stream);
  std::unique_ptr<ByteSource> tar;
  if (options.prefetch) {
    tar = std::make_unique<archive::PrefetchSource>(
        std::make_unique<Borrowed>(diff.get()));
  } else {
    tar = std::make_unique<Borrowed>(diff.get());
  }
  bool root_listed = false;
  absl::Status st = ExtractLayerTar(tar.get(), root->get(), options,
                                    private_dir, &root_listed);
  // The diff_id covers the whole stream, past the tar's end blocks.
  while (st.ok()) {
    absl::StatusOr<absl::string_view> rest = tar->Next();
    if (!rest.ok()) st = rest.status();
    if (!rest.ok() || rest->empty()) break;
  }
  tar.reset();  // stops the prefetch thread before the chain dies
  if (st.ok() && !diff->finished()) {
    st = absl::DataLossError("the uncompressed stream did not end");
  }
  if (st.ok() && diff->digest() != *want_diff) {
    st = absl::DataLossError(absl::StrCat(
        "uncompressed content has digest ", diff->digest().ToString(),
        ", but the image config says diff_id ", blob.diff_id));
  }
  // The compressed blob: what the decompressor left unread, then its
  // digest and size (the fetch verified them; this checks the file read).
  while (st.ok()) {
    absl::StatusOr<absl::string_view> rest = file->Next();
    if (!rest.ok()) st = rest.status();
    if (!rest.ok() || rest->empty()) break;
  }
  if (st.ok()) {
    int64_t size = file->consumed();
    cas::Digest got = file->Finish();
    if (got != *want_blob || size != blob.size) {
      st = absl::DataLossError(absl::StrCat(
          "blob has digest ", got.ToString(), " and size ", size,
          ", the manifest says ", blob.digest, " and size ", blob.size));
    }
  }
  // The private 0700 root becomes 0755 unless the layer listed "./".
  if (st.ok() && !root_listed && fchmod(root->get(), 0755) != 0) {
    st = ErrnoStatus(errno, absl::StrCat("chmod ", private_dir));
  }
  *root = cas::UniqueFd();
  if (st.ok()) {
    st = cas::RenameNoReplace(parent_fd, private_name, parent_fd, name);
    if (st.ok()) return absl::OkStatus();
    // Another unpacker (thread or process) renamed the same layer first.
    if (absl::IsAlreadyExists(st)) st = absl::OkStatus();
  }
  cas::RemoveTreeAt(parent_fd, private_name).IgnoreError();
  return st.ok() ? st : fail(st);
}

}  // namespace kiln::image
