// Pipeline.environments: decoding, positioned errors, deploy references.
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/pipeline/loader.h"
#include "engine/pipeline/substitute.h"
#include "engine/pipeline/validate.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::HasSubstr;

LoadedPipeline Load(const std::string& yaml) {
  return LoadPipelineText(yaml, "e.yaml", LoadOptions());
}

constexpr char kTasks[] =
    "tasks:\n"
    "  - {name: d, deploy: {environment: preview, overlay: o}}\n"
    "options: {unsupported: skip}\n";

TEST(EnvironmentsTest, DecodesEveryField) {
  LoadedPipeline p = Load(
      absl::StrCat("name: kcow\n"
                   "environments:\n"
                   "  - name: preview\n"
                   "    kind: preview\n"
                   "    namespace: kcow-${trigger.branch_slug}\n"
                   "    context: dev\n"
                   "    ttl: 48h\n"
                   "  - {name: prod, kind: permanent, namespace: kcow-prod}\n"
                   "  - {name: stage, kind: permanent}\n",
                   kTasks));
  ASSERT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  ASSERT_EQ(p.pipeline.environments_size(), 3);
  const v1::Environment& e = p.pipeline.environments(0);
  EXPECT_EQ(e.name(), "preview");
  EXPECT_EQ(e.kind(), v1::PREVIEW);
  EXPECT_EQ(e.namespace_(), "kcow-${trigger.branch_slug}");
  EXPECT_EQ(e.context(), "dev");
  EXPECT_EQ(e.ttl().seconds(), 2 * 24 * 3600);
  EXPECT_EQ(p.pipeline.environments(1).kind(), v1::PERMANENT);
}

struct Case {
  const char* name;
  const char* environments;  // the YAML of `environments:` and what follows
  const char* where;         // LINE:COL of the first diagnostic
  const char* message;
};

class EnvironmentErrorTest : public ::testing::TestWithParam<Case> {};

TEST_P(EnvironmentErrorTest, FirstDiagnostic) {
  const Case& c = GetParam();
  LoadedPipeline p = Load(absl::StrCat("name: kcow\n", c.environments));
  ASSERT_FALSE(p.ok()) << c.name;
  std::string first = p.errors.front().ToString();
  EXPECT_THAT(first, HasSubstr(absl::StrCat("e.yaml:", c.where, ": ")))
      << JoinDiagnostics(p.errors);
  EXPECT_THAT(first, HasSubstr(c.message)) << JoinDiagnostics(p.errors);
}

#define TASKS                                                   \
  "tasks:\n"                                                    \
  "  - {name: d, deploy: {environment: preview, overlay: o}}\n" \
  "options: {unsupported: skip}\n"

INSTANTIATE_TEST_SUITE_P(
    Cases, EnvironmentErrorTest,
    ::testing::Values(
        Case{"unknown_key",
             "environments:\n  - {name: preview, kind: preview, namespace: x, "
             "ttll: 1d}\n" TASKS,
             "3:50", "ttll"},
        Case{"bad_kind",
             "environments:\n  - {name: preview, kind: temporary, namespace: "
             "x}\n" TASKS,
             "3:27", "temporary"},
        Case{"bad_ttl",
             "environments:\n  - {name: preview, kind: preview, namespace: x, "
             "ttl: soon}\n" TASKS,
             "3:55", "soon"},
        Case{"not_a_list", "environments: {name: x}\n" TASKS, "2:15", ""},
        Case{"missing_kind",
             "environments:\n  - {name: preview, namespace: x}\n" TASKS, "3:5",
             "missing required field 'kind'"},
        Case{"missing_name",
             "environments:\n  - {kind: preview, namespace: x}\n" TASKS, "3:5",
             "missing required field 'name'"},
        Case{"duplicate",
             "environments:\n"
             "  - {name: preview, kind: preview, namespace: x}\n"
             "  - {name: preview, kind: preview, namespace: y}\n" TASKS,
             "4:12", "duplicate environment 'preview'"},
        Case{"preview_needs_namespace",
             "environments:\n  - {name: preview, kind: preview}\n" TASKS, "3:5",
             "missing required field 'namespace'"},
        Case{"ttl_on_permanent",
             "environments:\n"
             "  - {name: preview, kind: preview, namespace: x}\n"
             "  - {name: prod, kind: permanent, ttl: 24h}\n" TASKS,
             "4:40", "'ttl' is only for preview"},
        Case{"ttl_too_short",
             "environments:\n  - {name: preview, kind: preview, namespace: x, "
             "ttl: 5s}\n" TASKS,
             "3:55", "ttl must be between"},
        Case{"permanent_reference",
             "environments:\n"
             "  - {name: preview, kind: preview, namespace: x}\n"
             "  - {name: prod, kind: permanent, namespace: "
             "\"p-${trigger.branch}\"}\n" TASKS,
             "4:46", "must be literal"},
        Case{"permanent_not_a_label",
             "environments:\n"
             "  - {name: preview, kind: preview, namespace: x}\n"
             "  - {name: prod, kind: permanent, namespace: Prod_NS}\n" TASKS,
             "4:46", "not a DNS-1123 label"},
        Case{"preview_on_permanent_namespace",
             "environments:\n"
             "  - {name: preview, kind: preview, namespace: KCOW-prod}\n"
             "  - {name: prod, kind: permanent, namespace: kcow-prod}\n" TASKS,
             "3:47", "is permanent environment 'prod''s"},
        Case{"unknown_trigger_field",
             "environments:\n  - {name: preview, kind: preview, namespace: "
             "\"a-${trigger.brnch}\"}\n" TASKS,
             "3:47", "unknown trigger field 'brnch'"},
        Case{"task_output_in_namespace",
             "environments:\n  - {name: preview, kind: preview, namespace: "
             "\"a-${tasks.d.outputs.digest}\"}\n" TASKS,
             "3:47", "may only use ${params.X} and ${trigger.X}"},
        Case{"unknown_environment",
             "environments:\n  - {name: previw, kind: preview, namespace: x}\n"
             "tasks:\n"
             "  - {name: d, deploy: {environment: preview, overlay: o}}\n"
             "options: {unsupported: skip}\n",
             "5:37",
             "unknown environment 'preview'; declared: previw (did you mean "
             "'previw'?)"},
        Case{"task_overrides_namespace",
             "environments:\n  - {name: preview, kind: preview, namespace: x}\n"
             "tasks:\n"
             "  - {name: d, deploy: {environment: preview, overlay: o, "
             "namespace: y}}\n"
             "options: {unsupported: skip}\n",
             "5:69", "'deploy.namespace' is declared by environment"}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(info.param.name);
    });

TEST(EnvironmentsTest, OldPipelinesWithoutDeclarationsStillLoad) {
  LoadedPipeline p = Load(
      "name: kcow\n"
      "tasks:\n"
      "  - {name: d, deploy: {environment: anything, kind: permanent, "
      "namespace: n, overlay: o}}\n"
      "options: {unsupported: skip}\n");
  EXPECT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
}

TEST(EnvironmentsTest, DeployEnvironmentIsSubstituted) {
  LoadedPipeline p = Load(
      "name: kcow\n"
      "params: [{name: target, default: preview}]\n"
      "tasks:\n"
      "  - {name: d, deploy: {environment: \"${params.target}\", overlay: "
      "o}}\n"
      "options: {unsupported: skip}\n");
  ASSERT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  SubstitutionContext c;
  c.params["target"] = "pr-7";
  absl::StatusOr<v1::Task> t = SubstituteTask(p.pipeline.tasks(0), c);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->deploy().environment(), "pr-7");
}

TEST(EnvironmentsTest, DeclaredNamesMatchAsWritten) {
  // A deploy naming a templated environment writes the same template.
  LoadedPipeline p = Load(
      "name: kcow\n"
      "environments:\n"
      "  - {name: \"pr-${trigger.branch_slug}\", kind: preview, namespace: "
      "\"kcow-${trigger.branch_slug}\"}\n"
      "tasks:\n"
      "  - {name: d, deploy: {environment: \"pr-${trigger.branch_slug}\", "
      "overlay: o}}\n"
      "options: {unsupported: skip}\n");
  EXPECT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
}

}  // namespace
}  // namespace kiln::pipeline
