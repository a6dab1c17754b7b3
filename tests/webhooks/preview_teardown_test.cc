// A pull_request_closed webhook tears the branch's preview environment
// down, end to end: a signed GitHub delivery to the WebhookServer (over a
// FakeEngine and a git repository made by the test) queues the teardown,
// whose worker destroys the preview's namespace in the API server double;
// another branch's preview and the permanent environment's namespace stay.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "engine/environments/lifecycle.h"
#include "engine/service/testing/fake_engine.h"
#include "engine/service/webhook_server.h"
#include "engine/source/webhook_event.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "kube/names.h"
#include "kube/testing/fake_api_server.h"
#include "nlohmann/json.hpp"

namespace kiln::service {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "gh-hook-secret-teardown-41c2";

constexpr char kPipeline[] = R"(name: kcow
environments:
  - {name: preview, kind: preview, namespace: "kcow-${trigger.branch_slug}"}
  - {name: stage, kind: permanent, namespace: kcow-stage}
tasks:
  - {name: d, deploy: {environment: preview, overlay: o}}
options: {unsupported: skip}
)";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class PreviewTeardownTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = absl::StrCat(
        std::getenv("TEST_TMPDIR"), "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    repo_ = root_ + "/kcow";
    Run("rm -rf '" + root_ + "' && mkdir -p '" + repo_ + "'");
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("HOME", root_.c_str(), 1);
    setenv("GIT_AUTHOR_NAME", "Ada", 1);
    setenv("GIT_AUTHOR_EMAIL", "ada@example.org", 1);
    setenv("GIT_COMMITTER_NAME", "Ada", 1);
    setenv("GIT_COMMITTER_EMAIL", "ada@example.org", 1);
    Git("init -q -b main");
    std::ofstream(repo_ + "/pipeline.yaml") << kPipeline;
    Git("add . && git commit -q -m 'environments'");
    before_ = Git("rev-parse HEAD");
    Git("checkout -q -b feature/louder && git commit -q --allow-empty -m "
        "'feature work' && git checkout -q main");
    feature_ = Git("rev-parse feature/louder");
    Git("update-ref refs/pull/7/head " + feature_);

    testing::FakeEngineOptions eo;
    eo.store_dir = root_ + "/store";
    engine_ = std::move(*testing::FakeEngine::Create(eo));
    secrets_ = std::make_shared<source::Secrets>();
    secrets_->Set("github-hook", kSecret);
    source::GitFetchOptions fo;
    fo.cache_dir = root_ + "/store/git";
    fo.allow_local = true;
    fo.secrets = secrets_;
    fetcher_ = std::move(*source::GitFetcher::Create(fo));

    kube::testing::FakeApiServerOptions so;
    so.namespace_termination = absl::Milliseconds(300);
    auto server = kube::testing::FakeApiServer::Start(so);
    ASSERT_TRUE(server.ok()) << server.status();
    api_ = std::move(*server);
    kubeconfig_ = root_ + "/kubeconfig";
    ASSERT_TRUE(api_->WriteKubeconfig(kubeconfig_, "default").ok());
    kube::LoadOptions lo;
    lo.kubeconfig_paths = {kubeconfig_};
    lo.in_cluster_fallback = false;
    auto config = kube::LoadClusterConfig(lo);
    ASSERT_TRUE(config.ok()) << config.status();
    auto client = kube::Client::Create(*config);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
  }

  void TearDown() override {
    if (hooks_) hooks_->Shutdown();
    engine_->Shutdown(absl::Seconds(1));
  }

  std::string Run(const std::string& cmd) {
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    EXPECT_EQ(pclose(p), 0) << cmd;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  std::string Git(const std::string& args) {
    return Run("cd '" + repo_ + "' && git " + args);
  }

  // The previews of two branches, as deploys of them would have made them,
  // and the permanent environment's namespace (made by hand).
  void MakeNamespaces() {
    // kPipeline's declarations, as the loader makes them.
    v1::Pipeline p;
    p.set_name("kcow");
    v1::Environment* preview = p.add_environments();
    preview->set_name("preview");
    preview->set_kind(v1::PREVIEW);
    preview->set_namespace_("kcow-${trigger.branch_slug}");
    v1::Environment* stage = p.add_environments();
    stage->set_name("stage");
    stage->set_kind(v1::PERMANENT);
    stage->set_namespace_("kcow-stage");
    for (const char* branch : {"feature/louder", "feature/other"}) {
      pipeline::SubstitutionContext c;
      c.trigger.set_branch(branch);
      auto t = environments::PrepareDeploy(*client_, p, "preview", c);
      ASSERT_TRUE(t.ok()) << t.status();
    }
    ASSERT_TRUE(client_
                    ->Create(kube::NamespacesPath(),
                             {{"apiVersion", "v1"},
                              {"kind", "Namespace"},
                              {"metadata", {{"name", "kcow-stage"}}}})
                    .ok());
    ASSERT_TRUE(Exists("kcow-feature-louder"));
  }
  bool Exists(const std::string& ns) {
    auto got = client_->Get(kube::NamespacePath(ns));
    EXPECT_TRUE(got.ok() || absl::IsNotFound(got.status())) << got.status();
    return got.ok();
  }

  void StartHooks(const std::string& kubeconfig) {
    WebhookOptions o;
    o.listen = "127.0.0.1:0";
    o.config = *source::WebhookConfig::Parse(
        absl::StrCat("https://github.com/acme/kcow secret=github-hook fetch=",
                     "file://", repo_, "\n"),
        "hooks.conf");
    o.secrets = secrets_;
    o.fetcher = fetcher_;
    o.state_dir = root_ + "/store/webhooks";
    o.teardown.kubeconfig_paths = {kubeconfig};
    o.teardown.in_cluster_fallback = false;
    o.teardown.destroy_timeout = absl::Seconds(20);
    o.teardown.log = [this](const std::string& line) {
      MutexLock lock(&mu_);
      log_.push_back(line);
    };
    auto started = WebhookServer::Start(engine_.get(), std::move(o));
    ASSERT_TRUE(started.ok()) << started.status();
    hooks_ = std::move(*started);
  }

  httplib::Result PostClosed(const std::string& delivery) {
    std::string path =
        std::string(std::getenv("TEST_SRCDIR")) + "/" +
        std::getenv("TEST_WORKSPACE") +
        "/tests/webhooks/payloads/github_pull_request_closed.json";
    std::string body = absl::StrReplaceAll(
        ReadFile(path), {{"{{after}}", feature_}, {"{{before}}", before_}});
    EXPECT_FALSE(body.empty()) << path;
    httplib::Client client(hooks_->url());
    client.set_read_timeout(60, 0);
    return client.Post("/webhook",
                       {{"X-GitHub-Event", "pull_request"},
                        {"X-GitHub-Delivery", delivery},
                        {"X-Hub-Signature-256",
                         "sha256=" + source::HmacSha256Hex(kSecret, body)}},
                       body, "application/json");
  }

  // The teardown worker's log, once it holds a line with `text` (bounded).
  std::string AwaitLog(const std::string& text) {
    const absl::Time deadline = absl::Now() + absl::Seconds(40);
    for (;;) {
      {
        MutexLock lock(&mu_);
        std::string all = absl::StrJoin(log_, "\n");
        if (all.find(text) != std::string::npos || absl::Now() > deadline) {
          return all;
        }
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
  }

  std::string root_, repo_, before_, feature_, kubeconfig_;
  std::unique_ptr<testing::FakeEngine> engine_;
  std::shared_ptr<source::Secrets> secrets_;
  std::shared_ptr<source::GitFetcher> fetcher_;
  std::unique_ptr<kube::testing::FakeApiServer> api_;
  std::unique_ptr<kube::Client> client_;
  std::unique_ptr<WebhookServer> hooks_;
  Mutex mu_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(mu_);
};

TEST_F(PreviewTeardownTest, ClosedPullRequestDestroysOnlyThatBranchsPreview) {
  MakeNamespaces();
  StartHooks(kubeconfig_);
  auto res = PostClosed("d-closed-1");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 201) << res->body;
  auto reply = nlohmann::json::parse(res->body);
  EXPECT_EQ(reply["event"], "pull_request_closed");
  EXPECT_EQ(reply["preview_teardown"], "queued");
  std::string log = AwaitLog("destroyed kcow-feature-louder");
  EXPECT_THAT(log,
              HasSubstr("preview teardown of kcow branch "
                        "'feature/louder': destroyed kcow-feature-louder"));
  EXPECT_FALSE(Exists("kcow-feature-louder"));
  EXPECT_TRUE(Exists("kcow-feature-other"));
  ASSERT_TRUE(Exists("kcow-stage"));
  auto stage = client_->Get(kube::NamespacePath("kcow-stage"));
  ASSERT_TRUE(stage.ok());
  EXPECT_EQ((*stage)["status"].value("phase", ""), "Active");
  EXPECT_THAT(log, Not(HasSubstr("kcow-stage")));
}

TEST_F(PreviewTeardownTest, WithoutAClusterTheTeardownIsSkippedSayingWhy) {
  MakeNamespaces();
  StartHooks(root_ + "/no-such-kubeconfig");
  auto res = PostClosed("d-closed-2");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 201) << res->body;
  std::string log = AwaitLog("skipped");
  EXPECT_THAT(log, HasSubstr("preview teardown of kcow branch "
                             "'feature/louder' skipped: no cluster"));
  EXPECT_TRUE(Exists("kcow-feature-louder"));
}

}  // namespace
}  // namespace kiln::service
