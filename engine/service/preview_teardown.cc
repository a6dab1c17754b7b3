#include "engine/service/preview_teardown.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/environments/lifecycle.h"
#include "kube/kubeconfig.h"

namespace kiln::service {
namespace {

void LogToStderr(const std::string& line) {
  std::fprintf(stderr, "kiln serve: %s\n", line.c_str());
}

}  // namespace

PreviewTeardown::PreviewTeardown(PreviewTeardownOptions options)
    : options_([&options] {
        if (!options.log) options.log = LogToStderr;
        if (options.max_queued == 0) options.max_queued = 1;
        return std::move(options);
      }()) {
  worker_ = std::thread([this] { Work(); });
}

PreviewTeardown::~PreviewTeardown() { Shutdown(); }

bool PreviewTeardown::HasPreviews(const v1::Pipeline& pipeline) {
  for (const v1::Environment& env : pipeline.environments()) {
    if (env.kind() == v1::PREVIEW) return true;
  }
  return false;
}

bool PreviewTeardown::Enqueue(const v1::Pipeline& pipeline,
                              const v1::Trigger& trigger) {
  std::string refused;
  {
    MutexLock lock(&mu_);
    if (stopping_) {
      refused = "kiln serve is shutting down";
    } else if (queue_.size() >= options_.max_queued) {
      refused =
          absl::StrCat(options_.max_queued, " teardowns are already waiting");
    } else {
      Job job;
      job.pipeline.set_name(pipeline.name());
      *job.pipeline.mutable_environments() = pipeline.environments();
      *job.pipeline.mutable_params() = pipeline.params();
      job.trigger = trigger;
      queue_.push_back(std::move(job));
      return true;
    }
  }
  options_.log(absl::StrCat("preview teardown of ", pipeline.name(),
                            " branch '", trigger.branch(),
                            "' not started: ", refused));
  return false;
}

void PreviewTeardown::Shutdown() {
  if (shut_down_.exchange(true)) return;
  std::deque<Job> dropped;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    dropped.swap(queue_);
  }
  cancelled_ = true;
  for (const Job& job : dropped) {
    options_.log(absl::StrCat("preview teardown of ", job.pipeline.name(),
                              " branch '", job.trigger.branch(),
                              "' dropped: kiln serve is shutting down"));
  }
  if (worker_.joinable()) worker_.join();
}

void PreviewTeardown::Work() {
  for (;;) {
    Job job;
    {
      MutexLock lock(&mu_);
      mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stopping_ || !queue_.empty();
      });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    TearDown(job);
  }
}

absl::StatusOr<kube::Client*> PreviewTeardown::ClientFor(
    const std::string& context) {
  const std::string& chosen = context.empty() ? options_.kube_context : context;
  auto it = clients_.find(chosen);
  if (it != clients_.end()) return it->second.get();
  kube::LoadOptions load;
  load.kubeconfig_paths = options_.kubeconfig_paths;
  load.context = chosen;
  load.in_cluster_fallback = options_.in_cluster_fallback;
  absl::StatusOr<kube::ClusterConfig> config = kube::LoadClusterConfig(load);
  if (!config.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no cluster: ", config.status().message(),
                     " (start kiln serve with --kubeconfig/--kube-context)"));
  }
  absl::StatusOr<std::unique_ptr<kube::Client>> client =
      kube::Client::Create(*config);
  if (!client.ok()) return client.status();
  kube::Client* out = client->get();
  clients_[chosen] = *std::move(client);
  return out;
}

void PreviewTeardown::TearDown(const Job& job) {
  const std::string what =
      absl::StrCat("preview teardown of ", job.pipeline.name(), " branch '",
                   job.trigger.branch(), "'");
  // Without a cluster nothing can be destroyed: say so once, up front.
  if (absl::StatusOr<kube::Client*> c = ClientFor(""); !c.ok()) {
    bool every_env_has_context = true;
    for (const v1::Environment& env : job.pipeline.environments()) {
      if (env.kind() == v1::PREVIEW && env.context().empty()) {
        every_env_has_context = false;
      }
    }
    if (!every_env_has_context) {
      options_.log(absl::StrCat(what, " skipped: ", c.status().message()));
      return;
    }
  }
  environments::LifecycleOptions lifecycle;
  lifecycle.destroy_timeout = options_.destroy_timeout;
  lifecycle.cancelled = [this] { return cancelled_.load(); };
  absl::StatusOr<std::vector<std::string>> done =
      environments::DestroyBranchPreviews(
          [this](const std::string& context) { return ClientFor(context); },
          job.pipeline, job.trigger, lifecycle);
  if (!done.ok()) {
    options_.log(absl::StrCat(what, " failed: ", done.status().message()));
    return;
  }
  options_.log(absl::StrCat(
      what, ": ", done->empty() ? "no preview" : absl::StrJoin(*done, ", ")));
}

}  // namespace kiln::service
