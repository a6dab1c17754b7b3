// Approval gates through the engine: a gated task waits (holding no slot),
// an approver's decision lets it run or fails it, the wait times out, and a
// waiting task survives an engine restart (Shutdown, then a new engine
// resumes the run).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/engine.h"
#include "engine/engine_test_fixture.h"
#include "executors/fake/fake_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class EngineApprovalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TEST_TMPDIR");
    store_ = absl::StrCat(
        base ? base : "/tmp", "/approval_",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_",
        getpid());
    fs::remove_all(store_);
    fs::create_directories(store_);
    executor_ = std::make_shared<FakeExecutor>();
    executor_->On("step", [](const v1::ExecRequest& req) {
      FakeScript s;
      s.Stdout("step " + req.argv(1));
      return s;
    });
    engine_ = NewEngine();
  }

  std::unique_ptr<Engine> NewEngine() {
    return engine_testing::MakeEngine(store_, executor_,
                                      [](EngineOptions& options) {
                                        // A waiting gate must not hold the one
                                        // slot.
                                        options.parallelism = 1;
                                      });
  }

  // build -> deploy (gated, approvers: alice) -> smoke; lint independent
  // and declared after deploy.
  static v1::Pipeline Gated(int64_t timeout_ms = 0) {
    v1::Pipeline p;
    p.set_name("gated");
    auto add = [&p](const std::string& name, const std::string& need) {
      v1::Task* t = p.add_tasks();
      t->set_name(name);
      if (!need.empty()) t->add_needs(need);
      t->mutable_run()->add_command("step");
      t->mutable_run()->add_command(name);
      return t;
    };
    add("build", "");
    v1::Task* deploy = add("deploy", "build");
    deploy->mutable_approval()->set_message("ship to prod?");
    deploy->mutable_approval()->add_approvers("alice");
    if (timeout_ms > 0) {
      deploy->mutable_approval()->mutable_timeout()->set_nanos(
          static_cast<int32_t>(timeout_ms * 1000000));
    }
    add("smoke", "deploy");
    add("lint", "");
    return p;
  }

  std::string Submit(v1::Pipeline p,
                     std::map<std::string, std::string> in_advance = {}) {
    RunRequest req;
    req.pipeline = std::move(p);
    req.approved_in_advance = std::move(in_advance);
    auto run = engine_->Submit(std::move(req));
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? (*run)->id() : "";
  }

  static const v1::TaskStatus& Task(const v1::Run& run, const std::string& n) {
    for (const auto& t : run.tasks()) {
      if (t.name() == n) return t;
    }
    static v1::TaskStatus none;
    return none;
  }

  // Polls the recorded run until `task` is in `state` (or 10s pass).
  v1::Run AwaitTask(Engine* engine, const std::string& id,
                    const std::string& task, v1::TaskState state) {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    v1::Run run;
    while (absl::Now() < deadline) {
      auto r = engine->GetRun(id);
      if (r.ok()) {
        run = *r;
        if (Task(run, task).state() == state) return run;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    ADD_FAILURE() << task << " never reached " << v1::TaskState_Name(state)
                  << "; run: " << run.ShortDebugString();
    return run;
  }

  v1::Run Wait(Engine* engine, const std::string& id) {
    auto handle = engine->Find(id);
    EXPECT_TRUE(handle.ok()) << handle.status();
    return handle.ok() ? (*handle)->Wait() : v1::Run();
  }

  bool Executed(const std::string& step) {
    for (const auto& r : executor_->requests()) {
      if (r.argv_size() > 1 && r.argv(1) == step) return true;
    }
    return false;
  }

  std::string store_;
  std::shared_ptr<FakeExecutor> executor_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineApprovalTest, WaitsWithoutASlotUntilApprovedThenRuns) {
  std::string id = Submit(Gated());
  // lint (after deploy in declaration order) finishes although the one
  // slot's worth of parallelism is taken by nothing: the gate holds none.
  AwaitTask(engine_.get(), id, "lint", v1::TASK_SUCCEEDED);
  v1::Run run =
      AwaitTask(engine_.get(), id, "deploy", v1::TASK_WAITING_FOR_APPROVAL);
  EXPECT_EQ(run.state(), v1::RUN_RUNNING);
  const v1::TaskStatus& deploy = Task(run, "deploy");
  EXPECT_EQ(deploy.approval().message(), "ship to prod?");
  EXPECT_TRUE(deploy.approval().has_waiting_since());
  EXPECT_FALSE(deploy.approval().decided());
  EXPECT_FALSE(Executed("deploy"));

  // Only a listed approver decides; a second decision is refused.
  auto denied = engine_->DecideApproval(id, "deploy", true, "bob", "");
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied)
      << denied.status();
  auto early = engine_->DecideApproval(id, "smoke", true, "alice", "");
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  auto decided = engine_->DecideApproval(id, "deploy", true, "alice", "lgtm");
  ASSERT_TRUE(decided.ok()) << decided.status();
  EXPECT_TRUE(decided->approved());
  auto again = engine_->DecideApproval(id, "deploy", false, "alice", "");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);

  run = Wait(engine_.get(), id);
  EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.ShortDebugString();
  EXPECT_EQ(Task(run, "deploy").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Task(run, "smoke").state(), v1::TASK_SUCCEEDED);
  EXPECT_TRUE(Executed("deploy"));
  const v1::ApprovalStatus& a = Task(run, "deploy").approval();
  EXPECT_TRUE(a.decided());
  EXPECT_TRUE(a.approved());
  EXPECT_EQ(a.principal(), "alice");
  EXPECT_EQ(a.comment(), "lgtm");
  EXPECT_TRUE(a.has_decided_at());

  // The event stream shows the wait and the decision.
  auto events = engine_->ReadEvents(id, 0, 1000);
  ASSERT_TRUE(events.ok());
  bool waited = false, approved = false;
  for (const auto& e : *events) {
    if (!e.has_task_state() || e.task_state().task() != "deploy") continue;
    waited |= e.task_state().state() == v1::TASK_WAITING_FOR_APPROVAL;
    approved |= e.task_state().state() == v1::TASK_PENDING &&
                e.task_state().reason() == "approved by alice: lgtm";
  }
  EXPECT_TRUE(waited);
  EXPECT_TRUE(approved);
}

TEST_F(EngineApprovalTest, RejectedTaskFailsAndItsDependentsDoNotRun) {
  std::string id = Submit(Gated());
  AwaitTask(engine_.get(), id, "deploy", v1::TASK_WAITING_FOR_APPROVAL);
  auto decided =
      engine_->DecideApproval(id, "deploy", false, "alice", "not on friday");
  ASSERT_TRUE(decided.ok()) << decided.status();
  v1::Run run = Wait(engine_.get(), id);
  EXPECT_EQ(run.state(), v1::RUN_FAILED);
  EXPECT_EQ(Task(run, "deploy").state(), v1::TASK_FAILED);
  EXPECT_EQ(Task(run, "deploy").reason(), "rejected by alice: not on friday");
  EXPECT_NE(Task(run, "smoke").state(), v1::TASK_SUCCEEDED);
  EXPECT_FALSE(Executed("deploy"));
  EXPECT_FALSE(Executed("smoke"));
}

TEST_F(EngineApprovalTest, NoDecisionWithinTheTimeoutFailsTheTask) {
  std::string id = Submit(Gated(/*timeout_ms=*/300));
  v1::Run run = Wait(engine_.get(), id);
  EXPECT_EQ(run.state(), v1::RUN_FAILED);
  EXPECT_EQ(Task(run, "deploy").state(), v1::TASK_TIMED_OUT);
  EXPECT_THAT(Task(run, "deploy").reason(),
              HasSubstr("no approval decision within 300ms"));
  EXPECT_FALSE(Executed("deploy"));
}

TEST_F(EngineApprovalTest, WaitingSurvivesARestartAndApprovalAfterItRuns) {
  std::string id = Submit(Gated());
  v1::Run before =
      AwaitTask(engine_.get(), id, "deploy", v1::TASK_WAITING_FOR_APPROVAL);
  engine_->Shutdown(absl::Seconds(5));
  engine_.reset();

  engine_ = NewEngine();
  ASSERT_NE(engine_, nullptr);
  auto resumed = engine_->ResumeUnfinished();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  v1::Run after =
      AwaitTask(engine_.get(), id, "deploy", v1::TASK_WAITING_FOR_APPROVAL);
  // The wait (and so its deadline) counts from the first time.
  EXPECT_EQ(Task(after, "deploy").approval().waiting_since().seconds(),
            Task(before, "deploy").approval().waiting_since().seconds());
  auto decided = engine_->DecideApproval(id, "deploy", true, "alice", "");
  ASSERT_TRUE(decided.ok()) << decided.status();
  v1::Run run = Wait(engine_.get(), id);
  EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.ShortDebugString();
  EXPECT_EQ(Task(run, "deploy").reason(), "");
  EXPECT_TRUE(Executed("deploy"));
}

TEST_F(EngineApprovalTest, ApprovedInAdvanceRunsWithoutWaiting) {
  std::string id = Submit(Gated(), {{"deploy", "local user"}});
  v1::Run run = Wait(engine_.get(), id);
  EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.ShortDebugString();
  EXPECT_EQ(Task(run, "deploy").approval().principal(), "local user");

  RunRequest req;
  req.pipeline = Gated();
  req.approved_in_advance = {{"lint", "x"}};
  auto refused = engine_->Submit(std::move(req));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("without an approval"));
}

// A gated task's cache hit is found by a worker (RunAttempt's own lookup,
// after the gate), not by the scheduler's batch: it is recorded by its
// TASK_CACHED event all the same.
TEST_F(EngineApprovalTest, AGatedTasksHitIsRecordedWithItsKey) {
  v1::Run first = Wait(engine_.get(), Submit(Gated(), {{"deploy", "alice"}}));
  ASSERT_EQ(first.state(), v1::RUN_SUCCEEDED) << first.ShortDebugString();
  ASSERT_FALSE(Task(first, "deploy").cache_key().empty());
  std::string id = Submit(Gated(), {{"deploy", "alice"}});
  v1::Run second = Wait(engine_.get(), id);
  ASSERT_EQ(second.state(), v1::RUN_SUCCEEDED) << second.ShortDebugString();
  auto stored = engine_->GetRun(id);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(Task(*stored, "deploy").state(), v1::TASK_CACHED);
  EXPECT_EQ(Task(*stored, "deploy").cache_key(),
            Task(first, "deploy").cache_key());
  EXPECT_EQ(Task(*stored, "build").cache_key(),
            Task(first, "build").cache_key());
}

}  // namespace
}  // namespace kiln
