#include "engine/cas/artifact_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "engine/archive/chunk_pipe.h"
#include "engine/archive/tar_writer.h"
#include "engine/archive/zstd_stream.h"
#include "engine/cas/beneath.h"
#include "engine/cas/file_io.h"
#include "engine/cas/stat_cache.h"
#include "engine/cas/tree_archive.h"
#include "engine/cas/tree_walk.h"

namespace kiln::cas {
namespace {

constexpr size_t kReadChunk = 1 << 20;
// An index entry or by-archive record (a digest and a size) is well under
// this; anything longer is damage.

// Serves a blob to the extractor.
class BlobSource : public archive::ByteSource {
 public:
  explicit BlobSource(std::unique_ptr<BlobReader> reader)
      : reader_(std::move(reader)), buf_(kReadChunk, '\0') {}
  absl::StatusOr<absl::string_view> Next() override {
    absl::StatusOr<size_t> n = reader_->Read(buf_.data(), buf_.size());
    if (!n.ok()) return n.status();
    return absl::string_view(buf_.data(), *n);
  }
  // Reads whatever the extractor left unread, so the blob's hash is checked.
  absl::Status Drain() {
    while (true) {
      absl::StatusOr<size_t> n = reader_->Read(buf_.data(), buf_.size());
      if (!n.ok()) return n.status();
      if (*n == 0) return absl::OkStatus();
    }
  }

 private:
  std::unique_ptr<BlobReader> reader_;
  std::string buf_;
};

absl::StatusOr<std::string> AbsolutePath(const std::string& dir) {
  char* real = realpath(dir.c_str(), nullptr);
  if (real == nullptr) return ErrnoStatus(errno, absl::StrCat("resolve ", dir));
  std::string out(real);
  free(real);
  return out;
}

// Stashes the walked entries of the tree open at root_fd.
absl::StatusOr<StashResult> StashEntries(
    const ContentStore& blobs, const std::string& store_dir,
    const ArtifactStoreOptions& options, int root_fd,
    const std::string& abs_root, const std::string& cache_key,
    const std::vector<WalkedEntry>& walked, int64_t stat_clock_ns);

// Leftovers of processes killed while they wrote to artifacts/: index temp
// files (artifacts/tmp) and verification scratch trees (artifacts/), both
// named with cas::TempName, go as soon as their creator is gone; a live
// creator's stay. Scratch trees of older versions ("verify-XXXXXX", no
// owner) go once untouched for a day.
void SweepArtifactTemps(const std::string& artifacts) {
  for (const std::string& dir : {artifacts, artifacts + "/tmp"}) {
    int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    SweepDeadTemps(fd).IgnoreError();
    close(fd);
  }
  DIR* d = opendir(artifacts.c_str());
  if (d == nullptr) return;
  std::vector<std::string> stale;
  const time_t now = time(nullptr);
  while (dirent* e = readdir(d)) {
    struct stat st;
    if (absl::StartsWith(e->d_name, "verify-") &&
        fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISDIR(st.st_mode) && now - st.st_mtime > 24 * 3600) {
      stale.emplace_back(e->d_name);
    }
  }
  closedir(d);
  for (const std::string& name : stale) {
    RemoveTree(absl::StrCat(artifacts, "/", name)).IgnoreError();
  }
}

// Index temp files of versions before artifacts/tmp existed:
// "artifacts/XX/<rest>.tmp-<random>" and "artifacts/by-archive/<hex>.tmp-
// <random>", beside the index file they were to replace, with no owner in
// the name. Once untouched for an hour they cannot belong to a live writer
// (an index write takes milliseconds) and go. One pass per store: a marker
// records that no such file is left, so later opens cost
// one stat; this version never writes such files again. (The marker sits
// in by-archive/, which only ever holds files named by a digest's hex.)
void SweepLegacyIndexTemps(const std::string& artifacts) {
  const std::string marker =
      artifacts + "/by-archive/.legacy-index-temps-swept";
  struct stat st;
  if (lstat(marker.c_str(), &st) == 0) return;
  const time_t now = time(nullptr);
  bool young_left = false;
  std::vector<std::string> dirs = {"by-archive"};
  for (int i = 0; i < 256; ++i) {
    dirs.push_back(absl::StrCat(absl::Hex(i, absl::kZeroPad2)));
  }
  for (const std::string& name : dirs) {
    int fd = open((artifacts + "/" + name).c_str(),
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    DIR* d = fdopendir(fd);
    if (d == nullptr) {
      close(fd);
      continue;
    }
    std::vector<std::string> stale;
    while (dirent* e = readdir(d)) {
      if (strstr(e->d_name, ".tmp-") == nullptr) continue;
      if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
          !S_ISREG(st.st_mode)) {
        continue;
      }
      if (now - st.st_mtime > 3600) {
        stale.emplace_back(e->d_name);
      } else {
        young_left = true;
      }
    }
    for (const std::string& n : stale) unlinkat(fd, n.c_str(), 0);
    closedir(d);  // closes fd
  }
  if (!young_left && MakeDirs(artifacts + "/by-archive").ok()) {
    int fd = open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
  }
}

}  // namespace

ArtifactStore::ArtifactStore(std::string store_dir,
                             ArtifactStoreOptions options,
                             std::unique_ptr<ContentStore> blobs)
    : store_dir_(std::move(store_dir)),
      options_(std::move(options)),
      blobs_(std::move(blobs)) {}

absl::StatusOr<std::unique_ptr<ArtifactStore>> ArtifactStore::Open(
    const std::string& store_dir, ArtifactStoreOptions options) {
  absl::StatusOr<std::unique_ptr<ContentStore>> blobs =
      ContentStore::Open(store_dir);
  if (!blobs.ok()) return blobs.status();
  absl::Status st = MakeDirs(absl::StrCat(store_dir, "/artifacts/tmp"));
  if (!st.ok()) return st;
  SweepArtifactTemps(absl::StrCat(store_dir, "/artifacts"));
  SweepLegacyIndexTemps(absl::StrCat(store_dir, "/artifacts"));
  if (options.compression_workers < 1) options.compression_workers = 1;
  return std::unique_ptr<ArtifactStore>(
      new ArtifactStore(store_dir, std::move(options), std::move(*blobs)));
}

std::string ArtifactStore::TempPath(absl::string_view kind) const {
  return absl::StrCat(store_dir_, "/artifacts/tmp/", TempName(kind));
}

std::string ArtifactStore::IndexPath(const Digest& tree) const {
  std::string hex = tree.Hex();
  return absl::StrCat(store_dir_, "/artifacts/", hex.substr(0, 2), "/",
                      hex.substr(2));
}

// An index entry's text, "sha256:<hex> <size>\n", as the archive it names.
absl::StatusOr<Digest> ArtifactStore::ParseIndexEntry(const Digest& tree,
                                                      absl::string_view text) {
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::StripSuffix(text, "\n"), ' ');
  int64_t size = 0;
  if (fields.size() != 2 || !absl::SimpleAtoi(fields[1], &size)) {
    return absl::DataLossError(
        absl::StrCat("damaged index entry for artifact ", tree.ToString()));
  }
  absl::StatusOr<Digest> archive = Digest::Parse(fields[0]);
  if (!archive.ok()) return archive.status();
  archive->set_size(size);
  return *archive;
}

absl::StatusOr<Digest> ArtifactStore::ArchiveOf(const Digest& tree) const {
  // One open, read and close: this runs for every output of every hit.
  absl::StatusOr<std::string> text =
      ReadStoreRecord(IndexPath(tree), kMaxRecordBytes);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) {
      return absl::NotFoundError(
          absl::StrCat("artifact ", tree.ToString(), " is not in the store"));
    }
    return text.status();
  }
  return ParseIndexEntry(tree, *text);
}

std::string ArtifactStore::ReversePath(const Digest& archive) const {
  return absl::StrCat(store_dir_, "/artifacts/by-archive/", archive.Hex());
}

void ArtifactStore::RecordVerified(const Digest& tree,
                                   const Digest& archive) const {
  if (!MakeDirs(absl::StrCat(store_dir_, "/artifacts/by-archive")).ok()) {
    return;
  }
  // Not synced: a record lost or cut short by a power loss does not parse
  // as `tree` and only sends VerifiedArchiveOf to its slow path (extract
  // and compare); two fsyncs fewer for every stashed artifact.
  WriteCacheFileAtomically(ReversePath(archive), tree.ToString() + "\n",
                           TempPath("index"))
      .IgnoreError();
}

absl::StatusOr<Digest> ArtifactStore::TreeRecordedFor(
    const Digest& archive) const {
  absl::StatusOr<std::string> record =
      ReadStoreRecord(ReversePath(archive), kMaxRecordBytes);
  if (!record.ok()) return record.status();
  return Digest::Parse(absl::StripSuffix(*record, "\n"));
}

absl::StatusOr<Digest> ArtifactStore::VouchedArchiveOf(
    const Digest& tree) const {
  absl::StatusOr<Digest> archive = ArchiveOf(tree);
  if (!archive.ok()) return archive.status();
  absl::StatusOr<Digest> holds = TreeRecordedFor(*archive);
  if (!blobs_->Has(*archive) || !holds.ok() || *holds != tree) {
    return absl::NotFoundError(absl::StrCat("artifact ", tree.ToString(),
                                            ": no verified archive on record"));
  }
  return archive;
}

absl::StatusOr<Digest> ArtifactStore::VerifiedArchiveOf(
    const Digest& tree) const {
  absl::StatusOr<Digest> archive = ArchiveOf(tree);
  if (!archive.ok()) {
    if (absl::IsDataLoss(archive.status())) {  // unparsable entry
      unlink(IndexPath(tree).c_str());
      return absl::NotFoundError(absl::StrCat(
          "artifact ", tree.ToString(), ": dropped a damaged index entry"));
    }
    return archive;
  }
  if (!blobs_->Has(*archive)) {
    return absl::NotFoundError(absl::StrCat("artifact ", tree.ToString(),
                                            ": its archive blob is gone"));
  }
  absl::StatusOr<Digest> holds = TreeRecordedFor(*archive);
  if (holds.ok() && *holds == tree) return archive;
  if (holds.ok()) {
    // The archive is another tree's: the index entry is wrong.
    ForgetArchive(tree, *archive).IgnoreError();
    return absl::NotFoundError(absl::StrCat(
        "artifact ", tree.ToString(), ": dropped an index entry naming ",
        archive->ToString(), ", the archive of ", holds->ToString()));
  }
  // No (usable) record: verify by extracting once. Unstash drops a wrong
  // entry itself.
  // Named with our pid and start time: a kill -9 leftover is swept at Open.
  std::string scratch =
      absl::StrCat(store_dir_, "/artifacts/", TempName("verify"));
  if (mkdir(scratch.c_str(), 0700) != 0) {
    return ErrnoStatus(errno, absl::StrCat("mkdir ", scratch));
  }
  absl::Status st = Unstash(tree, scratch + "/t");
  // The scratch tree came from an archive: removed beneath its parent,
  // at any depth, never following a link; a leftover is swept as a temp.
  RemoveTree(scratch).IgnoreError();
  if (!st.ok()) {
    if (absl::IsDataLoss(st) || absl::IsNotFound(st)) {
      ForgetArchive(tree, *archive).IgnoreError();
      return absl::NotFoundError(
          absl::StrCat("artifact ", tree.ToString(),
                       ": dropped an index entry that failed "
                       "verification (",
                       st.message(), ")"));
    }
    return st;
  }
  return archive;
}

bool ArtifactStore::HasIndexedArchive(const Digest& tree,
                                      const Digest& archive) const {
  absl::StatusOr<Digest> indexed = ArchiveOf(tree);
  return indexed.ok() && *indexed == archive &&
         indexed->size() == archive.size() && blobs_->Has(archive);
}

absl::Status ArtifactStore::RegisterArchive(const Digest& tree,
                                            const Digest& archive) const {
  if (!blobs_->Has(archive)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "archive ", archive.ToString(), " is not in the blob store"));
  }
  // A usable entry is never replaced by a claim: it came from a local stash
  // or an earlier verified unstash, while the claim is unverified.
  absl::StatusOr<Digest> existing = ArchiveOf(tree);
  if (existing.ok() && blobs_->Has(*existing)) return absl::OkStatus();
  return WriteIndex(tree, archive);
}

absl::Status ArtifactStore::AdoptArchive(const Digest& tree,
                                         const Digest& archive) const {
  if (!blobs_->Has(archive)) {
    return absl::NotFoundError(absl::StrCat("archive ", archive.ToString(),
                                            " is not in the blob store"));
  }
  absl::StatusOr<Digest> existing = ArchiveOf(tree);
  if (existing.ok() && blobs_->Has(*existing)) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<BlobReader>> reader =
      blobs_->OpenBlob(archive);
  if (!reader.ok()) return reader.status();
  auto source = std::make_unique<BlobSource>(std::move(*reader));
  BlobSource* blob_source = source.get();
  auto verify = [&tree, blob_source](const std::vector<TreeEntry>& entries) {
    absl::Status drained = blob_source->Drain();
    if (!drained.ok()) return drained;
    absl::StatusOr<Digest> got = ComputeTreeDigest(entries);
    if (!got.ok()) return got.status();
    if (*got != tree) {
      return absl::InvalidArgumentError(absl::StrCat(
          "it extracts to tree ", got->ToString(), ", not ", tree.ToString()));
    }
    return absl::OkStatus();
  };
  // Named with our pid and start time: a kill -9 leftover is swept at Open.
  std::string scratch =
      absl::StrCat(store_dir_, "/artifacts/", TempName("verify"));
  if (mkdir(scratch.c_str(), 0700) != 0) {
    return ErrnoStatus(errno, absl::StrCat("mkdir ", scratch));
  }
  absl::StatusOr<std::vector<TreeEntry>> entries = archive::ExtractArchive(
      std::move(source), scratch + "/t", options_.extract, verify);
  // The scratch tree came from an untrusted archive: removed beneath its
  // parent, never following a link.
  RemoveTree(scratch).IgnoreError();
  if (!entries.ok()) {
    const absl::Status& st = entries.status();
    if (absl::IsDataLoss(st) && !blobs_->Verify(archive).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("archive ", archive.ToString(),
                       " is corrupt in the blob store and was quarantined (",
                       st.message(), ")"));
    }
    if (absl::IsInternal(st) || absl::IsUnavailable(st)) return st;
    return absl::InvalidArgumentError(
        absl::StrCat("archive ", archive.ToString(), " does not hold tree ",
                     tree.ToString(), ": ", st.message()));
  }
  absl::Status written = WriteIndex(tree, archive);
  if (!written.ok()) return written;
  RecordVerified(tree, archive);
  return absl::OkStatus();
}

absl::Status ArtifactStore::WriteIndex(const Digest& tree,
                                       const Digest& archive) const {
  std::string path = IndexPath(tree);
  absl::Status st = MakeDirs(path.substr(0, path.rfind('/')));
  if (!st.ok()) return st;
  int64_t size = archive.size();
  if (size == Digest::kUnknownSize) {
    struct stat sb;
    if (stat(blobs_->BlobPath(archive).c_str(), &sb) == 0) size = sb.st_size;
  }
  return WriteFileAtomically(path,
                             absl::StrCat(archive.ToString(), " ", size, "\n"),
                             TempPath("index"));
}

absl::Status ArtifactStore::ForgetArchive(const Digest& tree,
                                          const Digest& archive) const {
  absl::StatusOr<Digest> existing = ArchiveOf(tree);
  if (!existing.ok() || *existing != archive) return absl::OkStatus();
  if (unlink(IndexPath(tree).c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(
        absl::StrCat("removing the index entry of ", tree.ToString()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<Digest, Digest>>>
ArtifactStore::ListArtifacts() const {
  std::vector<std::pair<Digest, Digest>> out;
  std::string top = absl::StrCat(store_dir_, "/artifacts");
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
    DIR* sd = opendir(absl::StrCat(top, "/", shard).c_str());
    if (sd == nullptr) continue;
    while (dirent* e = readdir(sd)) {
      if (strlen(e->d_name) != 62) continue;
      absl::StatusOr<Digest> tree =
          Digest::ParseHex(absl::StrCat(shard, e->d_name));
      if (!tree.ok()) continue;
      absl::StatusOr<Digest> archive = ArchiveOf(*tree);
      if (archive.ok()) out.emplace_back(*tree, *archive);
    }
    closedir(sd);
  }
  return out;
}

absl::StatusOr<StashResult> ArtifactStore::Stash(const std::string& dir) const {
  return StashPaths(dir, {});
}

absl::StatusOr<StashResult> ArtifactStore::StashPaths(
    const std::string& root, const std::vector<std::string>& paths) const {
  absl::StatusOr<std::string> abs_root = AbsolutePath(root);
  if (!abs_root.ok()) return abs_root.status();
  int root_fd = open(abs_root->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", root));
  // Sampled before any stat, for the stat cache's racy-entry rule.
  int64_t stat_clock_ns = FileClockNowNs();
  absl::StatusOr<std::vector<WalkedEntry>> walked =
      paths.empty() ? WalkTree(root_fd, root) : WalkPaths(root_fd, root, paths);
  absl::StatusOr<StashResult> result =
      walked.ok() ? StashEntries(*blobs_, store_dir_, options_, root_fd,
                                 *abs_root, *abs_root, *walked, stat_clock_ns)
                  : absl::StatusOr<StashResult>(walked.status());
  close(root_fd);
  if (!result.ok()) return result;
  if (!result->reused) {
    // Made here from this tree: replaces whatever entry the tree had (a
    // damaged one included).
    absl::Status st = WriteIndex(result->tree, result->archive);
    if (!st.ok()) return st;
    RecordVerified(result->tree, result->archive);
  }
  return result;
}

absl::StatusOr<StashResult> ArtifactStore::StashPathsAt(
    int root_fd, const std::string& display,
    const std::vector<std::string>& paths) const {
  int64_t stat_clock_ns = FileClockNowNs();
  absl::StatusOr<std::vector<WalkedEntry>> walked =
      paths.empty() ? WalkTree(root_fd, display)
                    : WalkPaths(root_fd, display, paths);
  if (!walked.ok()) return walked.status();
  ArtifactStoreOptions options = options_;
  options.use_stat_cache = false;
  absl::StatusOr<StashResult> result =
      StashEntries(*blobs_, store_dir_, options, root_fd, display, "", *walked,
                   stat_clock_ns);
  if (!result.ok()) return result;
  if (!result->reused) {
    absl::Status st = WriteIndex(result->tree, result->archive);
    if (!st.ok()) return st;
    RecordVerified(result->tree, result->archive);
  }
  return result;
}

absl::StatusOr<StashResult> ArtifactStore::StashDirAt(
    int dir_fd, const std::string& display, const std::string& stat_cache_root,
    const std::vector<std::string>& exclude) const {
  int64_t stat_clock_ns = FileClockNowNs();
  absl::StatusOr<std::vector<WalkedEntry>> walked =
      WalkTree(dir_fd, display, exclude);
  if (!walked.ok()) return walked.status();
  ArtifactStoreOptions options = options_;
  if (stat_cache_root.empty()) options.use_stat_cache = false;
  absl::StatusOr<StashResult> result =
      StashEntries(*blobs_, store_dir_, options, dir_fd, display,
                   stat_cache_root, *walked, stat_clock_ns);
  if (!result.ok()) return result;
  if (!result->reused) {
    absl::Status st = RegisterArchive(result->tree, result->archive);
    if (!st.ok()) return st;
  }
  return result;
}

namespace {

absl::StatusOr<StashResult> StashEntries(
    const ContentStore& blobs, const std::string& store_dir,
    const ArtifactStoreOptions& options, int root_fd,
    const std::string& abs_root, const std::string& cache_key,
    const std::vector<WalkedEntry>& walked, int64_t stat_clock_ns) {
  std::unique_ptr<StatCache> cache;
  if (options.use_stat_cache) cache = StatCache::Load(store_dir, cache_key);
  StashResult result;
  std::vector<TreeEntry> tree;
  tree.reserve(walked.size());
  bool all_known = true;
  for (const WalkedEntry& w : walked) {
    TreeEntry t;
    t.path = w.path;
    t.type = w.type;
    t.link_target = w.link_target;
    if (w.type == EntryType::kFile) {
      t.executable = (w.stat.mode & S_IXUSR) != 0;
      ++result.files;
      result.file_bytes += w.stat.size;
      absl::optional<Digest> known;
      if (cache) known = cache->Lookup(w.path, w.stat);
      if (known) {
        t.digest = *known;
      } else {
        all_known = false;
      }
    }
    tree.push_back(std::move(t));
  }
  if (all_known) {
    absl::StatusOr<Digest> digest = ComputeTreeDigest(tree);
    if (!digest.ok()) return digest.status();
    std::string hex = digest->Hex();
    absl::StatusOr<std::string> index = ReadSmallFile(absl::StrCat(
        store_dir, "/artifacts/", hex.substr(0, 2), "/", hex.substr(2)));
    if (index.ok()) {
      absl::StatusOr<Digest> archive =
          Digest::Parse(index->substr(0, index->find(' ')));
      // Reused only if the archive is not known to be another tree's.
      absl::StatusOr<std::string> holds =
          archive.ok()
              ? ReadSmallFile(absl::StrCat(store_dir, "/artifacts/by-archive/",
                                           archive->Hex()))
              : absl::StatusOr<std::string>(archive.status());
      bool other_tree =
          holds.ok() && absl::StripSuffix(*holds, "\n") != digest->ToString();
      if (archive.ok() && !other_tree && blobs.Has(*archive)) {
        result.tree = *digest;
        result.archive = *archive;
        result.reused = true;
        if (cache) cache->Save().IgnoreError();  // drops vanished files
        return result;
      }
    }
  }

  // Write the archive (tree_archive.h) into the blob writer, which hashes
  // and writes the compressed bytes.
  absl::StatusOr<std::unique_ptr<BlobWriter>> writer = blobs.NewWriter();
  if (!writer.ok()) return writer.status();
  BlobWriter* blob = writer->get();
  absl::StatusOr<std::vector<TreeEntry>> written = WriteTreeArchive(
      root_fd, abs_root, walked, options.compression_workers,
      [blob](absl::string_view b) { return blob->Append(b); },
      [&](size_t i, const Digest& d) {
        result.hashed_bytes += walked[i].stat.size;
        if (cache)
          cache->Record(walked[i].path, walked[i].stat, d, stat_clock_ns);
      });
  if (!written.ok()) return written.status();
  tree = std::move(*written);
  absl::Status st;
  absl::StatusOr<Digest> archive = blob->Commit();
  if (!archive.ok()) return archive.status();
  absl::StatusOr<Digest> digest = ComputeTreeDigest(std::move(tree));
  if (!digest.ok()) return digest.status();
  result.tree = *digest;
  result.archive = *archive;
  if (cache) {
    st = cache->Save();
    if (!st.ok()) return st;
  }
  return result;
}

}  // namespace

absl::Status ArtifactStore::Unstash(const Digest& tree,
                                    const std::string& target) const {
  return Unstash(tree, target, options_.extract.limits);
}

absl::Status ArtifactStore::Unstash(
    const Digest& tree, const std::string& target,
    const archive::ExtractLimits& limits) const {
  archive::ExtractOptions options = options_.extract;
  options.limits = limits;
  return VerifiedUnstash(tree, [&](std::unique_ptr<archive::ByteSource> source,
                                   const archive::ExtractVerifier& verify) {
    return archive::ExtractArchive(std::move(source), target, options, verify);
  });
}

absl::Status ArtifactStore::UnstashAt(const Digest& tree, int parent_fd,
                                      const std::string& name,
                                      const std::string& shown_parent,
                                      bool replace) const {
  return VerifiedUnstash(tree, [&](std::unique_ptr<archive::ByteSource> source,
                                   const archive::ExtractVerifier& verify) {
    return archive::ExtractArchiveAt(std::move(source), parent_fd, name,
                                     shown_parent, options_.extract, verify,
                                     replace);
  });
}

absl::Status ArtifactStore::VerifiedUnstash(
    const Digest& tree,
    const std::function<absl::StatusOr<std::vector<TreeEntry>>(
        std::unique_ptr<archive::ByteSource>, const archive::ExtractVerifier&)>&
        extract) const {
  absl::StatusOr<Digest> archive = ArchiveOf(tree);
  if (!archive.ok()) return archive.status();
  // The blob is hashed as it is read (on the decompression thread) and the
  // extracted tree is checked against `tree` (every file hashed, on a
  // worker, as it is written): a blob that fails either is never moved into
  // place. The tree check alone would decide whether the output is the
  // artifact, but not whether the blob is sound: damage in bytes the tar
  // reader ignores (padding, end-of-archive blocks, unused header fields)
  // extracts to the same tree, and such a blob must still be caught and
  // quarantined (ArtifactStoreTest.CorruptArchiveIsNeverExtracted), so the
  // blob hash stays; it runs on the decompression thread, overlapped.
  absl::StatusOr<std::unique_ptr<BlobReader>> reader =
      blobs_->OpenBlob(*archive);
  if (!reader.ok()) return reader.status();
  auto source = std::make_unique<BlobSource>(std::move(*reader));
  BlobSource* blob_source = source.get();
  auto verify = [&tree, blob_source](const std::vector<TreeEntry>& entries) {
    absl::Status drained = blob_source->Drain();
    if (!drained.ok()) return drained;
    absl::StatusOr<Digest> got = ComputeTreeDigest(entries);
    if (!got.ok()) return got.status();
    if (*got != tree) {
      return absl::DataLossError(absl::StrCat("archive extracts to tree ",
                                              got->ToString(), ", not ",
                                              tree.ToString()));
    }
    return absl::OkStatus();
  };
  bool wrong_tree = false;
  auto checked = [&verify, &wrong_tree](const std::vector<TreeEntry>& e) {
    absl::Status s = verify(e);
    // Drained (the blob's hash held) but another tree: a wrong index entry.
    if (absl::IsDataLoss(s) &&
        absl::StartsWith(s.message(), "archive extracts to tree")) {
      wrong_tree = true;
    }
    return s;
  };
  absl::StatusOr<std::vector<TreeEntry>> entries =
      extract(std::move(source), checked);
  if (entries.ok()) {
    RecordVerified(tree, *archive);
    return absl::OkStatus();
  }
  absl::Status st = entries.status();
  if (wrong_tree) {
    // The blob is sound; the index entry names another tree's archive.
    // Drop it so the artifact reads as absent (and is produced again)
    // instead of failing every run.
    ForgetArchive(tree, *archive).IgnoreError();
    return absl::DataLossError(
        absl::StrCat("artifact ", tree.ToString(),
                     ": its index entry named archive ", archive->ToString(),
                     ", which ", st.message(), "; the entry was dropped"));
  }
  if (absl::IsDataLoss(st) || absl::IsInvalidArgument(st) ||
      absl::IsResourceExhausted(st)) {
    absl::Status blob_status = blobs_->Verify(*archive);
    if (!blob_status.ok()) {
      return absl::DataLossError(
          absl::StrCat("artifact ", tree.ToString(), ": its archive blob ",
                       archive->ToString(), " is corrupt and was quarantined (",
                       st.message(), ")"));
    }
    // A sound blob past the extraction limits (a decompression bomb) keeps
    // its code: the caller's limit, not damage.
    return absl::Status(absl::IsResourceExhausted(st)
                            ? absl::StatusCode::kResourceExhausted
                            : absl::StatusCode::kDataLoss,
                        absl::StrCat("artifact ", tree.ToString(),
                                     " cannot be extracted from archive ",
                                     archive->ToString(), ": ", st.message()));
  }
  return st;
}

}  // namespace kiln::cas
