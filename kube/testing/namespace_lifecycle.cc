#include "kube/testing/namespace_lifecycle.h"

#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kiln::kube::testing {

using nlohmann::json;

bool IsNamespaceTerminating(const json& ns) {
  return ns.contains("status") && ns["status"].is_object() &&
         ns["status"].value("phase", "") == "Terminating";
}

void MarkNamespaceTerminating(json& ns, absl::Time now) {
  std::string at =
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", now, absl::UTCTimeZone());
  ns["metadata"]["deletionTimestamp"] = at;
  ns["metadata"]["deletionGracePeriodSeconds"] = 0;
  if (!ns.contains("status") || !ns["status"].is_object()) {
    ns["status"] = json::object();
  }
  ns["status"]["phase"] = "Terminating";
  ns["status"]["conditions"] = json::array();
  for (const char* type : {"NamespaceDeletionDiscoveryFailure",
                           "NamespaceDeletionGroupVersionParsingFailure",
                           "NamespaceDeletionContentFailure"}) {
    ns["status"]["conditions"].push_back(
        {{"type", type},
         {"status", "False"},
         {"lastTransitionTime", at},
         {"reason", "ResourcesDeleted"},
         {"message", "All resources successfully deleted"}});
  }
}

json NamespaceTerminatingStatus(const std::string& plural,
                                const std::string& group,
                                const std::string& name,
                                const std::string& ns) {
  std::string qualified = group.empty() ? plural : plural + "." + group;
  return {
      {"kind", "Status"},
      {"apiVersion", "v1"},
      {"metadata", json::object()},
      {"status", "Failure"},
      {"message",
       absl::StrCat(qualified, " \"", name,
                    "\" is forbidden: unable to create new content in "
                    "namespace ",
                    ns, " because it is being terminated")},
      {"reason", "Forbidden"},
      {"details",
       {{"name", name},
        {"kind", plural},
        {"causes",
         {{{"reason", "NamespaceTerminating"},
           {"message", absl::StrCat("namespace ", ns, " is being terminated")},
           {"field", "metadata.namespace"}}}}}},
      {"code", 403}};
}

NamespaceReaper::NamespaceReaper(absl::Duration delay,
                                 std::function<void(const std::string&)> finish)
    : delay_(delay), finish_(std::move(finish)) {
  thread_ = std::thread([this] { Run(); });
}

NamespaceReaper::~NamespaceReaper() { Stop(); }

void NamespaceReaper::Schedule(const std::string& name) {
  {
    std::lock_guard<std::mutex> l(mu_);
    due_.emplace(absl::Now() + delay_, name);
  }
  cv_.notify_all();
}

void NamespaceReaper::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NamespaceReaper::Run() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    if (due_.empty()) {
      cv_.wait(l);
      continue;
    }
    absl::Time next = due_.begin()->first;
    absl::Time now = absl::Now();
    if (next > now) {
      cv_.wait_for(l, absl::ToChronoNanoseconds(next - now));
      continue;
    }
    std::vector<std::string> ready;
    while (!due_.empty() && due_.begin()->first <= now) {
      ready.push_back(due_.begin()->second);
      due_.erase(due_.begin());
    }
    l.unlock();
    for (const std::string& name : ready) finish_(name);
    l.lock();
  }
}

}  // namespace kiln::kube::testing
