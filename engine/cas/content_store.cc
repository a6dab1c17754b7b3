#include "engine/cas/content_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/cas/beneath.h"
#include "engine/cas/file_io.h"

namespace kiln::cas {
namespace {

constexpr size_t kIoChunk = 1 << 20;
// Start writeback every this many bytes so the final fsync has little left.
constexpr int64_t kWritebackChunk = 16 << 20;
constexpr time_t kStaleTempSeconds = 24 * 3600;

std::string ShardDir(const std::string& root, const std::string& hex) {
  return absl::StrCat(root, "/sha256/", hex.substr(0, 2));
}

// Removes temp files abandoned by crashed writers long ago, whatever their
// name (also those of older versions, named without a pid). Young ones may
// belong to a live writer in another process and are left alone.
void SweepStaleTemps(const std::string& tmp_dir) {
  DIR* d = opendir(tmp_dir.c_str());
  if (d == nullptr) return;
  time_t now = time(nullptr);
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode) && now - st.st_mtime > kStaleTempSeconds) {
      unlinkat(dirfd(d), e->d_name, 0);
    }
  }
  closedir(d);
}

void SweepDeadWriters(const std::string& tmp_dir) {
  int fd =
      open(tmp_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  // Best effort: a temp that cannot be removed now is tried at the next
  // start, and the age sweep below catches what pid reuse hides.
  SweepDeadTemps(fd).IgnoreError();
  close(fd);
}

class FileBlobWriter : public BlobWriter {
 public:
  FileBlobWriter(const ContentStore* store, std::string tmp_path, int fd)
      : store_(store), tmp_path_(std::move(tmp_path)), fd_(fd) {}
  ~FileBlobWriter() override {
    if (fd_ >= 0) close(fd_);
    if (!committed_) unlink(tmp_path_.c_str());
  }

  absl::Status Append(absl::string_view bytes) override {
    if (fd_ < 0) return absl::FailedPreconditionError("writer is closed");
    hasher_.Update(bytes);
    absl::Status st = WriteAll(fd_, bytes, tmp_path_);
    if (!st.ok()) return st;
    written_ += static_cast<int64_t>(bytes.size());
    if (written_ - flushed_ >= kWritebackChunk) {
      sync_file_range(fd_, flushed_, written_ - flushed_,
                      SYNC_FILE_RANGE_WRITE);
      flushed_ = written_;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Digest> Commit(const Digest* expected) override {
    if (fd_ < 0) return absl::FailedPreconditionError("writer is closed");
    Digest digest = hasher_.Finish();
    if (expected != nullptr &&
        (*expected != digest || (expected->size() != Digest::kUnknownSize &&
                                 expected->size() != digest.size()))) {
      close(fd_);
      fd_ = -1;
      return absl::InvalidArgumentError(absl::StrCat(
          "content does not match the expected digest ", expected->ToString(),
          ": got ", digest.ToString(), " (", digest.size(), " bytes)"));
    }
    absl::Status st;
    if (fchmod(fd_, 0444) != 0) st = ErrnoStatus(errno, "chmod blob");
    if (st.ok() && fsync(fd_) != 0) st = ErrnoStatus(errno, "fsync blob");
    close(fd_);
    fd_ = -1;
    if (!st.ok()) return st;
    std::string hex = digest.Hex();
    std::string shard = ShardDir(store_->root(), hex);
    if (mkdir(shard.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("mkdir ", shard));
    }
    std::string final_path = store_->BlobPath(digest);
    if (rename(tmp_path_.c_str(), final_path.c_str()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("rename to ", final_path));
    }
    committed_ = true;
    st = SyncDir(shard);
    if (!st.ok()) return st;
    return digest;
  }

 private:
  const ContentStore* store_;
  std::string tmp_path_;
  int fd_;
  Sha256 hasher_;
  int64_t written_ = 0;
  int64_t flushed_ = 0;
  bool committed_ = false;
};

class FileBlobReader : public BlobReader {
 public:
  FileBlobReader(const ContentStore* store, Digest digest, int fd, int64_t size,
                 bool verify)
      : store_(store), digest_(digest), fd_(fd), size_(size), verify_(verify) {}
  ~FileBlobReader() override { close(fd_); }

  absl::StatusOr<size_t> Read(char* buf, size_t size) override {
    if (done_) {
      if (!final_.ok()) return final_;  // corruption stays reported
      return size_t{0};
    }
    absl::StatusOr<size_t> n = ReadFull(fd_, buf, size, digest_.ToString());
    if (!n.ok()) return n.status();
    if (verify_) hasher_.Update(buf, *n);
    if (*n > 0 || size == 0) return *n;
    done_ = true;
    if (!verify_) return size_t{0};
    Digest got = hasher_.Finish();
    if (got != digest_) {
      struct stat st;
      if (fstat(fd_, &st) == 0) QuarantineIfSameInode(st.st_ino);
      return final_ = absl::DataLossError(absl::StrCat(
                 "blob ", digest_.ToString(), " is corrupt (content hashes to ",
                 got.ToString(), ", ", got.size(), " bytes); quarantined"));
    }
    return size_t{0};
  }
  int64_t size() const override { return size_; }

 private:
  void QuarantineIfSameInode(ino_t ino) {
    struct stat st;
    std::string path = store_->BlobPath(digest_);
    // A writer may have renamed a good copy onto the name meanwhile.
    if (stat(path.c_str(), &st) == 0 && st.st_ino == ino) {
      store_->Quarantine(digest_).IgnoreError();
    }
  }

  const ContentStore* store_;
  Digest digest_;
  int fd_;
  int64_t size_;
  bool verify_;
  bool done_ = false;
  absl::Status final_;
  Sha256 hasher_;
};

}  // namespace

ContentStore::ContentStore(std::string root) : root_(std::move(root)) {}

absl::StatusOr<std::unique_ptr<ContentStore>> ContentStore::Open(
    const std::string& store_dir) {
  std::string root = absl::StrCat(store_dir, "/cas");
  for (const char* sub : {"/sha256", "/tmp", "/quarantine"}) {
    absl::Status st = MakeDirs(absl::StrCat(root, sub));
    if (!st.ok()) return st;
  }
  // Partial blobs of writers that died (kill -9 during an upload): each
  // is named with its writer's pid, so they go at once, while a live
  // writer's (a `kiln run` sharing the store) stays.
  SweepDeadWriters(absl::StrCat(root, "/tmp"));
  SweepStaleTemps(absl::StrCat(root, "/tmp"));
  return std::unique_ptr<ContentStore>(new ContentStore(std::move(root)));
}

std::string ContentStore::BlobPath(const Digest& digest) const {
  std::string hex = digest.Hex();
  return absl::StrCat(root_, "/sha256/", hex.substr(0, 2), "/", hex.substr(2));
}

absl::StatusOr<std::unique_ptr<BlobWriter>> ContentStore::NewWriter() const {
  // Named with this process's pid (TempName), so a dead writer's partial
  // blob is recognized and swept when the store is next opened.
  std::string tmp = absl::StrCat(root_, "/tmp/", TempName("blob"));
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
  return std::unique_ptr<BlobWriter>(new FileBlobWriter(this, tmp, fd));
}

absl::StatusOr<Digest> ContentStore::Put(absl::string_view bytes) const {
  absl::StatusOr<std::unique_ptr<BlobWriter>> w = NewWriter();
  if (!w.ok()) return w.status();
  absl::Status st = (*w)->Append(bytes);
  if (!st.ok()) return st;
  return (*w)->Commit();
}

absl::StatusOr<Digest> ContentStore::PutFile(const std::string& path) const {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a regular file"));
  }
  absl::StatusOr<std::unique_ptr<BlobWriter>> w = NewWriter();
  if (!w.ok()) {
    close(fd);
    return w.status();
  }
  std::string buf(kIoChunk, '\0');
  while (true) {
    absl::StatusOr<size_t> n = ReadFull(fd, buf.data(), buf.size(), path);
    if (!n.ok()) {
      close(fd);
      return n.status();
    }
    if (*n == 0) break;
    absl::Status s = (*w)->Append(absl::string_view(buf.data(), *n));
    if (!s.ok()) {
      close(fd);
      return s;
    }
  }
  close(fd);
  return (*w)->Commit();
}

absl::StatusOr<std::unique_ptr<BlobReader>> ContentStore::OpenInternal(
    const Digest& digest, bool verify) const {
  std::string path = BlobPath(digest);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("blob ", digest.ToString(), " is not in the store"));
    }
    return ErrnoStatus(errno, absl::StrCat("open ", path));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return ErrnoStatus(errno, absl::StrCat("stat ", path));
  }
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return std::unique_ptr<BlobReader>(
      new FileBlobReader(this, digest, fd, st.st_size, verify));
}

absl::StatusOr<std::unique_ptr<BlobReader>> ContentStore::OpenBlob(
    const Digest& digest) const {
  return OpenInternal(digest, /*verify=*/true);
}

absl::StatusOr<std::string> ContentStore::Get(const Digest& digest) const {
  absl::StatusOr<std::unique_ptr<BlobReader>> r = OpenBlob(digest);
  if (!r.ok()) return r.status();
  std::string out;
  out.resize(static_cast<size_t>((*r)->size()));
  size_t filled = 0;
  while (true) {
    if (filled == out.size()) out.resize(out.size() + kIoChunk);
    absl::StatusOr<size_t> n =
        (*r)->Read(out.data() + filled, out.size() - filled);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    filled += *n;
  }
  out.resize(filled);
  return out;
}

absl::Status ContentStore::Verify(const Digest& digest) const {
  absl::StatusOr<std::unique_ptr<BlobReader>> r = OpenBlob(digest);
  if (!r.ok()) return r.status();
  std::string buf(kIoChunk, '\0');
  while (true) {
    absl::StatusOr<size_t> n = (*r)->Read(buf.data(), buf.size());
    if (!n.ok()) return n.status();
    if (*n == 0) return absl::OkStatus();
  }
}

bool ContentStore::Has(const Digest& digest) const {
  struct stat st;
  if (stat(BlobPath(digest).c_str(), &st) != 0) return false;
  return S_ISREG(st.st_mode) &&
         (digest.size() == Digest::kUnknownSize || digest.size() == st.st_size);
}

std::vector<Digest> ContentStore::FindMissing(
    const std::vector<Digest>& digests) const {
  std::vector<Digest> missing;
  for (const Digest& d : digests) {
    if (!Has(d)) missing.push_back(d);
  }
  return missing;
}

absl::Status ContentStore::Quarantine(const Digest& digest) const {
  std::string to =
      absl::StrCat(root_, "/quarantine/", digest.Hex(), ".", RandomSuffix());
  if (rename(BlobPath(digest).c_str(), to.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("quarantine ", digest.ToString()));
  }
  return absl::OkStatus();
}

absl::Status ContentStore::Remove(const Digest& digest) const {
  if (unlink(BlobPath(digest).c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("remove ", digest.ToString()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Digest>> ContentStore::ListBlobs() const {
  std::vector<Digest> out;
  std::string top = absl::StrCat(root_, "/sha256");
  DIR* d = opendir(top.c_str());
  if (d == nullptr) return ErrnoStatus(errno, absl::StrCat("opendir ", top));
  std::vector<std::string> shards;
  while (dirent* e = readdir(d)) {
    if (strlen(e->d_name) == 2 && e->d_name[0] != '.') {
      shards.push_back(e->d_name);
    }
  }
  closedir(d);
  for (const std::string& shard : shards) {
    std::string dir = absl::StrCat(top, "/", shard);
    DIR* sd = opendir(dir.c_str());
    if (sd == nullptr) continue;  // removed concurrently
    while (dirent* e = readdir(sd)) {
      if (strlen(e->d_name) != 62) continue;
      absl::StatusOr<Digest> digest =
          Digest::ParseHex(absl::StrCat(shard, e->d_name));
      struct stat st;
      if (!digest.ok() ||
          fstatat(dirfd(sd), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
          !S_ISREG(st.st_mode)) {
        continue;
      }
      digest->set_size(st.st_size);
      out.push_back(*digest);
    }
    closedir(sd);
  }
  return out;
}

absl::StatusOr<int64_t> ContentStore::TotalSize() const {
  absl::StatusOr<std::vector<Digest>> all = ListBlobs();
  if (!all.ok()) return all.status();
  int64_t total = 0;
  for (const Digest& d : *all) total += d.size();
  return total;
}

}  // namespace kiln::cas
