// kiln::ErrnoStatus: the one mapping from a failed system call's errno to an
// absl::Status code, shared by the engine and the executors.
// Thread-safe (no state).
#ifndef KILN_BASE_STATUS_H_
#define KILN_BASE_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace kiln {

// An error Status "<what>: <strerror(err)>" with a code chosen from `err`:
//   ENOENT                       NotFound
//   EEXIST, ENOTEMPTY            AlreadyExists
//   ENOSPC, EDQUOT, EMFILE, ENFILE  ResourceExhausted
//   EACCES, EPERM                PermissionDenied
//   anything else (and 0)        Internal
// Pass errno explicitly (read it right after the failing call).
absl::Status ErrnoStatus(int err, absl::string_view what);

}  // namespace kiln

#endif  // KILN_BASE_STATUS_H_
