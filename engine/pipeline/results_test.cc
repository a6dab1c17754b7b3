// Task results in the pipeline layer: run.results and `when: {result: ...}`
// decoded, validated (FILE:LINE:COL, did-you-mean), substituted and
// evaluated; a results-dependent `when` is left to run time by the plan.
#include <string>

#include "engine/pipeline/condition.h"
#include "engine/pipeline/loader.h"
#include "engine/pipeline/plan.h"
#include "engine/pipeline/substitute.h"
#include "engine/pipeline/validate.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::HasSubstr;

constexpr char kGood[] = R"(name: r
tasks:
  - name: version
    run: {command: [sh, -c, "echo 1.2 > $KILN_RESULTS/tag"], results: [tag, channel]}
  - name: build
    needs: [version]
    run:
      command: [echo, "v${tasks.version.results.tag}"]
      env: {TAG: "${tasks.version.results.channel}"}
  - name: publish
    needs: [build]
    when: {result: {task: version, name: channel, equals: stable}}
    run: {command: [echo, publish]}
)";

TEST(ResultsTest, DecodedAndValid) {
  LoadedPipeline p = LoadPipelineText(kGood, "r.yaml");
  ASSERT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  const v1::Task& version = p.pipeline.tasks(0);
  ASSERT_EQ(version.run().results_size(), 2);
  EXPECT_EQ(version.run().results(1), "channel");
  EXPECT_EQ(DeclaredResults(version),
            (std::vector<std::string>{"channel", "tag"}));
  const v1::ResultMatch& m = p.pipeline.tasks(2).when().result();
  EXPECT_EQ(m.task(), "version");
  EXPECT_EQ(m.name(), "channel");
  EXPECT_EQ(m.equals(), "stable");
  EXPECT_TRUE(DependsOnResults(p.pipeline.tasks(2).when()));
  EXPECT_FALSE(DependsOnResults(p.pipeline.tasks(1).when()));
}

// The first error of `yaml`, as FILE:LINE:COL: message.
std::string FirstError(const std::string& yaml) {
  LoadedPipeline p = LoadPipelineText(yaml, "r.yaml");
  EXPECT_FALSE(p.ok());
  return p.errors.empty() ? "" : p.errors.front().ToString();
}

TEST(ResultsTest, AnUndeclaredResultIsRefusedWithADidYouMean) {
  std::string e = FirstError(R"(name: r
tasks:
  - name: version
    run: {command: [x], results: [tag]}
  - name: build
    needs: [version]
    run: {command: [echo, "${tasks.version.results.tga}"]}
)");
  EXPECT_THAT(e, HasSubstr("r.yaml:7:27: "));
  EXPECT_THAT(e, HasSubstr("task 'version' declares no result 'tga'"));
  EXPECT_THAT(e, HasSubstr("did you mean 'tag'"));
}

TEST(ResultsTest, AnUnknownTaskIsRefusedWithADidYouMean) {
  std::string e = FirstError(R"(name: r
tasks:
  - name: version
    run: {command: [x], results: [tag]}
  - name: build
    needs: [version]
    run: {command: [x], env: {T: "${tasks.versoin.results.tag}"}}
)");
  EXPECT_THAT(e, HasSubstr("r.yaml:7:"));
  EXPECT_THAT(e, HasSubstr("names unknown task 'versoin'"));
  EXPECT_THAT(e, HasSubstr("did you mean 'version'"));
}

TEST(ResultsTest, TheProducerMustBeNeeded) {
  std::string e = FirstError(R"(name: r
tasks:
  - name: version
    run: {command: [x], results: [tag]}
  - name: build
    run: {command: [echo, "${tasks.version.results.tag}"]}
)");
  EXPECT_THAT(e, HasSubstr("r.yaml:6:"));
  EXPECT_THAT(e, HasSubstr("which is not among the tasks it needs"));
  EXPECT_THAT(e, HasSubstr("add 'version' to its needs"));
}

TEST(ResultsTest, ConditionsAreCheckedAtTheirFields) {
  std::string e = FirstError(R"(name: r
tasks:
  - name: version
    run: {command: [x], results: [tag]}
  - name: build
    needs: [version]
    when: {result: {task: version, name: tags, equals: x}}
    run: {command: [x]}
)");
  EXPECT_THAT(e, HasSubstr("r.yaml:7:42: "));
  EXPECT_THAT(e, HasSubstr("declares no result 'tags'"));
  EXPECT_THAT(e, HasSubstr("did you mean 'tag'"));

  e = FirstError(R"(name: r
tasks:
  - name: version
    run: {command: [x], results: [tag]}
  - name: build
    needs: [version]
    when: {result: {task: verson, name: tag, equals: x}}
    run: {command: [x]}
)");
  EXPECT_THAT(e, HasSubstr("r.yaml:7:27: "));
  EXPECT_THAT(e, HasSubstr("names unknown task 'verson'"));

  e = FirstError(R"(name: r
tasks:
  - name: version
    run: {command: [x], results: [tag]}
  - name: build
    needs: [version]
    when: {result: {task: version, name: tag}}
    run: {command: [x]}
)");
  EXPECT_THAT(e, HasSubstr("needs one of equals, not_equals or matches"));

  e = FirstError(R"(name: r
tasks:
  - name: version
    run: {command: [x], results: [tag]}
  - name: build
    needs: [version]
    when: {result: {task: version, name: tag, matches: "("}}
    run: {command: [x]}
)");
  EXPECT_THAT(e, HasSubstr("invalid regex"));
}

TEST(ResultsTest, ResultNamesAreChecked) {
  EXPECT_THAT(FirstError("name: r\ntasks:\n  - name: a\n    run: {command: "
                         "[x], results: [ok, \"a.b\"]}\n"),
              HasSubstr("r.yaml:4:34: task 'a': result name 'a.b' is not"));
  EXPECT_THAT(FirstError("name: r\ntasks:\n  - name: a\n    run: {command: "
                         "[x], results: [v, v]}\n"),
              HasSubstr("result 'v' is declared twice"));
  std::string many;
  for (int i = 0; i <= kMaxDeclaredResults; ++i) {
    many += (i ? ", r" : "r") + std::to_string(i);
  }
  EXPECT_THAT(FirstError("name: r\ntasks:\n  - name: a\n    run: {command: "
                         "[x], results: [" +
                         many + "]}\n"),
              HasSubstr("33 results declared; at most 32"));
  EXPECT_THAT(FirstError("name: r\ntasks:\n  - name: a\n    run: {command: "
                         "[x], results: [\"" +
                         std::string(65, 'n') + "\"]}\n"),
              HasSubstr("is not 1 to 64 characters"));
}

TEST(ResultsTest, SubstitutedAsDataFromTheFinishedTask) {
  SubstitutionContext ctx;
  ctx.task_outputs["version"][ResultKey("tag")] = "1.2; rm -rf /";
  ctx.task_outputs["version"]["digest"] = "sha256:x";
  auto s = Substitute("v${tasks.version.results.tag}", ctx);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, "v1.2; rm -rf /");
  // An output key is not a result and a result is not an output.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      Substitute("${tasks.version.results.digest}", ctx).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      Substitute("${tasks.version.outputs.tag}", ctx).status()));
  // Nothing recorded: the task did not run.
  auto missing = Substitute("${tasks.other.results.tag}", ctx);
  ASSERT_TRUE(absl::IsFailedPrecondition(missing.status()));
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("did not run"));
}

TEST(ResultsTest, ConditionsSeeResultsOnlyAtRunTime) {
  LoadedPipeline p = LoadPipelineText(kGood, "r.yaml");
  ASSERT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  const v1::Condition& when = p.pipeline.tasks(2).when();
  TaskResultValues results;
  results["version"][ResultKey("channel")] = "stable";
  ConditionResult r = EvaluateCondition(when, v1::Trigger(), {}, &results);
  EXPECT_TRUE(r.holds) << r.reason;
  results["version"][ResultKey("channel")] = "beta";
  r = EvaluateCondition(when, v1::Trigger(), {}, &results);
  EXPECT_FALSE(r.holds);
  EXPECT_EQ(r.reason, "result channel of task version 'beta' is not 'stable'");
  r = EvaluateCondition(when, v1::Trigger(), {}, nullptr);
  EXPECT_FALSE(r.holds);
  EXPECT_THAT(r.reason, HasSubstr("absent"));

  // The plan leaves it to run time: the task is not skipped there.
  auto plan = ComputePlan(p.pipeline, v1::Trigger());
  ASSERT_TRUE(plan.ok()) << plan.status();
  const PlannedTask* publish = plan->Find("publish");
  ASSERT_NE(publish, nullptr);
  EXPECT_FALSE(publish->skipped);
  EXPECT_THAT(publish->reason, HasSubstr("decided when it starts"));
}

}  // namespace
}  // namespace kiln::pipeline
