#include "engine/pipeline/condition.h"

#include <string>

#include "engine/pipeline/loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::HasSubstr;

// The `when` of a one-task pipeline written in YAML.
v1::Condition When(const std::string& when) {
  LoadedPipeline p = LoadPipelineText(
      "name: c\nparams: [{name: env, default: dev}, {name: tok, secret: true, "
      "default: s3cret}]\ntasks:\n  - name: t\n    run: {command: [x]}\n    "
      "when: " +
          when + "\n",
      "c.yaml");
  EXPECT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  return p.pipeline.tasks(0).when();
}

v1::Trigger Trigger(const std::string& branch, const std::string& message = "",
                    v1::EventKind event = v1::PUSH) {
  v1::Trigger t;
  t.set_branch(branch);
  t.set_commit_message(message);
  t.set_event(event);
  (*t.mutable_params())["env"] = "dev";
  (*t.mutable_params())["tok"] = "s3cret";
  return t;
}

struct Case {
  const char* when;
  v1::Trigger trigger;
  bool holds;
  const char* reason;  // substring
};

class ConditionTest : public ::testing::TestWithParam<Case> {};

TEST_P(ConditionTest, Evaluates) {
  const Case& c = GetParam();
  ConditionResult r = EvaluateCondition(When(c.when), c.trigger, {"tok"});
  EXPECT_EQ(r.holds, c.holds) << c.when << ": " << r.reason;
  EXPECT_THAT(r.reason, HasSubstr(c.reason)) << c.when;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ConditionTest,
    ::testing::Values(
        Case{"{branch: main}", Trigger("main"), true,
             "branch 'main' matches main"},
        Case{"{branch: main}", Trigger("feature/x"), false,
             "branch 'feature/x' does not match main"},
        Case{"{branch: {not: main}}", Trigger("main"), false,
             "branch 'main' does not match !main"},
        Case{"{branch: {not: main}}", Trigger("dev"), true,
             "branch 'dev' matches !main"},
        Case{"{branch: \"feature/*\"}", Trigger("feature/a"), true,
             "matches feature/*"},
        Case{"{branch: {glob: \"release/**\"}}", Trigger("release/1/2"), true,
             ""},
        Case{"{branch: {regex: \"^release/\"}}", Trigger("release/1.0"), true,
             "matches regex /^release/"},
        Case{"{branch: {regex: \"release\"}}", Trigger("pre-release-x"), true,
             ""},
        Case{"{branch: {regex: \"^release/\"}}", Trigger("pre-release/1"),
             false, "does not match regex /^release/"},
        Case{"{branch: {exact: \"feature/*\"}}", Trigger("feature/x"), false,
             "does not match exactly 'feature/*'"},
        Case{"{branch: {exact: \"feature/*\"}}", Trigger("feature/*"), true,
             ""},
        Case{"{branch: {not: {regex: \"^wip\"}}}", Trigger("wip-x"), false,
             "does not match !regex /^wip/"},
        Case{"{message: \"^shipit ?.+\"}", Trigger("x", "shipit now"), true,
             "message 'shipit now' matches regex /^shipit ?.+/"},
        Case{"{message: \"^shipit\"}", Trigger("x", "fix typo\n\nshipit"), true,
             ""},
        Case{"{message: \"^shipit\"}", Trigger("x", "please shipit"), false,
             "message 'please shipit' does not match"},
        Case{"{message: \"^shipit$\"}", Trigger("x", "a\nshipit\nb"), true, ""},
        Case{"{message: \"(?i)SHIPIT\"}", Trigger("x", "ShipIt"), true, ""},
        Case{"{message: \"^shipit\"}", Trigger("x", "first line\nsecond"),
             false, "message 'first line...'"},
        Case{"{event: pull_request}", Trigger("x", "", v1::PULL_REQUEST), true,
             "event pull_request is pull_request"},
        Case{"{event: pull_request}", Trigger("x"), false,
             "event push is not pull_request"},
        Case{"{event: [push, tag]}", Trigger("x", "", v1::TAG), true, ""},
        Case{"{event: [push, tag]}", Trigger("x", "", v1::MANUAL), false,
             "event manual is not one of [push, tag]"},
        Case{"{param: {name: env, equals: dev}}", Trigger("x"), true,
             "param env is 'dev'"},
        Case{"{param: {name: env, equals: prod}}", Trigger("x"), false,
             "param env 'dev' is not 'prod'"},
        Case{"{param: {name: env, not_equals: prod}}", Trigger("x"), true, ""},
        Case{"{param: {name: env, not_equals: dev}}", Trigger("x"), false,
             "param env is 'dev'"},
        Case{"{param: {name: env, matches: \"^d\"}}", Trigger("x"), true,
             "matches regex /^d/"},
        Case{"{param: {name: tok, equals: guess}}", Trigger("x"), false,
             "param tok (secret) is not the expected value"},
        Case{"{all: [{branch: main}, {event: push}]}", Trigger("main"), true,
             "branch 'main' matches main and event push is push"},
        Case{"{all: [{branch: main}, {event: tag}]}", Trigger("main"), false,
             "event push is not tag"},
        Case{"{branch: main, event: tag}", Trigger("main"), false,
             "event push is not tag"},
        Case{"{any: [{event: pull_request}, {branch: dev}]}", Trigger("main"),
             false,
             "none holds: event push is not pull_request; branch 'main' does "
             "not match dev"},
        Case{"{not: {branch: main}}", Trigger("main"), false,
             "not(branch 'main' matches main)"},
        Case{"{}", Trigger("main"), true, "no condition"},
        // The example's preview rule.
        Case{"{any: [{event: pull_request}, {all: [{branch: {not: main}}, "
             "{message: \"^shipit\"}]}]}",
             Trigger("feature/x", "shipit: try it"), true,
             "matches regex /^shipit/"},
        Case{"{any: [{event: pull_request}, {all: [{branch: {not: main}}, "
             "{message: \"^shipit\"}]}]}",
             Trigger("main", "shipit"), false,
             "branch 'main' does not match !main"}));

TEST(ConditionTest, SecretValuesNeverInReasons) {
  for (const char* when : {"{param: {name: tok, equals: x}}",
                           "{param: {name: tok, not_equals: s3cret}}",
                           "{param: {name: tok, matches: \"^z\"}}",
                           "{param: {name: tok, equals: s3cret}}"}) {
    ConditionResult r = EvaluateCondition(When(when), Trigger("x"), {"tok"});
    EXPECT_THAT(r.reason, ::testing::Not(HasSubstr("s3cret")))
        << when << ": " << r.reason;
  }
}

TEST(ConditionTest, CheckStringMatch) {
  v1::StringMatch m;
  m.set_pattern("(");
  EXPECT_EQ(CheckStringMatch(m, false), "");  // a glob: '(' is literal
  EXPECT_THAT(CheckStringMatch(m, true), HasSubstr("invalid regex /(/"));
  m.set_kind(v1::StringMatch::EXACT);
  EXPECT_EQ(CheckStringMatch(m, true), "");
  EXPECT_THAT(CheckRegex(std::string(5000, 'a')),
              HasSubstr("exceeds the limit"));
  EXPECT_EQ(CheckRegex("^release/(v[0-9]+)$"), "");
}

}  // namespace
}  // namespace kiln::pipeline

namespace kiln::pipeline {
namespace {

TEST(ChangelogTest, AnyMessageOfTheChangelogMatches) {
  v1::Trigger t = Trigger("feature/x", "fix: typo");
  t.add_changelog("fix: typo");
  t.add_changelog("feat: new page\n\nshipit");
  t.add_changelog("chore: deps");
  ConditionResult r = EvaluateCondition(When("{changelog: '^shipit'}"), t, {});
  EXPECT_TRUE(r.holds) << r.reason;
  EXPECT_THAT(r.reason, HasSubstr("changelog entry"));
  // `message:` still looks at the head commit only.
  EXPECT_FALSE(EvaluateCondition(When("{message: '^shipit'}"), t, {}).holds);
  ConditionResult none =
      EvaluateCondition(When("{changelog: '^release'}"), t, {});
  EXPECT_FALSE(none.holds);
  EXPECT_THAT(none.reason, HasSubstr("no changelog entry (3 commits) matches"));
  EXPECT_FALSE(
      EvaluateCondition(When("{changelog: {not: '^shipit'}}"), t, {}).holds);
  EXPECT_TRUE(
      EvaluateCondition(When("{changelog: {not: '^release'}}"), t, {}).holds);
}

TEST(ChangelogTest, WithoutAChangelogTheHeadMessageCounts) {
  v1::Trigger t = Trigger("main", "shipit: now");
  EXPECT_TRUE(EvaluateCondition(When("{changelog: '^shipit'}"), t, {}).holds);
  LoadedPipeline bad = LoadPipelineText(
      "name: c\ntasks:\n  - name: t\n    run: {command: [x]}\n    when: "
      "{changelog: '(unclosed'}\n",
      "c.yaml");
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(JoinDiagnostics(bad.errors), HasSubstr("c.yaml:5:"));
}

}  // namespace
}  // namespace kiln::pipeline
