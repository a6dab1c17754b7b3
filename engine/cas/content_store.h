// ContentStore: immutable blobs addressed by their SHA-256 digest, on disk.
//
// Layout under the store directory:
//   cas/sha256/<2 hex>/<62 hex>   one file per blob, read-only (0444)
//   cas/tmp/                      writes in progress (same filesystem)
//   cas/quarantine/               blobs found corrupt, kept for inspection
//
// Durability: every blob is written to a temp file, fsynced, renamed onto its
// name, and the directory is fsynced. A crash (even SIGKILL mid-write) leaves
// every blob either whole or absent; stale temp files are ignored by readers
// and swept when a store is opened: at once when their writer (its pid is in
// the name, cas::TempName) is dead, else when older than a day.
//
// Integrity: reads verify. A blob whose bytes no longer hash to its name (bit
// flip, truncation) is never served: the read that notices it moves the file
// to quarantine/ and returns DataLoss; afterwards the blob is absent
// (Has() false, Get() NotFound), so a producer can simply put it again.
//
// Concurrency: thread-safe, and safe for several processes sharing one store
// directory. Concurrent writers of the same digest are harmless (each renames
// identical content onto the name). The object holds no mutable state.
#ifndef KILN_ENGINE_CAS_CONTENT_STORE_H_
#define KILN_ENGINE_CAS_CONTENT_STORE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/cas/digest.h"

namespace kiln::cas {

// Writes one blob incrementally, hashing as it goes. Commit() makes it
// visible; destroying an uncommitted writer discards the temp file.
// Not thread-safe (one writer per thread).
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  virtual absl::Status Append(absl::string_view bytes) = 0;
  // Finishes the blob. If `expected` is given and the content does not match
  // it (hash, or size when known), nothing is stored and the result is
  // InvalidArgument. Returns the blob's digest (with size).
  virtual absl::StatusOr<Digest> Commit(const Digest* expected = nullptr) = 0;
};

// Reads one blob sequentially. The final Read() (the one returning 0 bytes)
// checks the hash of everything read: on mismatch it returns DataLoss (and
// the blob is quarantined), and keeps returning it. Not thread-safe.
class BlobReader {
 public:
  virtual ~BlobReader() = default;
  // Reads up to `size` bytes into buf; 0 means end of blob (verified).
  virtual absl::StatusOr<size_t> Read(char* buf, size_t size) = 0;
  virtual int64_t size() const = 0;
};

class ContentStore {
 public:
  // Opens (creating if needed) the store rooted at `store_dir`.
  static absl::StatusOr<std::unique_ptr<ContentStore>> Open(
      const std::string& store_dir);

  // Stores bytes / a file's content (streamed, never fully in memory).
  absl::StatusOr<Digest> Put(absl::string_view bytes) const;
  absl::StatusOr<Digest> PutFile(const std::string& path) const;
  // Streaming write (e.g. an upload whose digest is announced up front).
  absl::StatusOr<std::unique_ptr<BlobWriter>> NewWriter() const;

  // Whole blob, verified. NotFound if absent, DataLoss if corrupt.
  absl::StatusOr<std::string> Get(const Digest& digest) const;
  // Streaming read, verified at the end (see BlobReader).
  absl::StatusOr<std::unique_ptr<BlobReader>> OpenBlob(
      const Digest& digest) const;

  // Existence (one stat; does not hash). If digest.size() is known, a blob
  // of another size counts as absent.
  bool Has(const Digest& digest) const;
  // The subset of `digests` not in the store, in input order.
  std::vector<Digest> FindMissing(const std::vector<Digest>& digests) const;

  // Re-hashes a stored blob: OK, NotFound, or DataLoss (then quarantined).
  absl::Status Verify(const Digest& digest) const;
  // Moves a blob to quarantine/ (it becomes absent). Missing is OK.
  absl::Status Quarantine(const Digest& digest) const;

  // Every stored blob with its size, for garbage collection and accounting.
  // Concurrent puts may or may not be listed.
  absl::StatusOr<std::vector<Digest>> ListBlobs() const;
  // Sum of the sizes of every stored blob.
  absl::StatusOr<int64_t> TotalSize() const;
  // Deletes a blob (for GC). Missing is OK.
  absl::Status Remove(const Digest& digest) const;

  // Where a blob lives (whether or not it exists).
  std::string BlobPath(const Digest& digest) const;
  const std::string& root() const { return root_; }

 private:
  explicit ContentStore(std::string root);
  absl::StatusOr<std::unique_ptr<BlobReader>> OpenInternal(const Digest& digest,
                                                           bool verify) const;

  std::string root_;  // <store>/cas
};

}  // namespace kiln::cas

#endif  // KILN_ENGINE_CAS_CONTENT_STORE_H_
