// The results directory of a request (ExecRequest.results_dir): made empty
// in a fresh workspace before the command, read back after it.
//
// The directory is hostile once the command ran: every entry is opened
// beneath the workspace fd with O_NOFOLLOW (a symlink is refused, never
// followed), O_NONBLOCK (a FIFO cannot hang the reader) and must be a
// regular file; sizes are bounded before anything is kept. Thread-safe
// (no shared state).
#ifndef KILN_EXECUTORS_RESULTS_DIR_H_
#define KILN_EXECUTORS_RESULTS_DIR_H_

#include <cstddef>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kiln {

inline constexpr size_t kMaxResultBytes = 4096;         // per result
inline constexpr size_t kMaxResultsTotalBytes = 16384;  // all together
inline constexpr size_t kMaxResultEntries = 32;

// InvalidArgument unless `name` is one plain path component (no '/', not
// "." or "..", not empty, no NUL).
absl::Status CheckResultsDirName(const std::string& name);

// Creates `name` (mode 0755, as the workspace) in the workspace
// `workspace_fd`. AlreadyExists if something is there.
absl::Status MakeResultsDir(int workspace_fd, const std::string& name);

// Every entry of `name` in `workspace_fd`: file name -> content.
// InvalidArgument naming the entry for a symlink, directory or other
// non-regular file; ResourceExhausted for more than kMaxResultEntries
// entries, an entry over kMaxResultBytes or a total over
// kMaxResultsTotalBytes; NotFound if the directory itself is gone.
absl::StatusOr<std::map<std::string, std::string>> ReadResultsDir(
    int workspace_fd, const std::string& name);

}  // namespace kiln

#endif  // KILN_EXECUTORS_RESULTS_DIR_H_
