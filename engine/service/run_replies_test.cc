#include "engine/service/run_replies.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace kiln::service {
namespace {

v1::Pipeline WithSecret() {
  v1::Pipeline p;
  v1::Param* token = p.add_params();
  token->set_name("token");
  token->set_secret(true);
  token->set_default_("default-secret-value");
  v1::Param* plain = p.add_params();
  plain->set_name("plain");
  return p;
}

TEST(RunRepliesTest, RedactsSecretParamsAndResultsHoldingThem) {
  v1::Run run;
  (*run.mutable_trigger()->mutable_params())["token"] = "s3cr3t-value";
  (*run.mutable_trigger()->mutable_params())["plain"] = "visible";
  v1::TaskStatus* task = run.add_tasks();
  (*task->mutable_results())["out"] = "prefix s3cr3t-value suffix";
  task->set_reason("failed with s3cr3t-value");
  RedactSecrets(WithSecret(), &run);
  EXPECT_EQ(run.trigger().params().at("token"), kRedacted);
  EXPECT_EQ(run.trigger().params().at("plain"), "visible");
  EXPECT_EQ(run.tasks(0).results().at("out"),
            absl::StrCat("prefix ", kRedacted, " suffix"));
  EXPECT_EQ(run.DebugString().find("s3cr3t"), std::string::npos);
}

TEST(RunRepliesTest, RedactsSecretDefaults) {
  v1::Pipeline p = WithSecret();
  RedactSecretDefaults(&p);
  EXPECT_EQ(p.params(0).default_(), kRedacted);
  EXPECT_FALSE(p.params(1).has_default_());
}

v1::Run BigRun(int tasks, size_t result_bytes) {
  v1::Run run;
  run.set_id("r1");
  for (int i = 0; i < tasks; ++i) {
    v1::TaskStatus* t = run.add_tasks();
    t->set_name(absl::StrCat("t", i));
    (*t->mutable_results())["r"] = std::string(result_bytes, 'x');
  }
  return run;
}

TEST(RunRepliesTest, FitsLargeRunsAndPagesTasksByBytes) {
  v1::Run run = BigRun(100, 100 << 10);  // ~10 MB of tasks
  v1::Run fitted = run;
  FitRun(&fitted);
  EXPECT_TRUE(fitted.tasks_omitted());
  EXPECT_EQ(fitted.tasks_size(), 0);
  EXPECT_LE(fitted.ByteSizeLong(), kMaxReplyBytes);

  // Pages of at most 4 MiB cover every task once, in order.
  std::string token;
  int seen = 0;
  do {
    auto page = PageTasks(run, 1000, token);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->ByteSizeLong(), kMaxReplyBytes);
    ASSERT_GT(page->tasks_size(), 0);
    for (const v1::TaskStatus& t : page->tasks()) {
      EXPECT_EQ(t.name(), absl::StrCat("t", seen++));
    }
    token = page->next_page_token();
  } while (!token.empty());
  EXPECT_EQ(seen, 100);

  // One task over the limit alone is still served, fitted.
  v1::Run huge = BigRun(1, 5 << 20);
  auto page = PageTasks(huge, 10, "");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->tasks_size(), 1);
  EXPECT_LE(page->ByteSizeLong(), kMaxReplyBytes);
  EXPECT_EQ(PageTasks(huge, 10, "x").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RunRepliesTest, SummaryHasNoTasks) {
  v1::Run run = BigRun(3, 10);
  SummarizeRun(&run);
  EXPECT_EQ(run.tasks_size(), 0);
  EXPECT_TRUE(run.tasks_omitted());
}

}  // namespace
}  // namespace kiln::service
