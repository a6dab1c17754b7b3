// The webhook listener and SubmitRun.git_source end to end: a git
// repository made by the test with the git command line, payloads from
// tests/webhooks/payloads signed as each provider signs them, a
// WebhookServer and a KilnServer over a FakeEngine (which records runs in a
// real run store).
#include "engine/service/webhook_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/service/client.h"
#include "engine/service/server.h"
#include "engine/service/testing/fake_engine.h"
#include "engine/source/webhook_event.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace kiln::service {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kGitHubSecret[] = "gh-hook-secret-7f3a9c";
constexpr char kGitLabSecret[] = "gl-hook-token-51d0e2";
constexpr char kGiteaSecret[] = "gt-hook-secret-a90b4e";
constexpr char kSubmitter[] = "submitter-token-0123456";
constexpr char kViewer[] = "viewer-token-0123456789";

constexpr char kPipeline[] =
    "name: kcow\n"
    "tasks:\n"
    "  - name: build\n"
    "    run: {command: [/bin/true]}\n"
    "  - name: teardown\n"
    "    when: {event: [pull_request_closed, branch_deleted]}\n"
    "    run: {command: [/bin/true]}\n";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class WebhookTest : public ::testing::Test {
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
    setenv("GIT_AUTHOR_DATE", "1700000000 +0000", 1);
    setenv("GIT_COMMITTER_DATE", "1700000000 +0000", 1);
    Git("init -q -b main");
    std::ofstream(repo_ + "/pipeline.yaml") << kPipeline;
    Git("add . && git commit -q -m 'moo: add the louder variant'");
    before_ = Git("rev-parse HEAD");
    std::ofstream(repo_ + "/moo.c") << "int main() { return 0; }\n";
    Git("add . && git commit -q -m 'shipit: louder moo'");
    after_ = Git("rev-parse HEAD");
    Git("checkout -q -b feature/louder && git commit -q --allow-empty -m "
        "'feature work' && git checkout -q main");
    feature_ = Git("rev-parse feature/louder");
    Git("update-ref refs/pull/7/head " + feature_);
    Git("update-ref refs/merge-requests/7/head " + feature_);

    testing::FakeEngineOptions eo;
    eo.store_dir = root_ + "/store";
    engine_ = std::move(*testing::FakeEngine::Create(eo));

    secrets_ = std::make_shared<source::Secrets>();
    secrets_->Set("github-hook", kGitHubSecret);
    secrets_->Set("gitlab-hook", kGitLabSecret);
    secrets_->Set("gitea-hook", kGiteaSecret);
    source::GitFetchOptions fo;
    fo.cache_dir = root_ + "/store/git";
    fo.allow_local = true;
    fo.secrets = secrets_;
    fetcher_ = std::move(*source::GitFetcher::Create(fo));
  }

  void TearDown() override {
    if (hooks_) hooks_->Shutdown();
    if (grpc_) grpc_->Shutdown(absl::Seconds(1));
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

  WebhookOptions Options() {
    WebhookOptions o;
    o.listen = "127.0.0.1:0";
    const std::string fetch = "fetch=file://" + repo_;
    o.config = *source::WebhookConfig::Parse(
        absl::StrCat(
            "https://github.com/acme/kcow secret=github-hook ", fetch, "\n",
            "https://gitlab.example.test/acme/kcow secret=gitlab-hook ", fetch,
            "\n", "https://gitea.example.test/acme/kcow secret=gitea-hook ",
            fetch, "\n"),
        "hooks.conf");
    o.secrets = secrets_;
    o.fetcher = fetcher_;
    o.state_dir = root_ + "/store/webhooks";
    return o;
  }
  void StartHooks(WebhookOptions o) {
    auto started = WebhookServer::Start(engine_.get(), std::move(o));
    ASSERT_TRUE(started.ok()) << started.status();
    hooks_ = std::move(*started);
  }
  void StartHooks() { StartHooks(Options()); }

  std::string Payload(const std::string& name) {
    std::string path = std::string(std::getenv("TEST_SRCDIR")) + "/" +
                       std::getenv("TEST_WORKSPACE") +
                       "/tests/webhooks/payloads/" + name;
    std::string text = ReadFile(path);
    EXPECT_FALSE(text.empty()) << path;
    // Pull-request payloads name the feature branch's head.
    std::string head = name.find("pull") != std::string::npos ||
                               name.find("merge") != std::string::npos
                           ? feature_
                           : after_;
    return absl::StrReplaceAll(text,
                               {{"{{after}}", head}, {"{{before}}", before_}});
  }

  httplib::Result Post(const std::string& body, httplib::Headers headers) {
    httplib::Client client(hooks_->url());
    client.set_read_timeout(60, 0);
    return client.Post("/webhook", headers, body, "application/json");
  }
  // A delivery signed as GitHub signs it.
  httplib::Result GitHub(const std::string& event, const std::string& body,
                         const std::string& delivery,
                         const std::string& secret = kGitHubSecret) {
    return Post(body, {{"X-GitHub-Event", event},
                       {"X-GitHub-Delivery", delivery},
                       {"X-Hub-Signature-256",
                        "sha256=" + source::HmacSha256Hex(secret, body)}});
  }

  v1::Run RunOf(const httplib::Result& res) {
    EXPECT_TRUE(res) << "no reply";
    if (!res) return v1::Run();
    auto j = nlohmann::json::parse(res->body, nullptr, false);
    EXPECT_TRUE(j.contains("run_id")) << res->status << " " << res->body;
    if (!j.contains("run_id")) return v1::Run();
    auto run = engine_->GetRun(j["run_id"].get<std::string>());
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? *run : v1::Run();
  }
  size_t RunCount() {
    auto page = engine_->ListRuns({}, 100, "");
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? page->runs.size() : 0;
  }

  std::string root_, repo_, before_, after_, feature_;
  std::unique_ptr<testing::FakeEngine> engine_;
  std::shared_ptr<source::Secrets> secrets_;
  std::shared_ptr<source::GitFetcher> fetcher_;
  std::unique_ptr<WebhookServer> hooks_;
  std::unique_ptr<KilnServer> grpc_;
};

TEST_F(WebhookTest, GitHubPushStartsARunWithTheGitTrigger) {
  StartHooks();
  auto res = GitHub("push", Payload("github_push.json"), "d-push-1");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 201) << res->body;
  v1::Run run = RunOf(res);
  EXPECT_EQ(run.trigger().event(), v1::PUSH);
  EXPECT_EQ(run.trigger().branch(), "main");
  EXPECT_EQ(run.trigger().revision(), after_);
  EXPECT_EQ(run.trigger().commit_message(), "shipit: louder moo");
  EXPECT_EQ(run.trigger().author(), "Ada <ada@example.org>");
  EXPECT_EQ(run.trigger().commit_time(), 1700000000);
  // The pushed commits: since `before`.
  EXPECT_THAT(run.trigger().changelog(), ElementsAre("shipit: louder moo"));
  EXPECT_EQ(run.pipeline_name(), "kcow");
  // The run's source is the commit's tree.
  auto dir = engine_->GetSourceDir(run.id());
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(ReadFile(*dir + "/pipeline.yaml"), kPipeline);
  EXPECT_EQ(ReadFile(*dir + "/moo.c"), "int main() { return 0; }\n");
}

TEST_F(WebhookTest, BadOrMissingSignatureIs401AndStartsNothing) {
  StartHooks();
  const std::string body = Payload("github_push.json");
  auto wrong = GitHub("push", body, "d-bad-1", "not-the-secret");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto missing = Post(
      body, {{"X-GitHub-Event", "push"}, {"X-GitHub-Delivery", "d-bad-2"}});
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 401);
  // A signature over another body.
  auto replayed = Post(
      body + "\n", {{"X-GitHub-Event", "push"},
                    {"X-GitHub-Delivery", "d-bad-3"},
                    {"X-Hub-Signature-256",
                     "sha256=" + source::HmacSha256Hex(kGitHubSecret, body)}});
  ASSERT_TRUE(replayed);
  EXPECT_EQ(replayed->status, 401);
  auto gitlab = Post(Payload("gitlab_push.json"),
                     {{"X-Gitlab-Event", "Push Hook"},
                      {"X-Gitlab-Event-UUID", "u-bad"},
                      {"X-Gitlab-Token", kGitHubSecret}});  // another repo's
  ASSERT_TRUE(gitlab);
  EXPECT_EQ(gitlab->status, 401);
  EXPECT_EQ(RunCount(), 0u);
  // Nothing was fetched either.
  struct stat st;
  EXPECT_NE(stat((root_ + "/store/git/" +
                  source::GitFetcher::CacheKey("file://" + repo_))
                     .c_str(),
                 &st),
            0);
  for (const auto* r : {&wrong, &missing, &replayed, &gitlab}) {
    EXPECT_THAT((*r)->body, Not(HasSubstr(kGitHubSecret)));
    EXPECT_THAT((*r)->body, Not(HasSubstr(kGitLabSecret)));
  }
}

TEST_F(WebhookTest, RedeliveryReturnsTheFirstRunAlsoAfterARestart) {
  StartHooks();
  const std::string body = Payload("github_push.json");
  auto first = GitHub("push", body, "d-again");
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 201) << first->body;
  std::string id = RunOf(first).id();
  auto again = GitHub("push", body, "d-again");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
  EXPECT_EQ(RunOf(again).id(), id);
  hooks_->Shutdown();
  hooks_.reset();
  StartHooks();  // the same state directory
  auto after_restart = GitHub("push", body, "d-again");
  ASSERT_TRUE(after_restart);
  EXPECT_EQ(after_restart->status, 200);
  EXPECT_EQ(RunOf(after_restart).id(), id);
  // Same payload, new delivery: a new run.
  auto other = GitHub("push", body, "d-other");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 201);
  EXPECT_NE(RunOf(other).id(), id);
  EXPECT_EQ(RunCount(), 2u);
}

TEST_F(WebhookTest, OversizedBodyIs413) {
  StartHooks();
  std::string body = Payload("github_push.json");
  body.insert(body.size() - 2, std::string((1 << 20) + 10, ' '));
  auto res = GitHub("push", body, "d-big");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
  EXPECT_EQ(RunCount(), 0u);
}

TEST_F(WebhookTest, ClosedPullRequestIsPullRequestClosed) {
  StartHooks();
  auto opened = GitHub("pull_request",
                       Payload("github_pull_request_opened.json"), "d-pr-open");
  ASSERT_TRUE(opened);
  ASSERT_EQ(opened->status, 201) << opened->body;
  v1::Run open_run = RunOf(opened);
  EXPECT_EQ(open_run.trigger().event(), v1::PULL_REQUEST);
  EXPECT_EQ(open_run.trigger().branch(), "feature/louder");
  EXPECT_EQ(open_run.trigger().revision(), feature_);

  auto closed =
      GitHub("pull_request", Payload("github_pull_request_closed.json"),
             "d-pr-closed");
  ASSERT_TRUE(closed);
  ASSERT_EQ(closed->status, 201) << closed->body;
  v1::Run run = RunOf(closed);
  EXPECT_EQ(run.trigger().event(), v1::PULL_REQUEST_CLOSED);
  EXPECT_EQ(run.trigger().branch(), "feature/louder");
  EXPECT_EQ(run.trigger().revision(), feature_);
  EXPECT_EQ(nlohmann::json::parse(closed->body)["event"],
            "pull_request_closed");
}

TEST_F(WebhookTest, BranchDeletedAndTagAndIgnoredEvents) {
  StartHooks();
  auto gone =
      GitHub("push", Payload("github_push_branch_deleted.json"), "d-del");
  ASSERT_TRUE(gone);
  ASSERT_EQ(gone->status, 201) << gone->body;
  v1::Run run = RunOf(gone);
  EXPECT_EQ(run.trigger().event(), v1::BRANCH_DELETED);
  EXPECT_EQ(run.trigger().branch(), "feature/louder");
  EXPECT_EQ(run.trigger().revision(), before_);  // the payload's before

  Git("tag v1.2.0 " + after_);
  auto tag = GitHub("push", Payload("github_push_tag.json"), "d-tag");
  ASSERT_TRUE(tag);
  ASSERT_EQ(tag->status, 201) << tag->body;
  EXPECT_EQ(RunOf(tag).trigger().event(), v1::TAG);

  auto ping = GitHub("ping", Payload("github_ping.json"), "d-ping");
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->status, 202);
  EXPECT_EQ(RunCount(), 2u);
}

TEST_F(WebhookTest, GitLabAndGiteaDeliveries) {
  StartHooks();
  const std::string mr = Payload("gitlab_merge_request_merge.json");
  auto gl = Post(mr, {{"X-Gitlab-Event", "Merge Request Hook"},
                      {"X-Gitlab-Event-UUID", "7c3f-merge"},
                      {"X-Gitlab-Token", kGitLabSecret}});
  ASSERT_TRUE(gl);
  ASSERT_EQ(gl->status, 201) << gl->body;
  v1::Run merged = RunOf(gl);
  EXPECT_EQ(merged.trigger().event(), v1::PULL_REQUEST_CLOSED);
  EXPECT_EQ(merged.trigger().branch(), "feature/louder");
  EXPECT_EQ(merged.trigger().revision(), feature_);

  const std::string push = Payload("gitea_push.json");
  auto gt = Post(
      push, {{"X-Gitea-Event", "push"},
             {"X-GitHub-Event", "push"},
             {"X-Gitea-Delivery", "f1e2-push"},
             {"X-Gitea-Signature", source::HmacSha256Hex(kGiteaSecret, push)}});
  ASSERT_TRUE(gt);
  ASSERT_EQ(gt->status, 201) << gt->body;
  v1::Run pushed = RunOf(gt);
  EXPECT_EQ(pushed.trigger().event(), v1::PUSH);
  EXPECT_EQ(pushed.trigger().revision(), after_);

  const std::string sync = Payload("gitea_pull_request_synchronized.json");
  auto pr = Post(
      sync, {{"X-Gitea-Event", "pull_request"},
             {"X-Gitea-Delivery", "f1e2-sync"},
             {"X-Gitea-Signature", source::HmacSha256Hex(kGiteaSecret, sync)}});
  ASSERT_TRUE(pr);
  ASSERT_EQ(pr->status, 201) << pr->body;
  EXPECT_EQ(RunOf(pr).trigger().event(), v1::PULL_REQUEST);
}

TEST_F(WebhookTest, UnknownRepositoryAndRateLimit) {
  WebhookOptions o = Options();
  o.rate_per_minute = 1;
  o.rate_burst = 2;
  StartHooks(std::move(o));
  std::string body = Payload("github_push.json");
  body = absl::StrReplaceAll(body, {{"acme/kcow", "acme/other"}});
  auto unknown = GitHub("push", body, "d-unknown");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  auto second = GitHub("ping", Payload("github_ping.json"), "d-p2");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 202);
  auto third = GitHub("ping", Payload("github_ping.json"), "d-p3");
  ASSERT_TRUE(third);
  EXPECT_EQ(third->status, 429);
  EXPECT_FALSE(third->get_header_value("Retry-After").empty());
}

// Every file kiln wrote (run store, events, logs, delivery records, the git
// cache, sources): no secret value in any of them.
TEST_F(WebhookTest, NoSecretReachesTheStore) {
  StartHooks();
  auto push = GitHub("push", Payload("github_push.json"), "d-s1");
  ASSERT_TRUE(push);
  ASSERT_EQ(push->status, 201) << push->body;
  const std::string mr = Payload("gitlab_merge_request_open.json");
  auto gl = Post(mr, {{"X-Gitlab-Event", "Merge Request Hook"},
                      {"X-Gitlab-Event-UUID", "s2"},
                      {"X-Gitlab-Token", kGitLabSecret}});
  ASSERT_TRUE(gl);
  ASSERT_EQ(gl->status, 201) << gl->body;
  auto bad = GitHub("push", Payload("github_push.json"), "d-s3", "wrong");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 401);
  RunOf(push);
  engine_->Shutdown(absl::Seconds(5));  // runs finished, files flushed
  std::string found = Run(
      absl::StrCat("grep -rlaF -e '", kGitHubSecret, "' -e '", kGitLabSecret,
                   "' -e '", kGiteaSecret, "' '", root_, "/store' || true"));
  EXPECT_EQ(found, "");
}

TEST_F(WebhookTest, SubmitRunWithAGitSource) {
  std::string tokens = root_ + "/tokens";
  std::ofstream(tokens) << kViewer << " viewer v\n"
                        << kSubmitter << " submitter s\n";
  chmod(tokens.c_str(), 0600);
  ServerOptions so;
  so.listen = "127.0.0.1:0";
  so.token_file = tokens;
  so.service.git = fetcher_;
  so.service.min_free_bytes = 0;
  auto started = KilnServer::Start(engine_.get(), so);
  ASSERT_TRUE(started.ok()) << started.status();
  grpc_ = std::move(*started);
  auto submit = [&](const std::string& token, v1::GitSource src,
                    v1::SubmitRunResponse* out) {
    ClientOptions co;
    co.server = grpc_->address();
    co.token = token;
    KilnClient client(co);
    v1::SubmitRunRequest req;
    *req.mutable_git_source() = std::move(src);
    auto ctx = client.NewContext(absl::Seconds(60));
    return client.stub().SubmitRun(ctx.get(), req, out);
  };
  v1::GitSource src;
  src.set_url("file://" + repo_);
  src.set_ref("feature/louder");
  v1::SubmitRunResponse reply;
  grpc::Status st = submit(kSubmitter, src, &reply);
  ASSERT_TRUE(st.ok()) << st.error_message();
  auto run = engine_->GetRun(reply.run_id());
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->trigger().branch(), "feature/louder");
  EXPECT_EQ(run->trigger().revision(), feature_);
  EXPECT_EQ(run->trigger().commit_message(), "feature work");
  EXPECT_THAT(run->trigger().changelog(), ElementsAre("feature work"));
  EXPECT_EQ(run->pipeline_name(), "kcow");  // read from the repository

  EXPECT_EQ(submit(kViewer, src, &reply).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::GitSource bad = src;
  bad.set_url("ext::sh -c id");
  EXPECT_EQ(submit(kSubmitter, bad, &reply).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad = src;
  bad.set_ref("no-such-branch");
  EXPECT_EQ(submit(kSubmitter, bad, &reply).error_code(),
            grpc::StatusCode::NOT_FOUND);
  bad = src;
  bad.set_credentials_secret("github-hook");
  bad.set_url("https://127.0.0.1:1/acme/kcow.git");
  grpc::Status down = submit(kSubmitter, bad, &reply);
  EXPECT_FALSE(down.ok());
  EXPECT_THAT(down.error_message(), Not(HasSubstr(kGitHubSecret)));
  // Nothing left behind by the refused submissions.
  EXPECT_EQ(RunCount(), 1u);
}

}  // namespace
}  // namespace kiln::service
