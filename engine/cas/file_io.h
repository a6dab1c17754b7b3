// Small POSIX file helpers shared by the store and the archive code: whole
// reads and writes that retry on EINTR, durable atomic replacement of a file,
// and removal of a directory tree that never follows a symlink.
// All functions are thread-safe (they share no state).
#ifndef KILN_ENGINE_CAS_FILE_IO_H_
#define KILN_ENGINE_CAS_FILE_IO_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/remove_tree.h"
#include "base/status.h"

namespace kiln::cas {

// An error Status for a failed system call (base/status.h has the mapping).
using ::kiln::ErrnoStatus;

// Writes all of `data` to fd (retrying short writes and EINTR).
absl::Status WriteAll(int fd, absl::string_view data, absl::string_view what);

// Reads up to `size` bytes, retrying EINTR and short reads; returns the
// number read (less than size only at end of file).
absl::StatusOr<size_t> ReadFull(int fd, char* buf, size_t size,
                                absl::string_view what);

// Reads a whole (small) file.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path);

// Reads a record of at most `max` bytes (max < 1024) that the store itself
// wrote into a regular file (an index entry, a by-archive record) with one
// read(2): a read of a regular file returns fewer bytes than asked only at
// its end. A longer file is DataLoss. Never follows a symlink.
absl::StatusOr<std::string> ReadStoreRecord(const std::string& path,
                                            size_t max);

// fsyncs the directory at `dir`.
absl::Status SyncDir(const std::string& dir);

// Replaces `path` with `contents` durably and atomically: temp file in the
// same directory, fsync, rename, fsync of the directory. Readers see either
// the old or the new contents, never a mix.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents);
// As above, with the temp file at `tmp_path` (same filesystem; e.g. a
// dedicated directory the owner sweeps, named with cas::TempName).
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents,
                                 const std::string& tmp_path);
// As WriteFileAtomically(path, contents, tmp_path) without the two fsyncs:
// readers still never see a mix, but after a power loss the file may be
// missing, empty or cut short. Only for what is checked before it is
// believed and can be rebuilt (a cache): the saved fsyncs are most of its
// cost.
absl::Status WriteCacheFileAtomically(const std::string& path,
                                      absl::string_view contents,
                                      const std::string& tmp_path);

// Creates `dir` and its missing parents (mode 0755 minus umask).
absl::Status MakeDirs(const std::string& dir);

// Removes `path` and everything below it (base/remove_tree.h: any depth,
// symlinks removed, never followed). Missing `path` is OK.
absl::Status RemoveTree(const std::string& path);
// Same, for the entry `name` inside the directory open at `dirfd`.
using ::kiln::kMaxRemovalDepth;
using ::kiln::RemoveTreeAt;

// A random 16-hex-digit string for temp names.
std::string RandomSuffix();

}  // namespace kiln::cas

#endif  // KILN_ENGINE_CAS_FILE_IO_H_
