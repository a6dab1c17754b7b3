// Small secrets a kiln keeps across restarts in its store directory (the
// agent token and the instance label of `kiln serve`'s kubernetes executor,
// docs/kubernetes-executor.md). A value is created once, atomically (a
// private temp file linked into place: concurrent creators agree on one
// value, a crash leaves the value whole or absent), owner-only (0600), and
// read back on every later start.
#ifndef KILN_ENGINE_CLI_STATE_FILE_H_
#define KILN_ENGINE_CLI_STATE_FILE_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"

namespace kiln::cli {

// The first field of the first line of `path` that is neither empty nor a
// `#` comment, creating the file with `make()` (and its
// directory, 0700) when it does not exist. FailedPrecondition when the
// file is not a regular file owned by this user with mode 0600 (or
// stricter), or is empty: a secret others may read or replace is refused,
// never used.
absl::StatusOr<std::string> ReadOrCreateStateFile(
    const std::string& path,
    const std::function<absl::StatusOr<std::string>()>& make);

}  // namespace kiln::cli

#endif  // KILN_ENGINE_CLI_STATE_FILE_H_
