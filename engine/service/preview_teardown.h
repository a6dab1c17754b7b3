// PreviewTeardown: `kiln serve`'s background worker that destroys a
// branch's preview environments when a webhook says the branch went away
// (pull_request_closed, branch_deleted): environments::DestroyBranchPreviews
// for the pipeline of the delivery. Off the request thread because a
// destroy waits until the namespace is gone, longer than a provider waits
// for a webhook's reply.
//
// One worker thread; at most `max_queued` branches wait (more: refused and
// logged). The cluster is serve's --kubeconfig/--kube-context (an
// environment's own `context:` wins); a client per context is made on first
// use. Without a usable cluster a teardown is skipped, saying why. Every
// outcome (namespaces destroyed or absent, errors) is a log line; permanent
// environments are never touched (the PermanentGuard).
//
// Thread-safety: Enqueue and Shutdown may be called from any thread.
#ifndef KILN_ENGINE_SERVICE_PREVIEW_TEARDOWN_H_
#define KILN_ENGINE_SERVICE_PREVIEW_TEARDOWN_H_

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "base/mutex.h"
#include "kiln/v1/pipeline.pb.h"
#include "kube/client.h"

namespace kiln::service {

struct PreviewTeardownOptions {
  // The cluster (kube::LoadOptions): files (empty: $KUBECONFIG, else
  // ~/.kube/config, else in-cluster) and context ("" = current).
  std::vector<std::string> kubeconfig_paths;
  std::string kube_context;
  bool in_cluster_fallback = true;
  size_t max_queued = 32;
  // How long one namespace may take to go.
  absl::Duration destroy_timeout = absl::Minutes(5);
  // One line per outcome (default: stderr, prefixed "kiln serve: ").
  std::function<void(const std::string& line)> log;
};

class PreviewTeardown {
 public:
  explicit PreviewTeardown(PreviewTeardownOptions options);
  ~PreviewTeardown();  // Shutdown()

  // True when `pipeline` declares a preview environment (else there is
  // nothing to tear down).
  static bool HasPreviews(const v1::Pipeline& pipeline);

  // Queues the teardown of trigger.branch's previews. False (and a log
  // line) when the queue is full or the worker is shut down.
  bool Enqueue(const v1::Pipeline& pipeline, const v1::Trigger& trigger);

  // Drops what is queued (logged), stops the running teardown's wait (a
  // DELETE already sent stands) and joins the worker. Idempotent.
  void Shutdown();

 private:
  struct Job {
    v1::Pipeline pipeline;
    v1::Trigger trigger;
  };
  void Work();
  void TearDown(const Job& job);
  absl::StatusOr<kube::Client*> ClientFor(const std::string& context);

  const PreviewTeardownOptions options_;
  Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> shut_down_{false};
  // Only the worker thread uses the clients.
  std::map<std::string, std::unique_ptr<kube::Client>> clients_;
  std::thread worker_;
};

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_PREVIEW_TEARDOWN_H_
