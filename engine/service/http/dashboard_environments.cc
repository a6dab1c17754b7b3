// The dashboard's environments: each (environment, namespace, context)'s
// latest recorded deployment and its history (the deployment records of
// the run store, docs/deploy.md "Deployment records"), with what kind of
// environment it is and, for a declared preview, when it expires.
//
// Where the kind and expiry come from: a record holds the run that made it;
// the run's pipeline declares the environment (kind, ttl) and its trigger
// names the branch. A preview's expiry annotation (kiln.dev/expires-at) is
// set in the cluster to "now + ttl" by every deploy; the dashboard never
// calls the cluster, so it shows the start of the newest successful deploy
// by a run plus the declared ttl: the namespace expires no earlier than
// that (a later failed deploy may have refreshed it; `kiln env gc` may
// have deleted it since). Rollbacks do not refresh it.
#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/environments/target.h"
#include "engine/pipeline/params.h"
#include "engine/pipeline/substitute.h"
#include "engine/service/http/dashboard_internal.h"

namespace kiln::service::http {
namespace {

constexpr int kDefaultHistory = 50;
// As `kiln env history --limit` (the store's own cap).
constexpr int kMaxHistory = 1000;
// Records read back to find the newest deployment by a run behind a
// rollback (its kind) or the newest successful one (a preview's expiry).
constexpr int kScanForOrigin = 50;
// Rows of GET /api/environments at most (each reads its run's pipeline);
// past it the reply says `truncated`.
constexpr size_t kMaxEnvironments = 500;
// Environment names and namespaces are short; anything longer is refused.
constexpr size_t kMaxNameLength = 253;

std::string Rfc3339(absl::Time t) {
  if (t == absl::InfinitePast() || t == absl::UnixEpoch()) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

// "name@sha256:..." -> {"image", "name", "digest"}; a tag-only reference
// has digest "" (the manifests named no digest).
nlohmann::json ImageJson(const std::string& image) {
  std::string name = image, digest;
  if (size_t at = image.rfind('@'); at != std::string::npos) {
    name = image.substr(0, at);
    digest = image.substr(at + 1);
  }
  return nlohmann::json{{"image", image}, {"name", name}, {"digest", digest}};
}

nlohmann::json DeploymentJson(const store::DeploymentRecord& r) {
  nlohmann::json images = nlohmann::json::array();
  for (const std::string& image : r.images) images.push_back(ImageJson(image));
  return nlohmann::json{{"id", r.id},
                        {"environment", r.environment},
                        {"namespace", r.namespace_name},
                        {"context", r.kube_context},
                        {"run_id", r.run_id},
                        {"task", r.task},
                        {"rollback_to", r.rollback_to},
                        {"manifests_digest", r.manifests_digest},
                        {"images", std::move(images)},
                        {"objects", r.objects.size()},
                        {"outcome", r.succeeded ? "succeeded" : "failed"},
                        {"reason", r.reason},
                        {"started", Rfc3339(r.started)},
                        {"finished", Rfc3339(r.finished)}};
}

// What the run behind a deployment says about its environment.
struct EnvironmentFacts {
  std::string kind = "unknown";  // "permanent", "preview", "unknown"
  bool declared = false;         // in the pipeline's `environments:`
  std::string app, branch;
  bool has_ttl = false;  // a declared preview
  absl::Duration ttl;
};

EnvironmentFacts FactsFromRun(Engine* engine,
                              const store::DeploymentRecord& r) {
  EnvironmentFacts facts;
  if (r.run_id.empty()) return facts;
  absl::StatusOr<v1::Pipeline> pipeline = engine->GetPipeline(r.run_id);
  absl::StatusOr<v1::Run> run = engine->GetRun(r.run_id);
  if (!pipeline.ok() || !run.ok()) return facts;
  facts.app = pipeline->name();
  facts.branch = run->trigger().branch();
  if (pipeline->environments().empty()) {
    // Before environments: the deploy task's own kind (a preview without
    // a declaration has no ttl and is never collected).
    for (const v1::Task& task : pipeline->tasks()) {
      if (task.name() != r.task) continue;
      facts.kind =
          task.deploy().kind() == v1::PERMANENT ? "permanent" : "preview";
    }
    return facts;
  }
  // Permanent names are literal: matched without substituting anything.
  for (const v1::Environment& env : pipeline->environments()) {
    if (env.kind() == v1::PERMANENT && env.name() == r.environment) {
      facts.kind = "permanent";
      facts.declared = true;
      return facts;
    }
  }
  pipeline::SubstitutionContext context;
  context.trigger = run->trigger();
  absl::StatusOr<std::map<std::string, std::string>> params =
      pipeline::ResolveParams(*pipeline, run->trigger().params());
  if (params.ok()) {
    context.params = *std::move(params);
  } else {
    for (const auto& [name, value] : run->trigger().params()) {
      context.params[name] = value;
    }
  }
  absl::StatusOr<environments::Target> target =
      environments::ResolveEnvironment(*pipeline, r.environment, context);
  if (!target.ok()) return facts;
  facts.declared = true;
  facts.kind = target->permanent() ? "permanent" : "preview";
  if (!target->permanent()) {
    facts.has_ttl = true;
    facts.ttl = target->ttl;
  }
  return facts;
}

// An environment row: the latest record, and from the records before it
// the run that made the environment (for a rollback) and the newest
// successful deploy by a run (for a preview's expiry).
absl::StatusOr<nlohmann::json> EnvironmentJson(
    Engine* engine, const store::DeploymentRecord& latest) {
  store::DeploymentFilter filter;
  filter.environment = latest.environment;
  filter.namespace_name = latest.namespace_name;
  filter.limit = kScanForOrigin;
  absl::StatusOr<std::vector<store::DeploymentRecord>> recent =
      engine->ListDeployments(filter);
  if (!recent.ok()) return recent.status();
  const store::DeploymentRecord* by_run = nullptr;
  const store::DeploymentRecord* last_success = nullptr;
  for (const store::DeploymentRecord& r : *recent) {
    if (r.kube_context != latest.kube_context || r.run_id.empty()) continue;
    if (by_run == nullptr) by_run = &r;
    if (last_success == nullptr && r.succeeded) last_success = &r;
  }
  EnvironmentFacts facts;
  if (by_run != nullptr) facts = FactsFromRun(engine, *by_run);
  nlohmann::json item{{"environment", latest.environment},
                      {"namespace", latest.namespace_name},
                      {"context", latest.kube_context},
                      {"kind", facts.kind},
                      {"declared", facts.declared},
                      {"app", facts.app},
                      {"branch", facts.branch},
                      {"expires_at", nullptr},
                      {"expired", false},
                      {"latest", DeploymentJson(latest)}};
  if (facts.has_ttl) {
    item["ttl_seconds"] = absl::ToInt64Seconds(facts.ttl);
    if (last_success != nullptr) {
      absl::Time expires = last_success->started + facts.ttl;
      item["expires_at"] = Rfc3339(expires);
      item["expired"] = expires < absl::Now();
      item["expiry_from_deployment"] = last_success->id;
    }
  }
  return item;
}

int KindOrder(const nlohmann::json& item) {
  const std::string kind = item["kind"];
  return kind == "permanent" ? 0 : kind == "preview" ? 1 : 2;
}

absl::Status CheckName(absl::string_view what, absl::string_view value) {
  if (value.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is longer than ", kMaxNameLength, " bytes"));
  }
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " holds a control character"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<nlohmann::json> EnvironmentsReply(Engine* engine) {
  absl::StatusOr<std::vector<store::DeploymentRecord>> latest =
      engine->LatestDeployments();
  if (!latest.ok()) return latest.status();
  // LatestDeployments is per (environment, namespace); the context is part
  // of where a deployment went, so a row per (environment, namespace,
  // context) comes from the records themselves.
  std::vector<nlohmann::json> items;
  bool truncated = false;
  for (const store::DeploymentRecord& r : *latest) {
    if (items.size() >= kMaxEnvironments) {
      truncated = true;
      break;
    }
    store::DeploymentFilter filter;
    filter.environment = r.environment;
    filter.namespace_name = r.namespace_name;
    filter.limit = kScanForOrigin;
    absl::StatusOr<std::vector<store::DeploymentRecord>> recent =
        engine->ListDeployments(filter);
    if (!recent.ok()) return recent.status();
    std::vector<std::string> contexts_seen;
    for (const store::DeploymentRecord& d : *recent) {
      if (std::find(contexts_seen.begin(), contexts_seen.end(),
                    d.kube_context) != contexts_seen.end()) {
        continue;
      }
      if (items.size() >= kMaxEnvironments) {
        truncated = true;
        break;
      }
      contexts_seen.push_back(d.kube_context);
      absl::StatusOr<nlohmann::json> item = EnvironmentJson(engine, d);
      if (!item.ok()) return item.status();
      items.push_back(*std::move(item));
    }
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const nlohmann::json& a, const nlohmann::json& b) {
                     return std::make_tuple(KindOrder(a),
                                            a["environment"].get<std::string>(),
                                            a["namespace"].get<std::string>(),
                                            a["context"].get<std::string>()) <
                            std::make_tuple(KindOrder(b),
                                            b["environment"].get<std::string>(),
                                            b["namespace"].get<std::string>(),
                                            b["context"].get<std::string>());
                   });
  nlohmann::json list = nlohmann::json::array();
  for (nlohmann::json& item : items) list.push_back(std::move(item));
  return nlohmann::json{{"environments", std::move(list)},
                        {"truncated", truncated},
                        {"expiry_source",
                         "records: the newest successful deploy's start plus "
                         "the declared ttl (the cluster's kiln.dev/expires-at "
                         "annotation is not read)"}};
}

absl::StatusOr<nlohmann::json> DeploymentsReply(Engine* engine,
                                                const std::string& environment,
                                                const httplib::Request& req) {
  if (environment.empty()) {
    return absl::InvalidArgumentError("the environment name is empty");
  }
  if (absl::Status s = CheckName("the environment name", environment);
      !s.ok()) {
    return s;
  }
  store::DeploymentFilter filter;
  filter.environment = environment;
  filter.namespace_name = req.get_param_value("namespace");
  if (absl::Status s = CheckName("namespace", filter.namespace_name); !s.ok()) {
    return s;
  }
  filter.limit = kDefaultHistory;
  if (req.has_param("limit") &&
      (!absl::SimpleAtoi(req.get_param_value("limit"), &filter.limit) ||
       filter.limit < 1 || filter.limit > kMaxHistory)) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit must be a number in 1..", kMaxHistory));
  }
  // One more than asked: whether older deployments exist.
  const int limit = filter.limit;
  filter.limit = limit + 1;
  absl::StatusOr<std::vector<store::DeploymentRecord>> listed =
      engine->ListDeployments(filter);
  if (!listed.ok()) return listed.status();
  if (listed->empty()) {
    return absl::NotFoundError(absl::StrCat(
        "no deployment of environment \"", environment, "\"",
        filter.namespace_name.empty()
            ? ""
            : absl::StrCat(" to namespace \"", filter.namespace_name, "\""),
        " is recorded"));
  }
  const bool more = static_cast<int>(listed->size()) > limit;
  if (more) listed->resize(limit);
  nlohmann::json deployments = nlohmann::json::array();
  for (const store::DeploymentRecord& r : *listed) {
    deployments.push_back(DeploymentJson(r));
  }
  return nlohmann::json{{"environment", environment},
                        {"namespace", filter.namespace_name},
                        {"limit", limit},
                        {"more", more},
                        {"deployments", std::move(deployments)}};
}

void DashboardServer::Environments() {
  httplib::Server& svr = *server_;
  // Reading records is what `kiln env list|history` do: a viewer may.
  svr.Get("/api/environments",
          [this](const httplib::Request& req, httplib::Response& res) {
            Caller caller;
            if (!Authenticate(req, &res, "ListRuns", false, &caller)) return;
            absl::StatusOr<nlohmann::json> reply = EnvironmentsReply(engine_);
            if (!reply.ok()) return SendError(&res, reply.status());
            SendJson(&res, *reply);
          });
  svr.Get(R"(/api/environments/(.+)/deployments)",
          [this](const httplib::Request& req, httplib::Response& res) {
            Caller caller;
            if (!Authenticate(req, &res, "ListRuns", false, &caller)) return;
            // The path is already URL-decoded; a name may hold '/'.
            absl::StatusOr<nlohmann::json> reply =
                DeploymentsReply(engine_, req.matches[1], req);
            if (!reply.ok()) return SendError(&res, reply.status());
            SendJson(&res, *reply);
          });
}

}  // namespace kiln::service::http
