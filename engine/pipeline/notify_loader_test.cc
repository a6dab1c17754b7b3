// `notify:` in pipeline files: decoding and validation, each error at its
// position.
#include <string>

#include "engine/pipeline/loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::HasSubstr;

LoadedPipeline Load(const std::string& notify, const std::string& params = "") {
  return LoadPipelineText(
      "name: demo\n" + params +
          "tasks:\n  - {name: t, run: {command: [\"true\"]}}\nnotify:\n" +
          notify,
      "p.yaml");
}

std::string Errors(const LoadedPipeline& p) {
  return JoinDiagnostics(p.errors);
}

TEST(NotifyLoaderTest, LoadsEveryField) {
  LoadedPipeline p = Load(
      "  - url: https://chat.example/hooks/abc\n"
      "    on: [failed, succeeded, fixed, broken, cancelled]\n"
      "    template: '{\"text\": \"${pipeline.name} ${run.state} "
      "${params.env}\"}'\n"
      "    timeout: 20s\n"
      "    retries: 2\n"
      "  - {url: \"${params.hook}\", on: failed}\n",
      "params:\n  - {name: env, default: dev}\n"
      "  - {name: hook, secret: true}\n");
  ASSERT_TRUE(p.ok()) << Errors(p);
  ASSERT_EQ(p.pipeline.notify_size(), 2);
  const v1::Notification& n = p.pipeline.notify(0);
  EXPECT_EQ(n.url(), "https://chat.example/hooks/abc");
  ASSERT_EQ(n.on_size(), 5);
  EXPECT_EQ(n.on(0), v1::Notification::FAILED);
  EXPECT_EQ(n.on(1), v1::Notification::SUCCEEDED);
  EXPECT_EQ(n.on(2), v1::Notification::FIXED);
  EXPECT_EQ(n.on(3), v1::Notification::BROKEN);
  EXPECT_EQ(n.on(4), v1::Notification::CANCELLED);
  EXPECT_EQ(n.timeout().seconds(), 20);
  ASSERT_TRUE(n.has_retries());
  EXPECT_EQ(n.retries(), 2u);
  EXPECT_FALSE(p.pipeline.notify(1).has_retries());
  ASSERT_EQ(p.pipeline.notify(1).on_size(), 1);
  EXPECT_EQ(p.pipeline.notify(1).on(0), v1::Notification::FAILED);
}

TEST(NotifyLoaderTest, UnknownOutcomeSuggests) {
  LoadedPipeline p = Load("  - {url: \"http://h/x\", on: [failed, fixd]}\n");
  EXPECT_THAT(Errors(p), HasSubstr("p.yaml:5:38: notify[0].on[1]: unknown "
                                   "notification outcome 'fixd'"));
  EXPECT_THAT(Errors(p), HasSubstr("did you mean 'fixed'?"));
}

TEST(NotifyLoaderTest, UnknownFieldSuggests) {
  LoadedPipeline p =
      Load("  - {url: \"http://h/x\", on: failed, tmplate: x}\n");
  EXPECT_THAT(Errors(p), HasSubstr("p.yaml:5:37: unknown field 'tmplate'"));
  EXPECT_THAT(Errors(p), HasSubstr("did you mean 'template'?"));
}

TEST(NotifyLoaderTest, RequiresUrlAndOn) {
  LoadedPipeline p = Load("  - {timeout: 5s}\n");
  EXPECT_THAT(Errors(p), HasSubstr("p.yaml:5:5: notification 1: missing "
                                   "required field 'url'"));
  EXPECT_THAT(Errors(p), HasSubstr("notification 1: missing required field "
                                   "'on'"));
}

TEST(NotifyLoaderTest, UrlMustBeHttp) {
  LoadedPipeline p = Load("  - {url: \"ftp://h/x\", on: failed}\n");
  EXPECT_THAT(Errors(p), HasSubstr("p.yaml:5:11: notification 1: url must "
                                   "start with http:// or https://"));
}

TEST(NotifyLoaderTest, UrlReferencesOnlyDeclaredParams) {
  LoadedPipeline p = Load(
      "  - {url: \"${params.hok}\", on: failed}\n"
      "  - {url: \"https://h/${trigger.branch}\", on: failed}\n",
      "params:\n  - {name: hook, secret: true}\n");
  EXPECT_THAT(Errors(p), HasSubstr("notification 1: url: ${params.hok} names "
                                   "unknown param (did you mean "
                                   "'params.hook'?)"));
  EXPECT_THAT(Errors(p), HasSubstr("notification 2: url may reference only "
                                   "params"));
}

TEST(NotifyLoaderTest, TemplateVariablesAreChecked) {
  LoadedPipeline p = Load(
      "  - url: http://h/x\n"
      "    on: failed\n"
      "    template: '{\"text\": \"${run.stat}\"}'\n"
      "  - url: http://h/x\n"
      "    on: failed\n"
      "    template: '{\"text\": \"${params.hook}\"}'\n",
      "params:\n  - {name: hook, secret: true}\n");
  EXPECT_THAT(Errors(p), HasSubstr("p.yaml:9:15: notification 1: template: "
                                   "unknown variable ${run.stat}"));
  EXPECT_THAT(Errors(p), HasSubstr("did you mean 'run.state'?"));
  EXPECT_THAT(Errors(p), HasSubstr("notification 2: template: secret param "
                                   "'hook' may not be sent in a body"));
}

TEST(NotifyLoaderTest, TemplateMustRenderToJson) {
  LoadedPipeline p = Load(
      "  - url: http://h/x\n"
      "    on: failed\n"
      "    template: '{\"id\": ${run.id}}'\n"
      "  - url: http://h/x\n"
      "    on: failed\n"
      "    template: '[\"${run.id}\"]'\n"
      "  - url: http://h/x\n"
      "    on: failed\n"
      "    template: '{\"text\": \"${run.id\"}'\n");
  EXPECT_THAT(Errors(p), HasSubstr("p.yaml:7:15: notification 1: template: "
                                   "the rendered body is not valid JSON"));
  EXPECT_THAT(Errors(p), HasSubstr("notification 2: template: the rendered "
                                   "body is not a JSON object"));
  EXPECT_THAT(Errors(p),
              HasSubstr("p.yaml:13:15: notification 3: template: malformed"));
}

TEST(NotifyLoaderTest, BoundsAreEnforced) {
  EXPECT_THAT(
      Errors(Load("  - {url: \"http://h/x\", on: failed, timeout: 6m}\n")),
      HasSubstr("p.yaml:5:46: notification 1: timeout must be from 0s"));
  EXPECT_THAT(
      Errors(Load("  - {url: \"http://h/x\", on: failed, retries: 11}\n")),
      HasSubstr("p.yaml:5:46: notify[0].retries: 11 exceeds the maximum of "
                "10"));
  std::string many;
  for (int i = 0; i < 17; ++i)
    many += "  - {url: \"http://h/x\", on: failed}\n";
  EXPECT_THAT(Errors(Load(many)), HasSubstr("notify: 17 entries; at most 16"));
}

TEST(NotifyLoaderTest, NotifyMustBeAList) {
  LoadedPipeline p = Load("  url: http://h/x\n");
  EXPECT_THAT(Errors(p), HasSubstr("p.yaml:5:3: notify: expected a sequence"));
}

}  // namespace
}  // namespace kiln::pipeline
