#include "engine/service/http/sessions.h"

#include "gtest/gtest.h"

namespace kiln::service::http {
namespace {

TEST(SessionTableTest, CreateFindExpireRemove) {
  SessionTable table(10, absl::Minutes(5));
  absl::Time now = absl::FromUnixSeconds(1000);
  Principal who{"alice", Role::kSubmitter};
  absl::StatusOr<Session> s = table.Create(who, now);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->id.size(), 64u);
  EXPECT_EQ(s->csrf_token.size(), 64u);
  EXPECT_NE(s->id, s->csrf_token);
  absl::optional<Session> found = table.Find(s->id, now + absl::Minutes(1));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->principal.name, "alice");
  EXPECT_EQ(found->csrf_token, s->csrf_token);
  EXPECT_FALSE(table.Find("", now).has_value());
  EXPECT_FALSE(table.Find(s->csrf_token, now).has_value());
  // Expired: gone.
  EXPECT_FALSE(table.Find(s->id, now + absl::Minutes(5)).has_value());
  EXPECT_EQ(table.size(), 0u);
  absl::StatusOr<Session> t = table.Create(who, now);
  ASSERT_TRUE(t.ok());
  table.Remove(t->id);
  EXPECT_FALSE(table.Find(t->id, now).has_value());
}

TEST(SessionTableTest, BoundedDropsTheOldest) {
  SessionTable table(3, absl::Minutes(5));
  absl::Time now = absl::FromUnixSeconds(1000);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<Session> s =
        table.Create({"u", Role::kViewer}, now + absl::Seconds(i));
    ASSERT_TRUE(s.ok());
    ids.push_back(s->id);
  }
  EXPECT_EQ(table.size(), 3u);
  EXPECT_FALSE(table.Find(ids[0], now).has_value());
  EXPECT_FALSE(table.Find(ids[1], now).has_value());
  EXPECT_TRUE(table.Find(ids[4], now).has_value());
}

TEST(SessionsTest, CookieValueAndSecretsEqual) {
  EXPECT_EQ(CookieValue("a=1; kiln_session=abc; b=2", "kiln_session"), "abc");
  EXPECT_EQ(CookieValue("xkiln_session=abc", "kiln_session"), "");
  EXPECT_EQ(CookieValue("", "kiln_session"), "");
  EXPECT_TRUE(SecretsEqual("abc", "abc"));
  EXPECT_FALSE(SecretsEqual("abc", "abd"));
  EXPECT_FALSE(SecretsEqual("abc", "abcd"));
  EXPECT_FALSE(SecretsEqual("", ""));  // an empty token never matches
}

}  // namespace
}  // namespace kiln::service::http
