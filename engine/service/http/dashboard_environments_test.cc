// The dashboard's environments API over a real server on loopback, against
// FakeEngine with deployment records written through its run store: the
// latest deployment per environment (kind and preview expiry from the run's
// pipeline), history with limits, bad parameters, who may read, escaping.
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/pipeline/loader.h"
#include "engine/service/http/dashboard_server.h"
#include "engine/service/testing/fake_engine.h"
#include "engine/store/run_store.h"
#include "engine/store/store.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace kiln::service::http {
namespace {

constexpr char kViewer[] = "viewer-token-0123456789";

// A permanent and a preview environment whose name holds the branch.
constexpr char kPipeline[] =
    "name: shop\n"
    "environments:\n"
    "  - {name: prod, kind: permanent, namespace: shop-prod}\n"
    "  - name: 'pr-${trigger.branch}'\n"
    "    kind: preview\n"
    "    namespace: 'shop-${trigger.branch_slug}'\n"
    "    ttl: 48h\n"
    "tasks:\n"
    "  - name: build\n"
    "    run: {command: [/bin/true]}\n";

constexpr char kBranch[] = "<script>alert(1)</script>";
constexpr char kPreview[] = "pr-<script>alert(1)</script>";
constexpr char kPreviewNs[] = "shop-script-alert-1-script";
constexpr char kDigestA[] =
    "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
constexpr char kDigestB[] =
    "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

class EnvironmentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/e", counter++);
    mkdir(dir_.c_str(), 0700);
    testing::FakeEngineOptions engine_options;
    engine_options.store_dir = dir_ + "/store";
    engine_ = std::move(*testing::FakeEngine::Create(engine_options));
    std::string tokens = dir_ + "/tokens";
    {
      std::ofstream out(tokens);
      out << kViewer << " viewer v\n";
    }
    chmod(tokens.c_str(), 0600);
    DashboardOptions options;
    options.listen = "127.0.0.1:0";
    options.token_file = tokens;
    auto server = DashboardServer::Start(engine_.get(), options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    engine_->Release();
    engine_->Shutdown(absl::Seconds(1));
  }

  // A finished run of kPipeline on `branch`.
  std::string SubmitRun(const std::string& branch) {
    pipeline::LoadedPipeline loaded =
        pipeline::LoadPipelineText(kPipeline, "p.yaml");
    EXPECT_TRUE(loaded.ok());
    RunRequest request;
    request.pipeline = loaded.pipeline;
    request.trigger.set_branch(branch);
    auto run = engine_->Submit(std::move(request));
    EXPECT_TRUE(run.ok()) << run.status();
    (*run)->Wait();
    return (*run)->id();
  }

  int64_t Record(store::DeploymentRecord r) {
    auto id = engine_->store().runs().RecordDeployment(r);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : 0;
  }

  static store::DeploymentRecord Deployment(const std::string& env,
                                            const std::string& ns,
                                            const std::string& run_id,
                                            absl::Time started) {
    store::DeploymentRecord r;
    r.environment = env;
    r.namespace_name = ns;
    r.run_id = run_id;
    r.task = run_id.empty() ? "rollback" : "deploy";
    r.manifests_digest = kDigestA;
    r.started = started;
    r.finished = started + absl::Seconds(5);
    r.succeeded = true;
    return r;
  }

  httplib::Result Get(const std::string& path, bool auth = true) {
    httplib::Client client(server_->url());
    client.set_read_timeout(20, 0);
    httplib::Headers headers;
    if (auth) headers = {{"Authorization", absl::StrCat("Bearer ", kViewer)}};
    return client.Get(path.c_str(), headers);
  }

  nlohmann::json GetJson(const std::string& path, int want_status = 200) {
    auto res = Get(path);
    EXPECT_TRUE(res) << path;
    if (!res) return nullptr;
    EXPECT_EQ(res->status, want_status) << path << ": " << res->body;
    // No markup leaves as markup: names come back \u-escaped.
    EXPECT_FALSE(absl::StrContains(res->body, "<")) << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"),
              "application/json; charset=utf-8");
    return nlohmann::json::parse(res->body, nullptr, false);
  }

  std::string dir_;
  std::unique_ptr<testing::FakeEngine> engine_;
  std::unique_ptr<DashboardServer> server_;
};

TEST_F(EnvironmentsTest, LatestPerEnvironmentWithKindAndExpiry) {
  const std::string run = SubmitRun(kBranch);
  const absl::Time t0 = absl::FromUnixSeconds(1780000000);

  store::DeploymentRecord prod1 = Deployment("prod", "shop-prod", run, t0);
  prod1.images = {absl::StrCat("registry.test/shop@", kDigestA)};
  const int64_t id1 = Record(prod1);
  store::DeploymentRecord prod2 =
      Deployment("prod", "shop-prod", run, t0 + absl::Minutes(10));
  prod2.images = {"<script>img</script>:1",
                  absl::StrCat("registry.test/shop@", kDigestB)};
  prod2.manifests_digest = kDigestB;
  const int64_t id2 = Record(prod2);
  // A rollback is the latest: the kind still comes from the run before it.
  store::DeploymentRecord back =
      Deployment("prod", "shop-prod", "", t0 + absl::Minutes(20));
  back.rollback_to = id1;
  const int64_t id3 = Record(back);

  // The preview: a successful deploy, then a failed one (expiry counts
  // from the successful one).
  const absl::Time tp = t0 + absl::Hours(1);
  Record(Deployment(kPreview, kPreviewNs, run, tp));
  store::DeploymentRecord failed =
      Deployment(kPreview, kPreviewNs, run, tp + absl::Hours(2));
  failed.succeeded = false;
  failed.reason = "apply: <b>refused</b>";
  const int64_t failed_id = Record(failed);
  // A record whose run is unknown to the store: kind unknown, listed last.
  Record(Deployment("legacy", "legacy", "r-gone", t0));

  nlohmann::json reply = GetJson("/api/environments");
  ASSERT_TRUE(reply.is_object());
  const nlohmann::json& envs = reply["environments"];
  ASSERT_EQ(envs.size(), 3u) << reply.dump(1);

  const nlohmann::json& prod = envs[0];
  EXPECT_EQ(prod["environment"], "prod");
  EXPECT_EQ(prod["kind"], "permanent");
  EXPECT_EQ(prod["declared"], true);
  EXPECT_EQ(prod["namespace"], "shop-prod");
  EXPECT_EQ(prod["app"], "shop");
  EXPECT_TRUE(prod["expires_at"].is_null());
  EXPECT_EQ(prod["latest"]["id"], id3);
  EXPECT_EQ(prod["latest"]["rollback_to"], id1);
  EXPECT_EQ(prod["latest"]["run_id"], "");
  EXPECT_EQ(prod["latest"]["outcome"], "succeeded");
  EXPECT_EQ(prod["latest"]["finished"],
            Rfc3339(t0 + absl::Minutes(20) + absl::Seconds(5)));

  const nlohmann::json& preview = envs[1];
  EXPECT_EQ(preview["environment"], kPreview);
  EXPECT_EQ(preview["kind"], "preview");
  EXPECT_EQ(preview["declared"], true);
  EXPECT_EQ(preview["namespace"], kPreviewNs);
  EXPECT_EQ(preview["branch"], kBranch);
  EXPECT_EQ(preview["ttl_seconds"], 48 * 3600);
  EXPECT_EQ(preview["expires_at"], Rfc3339(tp + absl::Hours(48)));
  EXPECT_EQ(preview["expired"], true);  // 2026: long past
  EXPECT_EQ(preview["latest"]["id"], failed_id);
  EXPECT_EQ(preview["latest"]["outcome"], "failed");
  EXPECT_EQ(preview["latest"]["reason"], "apply: <b>refused</b>");
  EXPECT_EQ(preview["latest"]["run_id"], run);

  EXPECT_EQ(reply["truncated"], false);
  EXPECT_EQ(envs[2]["environment"], "legacy");
  EXPECT_EQ(envs[2]["kind"], "unknown");

  // History: newest first, images split into name and digest.
  nlohmann::json history = GetJson("/api/environments/prod/deployments");
  ASSERT_EQ(history["deployments"].size(), 3u);
  EXPECT_EQ(history["more"], false);
  EXPECT_EQ(history["deployments"][0]["id"], id3);
  const nlohmann::json& second = history["deployments"][1];
  EXPECT_EQ(second["id"], id2);
  EXPECT_EQ(second["run_id"], run);
  EXPECT_EQ(second["task"], "deploy");
  EXPECT_EQ(second["manifests_digest"], kDigestB);
  ASSERT_EQ(second["images"].size(), 2u);
  nlohmann::json images = second["images"];
  EXPECT_EQ(images[0]["image"], "<script>img</script>:1");
  EXPECT_EQ(images[0]["digest"], "");
  EXPECT_EQ(images[1]["name"], "registry.test/shop");
  EXPECT_EQ(images[1]["digest"], kDigestB);
}

TEST_F(EnvironmentsTest, HistoryLimitsNamespacesAndErrors) {
  const std::string run = SubmitRun("main");
  const absl::Time t0 = absl::FromUnixSeconds(1780000000);
  for (int i = 0; i < 5; ++i) {
    Record(Deployment("prod", "shop-prod", run, t0 + absl::Minutes(i)));
  }
  Record(Deployment("prod", "other-ns", run, t0));

  nlohmann::json page = GetJson("/api/environments/prod/deployments?limit=2");
  ASSERT_EQ(page["deployments"].size(), 2u);
  EXPECT_EQ(page["more"], true);
  EXPECT_EQ(page["limit"], 2);
  EXPECT_GT(page["deployments"][0]["id"], page["deployments"][1]["id"]);

  nlohmann::json ns =
      GetJson("/api/environments/prod/deployments?namespace=other-ns");
  ASSERT_EQ(ns["deployments"].size(), 1u);
  EXPECT_EQ(ns["deployments"][0]["namespace"], "other-ns");
  EXPECT_EQ(ns["more"], false);

  // Two namespaces of one environment: two rows.
  nlohmann::json all = GetJson("/api/environments");
  EXPECT_EQ(all["environments"].size(), 2u);

  for (const char* bad : {"limit=0", "limit=-1", "limit=abc", "limit=1001",
                          "limit=99999999999999999999"}) {
    nlohmann::json error =
        GetJson(absl::StrCat("/api/environments/prod/deployments?", bad), 400);
    ASSERT_TRUE(error.is_object()) << bad;
    EXPECT_TRUE(absl::StrContains(error["error"].get<std::string>(),
                                  "limit must be a number in 1..1000"))
        << bad << ": " << error.dump();
    EXPECT_EQ(error["code"], "INVALID_ARGUMENT");
  }
  nlohmann::json control =
      GetJson("/api/environments/prod/deployments?namespace=a%0Ab", 400);
  EXPECT_TRUE(absl::StrContains(control["error"].get<std::string>(),
                                "control character"));
  nlohmann::json missing = GetJson("/api/environments/nope/deployments", 404);
  EXPECT_TRUE(absl::StrContains(missing["error"].get<std::string>(),
                                "no deployment of environment \"nope\""));
}

// The list is bounded: 500 rows, then `truncated`.
TEST_F(EnvironmentsTest, ListIsCapped) {
  const absl::Time t0 = absl::FromUnixSeconds(1780000000);
  for (int i = 0; i < 501; ++i) {
    Record(Deployment(absl::StrCat("env-", i), "ns", "r-gone", t0));
  }
  nlohmann::json reply = GetJson("/api/environments");
  EXPECT_EQ(reply["environments"].size(), 500u);
  EXPECT_EQ(reply["truncated"], true);
}

TEST_F(EnvironmentsTest, MarkupNamesComeBackAsData) {
  const std::string run = SubmitRun(kBranch);
  store::DeploymentRecord r =
      Deployment(kPreview, kPreviewNs, run, absl::Now());
  r.images = {"<img src=x onerror=alert(1)>@sha256:00"};
  Record(r);
  // The name, URL-encoded in the path, finds its history.
  nlohmann::json history = GetJson(
      "/api/environments/pr-%3Cscript%3Ealert(1)%3C%2Fscript%3E/deployments");
  ASSERT_EQ(history["deployments"].size(), 1u) << history.dump();
  EXPECT_EQ(history["environment"], kPreview);
  EXPECT_EQ(history["deployments"][0]["images"][0]["name"],
            "<img src=x onerror=alert(1)>");
  nlohmann::json list = GetJson("/api/environments");
  ASSERT_EQ(list["environments"].size(), 1u);
  EXPECT_EQ(list["environments"][0]["expired"], false);
  // The raw body holds the markup only \u-escaped.
  auto res = Get("/api/environments");
  ASSERT_TRUE(res);
  EXPECT_TRUE(absl::StrContains(res->body, "pr-\\u003cscript\\u003e"));
}

TEST_F(EnvironmentsTest, NeedsAToken) {
  for (const char* path :
       {"/api/environments", "/api/environments/prod/deployments"}) {
    auto res = Get(path, /*auth=*/false);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 401) << path;
    EXPECT_TRUE(absl::StrContains(res->body, "log in")) << res->body;
  }
  auto bad = httplib::Client(server_->url())
                 .Get("/api/environments",
                      {{"Authorization", "Bearer not-a-token-00000000"}});
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 401);
  // The page sends a stranger to the login form; a viewer gets it.
  auto page = Get("/environments", /*auth=*/false);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 303);
  EXPECT_EQ(page->get_header_value("Location"), "/login");
  auto viewer_page = Get("/environments");
  ASSERT_TRUE(viewer_page);
  EXPECT_EQ(viewer_page->status, 200);
  EXPECT_TRUE(absl::StrContains(viewer_page->body, "/static/environments.js"));
  auto script = Get("/static/environments.js", /*auth=*/false);
  ASSERT_TRUE(script);
  EXPECT_EQ(script->status, 200);
  // The page inserts server strings as text only.
  EXPECT_FALSE(absl::StrContains(script->body, "innerHTML"));
}

}  // namespace
}  // namespace kiln::service::http
