// Safe extraction of untrusted tar streams (the artifact transport).
//
// Only the tar format is enabled in libarchive (zstd is decoded by libzstd
// before it), and only regular files, directories and symlinks are accepted.
// Rejected with a clear error (InvalidArgument unless noted):
//   - absolute paths, ".." components, empty paths;
//   - hardlinks, character/block devices, FIFOs, sockets, sparse files;
//   - an entry below a symlink or a file created earlier (write-through);
//   - duplicate entries;
//   - more than max_entries entries, more than max_total_bytes of file
//     content, paths longer than max_path_length, or a zstd stream that
//     expands past its bounds (ResourceExhausted);
//   - truncated or corrupt streams (DataLoss).
// Modes are not taken from the archive: files become 0644, or 0755 when the
// entry's owner-execute bit is set; directories 0755 (exactly: the umask
// does not apply); no setuid, setgid or
// sticky bits, no owners, no xattrs. Every file and directory is created
// with *at() calls relative to open directory fds with O_NOFOLLOW, so a
// symlink swapped into the output while extracting is never followed.
// Symlink targets are stored verbatim and never resolved.
//
// All functions are thread-safe (no shared state).
#ifndef KILN_ENGINE_ARCHIVE_SAFE_EXTRACT_H_
#define KILN_ENGINE_ARCHIVE_SAFE_EXTRACT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/archive/byte_source.h"
#include "engine/cas/tree_digest.h"

namespace kiln::archive {

struct ExtractLimits {
  int64_t max_total_bytes = int64_t{16} << 30;  // file content, 16 GiB
  int64_t max_entries = 1 << 20;
  size_t max_path_length = 4096;
  // Decompressed bytes per compressed byte once the decompressed stream is
  // past expansion_grace_bytes; 0: not checked. The decompressed stream is
  // also bounded by max_total_bytes plus the headers of max_entries
  // entries. Both stop a bomb while it streams (zstd_stream.h).
  int64_t max_expansion_ratio = 0;
  int64_t expansion_grace_bytes = int64_t{64} << 20;
};

struct ExtractOptions {
  ExtractLimits limits;
  // Decompress on a second thread, overlapping with writing the files.
  bool prefetch = true;
  // Test hook: called after each entry is created, with the private output
  // directory's path (used to swap in symlinks deterministically). A file
  // entry's digest is not set yet (files are hashed on a worker thread).
  std::function<void(const std::string& private_dir, const cas::TreeEntry&)>
      after_entry_for_testing;
};

// Extracts an uncompressed tar stream into the empty directory open at
// `root_fd`. Returns every entry (directories implied by paths included)
// with each file's content digest. On error, what was written so far stays
// below root_fd (the caller removes it).
absl::StatusOr<std::vector<cas::TreeEntry>> ExtractTarAt(
    ByteSource* tar, int root_fd, const ExtractLimits& limits,
    const std::function<void(const cas::TreeEntry&)>& after_entry = nullptr);

// Checks the extracted entries before they become visible; a non-OK status
// aborts the extraction.
using ExtractVerifier =
    std::function<absl::Status(const std::vector<cas::TreeEntry>&)>;

// Extracts a zstd-compressed tar stream into `target`, which must not exist
// or be an empty directory (FailedPrecondition otherwise); its parent is
// created if missing. The output is built in a fresh private directory next
// to `target` (named by cas::TempName, so a dead process's leftover is
// swept), checked by `verify` (if given), then renamed into place. On any
// error nothing is left behind and `target` is untouched. `target`'s
// parent path is trusted (it is followed like any path).
absl::StatusOr<std::vector<cas::TreeEntry>> ExtractArchive(
    std::unique_ptr<ByteSource> zstd_tar, const std::string& target,
    const ExtractOptions& options, const ExtractVerifier& verify = nullptr);

// As ExtractArchive, into the entry `name` (one path component) of the
// directory open at parent_fd; nothing outside parent_fd is touched and no
// symlink is followed. With `replace`, an existing `name` (of any type; a
// symlink is replaced, not followed) is swapped out atomically where the
// filesystem allows and removed. `shown_parent` names parent_fd in errors.
absl::StatusOr<std::vector<cas::TreeEntry>> ExtractArchiveAt(
    std::unique_ptr<ByteSource> zstd_tar, int parent_fd,
    const std::string& name, const std::string& shown_parent,
    const ExtractOptions& options, const ExtractVerifier& verify = nullptr,
    bool replace = false);

}  // namespace kiln::archive

#endif  // KILN_ENGINE_ARCHIVE_SAFE_EXTRACT_H_
