#include "engine/pipeline/plan.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/pipeline/loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::Pipeline MustLoad(const std::string& yaml) {
  LoadedPipeline p = LoadPipelineText(yaml, "plan.yaml");
  EXPECT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  return p.pipeline;
}

std::vector<std::string> Names(const Plan& plan) {
  std::vector<std::string> out;
  for (const PlannedTask& t : plan.order) {
    out.push_back(absl::StrCat(t.task->name(), t.skipped ? "(skipped)" : ""));
  }
  return out;
}

constexpr char kDelivery[] = R"(
name: d
params: [{name: env, type: choice, choices: [dev, prod], default: dev}]
tasks:
  - {name: deploy-prod, needs: [deploy-stage], when: {branch: main}, deploy: {environment: prod, overlay: o}}
  - {name: build, run: {command: [make]}}
  - {name: test, needs: [build], run: {command: [make, test]}}
  - {name: preview, needs: [test], when: {event: pull_request}, run: {command: [x]}}
  - {name: after-preview, needs: [preview], run: {command: [x]}}
  - {name: anyway, needs: [preview], run_if_needs_skipped: true, run: {command: [x]}}
  - {name: mixed, needs: [preview, test], run: {command: [x]}}
  - {name: deploy-stage, needs: [test], when: {branch: main}, deploy: {environment: stage, overlay: o}}
  - {name: only-prod, when: {param: {name: env, equals: prod}}, run: {command: [x]}}
finally:
  - {name: notify, needs: [cleanup], run: {command: [x]}}
  - {name: cleanup, run: {command: [x]}}
options: {unsupported: skip}
)";

TEST(PlanTest, TopologicalOrderAndSkips) {
  v1::Pipeline p = MustLoad(kDelivery);
  v1::Trigger trigger;
  trigger.set_branch("feature/x");
  trigger.set_event(v1::PUSH);
  absl::StatusOr<Plan> plan = ComputePlan(p, trigger);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Names(*plan),
              ElementsAre("build", "test", "preview(skipped)",
                          "after-preview(skipped)", "anyway", "mixed",
                          "deploy-stage(skipped)", "deploy-prod(skipped)",
                          "only-prod(skipped)", "cleanup", "notify"));
  EXPECT_THAT(plan->Find("preview")->reason,
              HasSubstr("event push is not pull_request"));
  EXPECT_THAT(plan->Find("after-preview")->reason,
              HasSubstr("every task it needs is skipped (preview)"));
  EXPECT_THAT(plan->Find("deploy-prod")->reason,
              HasSubstr("branch 'feature/x' does not match main"));
  EXPECT_THAT(plan->Find("only-prod")->reason,
              HasSubstr("param env 'dev' is not 'prod'"));
  EXPECT_TRUE(plan->Find("notify")->is_finally);
  EXPECT_EQ(plan->Find("notify")->index, 0);
  EXPECT_EQ(plan->params.at("env"), "dev");
}

TEST(PlanTest, MainBranchPullRequestAndParams) {
  v1::Pipeline p = MustLoad(kDelivery);
  v1::Trigger trigger;
  trigger.set_branch("main");
  trigger.set_event(v1::PULL_REQUEST);
  (*trigger.mutable_params())["env"] = "prod";
  absl::StatusOr<Plan> plan = ComputePlan(p, trigger);
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (const PlannedTask& t : plan->order) {
    EXPECT_FALSE(t.skipped) << t.task->name() << ": " << t.reason;
  }
  EXPECT_THAT(plan->Find("deploy-prod")->reason, HasSubstr("matches main"));
}

TEST(PlanTest, SkipPropagatesThroughChains) {
  v1::Pipeline p = MustLoad(R"(
name: chain
tasks:
  - {name: a, when: {branch: never}, run: {command: [x]}}
  - {name: b, needs: [a], run: {command: [x]}}
  - {name: c, needs: [b], run: {command: [x]}}
  - {name: d, needs: [c], run_if_needs_skipped: true, run: {command: [x]}}
  - {name: e, needs: [d], run: {command: [x]}}
)");
  absl::StatusOr<Plan> plan = ComputePlan(p, v1::Trigger());
  ASSERT_TRUE(plan.ok());
  EXPECT_THAT(Names(*plan),
              ElementsAre("a(skipped)", "b(skipped)", "c(skipped)", "d", "e"));
}

// The needs rule's one home, used by the plan and (for tasks skipped when
// they run) by the scheduler.
TEST(PlanTest, SkippedByNeedsIsTheOneNeedsRule) {
  v1::Task t;
  t.set_name("t");
  t.add_needs("a");
  t.add_needs("b");
  t.add_needs("elsewhere");
  auto verdict = [&](bool a, bool b) {
    return SkippedByNeeds(t, [&](const std::string& n) -> std::optional<bool> {
      if (n == "a") return a;
      if (n == "b") return b;
      return std::nullopt;  // not in the task's part: does not count
    });
  };
  EXPECT_EQ(verdict(true, true), "every task it needs is skipped (a, b)");
  EXPECT_EQ(verdict(true, false), std::nullopt);
  EXPECT_EQ(verdict(false, false), std::nullopt);
  t.set_run_if_needs_skipped(true);
  EXPECT_EQ(verdict(true, true), std::nullopt);
  v1::Task none;
  none.set_name("none");
  EXPECT_EQ(SkippedByNeeds(none, [](const std::string&) { return true; }),
            std::nullopt);
}

TEST(PlanTest, BadParamsAreRejected) {
  v1::Pipeline p = MustLoad(kDelivery);
  v1::Trigger trigger;
  (*trigger.mutable_params())["env"] = "stage";
  (*trigger.mutable_params())["evn"] = "x";
  absl::StatusOr<Plan> plan = ComputePlan(p, trigger);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plan.status().message(),
              HasSubstr("'stage' is not one of the choices"));
  EXPECT_THAT(plan.status().message(),
              HasSubstr("unknown param evn (did you mean 'env'?)"));
}

TEST(PlanTest, CycleIsFailedPrecondition) {
  v1::Pipeline p;
  for (const char* name : {"a", "b"}) {
    v1::Task* t = p.add_tasks();
    t->set_name(name);
    t->add_needs(std::string(name) == "a" ? "b" : "a");
  }
  absl::StatusOr<Plan> plan = ComputePlan(p, v1::Trigger());
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(PlanTest, LargeDag) {
  v1::Pipeline p;
  for (int i = 0; i < 10000; ++i) {
    v1::Task* t = p.add_tasks();
    t->set_name(absl::StrCat("t", i));
    if (i > 0) t->add_needs(absl::StrCat("t", (i - 1) / 2));
    t->mutable_run()->add_command("true");
  }
  absl::StatusOr<Plan> plan = ComputePlan(p, v1::Trigger());
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->order.size(), 10000u);
  std::vector<int> position(10000);
  for (size_t k = 0; k < plan->order.size(); ++k)
    position[plan->order[k].index] = k;
  for (int i = 1; i < 10000; ++i) EXPECT_LT(position[(i - 1) / 2], position[i]);
}

}  // namespace
}  // namespace kiln::pipeline
