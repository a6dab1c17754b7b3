// Path operations beneath an open directory that never follow a symlink.
//
// Every tree a task or a client produced is hostile: any component of a path
// inside it may be a symlink (to /etc/cron.d, to $HOME) put there on
// purpose, and the engine runs as root outside the sandbox. Every engine-side
// operation on such a tree (merging inputs into a workspace, stash `from:`,
// unstash `to:`, collecting outputs, removing workspaces) goes through these
// functions: they resolve a relative path below a directory fd one component
// at a time, and a symlink anywhere on the way is an error, never followed.
// Resolution uses openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS) where the kernel has it, and a walk of
// openat(O_NOFOLLOW | O_DIRECTORY) calls otherwise (kernels before 5.6).
// Paths are relative: absolute paths, ".." and NUL bytes are refused before
// any system call.
//
// Errors (codes say what the caller does next): a symlink or non-directory
// on the way is InvalidArgument naming the path; a missing component
// NotFound; others by errno (file_io.h ErrnoStatus).
// Thread-safe (no shared state besides the testing switch).
#ifndef KILN_ENGINE_CAS_BENEATH_H_
#define KILN_ENGINE_CAS_BENEATH_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kiln::cas {

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release();

 private:
  int fd_ = -1;
};

// The components of a relative path, without "." and empty parts ("", "."
// and "./" give none). InvalidArgument for an absolute path, a ".."
// component or a NUL byte.
absl::StatusOr<std::vector<std::string>> SplitRelativePath(
    absl::string_view path);

// Opens a directory the caller trusts (a store or source root given by the
// user), following symlinks in `path` as usual. The result is the root that
// the functions below stay beneath.
absl::StatusOr<UniqueFd> OpenTrustedDir(const std::string& path);

// Opens the directory `path` beneath root_fd ("" or "." reopens root_fd).
absl::StatusOr<UniqueFd> OpenDirBeneath(int root_fd, absl::string_view path);

// As OpenDirBeneath, creating missing directories with exactly `mode` (not
// subject to the umask). An existing directory keeps its mode.
absl::StatusOr<UniqueFd> MakeDirsBeneath(int root_fd, absl::string_view path,
                                         mode_t mode = 0755);

// Creates the directory `name` in dir_fd with exactly `mode` and returns it
// open. AlreadyExists if `name` exists (whatever it is).
absl::StatusOr<UniqueFd> MakeDirAt(int dir_fd, const std::string& name,
                                   mode_t mode = 0755);

// Moves the entry `from` of from_dir to `to` in to_dir without replacing
// anything (AlreadyExists if `to` exists, even as a dangling symlink).
absl::Status RenameNoReplace(int from_dir, const std::string& from, int to_dir,
                             const std::string& to);

// Atomically swaps the entries `a` and `b` of dir_fd (both must exist).
// Unimplemented if the filesystem cannot exchange (the caller falls back).
absl::Status ExchangeAt(int dir_fd, const std::string& a, const std::string& b);

// Removes `path` beneath root_fd and everything below it; no symlink is
// followed (a symlink at `path` is removed itself). Missing is OK; a
// symlink among the parents is InvalidArgument.
absl::Status RemoveTreeBeneath(int root_fd, absl::string_view path);

// Temp entries the engine creates inside directories it does not own (the
// source, a workspace's parent) are named
// ".kiln-<kind>-<pid>-<start>-<16 hex>" (<start>: the creator's start time
// in clock ticks after boot, /proc/PID/stat), so that leftovers of a dead
// process can be recognized and swept, even when its pid was reused.
std::string TempName(absl::string_view kind);

// The start time of process `pid` (clock ticks after boot); 0 if unknown.
uint64_t ProcessStartTime(pid_t pid);

// Removes every entry of dir_fd named by TempName whose process is gone: no
// process has its pid, or the one that has it started at another time than
// the name records (also the older ".kiln-<kind>-<pid>-<16 hex>",
// "<name>.kiln-unstash-<pid>" and "<name>.kiln-old-<pid>" forms, by pid
// alone). A live creator's entries are never removed. Processes sharing a
// store share a pid namespace. Returns how many were removed.
absl::StatusOr<int> SweepDeadTemps(int dir_fd);

// Testing: resolve with the O_NOFOLLOW walk even when openat2 exists.
void ForceComponentWalkForTesting(bool force);

}  // namespace kiln::cas

#endif  // KILN_ENGINE_CAS_BENEATH_H_
