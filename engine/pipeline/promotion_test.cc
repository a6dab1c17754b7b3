// deploy.promote: decoding, the task's own checks and the needs check,
// each error positioned (FILE:LINE:COL).
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/pipeline/loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::HasSubstr;

LoadedPipeline Load(const std::string& yaml) {
  return LoadPipelineText(yaml, "p.yaml", LoadOptions());
}

// STAGE_NEEDS and PROMOTE are replaced per case.
std::string Pipeline(const std::string& prod_needs,
                     const std::string& promote) {
  return absl::StrCat(
      "name: shop\n"
      "options: {unsupported: skip}\n"
      "params: [{name: from, default: stage}]\n"
      "tasks:\n"
      "  - {name: m, render: {kustomization: k}}\n"
      "  - {name: deploy-stage, needs: [m], deploy: {environment: stage, "
      "manifests: m}}\n"
      "  - {name: deploy-prod, needs: ",
      prod_needs,
      ",\n"
      "     deploy: {environment: prod, manifests: m,\n"
      "              promote: ",
      promote, "}}\n");
}

TEST(PromotionTest, DecodesFromAndRun) {
  LoadedPipeline p = Load(
      Pipeline("[deploy-stage]", "{from: stage, run: \"r-${params.from}\"}"));
  ASSERT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  const v1::DeploySpec& d = p.pipeline.tasks(2).deploy();
  ASSERT_TRUE(d.has_promote());
  EXPECT_EQ(d.promote().from(), "stage");
  EXPECT_EQ(d.promote().run(), "r-${params.from}");
  EXPECT_FALSE(p.pipeline.tasks(1).deploy().has_promote());
}

TEST(PromotionTest, NeededTransitivelyOrByReference) {
  // deploy-stage reached through a task in between.
  std::string yaml = Pipeline("[gate]", "{from: stage}");
  yaml +=
      "  - {name: gate, needs: [deploy-stage], run: {image: host, "
      "command: [true]}}\n";
  LoadedPipeline p = Load(yaml);
  EXPECT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  p = Load(Pipeline("[deploy-stage]", "{from: \"${params.from}\"}"));
  EXPECT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  // A named run needs no deploy in this run.
  p = Load(Pipeline("[m]", "{from: stage, run: r1}"));
  EXPECT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
}

struct Case {
  const char* name;
  const char* needs;
  const char* promote;
  const char* where;  // LINE:COL of the first diagnostic
  const char* message;
};

class PromotionErrorTest : public ::testing::TestWithParam<Case> {};

TEST_P(PromotionErrorTest, FirstDiagnostic) {
  const Case& c = GetParam();
  LoadedPipeline p = Load(Pipeline(c.needs, c.promote));
  ASSERT_FALSE(p.ok()) << c.name;
  std::string first = p.errors.front().ToString();
  EXPECT_THAT(first, HasSubstr(absl::StrCat("p.yaml:", c.where, ": ")))
      << JoinDiagnostics(p.errors);
  EXPECT_THAT(first, HasSubstr(c.message)) << JoinDiagnostics(p.errors);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PromotionErrorTest,
    ::testing::Values(
        Case{"missing_from", "[deploy-stage]", "{run: r1}", "9:24",
             "promote: missing required field 'from'"},
        Case{"own_environment", "[deploy-stage]", "{from: prod}", "9:31",
             "promote.from 'prod' is this deploy's own environment"},
        Case{"unknown_key", "[deploy-stage]", "{from: stage, runn: r1}", "9:38",
             "runn"},
        Case{"not_a_mapping", "[deploy-stage]", "stage", "9:24", ""},
        Case{"stage_not_needed", "[m]", "{from: stage}", "9:31",
             "does not need task 'deploy-stage' that deploys it: add "
             "'deploy-stage' to its needs"},
        Case{"no_such_deploy", "[deploy-stage]", "{from: stag}", "9:31",
             "no task deploys to it: the deploy to 'stag' must come first "
             "in this task's needs (or name an earlier run with "
             "promote.run) (did you mean 'stage'?)"},
        Case{"reference_without_deploy", "[m]", "{from: \"${params.from}\"}",
             "9:31", "no task deploys to it"}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
}  // namespace kiln::pipeline
