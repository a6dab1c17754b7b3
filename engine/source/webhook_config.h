// The repositories `kiln serve --webhook-config FILE` accepts webhooks
// from. One repository per line (blank lines and '#' comments ignored):
//
//   URL secret=NAME [pipeline=PATH] [fetch=URL] [credentials=NAME]
//
// URL is matched against the payload's repository URLs in any spelling
// (NormalizeRepositoryUrl); `secret` names the kiln secret that signs its
// deliveries; `pipeline` is the pipeline file in the repository (default
// pipeline.yaml); `fetch` the URL kiln fetches (default URL); `credentials`
// the secret for fetching (git_fetcher.h). Errors are FILE:LINE: message.
#ifndef KILN_ENGINE_SOURCE_WEBHOOK_CONFIG_H_
#define KILN_ENGINE_SOURCE_WEBHOOK_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kiln::source {

struct WebhookRepository {
  std::string url;
  std::string secret;
  std::string pipeline = "pipeline.yaml";
  std::string fetch_url;  // defaults to url
  std::string credentials;
};

class WebhookConfig {
 public:
  static absl::StatusOr<WebhookConfig> Parse(absl::string_view text,
                                             const std::string& filename);
  static absl::StatusOr<WebhookConfig> ReadFile(const std::string& path);

  // The repository any of `urls` names, or null.
  const WebhookRepository* Find(const std::vector<std::string>& urls) const;
  const std::vector<WebhookRepository>& repositories() const {
    return repositories_;
  }

 private:
  std::vector<WebhookRepository> repositories_;
};

}  // namespace kiln::source

#endif  // KILN_ENGINE_SOURCE_WEBHOOK_CONFIG_H_
