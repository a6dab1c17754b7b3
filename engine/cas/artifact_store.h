// ArtifactStore: directory trees in and out of the content store.
//
// An artifact is a directory tree identified by its tree digest (see
// tree_digest.h). It travels as one blob: a deterministic tar stream
// (tar_writer.h: sorted depth-first, mtime 0, uid/gid 0, normalized modes,
// only files, directories and symlinks) compressed with zstd at a fixed
// level (zstd_stream.h). The store keeps
//   <store>/cas/...                         the archive blob (ContentStore)
//   <store>/artifacts/<2 hex>/<62 hex>      tree digest -> archive digest
//   <store>/artifacts/by-archive/<64 hex>   archive digest -> tree digest,
//                                           written only when the archive
//                                           was made from, or verified to
//                                           extract to, that tree
//   <store>/artifacts/tmp/.kiln-index-...   index files being written
//   <store>/artifacts/.kiln-verify-...      a claim being verified
// (temps named with cas::TempName: a dead creator's are swept at Open)
//   <store>/statcache/...                   stat cache (stat_cache.h)
//
// Stash never follows a symlink (it is stored as a link, wherever it
// points), refuses FIFOs, sockets and devices with an error naming the path
// (without opening them), and fails if a file changes while it is read.
// Re-stashing an unchanged tree hashes nothing (stat cache) and, when the
// artifact is already stored, writes nothing.
//
// Unstash extracts safely (safe_extract.h) and checks that the extracted
// tree's digest is the one asked for, so a corrupt or forged archive can
// never pass as the artifact; a corrupt archive blob is quarantined.
//
// Thread-safe; several processes may share one store.
#ifndef KILN_ENGINE_CAS_ARTIFACT_STORE_H_
#define KILN_ENGINE_CAS_ARTIFACT_STORE_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/archive/safe_extract.h"
#include "engine/cas/content_store.h"
#include "engine/cas/digest.h"

namespace kiln::cas {

struct ArtifactStoreOptions {
  // zstd worker threads for stashing (>= 1; the archive bytes do not depend
  // on it).
  int compression_workers = 2;
  // Remember file digests by stat between stashes.
  bool use_stat_cache = true;
  // Limits and threading for Unstash.
  archive::ExtractOptions extract;
};

// What a stash produced.
struct StashResult {
  Digest tree;          // the artifact's identity
  Digest archive;       // the blob holding its archive (for transfer)
  bool reused = false;  // the artifact was already stored; nothing written
  int64_t files = 0;
  int64_t file_bytes = 0;
  int64_t hashed_bytes = 0;  // file bytes actually read (stat-cache misses)
};

class ArtifactStore {
 public:
  static absl::StatusOr<std::unique_ptr<ArtifactStore>> Open(
      const std::string& store_dir, ArtifactStoreOptions options = {});

  // Stashes the tree below `dir` (its contents; `dir` itself is the root).
  absl::StatusOr<StashResult> Stash(const std::string& dir) const;
  // Stashes only `paths` (relative to `root`; files, symlinks or whole
  // directories) as one artifact; their parent directories are included,
  // nothing else. InvalidArgument on absolute paths or "..".
  absl::StatusOr<StashResult> StashPaths(
      const std::string& root, const std::vector<std::string>& paths) const;

  // As StashPaths, with `paths` relative to the directory open at root_fd
  // (resolved by the caller beneath its root; a task workspace). No symlink
  // on the way to a path is followed; `display` names the root in errors.
  // Without the stat cache (a workspace is fresh every time).
  absl::StatusOr<StashResult> StashPathsAt(
      int root_fd, const std::string& display,
      const std::vector<std::string>& paths) const;

  // Stashes the tree below the directory open at dir_fd (resolved by the
  // caller beneath its root, e.g. with cas::OpenDirBeneath), leaving out
  // what `exclude` matches (tree_walk.h IsExcluded). `display` names it in
  // errors; `stat_cache_root` (an absolute path naming the same directory,
  // "" for none) keys the stat cache.
  absl::StatusOr<StashResult> StashDirAt(
      int dir_fd, const std::string& display,
      const std::string& stat_cache_root,
      const std::vector<std::string>& exclude = {}) const;

  // Extracts artifact `tree` into `target` (new or empty directory; its
  // parent path is trusted). NotFound if the artifact is unknown; DataLoss
  // if its archive is corrupt; ResourceExhausted if it passes the
  // extraction limits (ArtifactStoreOptions.extract: a decompression bomb).
  absl::Status Unstash(const Digest& tree, const std::string& target) const;
  // As Unstash, under `limits` instead of the store's (e.g. the tighter
  // bounds of a source archive a client sent).
  absl::Status Unstash(const Digest& tree, const std::string& target,
                       const archive::ExtractLimits& limits) const;
  // Extracts artifact `tree` into the entry `name` of the directory open at
  // parent_fd; nothing outside parent_fd is touched and no symlink is
  // followed. With `replace`, an existing entry is replaced (see
  // archive::ExtractArchiveAt); otherwise it must be an empty directory.
  absl::Status UnstashAt(const Digest& tree, int parent_fd,
                         const std::string& name,
                         const std::string& shown_parent, bool replace) const;

  // The archive blob of an artifact (NotFound if unknown).
  absl::StatusOr<Digest> ArchiveOf(const Digest& tree) const;
  // The archive of `tree` if its index entry can be trusted: the blob is
  // present and known to hold `tree` (its by-archive record names `tree`).
  // An entry without a record (a remote claim, an older store) is verified
  // once by extracting the archive into a scratch directory. An entry that
  // names an archive of another tree, or fails verification, is damaged
  // state: it is dropped (ForgetArchive) and NotFound returned, so the
  // caller treats the artifact as absent and produces it again.
  absl::StatusOr<Digest> VerifiedArchiveOf(const Digest& tree) const;
  // The archive of `tree` when its index entry, its blob and the blob's
  // by-archive record agree; NotFound otherwise. Nothing is extracted or
  // dropped (VerifiedArchiveOf does both).
  absl::StatusOr<Digest> VouchedArchiveOf(const Digest& tree) const;
  // Whether `tree`'s index entry names `archive` (digest and size) and
  // the blob is present with that size: one read and one stat, the
  // by-archive record not read. For a cache hit whose action-cache entry
  // recorded `archive` as verified (VouchedArchiveOf) when it was made: an
  // entry still naming it needs no second verification. On false the
  // caller goes through VerifiedArchiveOf.
  bool HasIndexedArchive(const Digest& tree, const Digest& archive) const;
  // HasIndexedArchive of every (tree, archive), false at the first that
  // fails: for many at once (a whole-run replay), the index and the blob
  // store opened once and every entry reached relative to them. An entry
  // whose index shard is in `unchanged_shards` (UnchangedShards) is not
  // read; a blob whose shard is in it is not stat'ed.
  // An output's tree and archive as a record names them ("sha256:<hex>"
  // each), and the archive's size.
  struct RecordedArchive {
    absl::string_view tree;
    absl::string_view archive;
    int64_t size = 0;
  };
  bool HasIndexedArchives(
      absl::Span<const RecordedArchive> entries,
      const absl::flat_hash_set<std::string>& unchanged_shards = {}) const;

  // A shard directory of the artifact index ("index/ab") or of the blob
  // store ("blobs/ab") as stat saw it. kiln replaces index entries and
  // blobs only by rename (and removes them by unlink or rename), which
  // changes their directory's mtime and ctime: a shard whose stamp is
  // unchanged holds the entries it held. A file rewritten in place (which
  // kiln never does) is not seen; an unstash verifies every archive it
  // reads.
  struct ShardStamp {
    std::string shard;
    uint64_t ino = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
  };
  // The shards holding the index entries and blobs of `entries`.
  std::vector<std::string> ShardsOf(
      absl::Span<const RecordedArchive> entries) const;
  // Stamps of `shards`, read now. A shard changed less than `settle` ago is
  // left out: file times are taken from a coarse clock, so a change in the
  // same tick could leave them as they were.
  std::vector<ShardStamp> ShardStamps(const std::vector<std::string>& shards,
                                      absl::Duration settle) const;
  // The shards among `stamps` whose directory is unchanged.
  absl::flat_hash_set<std::string> UnchangedShards(
      absl::Span<const ShardStamp> stamps) const;
  // Records that `archive` (already in the blob store, e.g. received from a
  // remote) holds artifact `tree`, unless `tree` already has a usable entry
  // (never replaced by a claim). Unstash verifies the claim; a caller whose
  // Unstash of an unverified claim fails calls ForgetArchive.
  absl::Status RegisterArchive(const Digest& tree, const Digest& archive) const;
  // Records that `archive` (in the blob store, uploaded by someone this
  // store does not trust: a remote agent) holds artifact `tree`, after
  // verifying it: the blob is extracted safely into a scratch directory
  // beneath the store (under the store's extraction limits) and the
  // extracted tree's digest must equal `tree`. Nothing is recorded unless
  // that holds. InvalidArgument for a forged, corrupt or hostile archive
  // (and for one past the limits); NotFound if `archive` is not stored. OK
  // without change if `tree` already has a usable entry.
  absl::Status AdoptArchive(const Digest& tree, const Digest& archive) const;
  // Drops the index entry of `tree` if it still names `archive` (after the
  // claim failed verification). OK if it names another or none.
  absl::Status ForgetArchive(const Digest& tree, const Digest& archive) const;
  // Every known artifact as (tree, archive): the roots for GC.
  absl::StatusOr<std::vector<std::pair<Digest, Digest>>> ListArtifacts() const;

  const ContentStore& blobs() const { return *blobs_; }
  const std::string& store_dir() const { return store_dir_; }

 private:
  ArtifactStore(std::string store_dir, ArtifactStoreOptions options,
                std::unique_ptr<ContentStore> blobs);
  std::string IndexPath(const Digest& tree) const;
  // A fresh temp file name in artifacts/tmp (swept at Open once its
  // creator is gone).
  std::string TempPath(absl::string_view kind) const;
  // Extracts with `extract` (one of the archive::ExtractArchive* calls),
  // verifying the tree and classifying a failure.
  absl::Status VerifiedUnstash(
      const Digest& tree,
      const std::function<absl::StatusOr<std::vector<TreeEntry>>(
          std::unique_ptr<archive::ByteSource>,
          const archive::ExtractVerifier&)>& extract) const;
  std::string ReversePath(const Digest& archive) const;
  // An index entry's text, "sha256:<hex> <size>\n", as the archive it
  // names (DataLoss when it is not one).
  static absl::StatusOr<Digest> ParseIndexEntry(const Digest& tree,
                                                absl::string_view text);
  // The longest index or by-archive record read.
  static constexpr size_t kMaxRecordBytes = 256;
  // The tree the by-archive record of `archive` names (read, not trusted
  // beyond that: the record is written after a stash or a verification).
  absl::StatusOr<Digest> TreeRecordedFor(const Digest& archive) const;
  absl::Status WriteIndex(const Digest& tree, const Digest& archive) const;
  // Records that `archive` holds `tree` (best effort: only a cache).
  void RecordVerified(const Digest& tree, const Digest& archive) const;

  const std::string store_dir_;
  const ArtifactStoreOptions options_;
  std::unique_ptr<ContentStore> blobs_;
};

}  // namespace kiln::cas

#endif  // KILN_ENGINE_CAS_ARTIFACT_STORE_H_
