// The environment lifecycle against the API server double, checked with the
// real kubectl: create with labels, refresh the expiry, destroy through
// Terminating, gc of expired previews only, and the permanent guard.
#include "engine/environments/lifecycle.h"

#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/pipeline/loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/kubeconfig.h"
#include "kube/names.h"
#include "kube/testing/fake_api_server.h"
#include "kube/testing/process.h"

namespace kiln::environments {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr char kPipeline[] = R"(name: kcow
environments:
  - {name: preview, kind: preview, namespace: "kcow-${trigger.branch_slug}", ttl: 1h}
  - {name: stage, kind: permanent, namespace: kcow-stage}
  - {name: prod, kind: permanent}
tasks:
  - {name: d, deploy: {environment: preview, overlay: o}}
options: {unsupported: skip}
)";

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kube::testing::FakeApiServerOptions o;
    o.namespace_termination = absl::Seconds(2);
    auto s = kube::testing::FakeApiServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    dir_ = getenv("TEST_TMPDIR");
    kubeconfig_ = dir_ + "/kubeconfig";
    ASSERT_TRUE(server_->WriteKubeconfig(kubeconfig_, "default").ok());
    kube::LoadOptions lo;
    lo.kubeconfig_paths = {kubeconfig_};
    lo.in_cluster_fallback = false;
    auto config = kube::LoadClusterConfig(lo);
    ASSERT_TRUE(config.ok()) << config.status();
    auto client = kube::Client::Create(*config);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
    pipeline::LoadedPipeline p =
        pipeline::LoadPipelineText(kPipeline, "p.yaml", {});
    ASSERT_TRUE(p.ok()) << pipeline::JoinDiagnostics(p.errors);
    pipeline_ = p.pipeline;
    options_.poll_interval = absl::Milliseconds(50);
    options_.destroy_timeout = absl::Seconds(20);
  }

  Target Resolve(const std::string& env, const std::string& branch) {
    pipeline::SubstitutionContext c;
    c.trigger.set_branch(branch);
    auto t = ResolveEnvironment(pipeline_, env, c);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : Target();
  }

  // kubectl ARGS: {exit code, output}.
  std::pair<int, std::string> Kubectl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"kubectl", "--kubeconfig", kubeconfig_,
                                     "--cache-dir", dir_ + "/kube-cache"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = kube::testing::RunProcess(
        argv, {{"HOME", dir_}, {"KUBECONFIG", kubeconfig_}}, absl::Seconds(60));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::make_pair(-1, std::string());
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  // A namespace made by hand: no labels.
  std::string NamespaceFile(const std::string& name) {
    return Write(name + ".json", json{{"apiVersion", "v1"},
                                      {"kind", "Namespace"},
                                      {"metadata", {{"name", name}}}}
                                     .dump());
  }
  // The namespace as kubectl sees it; null when kubectl says NotFound.
  json KubectlNamespace(const std::string& ns) {
    auto [code, out] = Kubectl({"get", "ns", ns, "-o", "json"});
    if (code != 0) {
      EXPECT_THAT(out, HasSubstr("NotFound")) << out;
      return json();
    }
    return json::parse(out);
  }

  std::unique_ptr<kube::testing::FakeApiServer> server_;
  std::unique_ptr<kube::Client> client_;
  std::string dir_, kubeconfig_;
  v1::Pipeline pipeline_;
  LifecycleOptions options_;
};

TEST_F(LifecycleTest, CreateRefreshDestroyThroughTerminating) {
  Target t = Resolve("preview", "Feature/JIRA-12_Fix");
  EXPECT_EQ(t.namespace_name, "kcow-feature-jira-12-fix");
  PermanentGuard guard(pipeline_);
  const absl::Time t0 = absl::FromUnixSeconds(1800000000);
  options_.now = t0;
  ASSERT_TRUE(EnsureNamespace(*client_, t, guard, options_).ok());
  json ns = KubectlNamespace("kcow-feature-jira-12-fix");
  ASSERT_TRUE(ns.is_object());
  const json& labels = ns["metadata"]["labels"];
  EXPECT_EQ(labels["kiln.dev/app"], "kcow");
  EXPECT_EQ(labels["kiln.dev/branch"], "feature-jira-12-fix");
  EXPECT_EQ(labels["kiln.dev/environment"], "preview");
  EXPECT_EQ(labels["kiln.dev/environment-kind"], "preview");
  EXPECT_EQ(ns["metadata"]["annotations"]["kiln.dev/expires-at"],
            "2027-01-15T09:00:00Z");  // t0 + 1h

  // A second deploy refreshes the expiry (and keeps the namespace).
  std::string uid = ns["metadata"]["uid"];
  options_.now = t0 + absl::Hours(5);
  ASSERT_TRUE(EnsureNamespace(*client_, t, guard, options_).ok());
  ns = KubectlNamespace("kcow-feature-jira-12-fix");
  EXPECT_EQ(ns["metadata"]["uid"], uid);
  EXPECT_EQ(ns["metadata"]["annotations"]["kiln.dev/expires-at"],
            "2027-01-15T14:00:00Z");

  // Content, then destroy: Destroy returns only once the namespace is gone,
  // and it was Terminating in between (seen by a watcher of the namespace).
  ASSERT_TRUE(
      client_
          ->Create(kube::ConfigMapsPath(t.namespace_name),
                   {{"metadata", {{"name", "c"}}}, {"data", json::object()}})
          .ok());
  bool saw_terminating = false;
  kube::CancelFlag cancel;
  std::thread watcher([&] {
    kube::WatchOptions w;
    w.field_selector = "metadata.name=" + t.namespace_name;
    (void)client_->Watch(
        kube::NamespacesPath(), w,
        [&](const kube::WatchEvent& e) {
          if (e.object.contains("status") &&
              e.object["status"].value("phase", "") == "Terminating") {
            saw_terminating = true;
          }
          return e.type != "DELETED";
        },
        &cancel);
  });
  absl::SleepFor(absl::Milliseconds(200));  // the watch is listening
  absl::Time before = absl::Now();
  auto destroyed = Destroy(*client_, t, guard, options_);
  ASSERT_TRUE(destroyed.ok()) << destroyed.status();
  EXPECT_EQ(*destroyed, DestroyResult::kDeleted);
  EXPECT_GE(absl::Now() - before, absl::Milliseconds(300));  // waited
  EXPECT_TRUE(KubectlNamespace(t.namespace_name).is_null());
  cancel.Cancel();
  watcher.join();
  EXPECT_TRUE(saw_terminating);
  // Again: nothing left.
  auto again = Destroy(*client_, t, guard, options_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, DestroyResult::kAbsent);
}

TEST_F(LifecycleTest, KubectlSeesTerminatingAndDeployIsRefusedMeanwhile) {
  Target t = Resolve("preview", "wip");
  PermanentGuard guard(pipeline_);
  ASSERT_TRUE(EnsureNamespace(*client_, t, guard, options_).ok());
  auto [code, out] =
      Kubectl({"delete", "ns", t.namespace_name, "--wait=false"});
  ASSERT_EQ(code, 0) << out;
  json ns = KubectlNamespace(t.namespace_name);
  ASSERT_TRUE(ns.is_object());
  EXPECT_EQ(ns["status"]["phase"], "Terminating");
  EXPECT_TRUE(ns["metadata"].contains("deletionTimestamp"));
  auto [c2, o2] = Kubectl({"apply", "-n", t.namespace_name, "-f",
                           Write("cm.json", R"({"apiVersion": "v1",
      "kind": "ConfigMap", "metadata": {"name": "x"}})")});
  EXPECT_NE(c2, 0);
  EXPECT_THAT(o2, HasSubstr("because it is being terminated")) << o2;
  auto ensured = EnsureNamespace(*client_, t, guard, options_);
  EXPECT_TRUE(absl::IsUnavailable(ensured.status())) << ensured.status();
  // `kubectl delete --wait` returns once it is gone.
  ASSERT_TRUE(
      EnsureNamespace(*client_, Resolve("preview", "other"), guard, options_)
          .ok());
  auto [c3, o3] =
      Kubectl({"delete", "ns", "kcow-other", "--wait=true", "--timeout=20s"});
  EXPECT_EQ(c3, 0) << o3;
  EXPECT_TRUE(KubectlNamespace("kcow-other").is_null());
}

TEST_F(LifecycleTest, GcRemovesOnlyExpiredPreviews) {
  PermanentGuard guard(pipeline_);
  const absl::Time t0 = absl::FromUnixSeconds(1800000000);
  options_.now = t0;
  ASSERT_TRUE(
      EnsureNamespace(*client_, Resolve("preview", "old"), guard, options_)
          .ok());
  options_.now = t0 + absl::Minutes(50);
  ASSERT_TRUE(
      EnsureNamespace(*client_, Resolve("preview", "fresh"), guard, options_)
          .ok());
  ASSERT_TRUE(
      EnsureNamespace(*client_, Resolve("stage", "main"), guard, options_)
          .ok());
  // Another app's expired preview and a hand-made namespace.
  ASSERT_TRUE(
      client_
          ->Create(kube::NamespacesPath(),
                   {{"metadata",
                     {{"name", "other-app-x"},
                      {"labels",
                       {{"kiln.dev/app", "other"},
                        {"kiln.dev/environment-kind", "preview"}}},
                      {"annotations",
                       {{"kiln.dev/expires-at", "2000-01-01T00:00:00Z"}}}}}})
          .ok());
  ASSERT_EQ(Kubectl({"apply", "-f", NamespaceFile("by-hand")}).first, 0);

  options_.now = t0 + absl::Minutes(70);  // "old" expired, "fresh" not
  auto dry = Gc(*client_, "kcow", guard, /*dry_run=*/true, options_);
  ASSERT_TRUE(dry.ok()) << dry.status();
  ASSERT_EQ(dry->size(), 2u);
  EXPECT_TRUE(KubectlNamespace("kcow-old").is_object());  // dry run

  auto gc = Gc(*client_, "kcow", guard, /*dry_run=*/false, options_);
  ASSERT_TRUE(gc.ok()) << gc.status();
  int deleted = 0;
  for (const GcEntry& e : *gc) {
    if (e.action == GcEntry::kDeleted) {
      ++deleted;
      EXPECT_EQ(e.namespace_name, "kcow-old");
    }
  }
  EXPECT_EQ(deleted, 1);
  EXPECT_TRUE(KubectlNamespace("kcow-old").is_null());
  for (const char* kept :
       {"kcow-fresh", "kcow-stage", "other-app-x", "by-hand", "default"}) {
    json ns = KubectlNamespace(kept);
    ASSERT_TRUE(ns.is_object()) << kept;
    EXPECT_EQ(ns["status"]["phase"], "Active") << kept;
  }
}

TEST_F(LifecycleTest, PermanentIsNeverDeleted) {
  PermanentGuard guard(pipeline_);
  Target stage = Resolve("stage", "main");
  ASSERT_TRUE(EnsureNamespace(*client_, stage, guard, options_).ok());
  EXPECT_EQ(
      KubectlNamespace(
          "kcow-stage")["metadata"]["labels"]["kiln.dev/environment-kind"],
      "permanent");
  // destroy refuses a permanent environment before any request.
  int64_t requests = server_->request_count();
  auto refused = Destroy(*client_, stage, guard, options_);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.status().message(), HasSubstr("never deleted"));
  EXPECT_EQ(server_->request_count(), requests);

  // "prod" made outside kiln (no labels), and a preview whose branch makes
  // its template produce... a namespace guarded by name: both refused.
  ASSERT_EQ(Kubectl({"apply", "-f", NamespaceFile("prod")}).first, 0);
  Target sneaky = Resolve("preview", "x");
  sneaky.namespace_name = "prod";
  auto no = Destroy(*client_, sneaky, guard, options_);
  EXPECT_EQ(no.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(no.status().message(), HasSubstr("permanent environment 'prod'"));
  auto no_ensure = EnsureNamespace(*client_, sneaky, guard, options_);
  EXPECT_EQ(no_ensure.status().code(), absl::StatusCode::kPermissionDenied);
  // Even labelled as an expired preview of this app, gc keeps it.
  ASSERT_EQ(Kubectl({"label", "ns", "prod", "kiln.dev/app=kcow",
                     "kiln.dev/environment-kind=preview"})
                .first,
            0);
  ASSERT_EQ(Kubectl({"annotate", "ns", "prod",
                     "kiln.dev/expires-at=2000-01-01T00:00:00Z"})
                .first,
            0);
  auto gc = Gc(*client_, "kcow", guard, false, options_);
  ASSERT_TRUE(gc.ok()) << gc.status();
  ASSERT_EQ(gc->size(), 1u);
  EXPECT_EQ((*gc)[0].action, GcEntry::kKept);
  EXPECT_THAT((*gc)[0].reason, HasSubstr("permanent environment 'prod'"));
  for (const char* ns : {"prod", "kcow-stage"}) {
    json live = KubectlNamespace(ns);
    ASSERT_TRUE(live.is_object()) << ns;
    EXPECT_EQ(live["status"]["phase"], "Active") << ns;
  }
}

// What `kiln serve` does for a pull_request_closed / branch_deleted event.
TEST_F(LifecycleTest, BranchTeardownDestroysOnlyThatBranchsPreviews) {
  PermanentGuard guard(pipeline_);
  ASSERT_TRUE(EnsureNamespace(*client_, Resolve("preview", "feature/a"), guard,
                              options_)
                  .ok());
  ASSERT_TRUE(EnsureNamespace(*client_, Resolve("preview", "feature/b"), guard,
                              options_)
                  .ok());
  ASSERT_TRUE(
      EnsureNamespace(*client_, Resolve("stage", "feature/a"), guard, options_)
          .ok());
  v1::Trigger closed;
  closed.set_branch("feature/a");
  closed.set_event(v1::PULL_REQUEST_CLOSED);
  std::vector<std::string> contexts;
  auto done = DestroyBranchPreviews(
      [&](const std::string& context) -> absl::StatusOr<kube::Client*> {
        contexts.push_back(context);
        return client_.get();
      },
      pipeline_, closed, options_);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_THAT(*done, ::testing::ElementsAre("destroyed kcow-feature-a"));
  EXPECT_THAT(contexts, ::testing::ElementsAre(""));
  EXPECT_TRUE(KubectlNamespace("kcow-feature-a").is_null());
  EXPECT_TRUE(KubectlNamespace("kcow-feature-b").is_object());
  EXPECT_TRUE(KubectlNamespace("kcow-stage").is_object());
}

TEST(GuardTest, EachRuleOnItsOwn) {
  pipeline::LoadedPipeline p =
      pipeline::LoadPipelineText(kPipeline, "p.yaml", {});
  ASSERT_TRUE(p.ok());
  PermanentGuard guard(p.pipeline);
  json preview = {{"metadata",
                   {{"labels",
                     {{"kiln.dev/app", "kcow"},
                      {"kiln.dev/environment-kind", "preview"}}}}}};
  EXPECT_TRUE(guard.CheckDeletable("kcow-x", "kcow", &preview).ok());
  // By name alone, whatever the labels say.
  EXPECT_FALSE(guard.CheckDeletable("prod", "kcow", &preview).ok());
  EXPECT_FALSE(guard.CheckDeletable("kcow-stage", "kcow", &preview).ok());
  EXPECT_FALSE(guard.CheckDeletable("kube-system", "kcow", &preview).ok());
  // By labels.
  json permanent = preview;
  permanent["metadata"]["labels"]["kiln.dev/environment-kind"] = "permanent";
  EXPECT_FALSE(guard.CheckDeletable("kcow-x", "kcow", &permanent).ok());
  json unlabelled = {{"metadata", json::object()}};
  EXPECT_FALSE(guard.CheckDeletable("kcow-x", "kcow", &unlabelled).ok());
  EXPECT_FALSE(guard.CheckDeletable("kcow-x", "other", &preview).ok());
  EXPECT_FALSE(guard.CheckDeletable("kcow-x", "kcow", nullptr).ok());
}

}  // namespace
}  // namespace kiln::environments
