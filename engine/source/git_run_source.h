// A run's source from git (SubmitRun's git_source, webhook deliveries):
// the commit's tree exported into a fresh directory under the store's
// sources, the trigger fields git knows, and the pipeline file read from
// that tree without following a link (the tree is hostile input).
#ifndef KILN_ENGINE_SOURCE_GIT_RUN_SOURCE_H_
#define KILN_ENGINE_SOURCE_GIT_RUN_SOURCE_H_

#include <string>

#include "absl/status/statusor.h"
#include "engine/source/git_fetcher.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::source {

struct GitRunSource {
  std::string dir;  // owned by the caller (remove it if no run takes it)
  CheckedOutSource checkout;
};

// Fetches and exports `spec` into a new directory under
// `<store_dir>/sources`. On error nothing is left behind.
absl::StatusOr<GitRunSource> CheckoutGitSource(GitFetcher* fetcher,
                                               const std::string& store_dir,
                                               const GitSourceSpec& spec);

// Sets the trigger fields that are empty from the checkout: branch,
// revision, commit_message, author, commit_time, changelog.
void FillTriggerFromGit(const CheckedOutSource& checkout, v1::Trigger* trigger);

// The regular file `path` (relative, no "..") beneath `dir`, at most
// `max_bytes`, never through a symlink. NotFound / InvalidArgument /
// ResourceExhausted naming the path and the revision.
absl::StatusOr<std::string> ReadPipelineFromTree(const std::string& dir,
                                                 const std::string& path,
                                                 const std::string& revision,
                                                 size_t max_bytes);

}  // namespace kiln::source

#endif  // KILN_ENGINE_SOURCE_GIT_RUN_SOURCE_H_
