// WebhookServer: `kiln serve --webhook-listen`'s own HTTP listener for
// GitHub, GitLab and Gitea webhooks (engine/source/webhook_event.h).
//
// POST /webhook: the request must carry its provider's signature (missing
// or wrong: 401, nothing fetched or started); the repository must be in
// the webhook config (404); the event becomes a trigger (push, tag,
// pull_request, pull_request_closed, branch_deleted; others: 202 and
// nothing), the revision is fetched (GitFetcher), the pipeline file read
// from it and a run submitted: 201 {"run_id": ...}. A redelivery (same
// provider and delivery id) answers 200 with the first run's id: a record
// under `state_dir` (temp file + rename) survives restarts, and the
// engine's idempotency key covers a crash between submit and record.
//
// pull_request_closed and branch_deleted also queue the teardown of the
// branch's preview environments (PreviewTeardown, off the request thread);
// the reply says "preview_teardown": "queued" (or why not).
//
// Bounds: bodies over max_body_bytes get 413; each source address may
// make `rate_per_minute` requests a minute (burst `rate_burst`), past it
// 429 with Retry-After; `threads` connections at once.
// No secret appears in a reply or a log line.
//
// Thread-safety: Shutdown() may be called from any thread, once.
#ifndef KILN_ENGINE_SERVICE_WEBHOOK_SERVER_H_
#define KILN_ENGINE_SERVICE_WEBHOOK_SERVER_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "engine/engine.h"
#include "engine/service/preview_teardown.h"
#include "engine/source/git_fetcher.h"
#include "engine/source/secrets.h"
#include "engine/source/webhook_config.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace kiln::service {

struct WebhookOptions {
  // "HOST:PORT" or ":PORT" (loopback). A non-loopback host needs TLS.
  std::string listen;
  std::string tls_cert, tls_key;
  source::WebhookConfig config;
  std::shared_ptr<const source::Secrets> secrets;
  std::shared_ptr<source::GitFetcher> fetcher;
  // Delivery records live here (created if missing).
  std::string state_dir;
  size_t max_body_bytes = 1 << 20;
  int rate_per_minute = 60;
  int rate_burst = 20;
  int threads = 8;
  // Records older than this are dropped at start (providers redeliver
  // within days).
  absl::Duration delivery_ttl = absl::Hours(24 * 30);
  // The cluster previews are torn down in (serve's --kubeconfig,
  // --kube-context) and the teardown worker's bounds.
  PreviewTeardownOptions teardown;
};

class WebhookServer {
 public:
  static absl::StatusOr<std::unique_ptr<WebhookServer>> Start(
      Engine* engine, WebhookOptions options);
  ~WebhookServer();

  // "http://HOST:PORT" or "https://HOST:PORT" with the bound port.
  const std::string& url() const { return url_; }
  void Shutdown();

 private:
  WebhookServer(Engine* engine, WebhookOptions options);
  void Handle(const httplib::Request& req, httplib::Response* res);
  // False (and the wait in `retry_after`) when `source` is over its rate.
  bool Admit(const std::string& source, int* retry_after);
  std::string RecordPath(const std::string& provider,
                         const std::string& delivery) const;

  Engine* const engine_;
  const WebhookOptions options_;
  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<PreviewTeardown> teardown_;
  std::thread listener_;
  std::string url_;
  std::atomic<bool> stopping_{false};

  struct Bucket {
    double tokens = 0;
    absl::Time last;
  };
  Mutex mu_;
  std::map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_WEBHOOK_SERVER_H_
