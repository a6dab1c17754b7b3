// Notification bodies: escaping, unknown variables, JSON checks, default
// body; and which outcome an entry posts on.
#include "engine/notify/body_template.h"

#include "engine/notify/notifier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kiln::notify {
namespace {

using ::testing::HasSubstr;

TEST(BodyTemplateTest, ValuesStayInsideTheirString) {
  std::map<std::string, std::string> vars = {
      {"trigger.branch", "x\", \"admin\": \"1"},
      {"run.reason", "line1\nline2\t\\ \x01"},
  };
  absl::StatusOr<std::string> body = RenderBody(
      R"({"text": "${trigger.branch}", "why": "${run.reason}"})", vars);
  ASSERT_TRUE(body.ok()) << body.status();
  nlohmann::json parsed = nlohmann::json::parse(*body);
  EXPECT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed["text"], "x\", \"admin\": \"1");
  EXPECT_EQ(parsed["why"], "line1\nline2\t\\ \x01");
}

TEST(BodyTemplateTest, LiteralDollarBrace) {
  absl::StatusOr<std::string> body =
      RenderBody(R"({"text": "$${run.id} costs $5"})", {{"run.id", "r1"}});
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(nlohmann::json::parse(*body)["text"], "${run.id} costs $5");
}

TEST(BodyTemplateTest, RefusesUnknownVariablesAndInvalidJson) {
  EXPECT_THAT(RenderBody(R"({"text": "${nope}"})", {}).status().message(),
              HasSubstr("unknown variable ${nope}"));
  EXPECT_THAT(
      RenderBody(R"({"n": ${run.id}})", {{"run.id", "r1"}}).status().message(),
      HasSubstr("not valid JSON"));
  EXPECT_THAT(
      RenderBody(R"("${run.id}")", {{"run.id", "1"}}).status().message(),
      HasSubstr("not a JSON object"));
  EXPECT_FALSE(TemplateVariables("${run.id").ok());
  EXPECT_FALSE(TemplateVariables("${}").ok());
}

TEST(BodyTemplateTest, DefaultBodyIsText) {
  nlohmann::json body = nlohmann::json::parse(DefaultBody({
      {"pipeline.name", "demo"},
      {"run.id", "r1"},
      {"notify.on", "broken"},
      {"trigger.branch", "main"},
      {"failed_tasks", "a, b"},
  }));
  EXPECT_EQ(body["text"], "demo: run r1 broken on main; failed: a, b");
}

TEST(MatchingOutcomeTest, MostSpecificListedOutcome) {
  v1::Notification n;
  n.add_on(v1::Notification::SUCCEEDED);
  n.add_on(v1::Notification::FIXED);
  n.add_on(v1::Notification::FAILED);
  FinishedRun run;
  run.state = v1::RUN_SUCCEEDED;
  EXPECT_EQ(MatchingOutcome(n, run), "succeeded");
  run.previous = v1::RUN_TIMED_OUT;
  EXPECT_EQ(MatchingOutcome(n, run), "fixed");
  run.state = v1::RUN_FAILED;
  run.previous = v1::RUN_SUCCEEDED;
  EXPECT_EQ(MatchingOutcome(n, run), "failed");  // broken is not listed
  n.add_on(v1::Notification::BROKEN);
  EXPECT_EQ(MatchingOutcome(n, run), "broken");
  run.state = v1::RUN_CANCELLED;
  EXPECT_EQ(MatchingOutcome(n, run), "");
  n.add_on(v1::Notification::CANCELLED);
  EXPECT_EQ(MatchingOutcome(n, run), "cancelled");
}

TEST(RunUrlTest, JoinsBase) {
  EXPECT_EQ(RunUrl("https://k.example/", "r1"), "https://k.example/run?id=r1");
  EXPECT_EQ(RunUrl("", "r1"), "");
}

}  // namespace
}  // namespace kiln::notify
