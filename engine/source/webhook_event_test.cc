#include "engine/source/webhook_event.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_replace.h"
#include "engine/source/webhook_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::source {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

constexpr char kAfter[] = "1111111111111111111111111111111111111111";
constexpr char kBefore[] = "2222222222222222222222222222222222222222";

std::string Payload(const std::string& name) {
  std::string path = std::string(std::getenv("TEST_SRCDIR")) + "/" +
                     std::getenv("TEST_WORKSPACE") +
                     "/tests/webhooks/payloads/" + name;
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::stringstream s;
  s << in.rdbuf();
  return absl::StrReplaceAll(s.str(),
                             {{"{{after}}", kAfter}, {"{{before}}", kBefore}});
}

WebhookEvent Parse(Provider p, const Headers& h, const std::string& file) {
  absl::StatusOr<WebhookEvent> e = ParseWebhook(p, h, Payload(file));
  EXPECT_TRUE(e.ok()) << file << ": " << e.status();
  return e.ok() ? *e : WebhookEvent();
}

Headers GitHub(const std::string& event) {
  return {{"x-github-event", event}, {"x-github-delivery", "d-1"}};
}
Headers GitLab(const std::string& event) {
  return {{"x-gitlab-event", event}, {"x-gitlab-event-uuid", "u-1"}};
}
Headers Gitea(const std::string& event) {
  // Gitea sends GitHub's header too.
  return {{"x-gitea-event", event},
          {"x-github-event", event},
          {"x-gitea-delivery", "g-1"}};
}

TEST(WebhookEvent, ProvidersAreToldApartGiteaFirst) {
  EXPECT_EQ(*DetectProvider(Gitea("push")), Provider::kGitea);
  EXPECT_EQ(*DetectProvider(GitLab("Push Hook")), Provider::kGitLab);
  EXPECT_EQ(*DetectProvider(GitHub("push")), Provider::kGitHub);
  EXPECT_FALSE(DetectProvider({{"content-type", "application/json"}}).ok());
}

TEST(WebhookEvent, SignaturesVerifyInEveryFormat) {
  const std::string body = Payload("github_push.json");
  const std::string hmac = HmacSha256Hex("s3cret-value", body);
  Headers gh = GitHub("push");
  EXPECT_THAT(
      VerifySignature(Provider::kGitHub, gh, body, "s3cret-value").message(),
      HasSubstr("carries no signature"));
  gh["x-hub-signature-256"] = "sha256=" + hmac;
  EXPECT_TRUE(
      VerifySignature(Provider::kGitHub, gh, body, "s3cret-value").ok());
  EXPECT_FALSE(VerifySignature(Provider::kGitHub, gh, body, "other").ok());
  EXPECT_FALSE(
      VerifySignature(Provider::kGitHub, gh, body + " ", "s3cret-value").ok());
  gh["x-hub-signature-256"] = hmac;  // without the sha256= prefix
  EXPECT_FALSE(
      VerifySignature(Provider::kGitHub, gh, body, "s3cret-value").ok());

  Headers gitea = Gitea("push");
  gitea["x-gitea-signature"] = hmac;
  EXPECT_TRUE(
      VerifySignature(Provider::kGitea, gitea, body, "s3cret-value").ok());
  gitea["x-gitea-signature"][0] ^= 1;
  absl::Status bad =
      VerifySignature(Provider::kGitea, gitea, body, "s3cret-value");
  EXPECT_EQ(bad.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(bad.message(), ::testing::Not(HasSubstr("s3cret-value")));

  Headers gl = GitLab("Push Hook");
  gl["x-gitlab-token"] = "s3cret-value";
  EXPECT_TRUE(
      VerifySignature(Provider::kGitLab, gl, body, "s3cret-value").ok());
  gl["x-gitlab-token"] = "s3cret-valuE";
  EXPECT_FALSE(
      VerifySignature(Provider::kGitLab, gl, body, "s3cret-value").ok());
}

TEST(WebhookEvent, GitHubEvents) {
  WebhookEvent push =
      Parse(Provider::kGitHub, GitHub("push"), "github_push.json");
  EXPECT_EQ(push.kind, v1::PUSH);
  EXPECT_EQ(push.branch, "main");
  EXPECT_EQ(push.revision, kAfter);
  EXPECT_EQ(push.before, kBefore);
  EXPECT_EQ(push.delivery, "d-1");
  EXPECT_EQ(push.message, "shipit: louder moo");
  EXPECT_THAT(push.repository_urls,
              Contains("https://github.com/acme/kcow.git"));

  WebhookEvent tag =
      Parse(Provider::kGitHub, GitHub("push"), "github_push_tag.json");
  EXPECT_EQ(tag.kind, v1::TAG);
  EXPECT_EQ(tag.branch, "v1.2.0");
  EXPECT_EQ(tag.fetch_ref, "refs/tags/v1.2.0");

  WebhookEvent gone = Parse(Provider::kGitHub, GitHub("push"),
                            "github_push_branch_deleted.json");
  EXPECT_EQ(gone.kind, v1::BRANCH_DELETED);
  EXPECT_EQ(gone.branch, "feature/louder");
  EXPECT_EQ(gone.fetch_ref, "refs/heads/main");
  EXPECT_EQ(gone.revision, "");

  WebhookEvent opened = Parse(Provider::kGitHub, GitHub("pull_request"),
                              "github_pull_request_opened.json");
  EXPECT_EQ(opened.kind, v1::PULL_REQUEST);
  EXPECT_EQ(opened.branch, "feature/louder");
  EXPECT_EQ(opened.revision, kAfter);
  EXPECT_EQ(opened.fetch_ref, "refs/pull/7/head");
  EXPECT_EQ(Parse(Provider::kGitHub, GitHub("pull_request"),
                  "github_pull_request_synchronize.json")
                .kind,
            v1::PULL_REQUEST);
  EXPECT_EQ(Parse(Provider::kGitHub, GitHub("pull_request"),
                  "github_pull_request_closed.json")
                .kind,
            v1::PULL_REQUEST_CLOSED);
  WebhookEvent ping =
      Parse(Provider::kGitHub, GitHub("ping"), "github_ping.json");
  EXPECT_THAT(ping.ignored, HasSubstr("ping"));
}

TEST(WebhookEvent, GitLabEvents) {
  WebhookEvent push =
      Parse(Provider::kGitLab, GitLab("Push Hook"), "gitlab_push.json");
  EXPECT_EQ(push.kind, v1::PUSH);
  EXPECT_EQ(push.branch, "main");
  EXPECT_EQ(push.revision, kAfter);
  EXPECT_EQ(push.delivery, "u-1");
  EXPECT_THAT(push.repository_urls,
              Contains("https://gitlab.example.test/acme/kcow.git"));
  Headers idem = GitLab("Push Hook");
  idem["idempotency-key"] = "key-9";
  EXPECT_EQ(Parse(Provider::kGitLab, idem, "gitlab_push.json").delivery,
            "key-9");
  EXPECT_EQ(
      Parse(Provider::kGitLab, GitLab("Tag Push Hook"), "gitlab_tag_push.json")
          .kind,
      v1::TAG);
  WebhookEvent open = Parse(Provider::kGitLab, GitLab("Merge Request Hook"),
                            "gitlab_merge_request_open.json");
  EXPECT_EQ(open.kind, v1::PULL_REQUEST);
  EXPECT_EQ(open.fetch_ref, "refs/merge-requests/7/head");
  EXPECT_EQ(open.branch, "feature/louder");
  EXPECT_EQ(Parse(Provider::kGitLab, GitLab("Merge Request Hook"),
                  "gitlab_merge_request_update.json")
                .kind,
            v1::PULL_REQUEST);
  EXPECT_EQ(Parse(Provider::kGitLab, GitLab("Merge Request Hook"),
                  "gitlab_merge_request_merge.json")
                .kind,
            v1::PULL_REQUEST_CLOSED);
  Headers none = GitLab("Push Hook");
  none.erase("x-gitlab-event-uuid");
  EXPECT_FALSE(
      ParseWebhook(Provider::kGitLab, none, Payload("gitlab_push.json")).ok());
}

TEST(WebhookEvent, GiteaEvents) {
  WebhookEvent push = Parse(Provider::kGitea, Gitea("push"), "gitea_push.json");
  EXPECT_EQ(push.kind, v1::PUSH);
  EXPECT_EQ(push.delivery, "g-1");
  EXPECT_EQ(Parse(Provider::kGitea, Gitea("pull_request"),
                  "gitea_pull_request_synchronized.json")
                .kind,
            v1::PULL_REQUEST);
  EXPECT_EQ(Parse(Provider::kGitea, Gitea("pull_request"),
                  "gitea_pull_request_closed.json")
                .kind,
            v1::PULL_REQUEST_CLOSED);
  WebhookEvent gone =
      Parse(Provider::kGitea, Gitea("delete"), "gitea_delete_branch.json");
  EXPECT_EQ(gone.kind, v1::BRANCH_DELETED);
  EXPECT_EQ(gone.branch, "feature/louder");
}

TEST(WebhookEvent, MalformedBodiesAreRefused) {
  EXPECT_FALSE(ParseWebhook(Provider::kGitHub, GitHub("push"), "{").ok());
  EXPECT_FALSE(ParseWebhook(Provider::kGitHub, GitHub("push"), "[1]").ok());
  EXPECT_FALSE(ParseWebhook(Provider::kGitHub, GitHub("push"),
                            R"({"ref":"refs/heads/x"})")
                   .ok());
}

TEST(WebhookEvent, RepositoryUrlsMatchInAnySpelling) {
  EXPECT_EQ(NormalizeRepositoryUrl("https://GitHub.com/acme/kcow.git/"),
            "github.com/acme/kcow");
  EXPECT_EQ(NormalizeRepositoryUrl("git@github.com:acme/kcow.git"),
            "github.com/acme/kcow");
  EXPECT_EQ(NormalizeRepositoryUrl("ssh://git@github.com/acme/kcow"),
            "github.com/acme/kcow");
}

TEST(WebhookConfig, ParsesAndReportsLines) {
  auto config = WebhookConfig::Parse(
      "# repositories\n"
      "https://github.com/acme/kcow secret=hook pipeline=ci/kiln.yaml "
      "fetch=file:///srv/kcow credentials=tok\n",
      "hooks.conf");
  ASSERT_TRUE(config.ok()) << config.status();
  const WebhookRepository* r = config->Find({"git@github.com:acme/kcow.git"});
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->pipeline, "ci/kiln.yaml");
  EXPECT_EQ(r->fetch_url, "file:///srv/kcow");
  EXPECT_EQ(r->credentials, "tok");
  EXPECT_EQ(config->Find({"https://github.com/acme/other"}), nullptr);
  EXPECT_EQ(
      WebhookConfig::Parse("\nhttps://x.test/a\n", "f").status().message(),
      "f:2: https://x.test/a has no secret=NAME: every repository's "
      "deliveries are signed");
  EXPECT_THAT(
      WebhookConfig::Parse("https://x.test/a secret=s pipeline=../x\n", "f")
          .status()
          .message(),
      HasSubstr("f:1: pipeline="));
  EXPECT_THAT(WebhookConfig::Parse("https://x.test/a secret=s color=red\n", "f")
                  .status()
                  .message(),
              HasSubstr("unknown key 'color'"));
}

}  // namespace
}  // namespace kiln::source
