#include "engine/oci/registry/auth.h"

#include <string>

#include "engine/oci/registry/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::oci::registry {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ChallengeTest, ParsesBearerWithQuotedParams) {
  auto c = ParseChallenges(
      R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params["realm"], "https://auth.example/token");
  EXPECT_EQ(c[0].params["service"], "registry.example");
  EXPECT_EQ(c[0].params["scope"], "repository:a/b:pull,push");
}

TEST(ChallengeTest, ParsesSeveralChallengesAndEscapes) {
  auto c = ParseChallenges(
      R"(Basic realm="a \"quoted\" realm", charset=UTF-8, Bearer realm="r", error="invalid_token")");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].scheme, "basic");
  EXPECT_EQ(c[0].params["realm"], "a \"quoted\" realm");
  EXPECT_EQ(c[0].params["charset"], "UTF-8");
  EXPECT_EQ(c[1].scheme, "bearer");
  EXPECT_EQ(c[1].params["error"], "invalid_token");
}

TEST(ChallengeTest, JunkGivesNothingAndTerminates) {
  EXPECT_TRUE(ParseChallenges("").empty());
  EXPECT_TRUE(ParseChallenges(R"(Bearer realm="unterminated)").empty());
  // Does not loop on odd characters.
  auto c = ParseChallenges("Basic ===,,,\"\"\"  ;;; Bearer");
  EXPECT_LE(c.size(), 2u);
}

TEST(DockerConfigTest, ReadsAuthsAndNormalisesKeys) {
  // "alice:s3cret" and "bob:pw:with:colons" in base64.
  auto m = ParseDockerConfig(R"({
    "auths": {
      "https://index.docker.io/v1/": {"auth": "YWxpY2U6czNjcmV0"},
      "127.0.0.1:5000": {"auth": "Ym9iOnB3OndpdGg6Y29sb25z"},
      "http://reg.example/": {"username": "u", "password": "p"},
      "tok.example": {"identitytoken": "refresh"},
      "empty.example": {}
    },
    "credsStore": "desktop"
  })");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)["docker.io"].username, "alice");
  EXPECT_EQ((*m)["docker.io"].password, "s3cret");
  EXPECT_EQ((*m)["127.0.0.1:5000"].password, "pw:with:colons");
  EXPECT_EQ((*m)["reg.example"].username, "u");
  EXPECT_EQ((*m)["tok.example"].identity_token, "refresh");
  EXPECT_EQ(m->count("empty.example"), 0u);
}

TEST(DockerConfigTest, ErrorsNeverQuoteSecrets) {
  auto m =
      ParseDockerConfig(R"({"auths": {"r.example": {"auth": "c2VjcmV0"}}})");
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("r.example"));
  EXPECT_THAT(m.status().message(), Not(HasSubstr("c2VjcmV0")));
  EXPECT_THAT(m.status().message(), Not(HasSubstr("secret")));
  m = ParseDockerConfig(R"({"auths": {"r.example": {"auth": "%%%"}}})");
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("not base64"));
  EXPECT_FALSE(ParseDockerConfig("{not json").ok());
  auto missing = LoadDockerConfig("/nonexistent/kiln/config.json");
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
}

TEST(BackoffTest, ExponentialCappedAndRetryAfter) {
  RetryPolicy p;
  p.initial_backoff = absl::Milliseconds(100);
  p.max_backoff = absl::Seconds(1);
  absl::Duration first = Backoff(p, 1, "");
  EXPECT_GE(first, absl::Milliseconds(80));
  EXPECT_LE(first, absl::Milliseconds(120));
  absl::Duration third = Backoff(p, 3, "");
  EXPECT_GE(third, absl::Milliseconds(320));
  EXPECT_LE(third, absl::Milliseconds(480));
  EXPECT_EQ(Backoff(p, 20, ""), absl::Seconds(1));
  EXPECT_EQ(Backoff(p, 1, "0"), absl::ZeroDuration());
  EXPECT_EQ(Backoff(p, 1, "3600"), absl::Seconds(1));  // capped
  EXPECT_EQ(BasicAuthorization({"alice", "s3cret", ""}),
            "Basic YWxpY2U6czNjcmV0");
  EXPECT_EQ(UrlEncode("repository:a/b:pull push"),
            "repository%3Aa%2Fb%3Apull%20push");
}

}  // namespace
}  // namespace kiln::oci::registry
