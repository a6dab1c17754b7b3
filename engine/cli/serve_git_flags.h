// `kiln serve`'s flags for git sources and webhooks: the secrets
// directory, the git fetcher's policy and bounds (SubmitRun.git_source and
// webhooks share it) and the webhook listener.
#ifndef KILN_ENGINE_CLI_SERVE_GIT_FLAGS_H_
#define KILN_ENGINE_CLI_SERVE_GIT_FLAGS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/cli/args.h"
#include "engine/engine.h"
#include "engine/service/webhook_server.h"
#include "engine/source/git_fetcher.h"

namespace kiln::cli {

void AddServeGitFlags(Args* args);

struct ServeGit {
  std::shared_ptr<const source::Secrets> secrets;
  std::shared_ptr<source::GitFetcher> fetcher;
};

// InvalidArgument for a bad flag (a usage error).
absl::StatusOr<ServeGit> ReadServeGitFlags(const Args& args,
                                           const std::string& store_dir,
                                           int64_t max_source_bytes);

// Null when --webhook-listen is not given.
absl::StatusOr<std::unique_ptr<service::WebhookServer>> StartWebhooks(
    const Args& args, Engine* engine, const ServeGit& git,
    const std::string& store_dir);

}  // namespace kiln::cli

#endif  // KILN_ENGINE_CLI_SERVE_GIT_FLAGS_H_
