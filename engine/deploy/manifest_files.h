// Reading a manifests artifact (unstashed, a task's output: hostile) as a
// deploy or a rollback applies it. Thread-safe (no shared state).
#ifndef KILN_ENGINE_DEPLOY_MANIFEST_FILES_H_
#define KILN_ENGINE_DEPLOY_MANIFEST_FILES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/deploy/manifests.h"

namespace kiln::deploy {

// The manifests a deploy reads: all files together.
inline constexpr int64_t kMaxManifestBytes = 16 << 20;

// Every *.yaml/*.yml/*.json regular file beneath dir_fd/name, in path
// order, parsed (ParseManifests). A symlink anywhere is InvalidArgument
// (nothing is followed); more than kMaxManifestBytes in all is
// ResourceExhausted; no object at all is FailedPrecondition.
absl::StatusOr<std::vector<Manifest>> ReadManifests(int dir_fd,
                                                    const std::string& name);

}  // namespace kiln::deploy

#endif  // KILN_ENGINE_DEPLOY_MANIFEST_FILES_H_
